"""`check` predicts a real run: the same rejects, written nowhere."""

from __future__ import annotations

import datetime as dt
import json
import random
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import bcrypt

from lite2pg.check import check
from lite2pg.demo import make_legacy_helpdesk
from lite2pg.plan import load_plan
from lite2pg.run import MigrateOptions, migrate, prepare_schema

from .conftest import MakeDb, PgSchema


def _reject_keys(run_dir: Path) -> set[tuple[str, str]]:
    keys: set[tuple[str, str]] = set()
    for path in (run_dir / "rejects").glob("*.jsonl"):
        for line in path.read_text().split("\n"):
            if line:
                r = json.loads(line)
                keys.add((r["table"], json.dumps(r["key"], sort_keys=True)))
    return keys


def test_check_predicts_exactly_the_rows_a_real_run_rejects(tmp_path: Path, pg: PgSchema) -> None:
    db = tmp_path / "dev.db"
    make_legacy_helpdesk(db, users=40, tickets=300, audit_logs=900, seed=5)
    plan = load_plan("helpdesk")

    found = check(db, plan)
    predicted = {
        (g.table, json.dumps(k, sort_keys=True)) for g in found.rejects for k in g.examples
    }
    everything = check(db, plan, examples=100_000)

    prepare_schema(pg.target, pg.schema, plan)
    run_dir = tmp_path / "run"
    report = migrate(
        db, pg.target, MigrateOptions(schema=pg.schema, plan=plan, data_only=True, run_dir=run_dir)
    )

    assert not found.ok
    assert found.rows_rejected == report.rows_rejected > 0
    assert found.rows_read == report.rows_read
    actual = _reject_keys(run_dir)
    assert predicted <= actual
    assert {
        (g.table, json.dumps(k, sort_keys=True)) for g in everything.rejects for k in g.examples
    } == actual


def test_check_lists_unknown_mapped_values_first_and_counts_orphans(tmp_path: Path) -> None:
    db = tmp_path / "dev.db"
    # ~0.5% of legacy statuses are junk: 2,000 tickets hold a handful.
    make_legacy_helpdesk(db, users=40, tickets=2_000, audit_logs=900, seed=5)

    found = check(db, load_plan("helpdesk"))

    statuses = found.maps["tickets.status"]
    unknown = [v for v in statuses if v.unknown]
    assert unknown and statuses[: len(unknown)] == unknown
    assert all(v.result in {"open", "in_progress", "pending", "resolved", "closed"}
               for v in statuses if not v.unknown)  # fmt: skip
    assert {(o["table"], o["policy"]) for o in found.orphans} >= {("audit_logs", "null")}


def test_check_without_a_plan_reports_type_disagreements_and_exits_nonzero(
    make_db: MakeDb,
) -> None:
    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, qty INTEGER, at DATETIME);"
        "INSERT INTO t VALUES (1, 5, '2020-01-01 00:00:00'), (2, 'lots', 1700000000);"
    )
    result = subprocess.run(
        [sys.executable, "-m", "lite2pg", "check", str(db), "--json"],
        capture_output=True,
        text=True,
        check=False,
        cwd=db.parent,
    )

    assert result.returncode == 1, result.stderr
    data = json.loads(result.stdout)
    assert data["rows_rejected"] == 1
    found = {(d["column"], tuple(d["found"])) for d in data["type_disagreements"]}
    assert found == {("qty", ("text",)), ("at", ("integer",))}


def test_check_of_a_clean_database_exits_zero(make_db: MakeDb) -> None:
    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO t VALUES (1, 'a');"
    )
    result = subprocess.run(
        [sys.executable, "-m", "lite2pg", "check", str(db)],
        capture_output=True,
        text=True,
        check=False,
        cwd=db.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK: all 1 rows would migrate" in result.stdout


def test_check_reads_a_file_that_needs_the_apps_collations_and_lists_behaviour_changes(
    tmp_path: Path,
) -> None:
    db = tmp_path / "app.db"
    app = sqlite3.connect(db)
    app.create_collation(
        "NOCASE_UTF8", lambda a, b: (a.upper() > b.upper()) - (a.upper() < b.upper())
    )
    app.executescript(
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT COLLATE NOCASE_UTF8,"
        "  at TEXT DEFAULT (datetime('now', 'localtime')));"
        "CREATE UNIQUE INDEX notes_title ON notes (title);"
        "INSERT INTO notes (id, title) VALUES (1, 'b'), (2, 'A');"
    )
    app.commit()
    app.close()

    report = check(db)

    assert report.ok and report.rows_read == 2
    assert report.behaviour_changes == [
        "column notes.title uses collation NOCASE_UTF8, which the app registers; read with a "
        "fallback (case-insensitive, by casefold); PostgreSQL uses its default collation",
        "notes: column 'at': default datetime('now', 'localtime') dropped: 'localtime' is the "
        "local time of the app's host, which PostgreSQL does not know; not translated",
    ]
    assert report.as_dict()["behaviour_changes"] == report.behaviour_changes


# Prisma's SQLite connector: DateTime as INTEGER epoch milliseconds, Boolean as 0/1.
PRISMA_SQLITE = """
CREATE TABLE "User" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "email" TEXT NOT NULL,
    "active" BOOLEAN NOT NULL DEFAULT true,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE "Post" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "title" TEXT NOT NULL,
    "authorId" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" DATETIME NOT NULL,
    CONSTRAINT "Post_authorId_fkey" FOREIGN KEY ("authorId") REFERENCES "User" ("id")
);
"""
# The same models as Prisma's PostgreSQL migration creates them.
PRISMA_POSTGRES = """
CREATE TABLE "User" (
    "id" TEXT NOT NULL,
    "email" TEXT NOT NULL,
    "active" BOOLEAN NOT NULL DEFAULT true,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "User_pkey" PRIMARY KEY ("id")
);
CREATE TABLE "Post" (
    "id" TEXT NOT NULL,
    "title" TEXT NOT NULL,
    "authorId" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "Post_pkey" PRIMARY KEY ("id")
);
ALTER TABLE "Post" ADD CONSTRAINT "Post_authorId_fkey" FOREIGN KEY ("authorId")
    REFERENCES "User"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
"""


def _prisma_db(path: Path, users: int, posts: int) -> None:
    rng = random.Random(11)
    start = 1_500_000_000_000  # 2017-07-14, in epoch milliseconds

    def ms() -> int:
        return start + rng.randrange(300_000_000_000)  # up to 2027

    with closing(sqlite3.connect(path)) as db:
        db.executescript(PRISMA_SQLITE)
        db.executemany(
            'INSERT INTO "User" VALUES (?, ?, ?, ?)',
            [(f"u{i}", f"user{i}@example.com", i % 2, ms()) for i in range(users)],
        )
        db.executemany(
            'INSERT INTO "Post" VALUES (?, ?, ?, ?, ?)',
            [(f"p{i}", f"post {i}", f"u{i % users}", ms(), ms()) for i in range(posts)],
        )
        db.commit()


def _group_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if re.match(r"  \S+\.\S+ \(", line)]


def test_check_of_a_prisma_database_prints_one_line_per_column_and_the_plan_that_loads_it(
    tmp_path: Path, pg: PgSchema
) -> None:
    db = tmp_path / "prisma.db"
    _prisma_db(db, users=1_000, posts=4_000)

    text = subprocess.run(
        [sys.executable, "-m", "lite2pg", "check", str(db)],
        capture_output=True,
        text=True,
        cwd=db.parent,
    )
    data = json.loads(
        subprocess.run(
            [sys.executable, "-m", "lite2pg", "check", str(db), "--json"],
            capture_output=True,
            text=True,
            cwd=db.parent,
        ).stdout
    )

    assert text.returncode == 1, text.stderr
    assert sorted(_group_lines(text.stdout)) == [
        "  Post.createdAt (timestamptz): numbers in a date column are ambiguous: 4,000 row(s)",
        "  Post.updatedAt (timestamptz): numbers in a date column are ambiguous: 4,000 row(s)"
        " (4,000 of them rejected first for another column)",
        "  User.createdAt (timestamptz): numbers in a date column are ambiguous: 1,000 row(s)",
    ]
    assert len(text.stdout.splitlines()) < 40  # 9,000 distinct values, a screenful of text
    assert "all 4,000 values are between 1.5e12 and 1.8e12: epoch milliseconds, 2017" in (
        text.stdout
    )
    groups = {(g["table"], g["column"]): g for g in data["rejects"]}
    assert set(groups) == {("User", "createdAt"), ("Post", "createdAt"), ("Post", "updatedAt")}
    assert all(g["category"] == "EPOCH_AMBIGUOUS" for g in groups.values())
    assert sum(n for _, n in groups["User", "createdAt"]["value_counts"]) == 1_000
    assert groups["Post", "updatedAt"]["fix"]["lines"] == [
        "[tables.Post.columns.updatedAt]",
        'transforms = [{ timestamp = { epoch = "milliseconds" } }]',
    ]

    # The proposed lines, as they are, are the plan: every row lands in Prisma's own
    # PostgreSQL schema (TIMESTAMP(3) keeps milliseconds exactly), and verify proves it.
    plan = tmp_path / "prisma.toml"
    plan.write_text("\n".join(line for g in data["rejects"] for line in g["fix"]["lines"]) + "\n")
    assert check(db, load_plan(str(plan))).ok
    pg.execute(PRISMA_POSTGRES)
    report = migrate(
        db,
        pg.target,
        MigrateOptions(
            schema=pg.schema,
            data_only=True,
            plan=load_plan(str(plan)),
            run_dir=tmp_path / "run",
            keep_artifacts=True,  # export, transform, load: as the command line runs it
        ),
    )
    assert report.rows_rejected == 0 and report.rows_loaded == 5_000
    assert report.verify is not None and report.verify["ok"], report.verify
    (first,) = pg.query('SELECT "createdAt"::text FROM "User" WHERE id = %s', ("u0",))
    with closing(sqlite3.connect(db)) as src:
        (millis,) = src.execute("SELECT createdAt FROM User WHERE id = 'u0'").fetchone()
    expected = dt.datetime.fromtimestamp(millis / 1000, dt.UTC).replace(tzinfo=None)
    assert dt.datetime.fromisoformat(first[0]) == expected


def test_check_output_stays_bounded_for_ten_thousand_unknown_mapped_values(
    make_db: MakeDb, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, status TEXT, at DATETIME);",
        (
            "INSERT INTO t VALUES (?, ?, ?)",
            [(i, "open" if i % 3 else f"junk {i}", "") for i in range(30_000)],
        ),
    )
    plan = tmp_path / "plan.toml"
    plan.write_text(
        "[tables.t.columns.status]\n"
        'transforms = [{ map = { values = { open = "open", closed = "closed" } } }]\n'
    )

    report = check(db, load_plan(str(plan)))
    lines = report.reject_lines()

    (status,) = [g for g in report.rejects if g.column == "status"]
    (at,) = [g for g in report.rejects if g.column == "at"]
    assert status.count == 10_000 and status.reason == "not one of the mapped values"
    assert status.distinct_values == 1_000 and status.more_values == 9_000  # counted, not kept
    assert len(status.as_dict()["value_counts"]) == 1_000
    assert status.fix is not None and len(status.fix.lines) == 11  # a header and ten values
    assert status.fix.lines[1] == '"junk 0" = "?"  # 1 rows'
    assert "9,990 more rows hold other values" in status.fix.why
    assert at.reason == "empty text" and at.count + at.also == 30_000
    assert at.fix is not None and at.fix.lines[1] == 'transforms = [{ nullif = "" }]'
    assert len(lines) < 30
    assert sum(1 for line in lines if line.startswith("  t.")) == 2


def test_check_shows_many_groups_readably_with_the_largest_first(make_db: MakeDb) -> None:
    columns = [f"c{i}" for i in range(60)]
    declared = ", ".join(c + " INTEGER" for c in columns)
    db = make_db(
        f"CREATE TABLE wide (id INTEGER PRIMARY KEY, {declared});",
        (
            f"INSERT INTO wide VALUES (?, {', '.join('?' for _ in columns)})",
            [(r, *(f"x{r}" if i <= r % 60 else i for i in range(60))) for r in range(200)],
        ),
    )

    report = check(db)
    lines = report.reject_lines()

    assert len(report.rejects) == 60
    assert [g.count + g.also for g in report.rejects] == sorted(
        (g.count + g.also for g in report.rejects), reverse=True
    )
    assert sum(1 for line in lines if line.startswith("  wide.")) == 40
    # Row r holds text in columns c0..c(r % 60): the 20 smallest groups are c40..c59.
    rest = sum(1 for r in range(200) for i in range(40, 60) if i <= r % 60)
    assert lines[-1] == f"  ... and 20 more group(s) of {rest:,} value(s); --json has all"
    assert all(g.reason == "not a number" for g in report.rejects)


def test_check_never_shows_a_secret_columns_values(tmp_path: Path) -> None:
    db = tmp_path / "users.db"
    plaintext = "Correct-Horse-Battery-Staple-" * 3  # longer than bcrypt takes
    with closing(sqlite3.connect(db)) as conn:
        conn.executescript(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, password TEXT, joined DATETIME);"
        )
        conn.executemany(
            "INSERT INTO users VALUES (?, ?, ?)",
            [(1, plaintext, "2024-01-01"), (2, plaintext + "2", 1_700_000_000)],
        )
        conn.commit()
    plan = tmp_path / "plan.toml"
    plan.write_text(
        "[tables.users.columns.password]\n"
        'transforms = [{ hash_password = { algorithm = "bcrypt", cost = 4 } }]\n'
    )

    for args in ([], ["--json"]):
        result = subprocess.run(
            [sys.executable, "-m", "lite2pg", "check", str(db), "--plan", str(plan), *args],
            capture_output=True,
            text=True,
            cwd=db.parent,
        )
        assert result.returncode == 1, result.stderr
        assert "Correct-Horse" not in result.stdout + result.stderr
        assert "<redacted>" in result.stdout
    report = check(db, load_plan(str(plan)))
    (secret,) = [g for g in report.rejects if g.column == "password"]
    assert secret.values == ["<redacted>"] and secret.fix is None
    assert secret.reason.startswith("hash_password: longer than bcrypt's 72 bytes")


def test_orphans_of_a_rejected_parent_follow_its_fix_and_orphans_of_a_missing_one_get_one(
    make_db: MakeDb,
) -> None:
    db = make_db(
        "CREATE TABLE teams (id INTEGER PRIMARY KEY, founded DATE);"
        "CREATE TABLE users (id INTEGER PRIMARY KEY, team_id INTEGER REFERENCES teams(id));"
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id));"
        # team 2 is rejected for its date; user 9 does not exist at all
        "INSERT INTO teams VALUES (1, '2020-01-01'), (2, 'soon');"
        "INSERT INTO users VALUES (1, 1), (2, 2), (3, 2);"
        "INSERT INTO posts VALUES (1, 1), (2, 9);"
    )
    report = check(db, profile="none")
    by_table = {(g.table, g.category): g for g in report.rejects}
    users = by_table[("users", "ORPHAN")]
    assert users.follows == "teams" and users.fix is None and users.count == 2
    posts = by_table[("posts", "ORPHAN")]
    assert posts.follows is None and posts.fix is not None and "on_orphan" in str(posts.fix.lines)
    assert any("fixing those fixes these" in line for line in report.reject_lines())


def test_check_hashes_passwords_only_with_hash(tmp_path: Path) -> None:
    existing = bcrypt.hashpw(b"kept as it is", bcrypt.gensalt(rounds=4)).decode()
    db = tmp_path / "app.db"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, password TEXT)")
        conn.executemany(
            "INSERT INTO users VALUES (?, ?)",
            [(1, "hunter2"), (2, "correct horse"), (3, "é-unicode"), (4, ""), (5, existing)],
        )
    plan = tmp_path / "plan.toml"
    plan.write_text(
        "[tables.users.columns.password]\n"
        'transforms = [{ hash_password = { algorithm = "bcrypt", cost = 4, empty = "null" } }]\n'
    )
    base = [sys.executable, "-m", "lite2pg", "check", str(db), "--plan", str(plan)]

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*base, *extra], capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    # Three plaintexts to hash, by hand: the empty one and the bcrypt hash are not.
    assert json.loads(run("--json").stdout)["passwords_hashed"] == 0
    assert json.loads(run("--json", "--hash").stdout)["passwords_hashed"] == 3
    assert "hashed 3 password(s)" in run("--hash").stdout
    assert "hashed" not in run().stdout


def test_check_and_a_run_reject_exactly_the_rows_written_to_be_rejected(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    # The oracle is this list, by hand: text in an INTEGER column and an impossible date
    # are refused; NULL, negative numbers and a real date are not.
    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, d DATETIME);",
        (
            "INSERT INTO t VALUES (?, ?, ?)",
            [(1, 5, "2021-01-01 10:00:00"), (2, "seven", "2021-01-01 10:00:00"),
             (3, 1, "2021-02-30 00:00:00"), (4, None, None), (5, -2, "2024-02-29 23:59:59")],
        ),
    )  # fmt: skip
    want = {(2, "n"), (3, "d")}

    found = check(db, examples=100)
    migrate(db, pg.target, MigrateOptions(schema=pg.schema, run_dir=tmp_path / "run"))

    assert {(k["id"], g.column) for g in found.rejects for k in g.examples} == want
    ran = [
        json.loads(line)
        for path in (tmp_path / "run" / "rejects").glob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert {(r["key"]["id"], r["column"]) for r in ran} == want
    assert pg.query("SELECT id FROM t ORDER BY id") == [(1,), (4,), (5,)]
