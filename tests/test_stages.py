"""Staged commands over one run directory. Runs killed at points of every stage are in
tests/hostile/test_faults.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lite2pg.artifacts import ArtifactChanged
from lite2pg.demo import make_legacy_helpdesk
from lite2pg.lifecycle import export
from lite2pg.plan import load_plan
from lite2pg.run import MigrateOptions, migrate, prepare_schema
from lite2pg.stages import load, transform

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
