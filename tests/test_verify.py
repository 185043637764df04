"""`verify` against a real PostgreSQL: clean runs verify, and every kind of damage done to
the target on purpose is caught, named by its row key and column."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from lite2pg import verify as verify_mod
from lite2pg.demo import make_legacy_helpdesk
from lite2pg.plan import load_plan, parse_plan
from lite2pg.run import MigrateOptions, migrate, prepare_schema
from lite2pg.verify import VerifyError, VerifyReport, verify
from lite2pg.verify import _distributions as verify_distributions

from .conftest import MakeDb, PgSchema

SHOP = (
    "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT,"
    "  score REAL, joined DATETIME, born DATE, avatar BLOB, vip BOOLEAN, balance NUMERIC(10,2));"
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL"
    "  REFERENCES customers(id), total NUMERIC, note TEXT, placed_at DATETIME);"
    "INSERT INTO customers VALUES"
    " (1, 'ann', 'ann@example.org', 1.5, '2021-01-01 10:00:00', '1990-05-01', x'00ff', 1, 12.5),"
    " (2, 'bob', NULL, 0.0, '2021-01-01T10:00:00.123456+02:00', NULL, NULL, 0, 3),"
    " (3, 'cé', 'c@x', -0.25, NULL, NULL, x'', NULL, NULL),"
    " (4, 'dan', 'd@x', 2, '2021-02-30 00:00:00', NULL, NULL, 1, 1),"  # impossible date
    " (5, 'eve', 'e@x', 1e300, '2022-06-01 12:00:00.5', '2000-02-29', NULL, 0, 0.01);"
    "INSERT INTO orders VALUES"
    " (10, 1, 9.99, 'tab\tand\nnewline', '2022-01-01 00:00:00'),"
    " (11, 1, 100, NULL, '2022-01-02 00:00:00'),"
    " (12, 2, 0.5, 'back\\slash', NULL),"
    " (13, 3, 7, '', '2022-01-03 00:00:00'),"
    " (14, 5, 1, 'x', '2022-01-04 00:00:00');"
)


def shop_run(make_db: MakeDb, pg: PgSchema, tmp_path: Path) -> Path:
    db = make_db(SHOP)
    run_dir = tmp_path / "run"
    migrate(db, pg.target, MigrateOptions(schema=pg.schema, run_dir=run_dir, verify=False))
    return run_dir


def table(report: VerifyReport, name: str) -> verify_mod.TableVerification:
    return next(t for t in report.tables if t.source == name)


def differences(report: VerifyReport, name: str, kind: str) -> list[dict[str, Any]]:
    return [d for d in table(report, name).differences if d["kind"] == kind]


def test_a_clean_migrate_verifies_ok_and_writes_the_reports(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    run_dir = shop_run(make_db, pg, tmp_path)

    report = verify(run_dir, pg.target)

    assert report.ok, report.problems
    assert str(report).startswith("VERIFIED: ")
    customers = table(report, "customers")
    # The impossible date was rejected by the run; verify agrees, and counts reconcile.
    assert (customers.source_rows, customers.rejected, customers.target_rows) == (5, 1, 4)
    assert customers.source_digest == customers.target_digest
    assert len(customers.source_digest) == 64
    data = json.loads((run_dir / "report.json").read_text())
    assert data["verify"]["ok"] is True
    assert data["snapshot_sha256"] == report.snapshot_sha256
    assert report.snapshot_check == "recorded"
    page = (run_dir / "report.html").read_text()
    # The banner, first on the page: what the run left behind, then verify's sentence.
    banner = page.index("VERIFIED, with 1 row rejected")
    detail = page.index(report.verdict().removeprefix("VERIFIED: ")[:40])
    assert banner < detail < page.index("<h1>")
    assert "<script" not in page and "http://" not in page and "https://" not in page
    # Foreign keys were validated by PostgreSQL; the rows per customer agree.
    [fk] = report.foreign_keys
    assert fk.method == "validated by PostgreSQL" and fk.ok
    [dist] = [d for d in report.distributions if d.column == "customer_id"]
    assert dist.ok and dist.groups_source == 4
    # Spot-checks show source raw -> transform(source) -> target.
    spots = [s for s in report.spot_checks if s["table"] == "orders"]
    assert spots and all(s["outcome"] == "equal" for s in spots)


def test_verify_again_checks_the_recorded_snapshot_digest(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    run_dir = shop_run(make_db, pg, tmp_path)
    first = verify(run_dir, pg.target)

    second = verify(run_dir, pg.target)

    assert second.ok and second.snapshot_check == "unchanged"
    assert [t.target_digest for t in second.tables] == [t.target_digest for t in first.tables]


def test_a_changed_snapshot_is_refused_with_a_clear_error(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    run_dir = shop_run(make_db, pg, tmp_path)
    verify(run_dir, pg.target)
    with closing(sqlite3.connect(run_dir / "source.snapshot.db")) as conn:
        conn.execute("UPDATE customers SET name = 'mallory' WHERE id = 1")
        conn.commit()

    with pytest.raises(VerifyError, match="snapshot changed since it was recorded") as info:
        verify(run_dir, pg.target)
    assert "run migrate again" in str(info.value)


def test_one_changed_column_of_one_row_is_named_with_both_values(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    run_dir = shop_run(make_db, pg, tmp_path)
    pg.execute("UPDATE customers SET email = 'evil@example.org' WHERE id = 2")

    report = verify(run_dir, pg.target)

    assert not report.ok
    [diff] = differences(report, "customers", "changed")
    assert diff["key"] == {"id": "2"}
    assert diff["columns"] == [
        {"column": "email", "source": "NULL", "target": "'evil@example.org'"}
    ]
    assert "customers: 1 row(s) changed (first: id=2: email)" in report.problems
    assert table(report, "customers").source_digest != table(report, "customers").target_digest


def test_a_timestamp_moved_by_one_microsecond_is_caught(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    run_dir = shop_run(make_db, pg, tmp_path)
    pg.execute("UPDATE orders SET placed_at = placed_at + interval '1 microsecond' WHERE id = 11")

    report = verify(run_dir, pg.target)

    [diff] = differences(report, "orders", "changed")
    assert diff["key"] == {"id": "11"}
    assert diff["columns"] == [
        {
            "column": "placed_at",
            "source": "'2022-01-02 00:00:00'",
            "target": "'2022-01-02 00:00:00.000001'",
        }
    ]


def test_a_deleted_row_is_reported_missing(make_db: MakeDb, pg: PgSchema, tmp_path: Path) -> None:
    run_dir = shop_run(make_db, pg, tmp_path)
    pg.execute("DELETE FROM orders WHERE id = 12")

    report = verify(run_dir, pg.target)

    assert differences(report, "orders", "missing") == [{"kind": "missing", "key": {"id": "12"}}]
    orders = table(report, "orders")
    assert (orders.missing, orders.target_rows) == (1, 4)
    assert "orders: 1 row(s) missing (first: id=12)" in report.problems
    assert any("counts do not reconcile" in p for p in orders.problems)


def test_an_added_row_is_reported_extra(make_db: MakeDb, pg: PgSchema, tmp_path: Path) -> None:
    run_dir = shop_run(make_db, pg, tmp_path)
    pg.execute("INSERT INTO orders VALUES (99, 1, 5, 'sneaked in', now())")

    report = verify(run_dir, pg.target)

    assert differences(report, "orders", "extra") == [{"kind": "extra", "key": {"id": "99"}}]
    assert any(p.startswith("orders: 1 row(s) extra (first: id=99)") for p in report.problems)
    # The app-level check sees one more order for customer 1.
    [dist] = [d for d in report.distributions if d.column == "customer_id"]
    assert dist.differences == [{"value": "1", "source": 2, "target": 3}]


def test_two_rows_with_swapped_ids_are_both_reported_changed(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    run_dir = shop_run(make_db, pg, tmp_path)
    pg.execute("UPDATE orders SET id = -id WHERE id IN (13, 14)")
    pg.execute("UPDATE orders SET id = CASE id WHEN -13 THEN 14 ELSE 13 END WHERE id < 0")

    report = verify(run_dir, pg.target)

    changed = differences(report, "orders", "changed")
    assert [d["key"] for d in changed] == [{"id": "13"}, {"id": "14"}]
    assert {c["column"] for c in changed[0]["columns"]} == {
        "customer_id",
        "total",
        "note",
        "placed_at",
    }
    assert {"column": "customer_id", "source": "3", "target": "5"} in changed[0]["columns"]


def test_a_null_foreign_key_that_should_not_be_null_is_caught(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    run_dir = shop_run(make_db, pg, tmp_path)
    pg.execute("ALTER TABLE orders ALTER COLUMN customer_id DROP NOT NULL")
    pg.execute("UPDATE orders SET customer_id = NULL WHERE id = 10")

    report = verify(run_dir, pg.target)

    [diff] = differences(report, "orders", "changed")
    assert diff["key"] == {"id": "10"}
    assert diff["columns"] == [{"column": "customer_id", "source": "1", "target": "NULL"}]
    [dist] = [d for d in report.distributions if d.column == "customer_id"]
    assert not dist.ok
    assert {"value": "NULL", "source": 0, "target": 1} in dist.differences


def test_a_row_the_run_rejected_that_shows_up_in_postgresql_is_caught(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    run_dir = shop_run(make_db, pg, tmp_path)
    pg.execute("INSERT INTO customers (id, name) VALUES (4, 'dan')")

    report = verify(run_dir, pg.target)

    customers = table(report, "customers")
    [diff] = differences(report, "customers", "rejected but present")
    assert diff["key"] == {"id": "4"} and diff["column"] == "joined"
    assert "timestamptz" in diff["reason"]
    assert customers.run_rejects_present == 1


def test_a_float_difference_within_the_tolerance_passes_only_with_it(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    run_dir = shop_run(make_db, pg, tmp_path)
    pg.execute("UPDATE customers SET score = 1.5000000001 WHERE id = 1")

    strict = verify(run_dir, pg.target)
    lenient = verify(run_dir, pg.target, float_tolerance=1e-6)

    [diff] = differences(strict, "customers", "changed")
    assert diff["columns"] == [{"column": "score", "source": "1.5", "target": "1.5000000001"}]
    assert not differences(lenient, "customers", "changed")


def test_a_table_with_a_text_primary_key_verifies_and_changes_are_named(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB, n INTEGER) WITHOUT ROWID;",
        (
            "INSERT INTO kv VALUES (?, ?, ?)",
            # Byte order, not the database's collation: 'B' < 'a' < 'é' < '😀'.
            [("a", b"\x00", 1), ("B", b"\xff", 2), ("é", b"", 3), ("😀", None, 4), ("", b"1", 5)],
        ),
    )
    run_dir = tmp_path / "run"
    migrate(db, pg.target, MigrateOptions(schema=pg.schema, run_dir=run_dir))

    clean = verify(run_dir, pg.target)
    pg.execute("UPDATE kv SET v = '\\x01' WHERE k = 'é'")
    pg.execute("DELETE FROM kv WHERE k = 'B'")
    damaged = verify(run_dir, pg.target)

    assert clean.ok, clean.problems
    assert table(clean, "kv").key == ["k"]
    assert table(clean, "kv").mode == "by key"
    [changed] = differences(damaged, "kv", "changed")
    assert changed["key"] == {"k": "'é'"}
    assert changed["columns"] == [
        {"column": "v", "source": "\\x (0 bytes)", "target": "\\x01 (1 bytes)"}
    ]
    assert differences(damaged, "kv", "missing") == [{"kind": "missing", "key": {"k": "'B'"}}]


def test_a_table_without_a_primary_key_is_compared_by_an_order_independent_digest(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE log (msg TEXT, n INTEGER);",
        ("INSERT INTO log VALUES (?, ?)", [("x", 1), ("y", 2), ("x", 1), (None, None)]),
    )
    run_dir = tmp_path / "run"
    migrate(db, pg.target, MigrateOptions(schema=pg.schema, run_dir=run_dir))

    clean = verify(run_dir, pg.target)
    pg.execute("UPDATE log SET n = 3 WHERE msg = 'y'")
    damaged = verify(run_dir, pg.target)

    log = table(clean, "log")
    assert clean.ok, clean.problems
    assert (log.mode, log.key, log.target_rows) == ("unordered", [], 4)
    assert log.source_digest == log.target_digest
    assert not damaged.ok
    assert table(damaged, "log").target_digest != log.target_digest
    assert differences(damaged, "log", "digest")


def test_orphans_the_plan_keeps_are_listed_apart_and_do_not_fail(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);"
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id));"
        "INSERT INTO users VALUES (1, 'a');"
        "INSERT INTO posts VALUES (10, 1), (11, 99), (12, NULL);"
    )
    plan = parse_plan('[tables.posts.foreign_keys.user_id]\non_orphan = "keep"\n')
    run_dir = tmp_path / "run"
    migrate(db, pg.target, MigrateOptions(schema=pg.schema, run_dir=run_dir, plan=plan))

    report = verify(run_dir, pg.target)

    [fk] = report.foreign_keys
    assert fk.method == "anti-join (constraint NOT VALID)"
    assert (fk.orphans, fk.allowed, fk.ok) == (1, True, True)
    assert fk.examples == [{"id": "11", "user_id": "99"}]
    assert report.ok, report.problems


def test_key_ranges_verified_apart_find_the_same_differences(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);",
        ("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(1, 1001)]),
    )
    run_dir = tmp_path / "run"
    migrate(db, pg.target, MigrateOptions(schema=pg.schema, run_dir=run_dir))
    pg.execute("UPDATE t SET v = 'x' WHERE id IN (1, 500, 1000)")
    pg.execute("DELETE FROM t WHERE id = 250")
    pg.execute("INSERT INTO t VALUES (5000, 'far')")
    monkeypatch.setattr(verify_mod, "UNIT_ROWS", 100)  # ten key ranges

    report = verify(run_dir, pg.target)

    t = table(report, "t")
    assert [d["key"]["id"] for d in t.differences] == ["1", "250", "500", "1000", "5000"]
    assert (t.changed, t.missing, t.extra, t.present) == (3, 1, 1, 996)


def test_worker_processes_give_the_same_verdict_and_digests(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = shop_run(make_db, pg, tmp_path)
    inline = verify(run_dir, pg.target)
    monkeypatch.setattr(verify_mod, "PARALLEL_MIN_ROWS", 0)

    pooled = verify(run_dir, pg.target)

    assert pooled.ok and inline.ok
    assert [t.source_digest for t in pooled.tables] == [t.source_digest for t in inline.tables]


@pytest.fixture
def helpdesk_run(pg: PgSchema, tmp_path: Path) -> tuple[Path, Path]:
    """The messy legacy helpdesk, migrated data-only with the built-in plan."""
    db = tmp_path / "legacy.db"
    make_legacy_helpdesk(db, users=40, tickets=200, audit_logs=600, seed=11, messy=True)
    plan = load_plan("helpdesk")
    prepare_schema(pg.target, pg.schema, plan)
    run_dir = tmp_path / "run"
    migrate(
        db,
        pg.target,
        MigrateOptions(schema=pg.schema, run_dir=run_dir, plan=plan, data_only=True, truncate=True),
    )
    return db, run_dir


def test_the_helpdesk_plan_loaded_data_only_verifies_ok(
    pg: PgSchema, helpdesk_run: tuple[Path, Path]
) -> None:
    db, run_dir = helpdesk_run

    report = verify(run_dir, pg.target)

    assert report.ok, report.problems
    users, tickets = table(report, "users"), table(report, "tickets")
    assert users.passwords["password"].get("cached hash", 0) > 0
    assert users.passwords["password"].get("sampled", 0) == 5
    assert tickets.rejected > 0 and tickets.orphans_nulled > 0
    # Value mappings before -> after, and PostgreSQL's GROUP BY agrees with them.
    [status] = [d for d in report.distributions if (d.table, d.column) == ("tickets", "status")]
    assert status.kind == "map" and status.ok
    pairs = {(m["before"], m["after"]) for m in status.mapping}
    assert ("'wip'", "'in_progress'") in pairs and ("'done'", "'closed'") in pairs
    # No secret leaves the run: neither a plaintext nor a hash is in the reports.
    with closing(sqlite3.connect(db)) as conn:
        secrets = [r[0] for r in conn.execute("SELECT password FROM users") if r[0]]
    hashes = [r[0] for r in pg.query('SELECT "passwordHash" FROM users')]
    written = (run_dir / "report.json").read_text() + (run_dir / "report.html").read_text()
    assert not [s for s in secrets + hashes if len(s) >= 8 and s in written]


def test_a_changed_password_hash_is_caught_and_redacted(
    pg: PgSchema, helpdesk_run: tuple[Path, Path]
) -> None:
    _db, run_dir = helpdesk_run
    [(victim, stolen)] = pg.query(
        'SELECT u.id, v."passwordHash" FROM users u, users v '
        "WHERE u.\"passwordHash\" LIKE '$argon2id$%%' AND v.\"passwordHash\" LIKE '$argon2id$%%' "
        "AND u.id <> v.id ORDER BY u.id, v.id LIMIT 1"
    )
    pg.execute(f"UPDATE users SET \"passwordHash\" = '{stolen}' WHERE id = {victim}")

    report = verify(run_dir, pg.target)

    [diff] = differences(report, "users", "changed")
    assert diff["key"] == {"id": str(victim)}
    assert diff["columns"] == [
        {"column": "passwordHash", "source": "<redacted>", "target": "<redacted>"}
    ]
    assert "users: 1 password value(s) are not the run's hash" in report.problems
    assert stolen not in (run_dir / "report.json").read_text()


def test_rows_postgresql_refused_count_as_rejected_and_must_stay_absent(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, n INTEGER);"
        "INSERT INTO items VALUES (1, 5), (2, 20), (3, 7);"
    )
    pg.execute("CREATE TABLE items (id bigint PRIMARY KEY, n int CHECK (n < 10))")
    run_dir = tmp_path / "run"
    migrate(db, pg.target, MigrateOptions(schema=pg.schema, run_dir=run_dir, data_only=True))

    clean = verify(run_dir, pg.target)
    pg.execute("ALTER TABLE items DROP CONSTRAINT items_n_check")
    pg.execute("INSERT INTO items VALUES (2, 20)")
    damaged = verify(run_dir, pg.target)

    items = table(clean, "items")
    assert clean.ok, clean.problems
    assert (items.rejected, items.refused, items.target_rows) == (0, 1, 2)
    assert table(damaged, "items").run_rejects_present == 1
    assert differences(damaged, "items", "logged as rejected but present") == [
        {"kind": "logged as rejected but present", "key": {"id": "2"}}
    ]


@pytest.mark.parametrize("row_by_row", [False, True])
def test_rows_per_fk_value_past_the_held_limit_are_listed_as_not_made_and_verify_passes(
    make_db: MakeDb,
    pg: PgSchema,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    row_by_row: bool,
) -> None:
    # Memory stays flat: a FK column with more distinct values than verify holds is not
    # counted per value (the rows themselves are compared, FK value included).
    monkeypatch.setattr(verify_distributions, "FK_GROUPS_HELD", 10)
    db = make_db(
        "CREATE TABLE p (id INTEGER PRIMARY KEY);"
        "CREATE TABLE c (id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p(id), pw TEXT);",
        ("INSERT INTO p VALUES (?)", [(i,) for i in range(1, 51)]),
        ("INSERT INTO c VALUES (?, ?, ?)", [(i, i % 50 + 1, f"pw{i}") for i in range(1, 201)]),
    )
    # A password column sends the table through the row-by-row comparison.
    plan = (
        parse_plan(
            "[tables.c.columns.pw]\n"
            'transforms = [{ hash_password = { algorithm = "argon2id" } }]\n',
            origin="test",
        )
        if row_by_row
        else None
    )
    run_dir = tmp_path / "run"
    migrate(
        db, pg.target, MigrateOptions(schema=pg.schema, run_dir=run_dir, verify=False, plan=plan)
    )

    report = verify(run_dir, pg.target)

    assert report.ok, report
    [check] = [d for d in report.distributions if d.table == "c" and d.kind == "foreign key"]
    assert check.not_made is not None and check.groups_source == 0
    # Tampering with an FK value is still caught, by the row comparison.
    pg.execute("UPDATE c SET p_id = 1 WHERE id = 7")
    assert not verify(run_dir, pg.target).ok


def _digest_by_hand(rows: list[tuple[Any, ...]], nulls: list[str]) -> str:
    """The README's table digest, written out from its definition (lite2pg-v2): per column,
    SHA-256 of each value's text followed by US (0x1f) in key order (an integer its
    digits, a BLOB upper-case hex; NULL is GS (0x1d) where '' is a value, else empty);
    the table's digest is SHA-256 of the column digests in column order."""
    columns = []
    for j, null in enumerate(nulls):
        text = ""
        for row in rows:
            v = row[j]
            text += null if v is None else v.hex().upper() if isinstance(v, bytes) else str(v)
            text += "\x1f"
        columns.append(hashlib.sha256(text.encode()).digest())
    return hashlib.sha256(b"".join(columns)).hexdigest()


def test_table_digests_equal_sha256_of_the_rows_computed_by_hand_on_each_side(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, n INTEGER, b BLOB);",
        (
            "INSERT INTO t VALUES (?, ?, ?, ?)",
            [(1, "ann", 7, b"\x00\xff"), (2, None, None, None), (3, "", -5, b""), (9, "é", 0, b"")],
        ),
    )
    run_dir = tmp_path / "run"
    migrate(db, pg.target, MigrateOptions(schema=pg.schema, run_dir=run_dir, verify=False))
    nulls = ["", "\x1d", "", "\x1d"]  # integer, text, integer, bytea
    with closing(sqlite3.connect(db)) as conn:
        source = _digest_by_hand(conn.execute("SELECT * FROM t ORDER BY id").fetchall(), nulls)
    target = _digest_by_hand(pg.query("SELECT id, name, n, b FROM t ORDER BY id"), nulls)

    t = table(verify(run_dir, pg.target), "t")

    assert (t.source_digest, t.target_digest) == (source, target)
    pg.execute("UPDATE t SET n = 8 WHERE id = 1")  # one value on one side
    changed = _digest_by_hand(pg.query("SELECT id, name, n, b FROM t ORDER BY id"), nulls)
    t = table(verify(run_dir, pg.target), "t")
    assert (t.source_digest, t.target_digest) == (source, changed) and changed != source
