"""verify's catalog check against a real PostgreSQL: a clean run's tables, keys, indexes,
CHECKs, foreign keys and sequences are as the run built them; each way of changing one of
them afterwards fails verify with a line naming the table, the object and both sides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lite2pg.plan import parse_plan
from lite2pg.run import MigrateOptions, migrate
from lite2pg.verify import VerifyReport, verify

from ._cli import cli
from .conftest import MakeDb, PgSchema

SHOP = (
    "CREATE TABLE customers (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT NOT NULL UNIQUE,"
    "  score INTEGER DEFAULT 0 CHECK (score >= 0), note TEXT);"
    "CREATE INDEX customers_score ON customers (score DESC);"
    "CREATE INDEX customers_big ON customers (email) WHERE score > 10;"
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL"
    "  REFERENCES customers (id) ON DELETE CASCADE, qty BIGINT, price NUMERIC(10,2),"
    "  placed DATETIME DEFAULT CURRENT_TIMESTAMP);"
    "INSERT INTO customers (id, email, score) VALUES (1, 'a@x', 5), (2, 'b@x', 21), (3, 'c@x', 0);"
    "INSERT INTO orders VALUES (10, 1, 21, 1.5, '2021-01-01 00:00:00'),"
    "  (11, 2, 3, 2, '2021-01-02 00:00:00');"
    # The AUTOINCREMENT high-water mark is above max(id): ids up to 100 were handed out.
    "UPDATE sqlite_sequence SET seq = 100 WHERE name = 'customers';"
)


def shop_run(make_db: MakeDb, pg: PgSchema, tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    opts = MigrateOptions(schema=pg.schema, run_dir=run_dir, verify=False)
    migrate(make_db(SHOP), pg.target, opts)
    return run_dir


def catalog_lines(report: VerifyReport) -> list[str]:
    return [d for c in report.catalog for d in c.differences]


def test_an_untampered_run_has_the_catalog_and_sequences_it_built(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    run_dir = shop_run(make_db, pg, tmp_path)

    report = verify(run_dir, pg.target)

    assert report.ok and report.catalog_ok, report.problems
    assert "the catalog is as the run built it" in str(report)
    by_table = {c.table: c for c in report.catalog}
    assert set(by_table) == {"customers", "orders"}
    [seq] = by_table["customers"].sequences
    # Past the AUTOINCREMENT mark (100), not only past max(id) (3).
    assert (seq["column"], seq["next_value"], seq["needed"], seq["ok"]) == ("id", 101, 101, True)
    [seq] = by_table["orders"].sequences
    assert (seq["next_value"], seq["needed"]) == (12, 12)
    saved = json.loads((run_dir / "report.json").read_text())["verify"]["catalog"]
    assert saved["ok"] is True and len(saved["tables"]) == 2
    assert "Catalog" in (run_dir / "report.html").read_text()


TAMPERINGS = [
    pytest.param(
        "ALTER TABLE orders ALTER COLUMN qty TYPE numeric;"
        "UPDATE orders SET qty = 21.4 WHERE id = 10",
        "orders: column qty type: expected bigint, found numeric",
        id="bigint-to-numeric",
    ),
    pytest.param(
        "ALTER TABLE orders ALTER COLUMN qty TYPE double precision;"
        "UPDATE orders SET qty = 21.4 WHERE id = 10",
        "orders: column qty type: expected bigint, found double precision",
        id="bigint-to-double",
    ),
    pytest.param(
        "ALTER TABLE orders ALTER COLUMN qty TYPE text; UPDATE orders SET qty = '03' WHERE id = 11",
        "orders: column qty type: expected bigint, found text",
        id="bigint-to-text",
    ),
    pytest.param(
        "ALTER TABLE orders ALTER COLUMN price TYPE numeric(12,3)",
        "orders: column price type: expected numeric(10,2), found numeric(12,3)",
        id="typmod",
    ),
    pytest.param(
        "ALTER TABLE customers ALTER COLUMN email DROP NOT NULL",
        "customers: column email NOT NULL: expected yes, found no",
        id="drop-not-null",
    ),
    pytest.param(
        "ALTER TABLE customers ALTER COLUMN score DROP DEFAULT",
        "customers: column score default: expected 0, found none",
        id="drop-default",
    ),
    pytest.param(
        "ALTER TABLE customers ALTER COLUMN score SET DEFAULT 7",
        "customers: column score default: expected 0, found 7",
        id="other-default",
    ),
    pytest.param(
        "ALTER TABLE orders ADD COLUMN coupon text",
        "orders: column coupon: expected none, found text",
        id="extra-column",
    ),
    pytest.param(
        "ALTER TABLE orders DROP COLUMN placed",
        "orders: column placed: expected timestamp with time zone, found none",
        id="missing-column",
    ),
    pytest.param(
        "DROP TABLE orders",
        "orders: table: expected it, found none",
        id="missing-table",
    ),
    pytest.param(
        "ALTER TABLE orders DROP CONSTRAINT orders_pkey",
        "orders: primary key: expected PRIMARY KEY (id), found none",
        id="drop-primary-key",
    ),
    pytest.param(
        "ALTER TABLE customers DROP CONSTRAINT customers_email_key",
        "customers: unique constraint: expected UNIQUE (email), found none",
        id="drop-unique",
    ),
    pytest.param(
        "DROP INDEX customers_score",
        "customers: index: expected INDEX USING btree (score DESC), found none",
        id="drop-index",
    ),
    pytest.param(
        "DROP INDEX customers_big;CREATE INDEX customers_big ON customers (email) WHERE score > 11",
        "customers: index: expected none, found INDEX USING btree (email) WHERE (score > 11)",
        id="other-partial-index",
    ),
    pytest.param(
        "CREATE INDEX extra ON orders (qty)",
        "orders: index: expected none, found INDEX USING btree (qty)",
        id="extra-index",
    ),
    pytest.param(
        "ALTER TABLE orders DROP CONSTRAINT orders_customer_id_fkey",
        "orders: foreign key (customer_id) -> customers: expected FOREIGN KEY (customer_id) "
        "REFERENCES customers(id) ON UPDATE NO ACTION ON DELETE CASCADE, found none",
        id="drop-foreign-key",
    ),
    pytest.param(
        "ALTER TABLE orders DROP CONSTRAINT orders_customer_id_fkey;"
        "ALTER TABLE orders ADD FOREIGN KEY (customer_id) REFERENCES customers (id)"
        " ON DELETE SET NULL",
        "found FOREIGN KEY (customer_id) REFERENCES customers(id) ON UPDATE NO ACTION "
        "ON DELETE SET NULL",
        id="foreign-key-actions",
    ),
    pytest.param(
        "ALTER TABLE orders DROP CONSTRAINT orders_customer_id_fkey;"
        "ALTER TABLE orders ADD FOREIGN KEY (customer_id) REFERENCES customers (id)"
        " ON DELETE CASCADE NOT VALID",
        "ON DELETE CASCADE, found FOREIGN KEY (customer_id) REFERENCES customers(id) "
        "ON UPDATE NO ACTION ON DELETE CASCADE NOT VALID",
        id="foreign-key-not-valid",
    ),
    pytest.param(
        "ALTER TABLE customers DROP CONSTRAINT customers_score_check",
        "customers: CHECK constraint: expected CHECK (score >= 0), found none",
        id="drop-check",
    ),
    pytest.param(
        "ALTER TABLE orders ADD CHECK (qty > 0)",
        "orders: CHECK constraint: expected none, found CHECK (qty > 0)",
        id="add-check",
    ),
    pytest.param(
        "SELECT setval(pg_get_serial_sequence('customers', 'id'), 1)",
        "customers: sequence customers_id_seq of column id: next value 2, needs at least 101 "
        "(max(id) = 3, AUTOINCREMENT high-water mark 100)",
        id="setval-below-autoincrement",
    ),
    pytest.param(
        "SELECT setval(pg_get_serial_sequence('orders', 'id'), 1, false)",
        "orders: sequence orders_id_seq of column id: next value 1, needs at least 12 "
        "(max(id) = 11)",
        id="setval-to-1",
    ),
    pytest.param(
        "ALTER TABLE orders ALTER COLUMN id DROP IDENTITY",
        "orders: column id identity: expected GENERATED BY DEFAULT AS IDENTITY, found none",
        id="drop-identity",
    ),
]


@pytest.mark.parametrize(("tamper", "line"), TAMPERINGS)
def test_a_catalog_changed_after_the_run_fails_verify_naming_it(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, tamper: str, line: str
) -> None:
    run_dir = shop_run(make_db, pg, tmp_path)
    pg.execute(tamper)

    report = verify(run_dir, pg.target)

    assert not report.ok and not report.catalog_ok
    assert any(line in p for p in catalog_lines(report)), catalog_lines(report)
    assert any(line in p for p in report.problems)
    saved = json.loads((run_dir / "report.json").read_text())["verify"]
    assert saved["ok"] is False and saved["catalog"]["ok"] is False


def test_a_column_of_another_type_fails_its_table_without_comparing_rows(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    run_dir = shop_run(make_db, pg, tmp_path)
    pg.execute("ALTER TABLE orders ALTER COLUMN qty TYPE text; UPDATE orders SET qty = '03'")

    report = verify(run_dir, pg.target)

    orders = next(t for t in report.tables if t.source == "orders")
    assert orders.problems == [
        "content not compared: column qty is text, not bigint (see the catalog)"
    ]
    # The other table is compared as usual.
    customers = next(t for t in report.tables if t.source == "customers")
    assert customers.ok and customers.present == 3


def test_verify_on_the_command_line_names_a_type_change_without_a_traceback(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    run_dir = shop_run(make_db, pg, tmp_path)
    pg.execute("ALTER TABLE orders ALTER COLUMN qty TYPE numeric; UPDATE orders SET qty = 1e30")

    result = cli("verify", str(run_dir), "--target", pg.dsn, cwd=tmp_path)

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "FAILED: orders: column qty type: expected bigint, found numeric" in result.stdout


def test_objects_the_run_reports_it_could_not_build_are_expected_as_reported(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    # A primary key with NULLs is made UNIQUE; orphans leave the foreign key NOT VALID.
    db = make_db(
        "CREATE TABLE codes (code TEXT PRIMARY KEY, label TEXT);"
        "CREATE TABLE uses (id INTEGER PRIMARY KEY, code TEXT REFERENCES codes (code));"
        "INSERT INTO codes VALUES ('a', 'A'), (NULL, 'none');"
        "INSERT INTO uses VALUES (1, 'a'), (2, 'zz');"
    )
    run_dir = tmp_path / "run"
    keep = parse_plan('[tables.uses.foreign_keys.code]\non_orphan = "keep"\n')
    opts = MigrateOptions(schema=pg.schema, run_dir=run_dir, verify=False, plan=keep)
    migrate(db, pg.target, opts)

    report = verify(run_dir, pg.target)

    assert report.catalog_ok, catalog_lines(report)
    # The orphan itself is the foreign key check's to report, not the catalog's.
    assert [fk.orphans for fk in report.foreign_keys] == [1]
    codes = next(c for c in report.catalog if c.table == "codes")
    assert codes.differences == []
    pg.execute("ALTER TABLE uses DROP CONSTRAINT uses_code_fkey")
    assert catalog_lines(verify(run_dir, pg.target)) == [
        "uses: foreign key (code) -> codes: expected FOREIGN KEY (code) REFERENCES codes(code) "
        "ON UPDATE NO ACTION ON DELETE NO ACTION NOT VALID, found none"
    ]


def test_a_data_only_run_checks_the_loaded_columns_and_the_app_sequences(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT);"
        "INSERT INTO items VALUES (1, 'a'), (7, 'b');"
    )
    # The app's own table: its own serial, an index and a column lite2pg does not load.
    pg.execute(
        "CREATE TABLE items (id serial PRIMARY KEY, name text, added timestamptz DEFAULT now());"
        "CREATE INDEX items_name ON items (name)"
    )
    run_dir = tmp_path / "run"
    opts = MigrateOptions(schema=pg.schema, run_dir=run_dir, data_only=True, verify=False)
    migrate(db, pg.target, opts)

    clean = verify(run_dir, pg.target)
    pg.execute("DROP INDEX items_name")  # the app's: not the run's to check
    still = verify(run_dir, pg.target)
    pg.execute("SELECT setval('items_id_seq', 3)")
    damaged = verify(run_dir, pg.target)

    assert clean.ok and still.ok, clean.problems + still.problems
    [check] = clean.catalog
    assert check.scope.startswith("loaded columns")
    assert [(s["column"], s["next_value"], s["needed"]) for s in check.sequences] == [("id", 8, 8)]
    assert damaged.problems == [
        "items: sequence items_id_seq of column id: next value 4, needs at least 8 (max(id) = 7)"
    ]
