"""verify's evidence section: evidence.json pins the run directory's files and counts with
an HMAC, and every row logged as refused by PostgreSQL is replayed. Each test damages the
run on purpose and asserts that verify fails and names what was damaged."""

from __future__ import annotations

import json
import sqlite3
import stat
from contextlib import closing
from pathlib import Path
from typing import Any

import bcrypt

from lite2pg import evidence
from lite2pg.plan import parse_plan
from lite2pg.run import MigrateOptions, migrate
from lite2pg.rundir import SNAPSHOT_NAME
from lite2pg.verify import VerifyReport, verify

from ._cli import cli
from .conftest import MakeDb, PgSchema

ROWS = [(i, "bad" if i in (4, 7) else f"ok{i}") for i in range(1, 11)]
REFUSED_LINE = (
    'PostgreSQL refused the row: new row for relation "t" violates check constraint '
    '"t_code_check" [23514]'
)


def refusing_run(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, *, keep_artifacts: bool = False
) -> Path:
    """A data-only run into a table whose CHECK (lite2pg cannot know it) refuses 2 rows."""
    pg.execute("CREATE TABLE t (id bigint PRIMARY KEY, code text CHECK (code <> 'bad'))")
    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, code TEXT);", ("INSERT INTO t VALUES (?, ?)", ROWS)
    )
    run_dir = tmp_path / "run"
    opts = MigrateOptions(
        schema=pg.schema, data_only=True, run_dir=run_dir, verify=False,
        keep_artifacts=keep_artifacts,
    )  # fmt: skip
    migrate(db, pg.target, opts)
    return run_dir


def _report_json(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "report.json").read_text())
    return data


def _hide_row_as_refused(pg: PgSchema, run_dir: Path, key: int, logged_code: str) -> None:
    """What the issue's attacker did: delete a row in PostgreSQL, log it as refused, and
    make report.json's counts agree."""
    pg.execute(f"DELETE FROM t WHERE id = {key}")
    line = {
        "table": "t",
        "key": {"id": key},
        "column": "code",
        "reason": REFUSED_LINE,
        "row": {"id": key, "code": logged_code},
    }
    with (run_dir / "rejects" / "t.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")
    data = _report_json(run_dir)
    table = data["tables"][0]
    table["loaded"] -= 1
    table["rejected"] += 1
    data["totals"]["loaded"] -= 1
    data["totals"]["rejected"] += 1
    (run_dir / "report.json").write_text(json.dumps(data, indent=2))


def _evidence(report: VerifyReport) -> Any:
    assert report.evidence is not None
    return report.evidence


def test_an_untampered_run_verifies_with_its_evidence_pinned_and_its_refusals_replayed(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    run_dir = refusing_run(make_db, pg, tmp_path)

    report = verify(run_dir, pg.target)

    assert report.ok, report.problems
    e = _evidence(report)
    assert e.state == "pinned" and e.written_by == "migrate"
    assert e.files == {
        "run.json": "unchanged",
        SNAPSHOT_NAME: "unchanged",
        "rejects/t.jsonl": "unchanged",
    }
    assert e.counts_tables == 1
    assert (e.replayed, e.refused_again, e.accepted) == (2, 2, [])
    assert e.verdict().startswith("evidence: PINNED: 3 file(s)")
    assert stat.S_IMODE((run_dir / evidence.KEY_NAME).stat().st_mode) == 0o600
    saved = _report_json(run_dir)["verify"]["evidence"]
    assert saved["ok"] is True and saved["refused_again"] == 2
    assert "<h2>Evidence</h2>" in (run_dir / "report.html").read_text()
    # The replay was rolled back: PostgreSQL holds exactly the rows it took.
    assert pg.query("SELECT id FROM t ORDER BY id") == [(i,) for i, c in ROWS if c != "bad"]


def test_a_row_deleted_and_logged_as_refused_is_named_by_the_edited_files(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    run_dir = refusing_run(make_db, pg, tmp_path)
    _hide_row_as_refused(pg, run_dir, 5, "ok5")

    report = verify(run_dir, pg.target)

    assert not report.ok
    e = _evidence(report)
    assert e.files["rejects/t.jsonl"] == "changed"
    assert any("rejects/t.jsonl was edited" in p for p in e.problems), e.problems
    assert any("report.json: the counts of t were edited" in p for p in e.problems)
    assert any("loaded 8 -> 7" in p for p in e.problems)
    assert e.verdict().startswith("evidence: FAILED: ")
    assert any(p.startswith("evidence: ") for p in report.problems)


def test_a_forged_refusal_re_signed_with_the_key_is_caught_by_the_replay(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    run_dir = refusing_run(make_db, pg, tmp_path)
    # The forger logs values PostgreSQL would refuse ('bad'), and re-signs the record with
    # the run's key: the replay sends the row transform(source) gives, not the logged one.
    _hide_row_as_refused(pg, run_dir, 5, "bad")
    evidence.write_evidence(run_dir, "forger")

    report = verify(run_dir, pg.target)

    assert not report.ok
    e = _evidence(report)
    assert all(state == "unchanged" for state in e.files.values())
    assert (e.replayed, e.refused_again) == (3, 2)
    assert e.accepted == [{"table": "t", "key": {"id": "5"}}]
    [problem] = e.problems
    assert "t (id=5)" in problem and "it should have been loaded" in problem
    assert pg.query("SELECT count(*) FROM t WHERE id = 5") == [(0,)]


def test_an_edited_manifest_snapshot_run_file_or_report_count_is_named(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    run_dir = refusing_run(make_db, pg, tmp_path, keep_artifacts=True)
    clean = verify(run_dir, pg.target)
    assert clean.ok, clean.problems
    assert _evidence(clean).files["manifest.json"] == "unchanged"

    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["tables"]["_transform"]["counts"]["t"]["rejected"] = 3
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    # A header field only: the rows are the same, the file is not.
    with closing(sqlite3.connect(run_dir / SNAPSHOT_NAME)) as conn:
        conn.execute("PRAGMA user_version = 7")
    run_file = json.loads((run_dir / "run.json").read_text())
    run_file["schema"] = run_file.get("schema", "")
    (run_dir / "run.json").write_text(json.dumps(run_file, indent=1))
    data = _report_json(run_dir)
    data["tables"][0]["filtered"] = 1
    # report.json's own record of the snapshot's hash is not signed: the editor drops it.
    del data["snapshot_sha256"], data["verify"]
    (run_dir / "report.json").write_text(json.dumps(data))

    report = verify(run_dir, pg.target)

    e = _evidence(report)
    assert not report.ok
    assert e.files["manifest.json"] == "changed"
    assert e.files[SNAPSHOT_NAME] == "changed"
    assert e.files["run.json"] == "changed"
    assert any("filtered 0 -> 1" in p for p in e.problems), e.problems
    for name in ("manifest.json", SNAPSHOT_NAME, "run.json"):
        assert any(p.startswith(f"{name} was edited") for p in e.problems), name


def test_a_rejects_file_added_or_removed_is_named(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    run_dir = refusing_run(make_db, pg, tmp_path)
    (run_dir / "rejects" / "t.jsonl").rename(run_dir / "rejects" / "other.jsonl")

    report = verify(run_dir, pg.target)

    e = _evidence(report)
    assert e.files["rejects/t.jsonl"] == "missing"
    assert e.files["rejects/other.jsonl"] == "added"
    assert any("rejects/other.jsonl was added" in p for p in e.problems)
    assert any("rejects/t.jsonl was removed" in p for p in e.problems)


def test_without_the_key_or_the_record_the_evidence_is_not_verified(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    run_dir = refusing_run(make_db, pg, tmp_path)
    (run_dir / evidence.KEY_NAME).unlink()

    no_key = verify(run_dir, pg.target)

    assert not no_key.ok
    assert any(".evidence-key is missing" in p for p in _evidence(no_key).problems)

    (run_dir / evidence.EVIDENCE_NAME).unlink()

    no_record = verify(run_dir, pg.target)

    e = _evidence(no_record)
    assert not no_record.ok and e.state == "not pinned"
    assert e.verdict().startswith("evidence: NOT VERIFIED: evidence not pinned (run made by an")
    # The data itself still verifies: only the evidence is unproven.
    assert all(t.ok for t in no_record.tables)


def test_an_edited_record_fails_its_hmac(make_db: MakeDb, pg: PgSchema, tmp_path: Path) -> None:
    run_dir = refusing_run(make_db, pg, tmp_path)
    path = run_dir / evidence.EVIDENCE_NAME
    record = json.loads(path.read_text())
    record["report_counts"]["t"]["loaded"] = 7
    path.write_text(json.dumps(record))

    report = verify(run_dir, pg.target)

    problems = _evidence(report).problems
    assert any("evidence.json was edited: its HMAC does not match" in p for p in problems)


def test_a_refused_row_with_a_password_column_is_replayed_with_a_placeholder_hash(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    pg.execute(
        "CREATE TABLE u (id bigint PRIMARY KEY, name text CHECK (name <> 'bad'), password text)"
    )
    db = make_db(
        "CREATE TABLE u (id INTEGER PRIMARY KEY, name TEXT, password TEXT);",
        ("INSERT INTO u VALUES (?, ?, ?)", [(1, "ann", "s3cret-ann"), (2, "bad", "s3cret-bad")]),
    )
    plan = parse_plan(
        "[tables.u.columns.password]\n"
        'transforms = [{ hash_password = { algorithm = "bcrypt", cost = 4 } }]\n'
    )
    run_dir = tmp_path / "run"
    opts = MigrateOptions(
        schema=pg.schema, data_only=True, run_dir=run_dir, verify=False, plan=plan
    )
    migrate(db, pg.target, opts)
    [line] = (run_dir / "rejects" / "u.jsonl").read_text().splitlines()
    assert json.loads(line)["row"]["password"] != "s3cret-bad"

    report = verify(run_dir, pg.target)

    assert report.ok, report.problems
    e = _evidence(report)
    assert (e.replayed, e.refused_again) == (1, 1)
    [(stored,)] = pg.query("SELECT password FROM u WHERE id = 1")
    assert bcrypt.checkpw(b"s3cret-ann", stored.encode())


def test_lite2pg_verify_prints_the_evidence_verdict_on_its_own_line(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    run_dir = refusing_run(make_db, pg, tmp_path)
    (run_dir / evidence.EVIDENCE_NAME).unlink()

    result = cli("verify", str(run_dir), "--target", pg.dsn, cwd=tmp_path)

    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("FAILED: evidence: evidence not pinned")
    assert any(line.startswith("evidence: NOT VERIFIED: ") for line in lines)
    assert "Traceback" not in result.stderr
