"""Driving the Django test project (tests/orm/djangoapp) in a subprocess per database."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict

from ..conftest import PgSchema

ROOT = Path(__file__).resolve().parents[2]


def sqlite_settings(path: Path) -> dict[str, Any]:
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)}


def pg_settings(pg: PgSchema) -> dict[str, Any]:
    """Django's DATABASES entry for the test server, confined to the test's schema."""
    info = conninfo_to_dict(pg.dsn)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": info.get("dbname", ""),
        "USER": info.get("user", ""),
        "PASSWORD": info.get("password", ""),
        "HOST": info.get("host", ""),
        "PORT": str(info.get("port", "")),
        "OPTIONS": {"options": f"-c search_path={pg.schema}"},
    }


def run_django(db: dict[str, Any], *steps: str, work: Path, release: int = 1) -> dict[str, Any]:
    """Run steps of tests/orm/djangoapp/run.py in a fresh process; return what they found."""
    out = work / f"django-{uuid.uuid4().hex[:8]}.json"
    cmd = [sys.executable, "-m", "tests.orm.djangoapp.run", "--db", json.dumps(db)]
    cmd += ["--release", str(release), "--out", str(out), *steps]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"django {' '.join(steps)} failed:\n{proc.stderr[-4000:]}"
    found: dict[str, Any] = json.loads(out.read_text())
    return found
