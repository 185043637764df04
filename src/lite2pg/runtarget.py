"""The target of a run directory: recorded in run.json when a run loads, and used by every
later command over that directory (verify, load, sync, cutover, rollback) unless `--target`
names another. The recorded conninfo never holds a password: libpq finds it again
(PGPASSWORD, ~/.pgpass), or `--target` gives it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg.conninfo

from lite2pg.artifacts import atomic_json
from lite2pg.errors import UsageError
from lite2pg.rundir import RUN_FILE
from lite2pg.target import RECORDED, Target, resolve, start_embedded

# conninfo keys that hold a secret: never written down.
_SECRETS = ("password", "sslpassword")


def without_password(dsn: str) -> str | None:
    """The conninfo with its password(s) taken out; None when it does not parse."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return None
    for key in _SECRETS:
        params.pop(key, None)
    return psycopg.conninfo.make_conninfo("", **{k: v for k, v in params.items() if v is not None})


def record_target(run_dir: Path, target: Target) -> None:
    """Write into run.json which server this run loads into (no password)."""
    path = run_dir / RUN_FILE
    data: dict[str, Any] = json.loads(path.read_text())
    conninfo = without_password(target.dsn) if target.dsn else ""
    if conninfo is None:
        return  # not a conninfo the run could connect with either
    data["target"] = {
        "conninfo": conninfo,
        "origin": target.origin,
        "embedded_dir": str(target.embedded_dir) if target.embedded_dir else None,
    }
    atomic_json(path, data)


def recorded_target(run_dir: Path) -> dict[str, Any] | None:
    """What record_target wrote, or None (a run from before, or one that never loaded)."""
    try:
        data = json.loads((run_dir / RUN_FILE).read_text())
    except (OSError, ValueError):
        return None  # the command's own reading of run.json says what is wrong
    found = data.get("target") if isinstance(data, dict) else None
    return found if isinstance(found, dict) else None


def run_target(run_dir: Path, target_uri: str | None) -> Target:
    """`--target` when given, else the target the run recorded, else as `resolve` finds
    one (DATABASE_URL, PG*, embedded) for a run that recorded none."""
    if target_uri:
        return Target(target_uri, "--target")
    found = recorded_target(run_dir)
    if found is None:
        return resolve(None)
    if found.get("origin") == "embedded":
        data_dir = found.get("embedded_dir")
        if not data_dir or not Path(data_dir).is_dir():
            raise UsageError(
                f"the run loaded into an embedded PostgreSQL whose data ({data_dir}) is gone",
                "give the server to use with --target",
            )
        return start_embedded(Path(data_dir))
    conninfo = str(found.get("conninfo") or "")
    if not conninfo:  # the run took its server from the PG* environment: so does this one
        return Target("", "PG* environment")
    return Target(conninfo, RECORDED)
