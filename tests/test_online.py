"""Online migration: prepare (change capture), sync, cutover --online, cleanup, and the
trigger-free --capture=diff. The app's writes come from real SQLite connections, some
from a thread writing while lite2pg works."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lite2pg import capture
from lite2pg.cli import main
from lite2pg.demo import make_legacy_helpdesk
from lite2pg.lifecycle import RunStateError, rollback
from lite2pg.online import cutover_online
from lite2pg.plan import load_plan
from lite2pg.run import MigrateOptions, migrate, prepare_schema
from lite2pg.sync import Syncer, SyncError, run_id, sync
from lite2pg.sync._common import ROUND_LIMIT
from lite2pg.transforms.passwords import verify_password

from .conftest import MakeDb, PgSchema

APP_DDL = """
PRAGMA journal_mode = WAL;
CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT UNIQUE, name TEXT);
CREATE TABLE tickets (
  id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), title TEXT, n INTEGER
);
CREATE TABLE tags (name TEXT, n INTEGER);
CREATE TABLE pairs (a TEXT, b INTEGER, v TEXT, PRIMARY KEY (a, b)) WITHOUT ROWID;
"""


def make_app(make_db: MakeDb, users: int = 50, tickets: int = 500) -> Path:
    return make_db(
        APP_DDL,
        (
            "INSERT INTO users (email, name) VALUES (?, ?)",
            [(f"u{i}@x", f"n{i}") for i in range(users)],
        ),
        (
            "INSERT INTO tickets (user_id, title, n) VALUES (?, ?, ?)",
            [(i % users + 1, f"t{i}", i) for i in range(tickets)],
        ),
        ("INSERT INTO tags VALUES (?, ?)", [("a", 1), ("b", 2)]),
        ("INSERT INTO pairs VALUES (?, ?, ?)", [("x", 1, "p"), ("x", 2, "q")]),
    )  # fmt: skip


def write(db: Path, *statements: str | tuple[str, tuple[Any, ...]]) -> None:
    with closing(sqlite3.connect(db, timeout=10)) as conn, conn:
        for st in statements:
            if isinstance(st, tuple):
                conn.execute(*st)
            else:
                conn.execute(st)


TABLES = {
    "users": "SELECT id, email, name FROM users ORDER BY id",
    "tickets": "SELECT id, user_id, title, n FROM tickets ORDER BY id",
    "tags": "SELECT name, n FROM tags ORDER BY name, n",
    "pairs": "SELECT a, b, v FROM pairs ORDER BY a, b",
}


def assert_same(db: Path, pg: PgSchema) -> None:
    """Every table of the target equals the live source, row for row."""
    with closing(sqlite3.connect(db)) as conn:
        for table, query in TABLES.items():
            assert [tuple(r) for r in conn.execute(query)] == pg.query(query), table


def migrate_prepared(db: Path, pg: PgSchema, run_dir: Path) -> Path:
    capture.prepare(db)
    # The sync tests compare the tables themselves (assert_same); the cutover verifies.
    migrate(db, pg.target, MigrateOptions(schema=pg.schema, run_dir=run_dir, verify=False))
    return run_dir


def test_prepare_then_cleanup_leaves_the_schema_and_data_as_they_were(make_db: MakeDb) -> None:
    db = make_app(make_db)
    with closing(sqlite3.connect(db)) as conn:
        before = sorted(conn.execute("SELECT type, name, sql FROM sqlite_master"))
        data = [list(conn.execute(q)) for q in TABLES.values()]

    added = capture.prepare(db)
    assert added.tables == ["pairs", "tags", "tickets", "users"]
    assert added.keyless == ["tags"]
    write(db, "INSERT INTO tags VALUES ('c', 3)", "DELETE FROM tags WHERE name = 'c'")
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT count(*) FROM _lite2pg_changes").fetchone() == (2,)
    assert capture.prepare(db).already  # idempotent: replaced, not doubled

    removed = capture.cleanup(db)
    assert removed.table and removed.triggers == added.triggers
    with closing(sqlite3.connect(db)) as conn:
        assert sorted(conn.execute("SELECT type, name, sql FROM sqlite_master")) == before
        assert [list(conn.execute(q)) for q in TABLES.values()] == data


def test_migrate_of_a_prepared_source_records_the_change_position_and_skips_the_log(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_app(make_db)
    capture.prepare(db)
    write(db, "UPDATE users SET name = 'before' WHERE id = 1")
    run_dir = migrate_prepared(db, pg, tmp_path / "run")

    info = capture.read_capture_file(run_dir)
    assert info is not None and info["snapshot_seq"] == 1
    tables = {
        r[0]
        for r in pg.query("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    }
    assert tables == set(TABLES)  # no _lite2pg_changes


def test_sync_applies_inserts_updates_deletes_key_changes_and_replaces(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_app(make_db)
    run_dir = migrate_prepared(db, pg, tmp_path / "run")
    write(
        db,
        "UPDATE users SET name = 'changed' WHERE id = 2",
        "INSERT INTO users (email, name) VALUES ('new@x', 'new')",
        "DELETE FROM tickets WHERE id = 5",
        "UPDATE tickets SET id = 10000 WHERE id = 6",  # a key change: old key deleted
        "INSERT INTO users (id, email, name) VALUES (900, 'z@x', 'z')",
        # REPLACE deletes the row holding the unique email without a delete trigger
        "INSERT OR REPLACE INTO users (id, email, name) VALUES (901, 'z@x', 'replaced')",
        "INSERT INTO tags VALUES ('c', 3)",  # a table without a key: reloaded whole
        "UPDATE pairs SET v = 'r' WHERE a = 'x' AND b = 2",
        "INSERT INTO pairs VALUES ('y', 1, 's')",
    )

    total = sync(run_dir, pg.target)

    assert total.changes > 0 and total.behind == 0
    assert "tags" in total.reloaded
    assert_same(db, pg)
    # Sequences moved past the new ids: the app's next insert on PostgreSQL fits.
    [(nextval,)] = pg.query("SELECT nextval(pg_get_serial_sequence('users', 'id'))")
    assert nextval > 901
    # Nothing left: a second sync applies nothing.
    assert sync(run_dir, pg.target).changes == 0


def test_sync_resumes_after_a_failed_round_and_replaying_changes_is_harmless(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_app(make_db)
    run_dir = migrate_prepared(db, pg, tmp_path / "run")
    write(db, "UPDATE tickets SET title = 'one' WHERE id = 1")
    sync(run_dir, pg.target)
    # PostgreSQL refuses the next round (a CHECK the new value breaks): nothing of it lands.
    pg.execute("ALTER TABLE tickets ADD CONSTRAINT short CHECK (length(title) < 20)")
    write(
        db,
        "UPDATE tickets SET title = 'two' WHERE id = 2",
        "UPDATE tickets SET title = 'a title far too long for the check' WHERE id = 3",
    )
    with pytest.raises(SyncError, match="PostgreSQL refused a change"):
        sync(run_dir, pg.target)
    assert pg.query("SELECT title FROM tickets WHERE id = 2") == [("t1",)]

    pg.execute("ALTER TABLE tickets DROP CONSTRAINT short")
    sync(run_dir, pg.target)
    assert_same(db, pg)

    # Lose the position (as if the state were older): the replay converges to the same.
    with Syncer(run_dir, pg.target) as s, s.pg.transaction():
        s._set_state(0, 0)
    sync(run_dir, pg.target)
    assert_same(db, pg)


def test_sync_with_the_helpdesk_plan_hashes_a_changed_password_and_keeps_the_others(
    pg: PgSchema, tmp_path: Path
) -> None:
    db = tmp_path / "dev.db"
    make_legacy_helpdesk(db, users=20, tickets=30, audit_logs=30, seed=4)
    plan = load_plan("helpdesk")
    prepare_schema(pg.target, pg.schema, plan)
    capture.prepare(db)
    run_dir = tmp_path / "run"
    migrate(
        db,
        pg.target,
        MigrateOptions(schema=pg.schema, plan=plan, data_only=True, run_dir=run_dir),
    )
    before = dict(pg.query('SELECT id, "passwordHash" FROM users'))
    with closing(sqlite3.connect(db)) as conn:
        changed, other = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM users WHERE password NOT LIKE '$%' AND password <> '' LIMIT 2"
            )
        ]
    write(
        db,
        ("UPDATE users SET password = 'brand new 2026' WHERE id = ?", (changed,)),
        ("UPDATE users SET username = 'moved-user' WHERE id = ?", (other,)),
        "UPDATE tickets SET status = 'done' WHERE id = 1",  # mapped to 'closed' by the plan
    )

    sync(run_dir, pg.target)

    after = dict(pg.query('SELECT id, "passwordHash" FROM users'))
    policy = plan.table("users").columns["password"].password
    assert policy is not None
    assert verify_password(policy, "brand new 2026", after[changed])
    assert after[other] == before[other]  # unchanged password: same hash, not rehashed
    assert pg.query("SELECT username FROM users WHERE id = %s", (other,)) == [("moved-user",)]
    [(status,)] = pg.query("SELECT status::text FROM tickets WHERE id = 1")
    assert status == "closed"
    for path in (run_dir / "rejects").glob("*"):
        assert "brand new 2026" not in path.read_text()


class Writer(threading.Thread):
    """The app: inserts, updates and deletes tickets until stopped, recording what SQLite
    acknowledged, and after the cutover's block, the writes it refused."""

    def __init__(self, db: Path) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.stop = threading.Event()
        self.acked: list[tuple[str, int]] = []
        self.refused: list[str] = []
        self.errors: list[str] = []
        self.blocked = threading.Event()  # set at the first write the block refused

    def run(self) -> None:
        conn = sqlite3.connect(self.db, timeout=10, isolation_level=None)
        rnd = random.Random(7)
        while not self.stop.is_set():
            op = rnd.random()
            try:
                if op < 0.5:
                    cur = conn.execute(
                        "INSERT INTO tickets (user_id, title, n) VALUES (?, 'w', ?)",
                        (rnd.randint(1, 50), rnd.randint(0, 10**6)),
                    )
                    self.acked.append(("insert", int(cur.lastrowid or 0)))
                elif op < 0.85:
                    tid = rnd.randint(1, 500)
                    conn.execute("UPDATE tickets SET n = n + 1 WHERE id = ?", (tid,))
                    self.acked.append(("update", tid))
                else:
                    tid = rnd.randint(1, 500)
                    conn.execute("DELETE FROM tickets WHERE id = ?", (tid,))
                    self.acked.append(("delete", tid))
            except sqlite3.DatabaseError as e:
                if capture.MOVED_MESSAGE in str(e):
                    self.refused.append(str(e))
                    self.blocked.set()
                else:
                    self.errors.append(str(e))
            time.sleep(0.002)
        conn.close()


@pytest.fixture
def writer_factory() -> Iterator[list[Writer]]:
    writers: list[Writer] = []
    yield writers
    for w in writers:
        w.stop.set()
        w.join(5)


def test_online_cutover_freezes_briefly_loses_no_write_and_blocks_sqlite_after(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, writer_factory: list[Writer]
) -> None:
    db = make_app(make_db)
    capture.prepare(db)
    app = Writer(db)
    writer_factory.append(app)
    app.start()
    run_dir = tmp_path / "run"
    migrate(db, pg.target, MigrateOptions(schema=pg.schema, run_dir=run_dir))
    sync(run_dir, pg.target)
    config = tmp_path / ".env"
    config.write_text("DATABASE_URL=sqlite:///app.db\n")

    result = cutover_online(run_dir, pg.target, config)
    met_the_block = app.blocked.wait(30)  # the writer's next write after the cutover
    app.stop.set()
    app.join(5)

    assert result.verify_ok, result.verify_verdict
    assert pg.dsn in config.read_text()
    assert not app.errors
    assert met_the_block and app.refused  # writes after the freeze fail cleanly...
    with closing(sqlite3.connect(db)) as conn:
        # ...and none landed in SQLite after the last change PostgreSQL received.
        [(last,)] = conn.execute("SELECT max(seq) FROM _lite2pg_changes")
    assert last == result.final_seq
    assert_same(db, pg)  # PostgreSQL holds what SQLite holds...
    # ...and so every write SQLite acknowledged while lite2pg worked: each row inserted is
    # there unless a later acknowledged delete took it.
    inserted = {tid for op, tid in app.acked if op == "insert"}
    deleted = {tid for op, tid in app.acked if op == "delete"}
    present = {tid for (tid,) in pg.query("SELECT id FROM tickets")}
    assert inserted and inserted - deleted <= present
    with pytest.raises(SyncError, match="cut over already"):
        sync(run_dir, pg.target)
    capture.cleanup(db)
    write(db, "INSERT INTO tags VALUES ('after', 1)")  # cleanup lifts the block


def test_a_failure_inside_the_freeze_leaves_the_app_on_sqlite_unharmed(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_app(make_db)
    run_dir = migrate_prepared(db, pg, tmp_path / "run")
    pg.execute("INSERT INTO tags VALUES ('only in postgres', 0)")  # counts cannot reconcile
    write(db, "UPDATE users SET name = 'x' WHERE id = 3")  # a key change to drain
    config = tmp_path / ".env"
    config.write_text("DATABASE_URL=sqlite:///app.db\n")

    with pytest.raises(SyncError, match=r"counts do not reconcile.*tags"):
        cutover_online(run_dir, pg.target, config)

    assert config.read_text() == "DATABASE_URL=sqlite:///app.db\n"
    write(db, "INSERT INTO tags VALUES ('still writable', 1)")  # lock released, no block
    with closing(sqlite3.connect(db)) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")]
    assert not [n for n in names if "block" in n]


def test_online_cutover_gives_up_clearly_when_a_writer_holds_the_lock(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_app(make_db)
    run_dir = migrate_prepared(db, pg, tmp_path / "run")
    config = tmp_path / ".env"
    config.write_text("DATABASE_URL=sqlite:///app.db\n")
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(Exception, match="could not take the write lock"):
            cutover_online(run_dir, pg.target, config, lock_wait=0.3)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert config.read_text() == "DATABASE_URL=sqlite:///app.db\n"


def test_diff_capture_syncs_without_touching_the_source(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_app(make_db)
    run_dir = tmp_path / "run"
    migrate(db, pg.target, MigrateOptions(schema=pg.schema, run_dir=run_dir))
    with closing(sqlite3.connect(db)) as conn:
        schema_before = sorted(conn.execute("SELECT type, name, sql FROM sqlite_master"))
    write(
        db,
        "UPDATE users SET name = 'd' WHERE id = 4",
        "UPDATE tickets SET n = '7' WHERE id = 8",  # same value, other storage class? no: affinity
        "DELETE FROM tickets WHERE id = 9",
        "INSERT INTO tags VALUES ('z', 26)",
        "INSERT INTO pairs VALUES ('q', 3, 'w')",
    )

    with pytest.raises(SyncError, match="not taken from a prepared source"):
        sync(run_dir, pg.target, capture="triggers")
    first = sync(run_dir, pg.target, capture="diff")
    assert first.changes >= 4
    assert_same(db, pg)
    write(db, "UPDATE users SET name = 'again' WHERE id = 4")
    assert sync(run_dir, pg.target).changes == 1  # the run remembers its mode
    assert_same(db, pg)
    with closing(sqlite3.connect(db)) as conn:
        assert sorted(conn.execute("SELECT type, name, sql FROM sqlite_master")) == schema_before
    assert len(list((run_dir / "sync").glob("snapshot-*.db"))) == 1  # only the latest kept


def test_cli_prepare_sync_cutover_online_and_cleanup(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_app(make_db)
    runner = CliRunner()
    out = runner.invoke(main, ["prepare", str(db)])
    assert out.exit_code == 0, out.output
    assert "_lite2pg_changes" in out.output and "cleanup" in out.output
    run_dir = tmp_path / "run"
    # Through the CLI, with its defaults for a real target: artifacts kept, verified.
    out = runner.invoke(
        main,
        ["migrate", str(db), "--target", pg.dsn, "--schema", pg.schema, "--run-dir",
         str(run_dir), "-q"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert (run_dir / "manifest.json").is_file() and (run_dir / "capture.json").is_file()
    write(db, "UPDATE users SET name = 'cli' WHERE id = 1")

    out = runner.invoke(main, ["sync", str(run_dir), "--target", pg.dsn])
    assert out.exit_code == 0, out.output
    assert "lag 0 change(s)" in out.output

    config = tmp_path / "app.toml"
    config.write_text('[database]\nurl = "sqlite:///app.db"  # the app\n')
    out = runner.invoke(
        main,
        ["cutover", str(run_dir), "--config", str(config), "--key", "database.url",
         "--target", pg.dsn, "--online"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert "write freeze" in out.output and "VERIFIED" in out.output
    assert "# the app" in config.read_text()
    out = runner.invoke(main, ["status", str(run_dir)])
    assert "snapshot at change" in out.output and "write freeze" in out.output

    out = runner.invoke(main, ["sync", str(run_dir), "--target", pg.dsn])
    assert out.exit_code == 2
    assert out.output.count("\n") == 1 and "hint" in out.output

    out = runner.invoke(main, ["cleanup", str(db)])
    assert out.exit_code == 0 and "allowed again" in out.output
    out = runner.invoke(main, ["cleanup", str(db)])
    assert "nothing to remove" in out.output


def _applied(pg: PgSchema, run_dir: Path) -> int:
    [(applied,)] = pg.query(
        "SELECT applied FROM lite2pg.sync_state WHERE run = %s", (run_id(run_dir),)
    )
    return int(applied)


def test_sync_killed_inside_its_rounds_resumes_and_converges(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_app(make_db, tickets=20_000)
    run_dir = migrate_prepared(db, pg, tmp_path / "run")
    sync(run_dir, pg.target)  # the position is recorded from here on
    app = f"lite2pg-sync-{os.getpid()}-{random.randrange(10**9)}"
    target = f"{pg.dsn}{'&' if '?' in pg.dsn else '?'}application_name={app}"
    for round_no in range(4):
        write(
            db,
            f"UPDATE tickets SET n = n + {round_no + 1} WHERE id % 3 = {round_no % 3}",
            f"DELETE FROM tickets WHERE id % 97 = {round_no}",
            ("INSERT INTO users (email, name) VALUES (?, 'k')", (f"kill{round_no}@x",)),
        )
        with closing(sqlite3.connect(db)) as conn:
            [(newest,)] = conn.execute(f"SELECT max(seq) FROM {capture.CHANGES_TABLE}")
        before = _applied(pg, run_dir)
        proc = subprocess.Popen(
            [sys.executable, "-m", "lite2pg", "sync", str(run_dir), "--target", target,
             "--follow"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        # Killed inside a round: its PostgreSQL transaction has written rows (it has an
        # xid) and is not committed. Frozen first, so the check holds when the kill lands.
        inside = (
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
            "AND backend_xid IS NOT NULL"
        )
        landed = False
        try:
            for _ in range(100_000):
                if pg.query(inside, (app,)) != [(0,)]:
                    os.killpg(proc.pid, signal.SIGSTOP)
                    landed = pg.query(inside, (app,)) != [(0,)]
                    if landed:
                        break
                    os.killpg(proc.pid, signal.SIGCONT)
                assert proc.poll() is None, "sync ended by itself"
                if _applied(pg, run_dir) == newest:
                    break  # it applied every change before a round could be caught
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        assert landed, f"no round of sync {round_no} was caught open"
        # The interrupted round left nothing: the position is where it was before it.
        assert before <= _applied(pg, run_dir) < newest

    sync(run_dir, pg.target)

    assert _applied(pg, run_dir) == newest
    assert_same(db, pg)


def test_online_cutover_with_diff_capture_drains_by_snapshot_and_verifies(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_app(make_db)
    run_dir = tmp_path / "run"
    migrate(db, pg.target, MigrateOptions(schema=pg.schema, run_dir=run_dir))
    sync(run_dir, pg.target, capture="diff")
    write(db, "UPDATE tickets SET title = 'late' WHERE id = 3", "DELETE FROM tickets WHERE id = 4")
    config = tmp_path / ".env"
    config.write_text("DATABASE_URL=sqlite:///app.db\n")

    result = cutover_online(run_dir, pg.target, config)

    assert result.verify_ok, result.verify_verdict
    assert result.catch_up_changes + result.drained == 2  # caught up, then drained
    assert_same(db, pg)
    with pytest.raises(sqlite3.DatabaseError, match="moved to PostgreSQL"):
        write(db, "UPDATE users SET name = 'too late' WHERE id = 1")


def test_a_write_the_capture_missed_stops_the_cutover_at_the_count_check(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_app(make_db)
    run_dir = migrate_prepared(db, pg, tmp_path / "run")
    with closing(sqlite3.connect(db)) as conn, conn:
        [(trigger,)] = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'tickets' "
            "AND sql LIKE '%AFTER INSERT%'"
        )
        conn.execute(f'DROP TRIGGER "{trigger}"')
        conn.execute("INSERT INTO tickets (user_id, title, n) VALUES (1, 'unseen', 0)")
    config = tmp_path / ".env"
    config.write_text("DATABASE_URL=sqlite:///app.db\n")

    with pytest.raises(SyncError, match=r"tickets: 501 source rows, but 500 in PostgreSQL"):
        cutover_online(run_dir, pg.target, config)

    assert "sqlite" in config.read_text()


def test_sync_orders_writes_so_moved_children_and_swapped_unique_values_apply(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_app(make_db, users=5, tickets=10)
    run_dir = migrate_prepared(db, pg, tmp_path / "run")
    write(
        db,
        # children move to another parent, then their old parent goes (FK order)
        "UPDATE tickets SET user_id = 2 WHERE user_id = 1",
        "DELETE FROM users WHERE id = 1",
        # two rows swap a UNIQUE value (no order of upserts works: delete and re-insert)
        "UPDATE users SET email = 'tmp' WHERE id = 3",
        "UPDATE users SET email = 'u2@x' WHERE id = 4",
        "UPDATE users SET email = 'u3@x' WHERE id = 3",
    )

    sync(run_dir, pg.target)

    assert_same(db, pg)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sync_after_random_writes_equals_the_source(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, seed: int
) -> None:
    db = make_app(make_db, users=30, tickets=200)
    run_dir = migrate_prepared(db, pg, tmp_path / "run")
    rnd = random.Random(seed)
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        for batch in range(4):
            for _ in range(60):
                op = rnd.randrange(8)
                tid, uid = rnd.randint(1, 260), rnd.randint(1, 30)
                statements: list[tuple[str, tuple[Any, ...]]] = [
                    ("INSERT INTO tickets (user_id, title, n) VALUES (?, 'r', ?)", (uid, tid)),
                    ("UPDATE tickets SET title = title || '+', n = ? WHERE id = ?", (uid, tid)),
                    ("DELETE FROM tickets WHERE id = ?", (tid,)),
                    (
                        "UPDATE OR IGNORE tickets SET id = ? WHERE id = ?",
                        (tid + 1000 * (batch + 1), tid),
                    ),
                    ("INSERT OR REPLACE INTO pairs VALUES ('r', ?, ?)", (uid % 5, f"v{tid}")),
                    ("DELETE FROM pairs WHERE b = ?", (uid % 5,)),
                    ("INSERT INTO tags VALUES (?, ?)", (f"g{uid}", tid)),
                    ("UPDATE users SET name = ? WHERE id = ?", (f"m{tid}", uid)),
                ]
                conn.execute(*statements[op])
            sync(run_dir, pg.target)
            assert_same(db, pg)
    finally:
        conn.close()


def test_sync_rejects_rows_whose_parent_postgresql_does_not_have(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_app(make_db, users=5, tickets=10)
    run_dir = migrate_prepared(db, pg, tmp_path / "run")
    # SQLite does not enforce the FK (foreign_keys is off): user 77 does not exist.
    write(
        db,
        "INSERT INTO tickets (id, user_id, title, n) VALUES (500, 77, 'orphan', 0)",
        "UPDATE tickets SET user_id = 88 WHERE id = 2",  # an existing row becomes one
        "INSERT INTO users (id, email, name) VALUES (6, 'six@x', 'six')",
        "INSERT INTO tickets (id, user_id, title, n) VALUES (501, 6, 'fine', 0)",
    )

    total = sync(run_dir, pg.target)

    assert total.rejected == 2
    assert pg.query("SELECT id FROM tickets WHERE id IN (2, 500, 501) ORDER BY id") == [(501,)]
    lines = [
        json.loads(line)
        for path in (run_dir / "rejects").glob("tickets.sync-*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert sorted(r["key"]["id"] for r in lines) == [2, 500]
    assert all(r["reason"].startswith("orphan: user_id") for r in lines)
    config = tmp_path / ".env"
    config.write_text("DATABASE_URL=sqlite:///app.db\n")
    # The counts reconcile with the two rejected rows; the handed-over state verifies.
    result = cutover_online(run_dir, pg.target, config)
    assert result.verify_ok, result.verify_verdict


def test_rollback_reload_restarts_sync_from_the_snapshot_and_refuses_after_online_cutover(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_app(make_db)
    run_dir = migrate_prepared(db, pg, tmp_path / "run")
    write(db, "UPDATE users SET name = 'synced' WHERE id = 1")
    sync(run_dir, pg.target)

    rollback(run_dir, pg.target, reload=True)  # the target is the snapshot again...
    assert pg.query("SELECT name FROM users WHERE id = 1") == [("n0",)]
    write(db, "UPDATE users SET name = 'later' WHERE id = 2")
    sync(run_dir, pg.target)  # ...so sync starts from the snapshot's position again
    assert_same(db, pg)

    config = tmp_path / ".env"
    config.write_text("DATABASE_URL=sqlite:///app.db\n")
    cutover_online(run_dir, pg.target, config, verify_after=False)
    with pytest.raises(RunStateError, match="cut over online"):
        rollback(run_dir, pg.target)
    assert pg.query("SELECT count(*) FROM users") == [(50,)]


def test_orphan_rejection_keeps_children_of_parents_that_stay_when_others_go(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_app(make_db, users=5, tickets=10)
    run_dir = migrate_prepared(db, pg, tmp_path / "run")
    write(
        db,
        "INSERT INTO users (id, email, name) VALUES (7, 'seven@x', 'seven')",
        "DELETE FROM users WHERE id = 7",  # a users key that is gone in this round
        "INSERT INTO tickets (id, user_id, title, n) VALUES (500, 77, 'orphan', 0)",
        "INSERT INTO tickets (id, user_id, title, n) VALUES (501, 2, 'fine', 0)",
    )

    total = sync(run_dir, pg.target)

    assert total.rejected == 1
    assert pg.query("SELECT id FROM tickets WHERE id IN (500, 501) ORDER BY id") == [(501,)]
    assert pg.query("SELECT count(*) FROM users") == [(5,)]


def test_a_new_run_in_a_reused_directory_starts_its_sync_afresh(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_app(make_db)
    run_dir = migrate_prepared(db, pg, tmp_path / "run")
    write(db, "UPDATE tickets SET title = 'one' WHERE id = 1")
    sync(run_dir, pg.target)
    first = run_id(run_dir)
    # The same directory, a new database and a new run: the old position must not count.
    shutil.rmtree(run_dir)
    pg.execute(f'DROP SCHEMA "{pg.schema}" CASCADE; CREATE SCHEMA "{pg.schema}"')
    db2 = make_app(make_db)
    run_dir = migrate_prepared(db2, pg, run_dir)
    assert run_id(run_dir) != first
    write(db2, "UPDATE tickets SET title = 'two' WHERE id = 2")
    sync(run_dir, pg.target)
    assert_same(db2, pg)


def test_sync_follow_prints_each_rounds_lag_in_changes_and_seconds(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_app(make_db, tickets=6_000)
    run_dir = migrate_prepared(db, pg, tmp_path / "run")
    write(db, "UPDATE tickets SET n = n + 1")  # 6,000 changes: more than one round takes
    # Logged an hour ago, as far as the log says (its `at` is seconds since the epoch).
    write(db, f"UPDATE {capture.CHANGES_TABLE} SET at = at - 3600")
    with closing(sqlite3.connect(db)) as conn:
        [(logged,)] = conn.execute(f"SELECT count(*) FROM {capture.CHANGES_TABLE}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "lite2pg", "sync", str(run_dir), "--target", pg.dsn, "--follow"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    watchdog = threading.Timer(120, lambda: os.killpg(proc.pid, signal.SIGKILL))
    watchdog.start()
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "lag 0 change(s)" in line:
                break
        os.killpg(proc.pid, signal.SIGTERM)  # --follow stops after the round in progress
        rest, err = proc.communicate(timeout=60)
    finally:
        watchdog.cancel()
    assert proc.returncode == 0, err

    lag = [re.search(r"; lag (\d+) change\(s\), (\d+\.\d)s \[", line) for line in lines]
    assert all(lag), lines
    first_behind, first_seconds = int(lag[0][1]), float(lag[0][2])  # type: ignore[index]
    assert lines[0].startswith(f"applied {ROUND_LIMIT} change(s)"), lines[0]
    assert first_behind == logged - ROUND_LIMIT
    assert first_seconds >= 3600.0  # the oldest change left was logged an hour ago
    assert ", 0.0s [" in lines[-1]
    assert f"sync: {logged} change(s) applied" in rest
