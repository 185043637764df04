"""lite2pg rehearse: a full run, then one document for sign-off whose every figure is the
run's own (counts, ledger, rejects by reason, stage times, the cutover day's commands)."""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing
from pathlib import Path

from tests._cli import cli
from tests.conftest import PgSchema

PLAN = """
[tables.accounts]
drop = ["email"]
[[tables.accounts.columns.role.transforms]]
[tables.accounts.columns.role.transforms.map]
values = { admin = "admin", user = "user" }
on_unknown = "reject"
"""


def _make_db(path: Path) -> Path:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, role TEXT, email TEXT)")
        conn.executemany(
            "INSERT INTO accounts VALUES (?, ?, ?)",
            [(i, ["admin", "user", "root"][i % 3], f"a{i}@x" if i % 2 else None)
             for i in range(1, 91)],
        )  # fmt: skip
        conn.commit()
    return path


def test_the_rehearsal_document_holds_the_runs_own_figures(tmp_path: Path, pg: PgSchema) -> None:
    db = _make_db(tmp_path / "copy.db")
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN)
    run_dir = tmp_path / "rehearsal"
    result = cli(
        "rehearse", str(db), "--plan", str(plan), "--target", pg.dsn, "--schema", pg.schema,
        "--production-size", "5GB", "--production-db", "/srv/app/prod.db",
        "--run-dir", str(run_dir), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    doc = (run_dir / "rehearsal.md").read_text()
    with closing(sqlite3.connect(db)) as conn:
        emails = conn.execute("SELECT count(email) FROM accounts").fetchone()[0]
        unknown = conn.execute("SELECT count(*) FROM accounts WHERE role = 'root'").fetchone()[0]
    loaded = pg.query("SELECT count(*) FROM accounts")[0][0]
    assert f"| accounts | 90 | {loaded} | {unknown} | 0 |" in doc
    assert f"dropped: accounts.email ({emails} non-NULL value(s) not migrated)" in doc
    assert f"| accounts | role | not one of the mapped values | {unknown} |" in doc
    report = json.loads((run_dir / "report.json").read_text())
    assert f"`{report['quarantine']}`" in doc
    for stage in report["stages"]:
        assert re.search(rf"^\| {re.escape(stage['name'])} \| ", doc, re.MULTILINE), stage
    assert "At 5,000.0 MB (production)" in doc
    assert "lite2pg prepare /srv/app/prod.db" in doc and "lite2pg cutover " in doc
    for role in ("DBA", "Tech lead", "Sponsor"):
        assert f"| {role} |" in doc
