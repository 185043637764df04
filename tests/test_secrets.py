"""No plaintext password leaves the source: not in a log, the report, a rejects file, an
exception's text or a progress line, nor anywhere in PostgreSQL. The tests grep every file
a run writes and everything it prints for the plaintexts of the source."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path
from typing import Any

import bcrypt
from psycopg import sql

from lite2pg.demo import make_legacy_helpdesk
from lite2pg.plan import load_plan
from lite2pg.report import RunReport
from lite2pg.run import MigrateOptions, migrate, prepare_schema

from .conftest import MakeDb, PgSchema

SNAPSHOT = "source.snapshot.db"
REDACTED = "<redacted>"

# Plaintexts shorter than this are not searched for: '123456' or 'qwerty' can turn up by
# chance in a timestamp's microseconds, a byte count, a duration or a base64 salt, and a
# match there would prove nothing. The generator's random passwords are 8-16 characters.
MIN_SEARCHED = 8

# A plaintext bcrypt cannot take whole (> 72 bytes), without a single ASCII-only run that
# is long: it must be found in files that escape non-ASCII text, too.
LONG_PLAINTEXT = "Zürich-Kennwort-" * 5 + "🙂"


def plaintexts(db: Path) -> list[str]:
    """The source's plaintext passwords worth searching for ('' and hashes are not)."""
    with closing(sqlite3.connect(db)) as conn:
        values = [r[0] for r in conn.execute("SELECT password FROM users")]
    return sorted(
        {
            v
            for v in values
            if isinstance(v, str) and not v.startswith("$") and len(v) >= MIN_SEARCHED
        }
    )


def forms(plaintext: str) -> set[bytes]:
    """The bytes a plaintext would show as: UTF-8, and JSON's \\u escapes."""
    return {
        plaintext.encode(),
        json.dumps(plaintext)[1:-1].encode(),
        json.dumps(plaintext, ensure_ascii=False)[1:-1].encode(),
    }


def leaked(data: bytes, secrets: Iterable[str]) -> list[str]:
    """The plaintexts found in `data`, also across a line wrapped by a console."""
    squeezed = b"".join(data.split())
    return [
        s
        for s in secrets
        if any(form in data or b"".join(form.split()) in squeezed for form in forms(s))
    ]


def files_under(directory: Path, *excluded: str) -> dict[Path, bytes]:
    # export/ holds copies of the source tables by design, like the snapshot: those are
    # checked for their mode and their manifest entry instead (assert_private_run_files).
    return {
        p: p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name not in excluded and "export" not in p.relative_to(directory).parts
    }


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    # A wide console: rich would otherwise wrap long lines at 80 columns.
    env = {**os.environ, "COLUMNS": "400"}
    return subprocess.run(
        [sys.executable, "-m", "lite2pg", *args],
        capture_output=True,
        cwd=cwd,
        env=env,
        timeout=600,
        check=False,
    )


def assert_no_plaintext_in_postgresql(pg: PgSchema, secrets: list[str]) -> None:
    hashes = [r[0] for r in pg.query('SELECT "passwordHash" FROM users')]
    assert hashes
    assert not set(hashes) & set(secrets)
    columns = pg.query(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() "
        "AND data_type IN ('text', 'character varying', 'character', 'USER-DEFINED')"
    )
    assert ("users", "passwordHash") in columns
    for table, column in columns:
        statement = sql.SQL(
            "SELECT count(*) FROM {} WHERE {}::text = ANY(%s) "
            "OR EXISTS (SELECT 1 FROM unnest(%s::text[]) s WHERE strpos({}::text, s) > 0)"
        ).format(sql.Identifier(table), sql.Identifier(column), sql.Identifier(column))
        found = pg.query(statement.as_string(), (secrets, secrets))
        assert found == [(0,)], f"{table}.{column} holds a plaintext"


def assert_private_run_files(run_dir: Path) -> None:
    assert mode(run_dir / SNAPSHOT) == 0o600
    cache = sorted(run_dir.glob("password_cache*"))
    assert {p.name for p in cache} >= {"password_cache.sqlite3", "password_cache.key"}
    for path in [*cache, *run_dir.glob("rejects/*.jsonl"), *run_dir.glob("export/*.csv")]:
        assert mode(path) == 0o600, path
    if (run_dir / "manifest.json").exists():
        files = {f["path"]: f for f in json.loads((run_dir / "manifest.json").read_text())["files"]}
        assert files["export/users.csv"]["secret"] is True
        assert files["export/tickets.csv"]["secret"] is False


def test_cli_migrate_leaves_no_plaintext_in_its_output_files_or_postgresql(
    pg: PgSchema, tmp_path: Path
) -> None:
    db = tmp_path / "legacy.db"
    make_legacy_helpdesk(db, users=40, tickets=80, audit_logs=150, seed=3)
    secrets = plaintexts(db)
    assert len(secrets) >= 30 and any(not s.isascii() for s in secrets)
    # One user with a plaintext is rejected (for its date), so its row is in rejects/.
    with closing(sqlite3.connect(db)) as conn, conn:
        uid = conn.execute(
            "SELECT id FROM users WHERE password = ? ORDER BY id LIMIT 1", (secrets[0],)
        ).fetchone()[0]
        conn.execute("UPDATE users SET created_at = 'not a date' WHERE id = ?", (uid,))
    prepare_schema(pg.target, pg.schema, load_plan("helpdesk"))
    run_dir = tmp_path / "run"

    proc = run_cli(
        "migrate", str(db), "--plan", "helpdesk", "--data-only", "--truncate",
        "--schema", pg.schema, "--target", pg.dsn, "--run-dir", str(run_dir),
        cwd=tmp_path,
    )  # fmt: skip

    assert proc.returncode == 1, proc.stderr.decode()  # rows were rejected
    assert b"loading users" in proc.stderr  # the progress lines were captured too
    assert leaked(proc.stdout + proc.stderr, secrets) == []
    written = files_under(run_dir, SNAPSHOT)
    assert {"report.json", "users.jsonl", "password_cache.sqlite3"} <= {p.name for p in written}
    assert {str(p): leaked(data, secrets) for p, data in written.items()} == {
        str(p): [] for p in written
    }
    assert_private_run_files(run_dir)
    rejected_users = [
        json.loads(line) for line in (run_dir / "rejects" / "users.jsonl").read_text().splitlines()
    ]
    [record] = [r for r in rejected_users if r["key"] == {"id": uid}]
    assert record["row"]["password"] == REDACTED
    assert_no_plaintext_in_postgresql(pg, secrets)


def test_cli_demo_leaves_no_plaintext_outside_its_source_database(
    pg: PgSchema, tmp_path: Path
) -> None:
    demo_dir = tmp_path / "demo"

    proc = run_cli(
        "demo", "--dir", str(demo_dir), "--target", pg.dsn, "--schema", pg.schema,
        "--users", "30", "--tickets", "60", "--audit-logs", "120",
        cwd=tmp_path,
    )  # fmt: skip

    assert proc.returncode == 0, proc.stderr.decode()
    source = demo_dir / "dev.db"
    assert mode(source) == 0o600
    secrets = plaintexts(source)
    assert len(secrets) >= 20
    [run_dir] = (demo_dir / "runs").iterdir()
    assert_private_run_files(run_dir)
    written = files_under(demo_dir, SNAPSHOT, source.name)
    assert any(p.name == "report.json" for p in written)
    assert leaked(proc.stdout + proc.stderr, secrets) == []
    assert {str(p): leaked(data, secrets) for p, data in written.items()} == {
        str(p): [] for p in written
    }
    assert_no_plaintext_in_postgresql(pg, secrets)


def migrate_with_plan(db: Path, pg: PgSchema, tmp_path: Path, plan_toml: str) -> RunReport:
    plan_file = tmp_path / "plan.toml"
    plan_file.write_text(plan_toml, encoding="utf-8")
    return migrate(
        db,
        pg.target,
        MigrateOptions(schema=pg.schema, run_dir=tmp_path / "run", plan=load_plan(str(plan_file))),
    )


def rejects(report: RunReport, table: str) -> list[dict[str, Any]]:
    assert report.rejects_dir is not None
    path = Path(report.rejects_dir) / f"{table}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_password_too_long_for_bcrypt_is_rejected_without_showing_it(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    assert len(LONG_PLAINTEXT.encode()) > 72
    db = make_db(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, username TEXT, password TEXT)",
        (
            "INSERT INTO users VALUES (?, ?, ?)",
            [(1, "ann", LONG_PLAINTEXT), (2, "bob", "bobs-short-secret")],
        ),
    )

    report = migrate_with_plan(
        db,
        pg,
        tmp_path,
        "[tables.users.columns.password]\n"
        'transforms = [{ hash_password = { algorithm = "bcrypt", cost = 4 } }]\n',
    )

    users = next(t for t in report.tables if t.source == "users")
    assert (users.loaded, users.rejected) == (1, 1)
    assert users.passwords["rejected"] == 1
    [record] = rejects(report, "users")
    assert record["key"] == {"id": 1} and record["column"] == "password"
    assert "72 bytes" in record["reason"]
    assert LONG_PLAINTEXT not in record["reason"] and "Zürich" not in record["reason"]
    assert record["row"]["password"] == REDACTED
    secrets = [LONG_PLAINTEXT, "bobs-short-secret"]
    run_dir = tmp_path / "run"
    for path, data in files_under(run_dir, SNAPSHOT).items():
        assert leaked(data, secrets) == [], path
    report_text = json.dumps(report.as_dict(), ensure_ascii=False) + str(report)
    assert leaked(report_text.encode(), secrets) == []
    [(stored,)] = pg.query("SELECT password FROM users WHERE id = 2")
    assert bcrypt.checkpw(b"bobs-short-secret", stored.encode())


def test_a_step_before_hash_password_that_rejects_shows_redacted_not_the_value(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE cards (id INTEGER PRIMARY KEY, pin TEXT)",
        ("INSERT INTO cards VALUES (?, ?)", [(1, "4711"), (2, "12ab-secret-pin")]),
    )

    report = migrate_with_plan(
        db,
        pg,
        tmp_path,
        "[tables.cards.columns.pin]\n"
        'transforms = ["integer", { hash_password = { algorithm = "bcrypt", cost = 4 } }]\n',
    )

    [record] = rejects(report, "cards")
    assert record["key"] == {"id": 2} and record["column"] == "pin"
    assert REDACTED in record["reason"] and "12ab" not in record["reason"]
    assert record["row"]["pin"] == REDACTED
    for path, data in files_under(tmp_path / "run", SNAPSHOT).items():
        assert leaked(data, ["12ab-secret-pin"]) == [], path
    [(stored,)] = pg.query("SELECT pin FROM cards")
    assert bcrypt.checkpw(b"4711", stored.encode())
