"""Staged commands over one run directory, and runs killed at random moments."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from psycopg import sql

from lite2pg.artifacts import ArtifactChanged
from lite2pg.demo import make_legacy_helpdesk
from lite2pg.lifecycle import export
from lite2pg.plan import load_plan
from lite2pg.run import MigrateOptions, migrate, prepare_schema
from lite2pg.stages import load, transform
from lite2pg.staging import stage_name

from .conftest import PgSchema


def test_export_transform_load_gives_what_migrate_gives_and_verifies(
    tmp_path: Path, pg: PgSchema
) -> None:
    db = tmp_path / "dev.db"
    make_legacy_helpdesk(db, users=30, tickets=200, audit_logs=600, seed=9)
    plan = load_plan("helpdesk")
    prepare_schema(pg.target, pg.schema, plan)
    opts = MigrateOptions(schema=pg.schema, plan=plan, data_only=True, truncate=True)

    run_dir = export(db, tmp_path / "staged", opts)
    counts = transform(run_dir)
    report = load(run_dir, pg.target)

    assert report.verify is not None and report.verify["ok"], report.verify
    assert report.reconciled
    staged = {t.source: (t.read, t.loaded, t.rejected) for t in report.tables}
    assert {k: v["read"] for k, v in counts.items()} == {k: v[0] for k, v in staged.items()}
    opts.run_dir = tmp_path / "direct"
    direct = migrate(db, pg.target, opts)
    assert {t.source: (t.read, t.loaded, t.rejected) for t in direct.tables} == staged
    journal = json.loads((run_dir / "journal.json").read_text())
    assert journal["stages"]["load"]["state"] == "done"


def test_a_transformed_file_changed_after_transform_is_refused(
    tmp_path: Path, pg: PgSchema
) -> None:
    db = tmp_path / "dev.db"
    make_legacy_helpdesk(db, users=10, tickets=20, audit_logs=30, seed=2, messy=False)
    run_dir = export(db, tmp_path / "run", MigrateOptions(schema=pg.schema))
    transform(run_dir)
    path = run_dir / "transformed" / "users.csv"
    data = bytearray(path.read_bytes())
    data[-3] ^= 1  # one bit in the last row
    path.write_bytes(bytes(data))

    with pytest.raises(ArtifactChanged, match="changed since it was written"):
        load(run_dir, pg.target)

    assert pg.query("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()") == [(0,)]


def _table_counts(pg: PgSchema) -> dict[str, int]:
    out = {}
    for (name,) in pg.query(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1"
    ):
        out[name] = pg.query(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name)).as_string()
        )[0][0]
    return out


def _kill_after(cmd: list[str], seconds: float, cwd: Path) -> int | None:
    """Run `cmd` in `cwd`, SIGKILL it after `seconds` (with its children); its exit code if
    it ended."""
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=cwd,
    )
    try:
        return proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode",
    [
        ["--no-keep-artifacts", "--no-verify"],  # streaming: COPY and key building
        ["--keep-artifacts"],  # export, transform, load and verify, all killable
    ],
    ids=["streaming", "artifacts"],
)
def test_migrate_killed_at_random_moments_then_run_again_finishes_with_exact_counts(
    tmp_path: Path, pg: PgSchema, mode: list[str]
) -> None:
    db = tmp_path / "clean.db"
    expected = make_legacy_helpdesk(
        db, users=2_000, tickets=40_000, audit_logs=160_000, messy=False
    )
    cmd = [
        sys.executable, "-m", "lite2pg", "migrate", str(db), "--target", pg.dsn,
        "--schema", pg.schema, "--drop", "-q", *mode,
    ]  # fmt: skip
    # In tmp_path: with no --run-dir, each run's directory goes under ./.lite2pg/runs.
    started = time.perf_counter()
    assert subprocess.run(cmd, capture_output=True, check=False, cwd=tmp_path).returncode == 0
    full = time.perf_counter() - started
    rng = random.Random(7)
    for point in sorted(rng.uniform(0.1, full) for _ in range(5)):
        code = _kill_after(cmd, point, tmp_path)
        counts = _table_counts(pg)
        # Killed or not, the target holds a whole run: the earlier one, or this one.
        assert counts == {"audit_logs": 160_000, "tickets": 40_000, "users": 2_000}, point
        assert code in (None, 0)
        rerun = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=tmp_path)
        assert rerun.returncode == 0, rerun.stderr
        assert _table_counts(pg) == {
            "audit_logs": expected.audit_logs, "tickets": expected.tickets, "users": expected.users
        }  # fmt: skip
    # No staging schema of this target schema is left (other tests may be loading theirs).
    stale = pg.query(
        "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (stage_name(pg.schema),)
    )
    assert stale == [(0,)]


@pytest.mark.slow
def test_load_killed_at_random_moments_then_run_again_finishes_and_verifies(
    tmp_path: Path, pg: PgSchema
) -> None:
    db = tmp_path / "clean.db"
    make_legacy_helpdesk(db, users=1_000, tickets=20_000, audit_logs=80_000, messy=False)
    run_dir = export(db, tmp_path / "run", MigrateOptions(schema=pg.schema))
    transform(run_dir)
    cmd = [
        sys.executable, "-m", "lite2pg", "load", str(run_dir), "--target", pg.dsn, "--drop",
    ]  # fmt: skip
    started = time.perf_counter()
    first = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    full = time.perf_counter() - started
    rng = random.Random(11)
    for point in sorted(rng.uniform(0.1, full) for _ in range(3)):
        _kill_after(cmd, point, tmp_path)
        assert _table_counts(pg) == {"audit_logs": 80_000, "tickets": 20_000, "users": 1_000}
        rerun = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        report = json.loads((run_dir / "report.json").read_text())
        assert report["verify"]["ok"]
