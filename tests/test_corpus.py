"""Every database in ../shared/corpus migrates and verifies; every reject is expected and
explained."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from lite2pg.run import MigrateOptions, migrate
from lite2pg.source import discover, open_readonly, quote_ident

from .conftest import CORPUS, PgSchema, corpus_files

# (file, table, column) -> what the reason must say. These rows are rejected on purpose:
# the stored value does not fit the declared type, and guessing would change data.
EXPECTED_REJECTS: dict[tuple[str, str, str], str] = {
    # 'lots-of-it' in INTEGER NOT NULL (pgloader issue #1622).
    ("pgloader_type-mismatch.db", "products", "qty"): "does not fit bigint",
    # Windows-1252 bytes stored as a BLOB in a TEXT column (pgloader issue #1250).
    ("pgloader_bad-utf8.db", "files", "filename"): "not valid UTF-8",
    # 'toto' and 12.3 in a column declared `intege` (INTEGER affinity).
    ("pgloader_sqlite.db", "intege", "id"): "does not fit bigint",
    # 0 and 2024 in DATETIME columns: epoch seconds, a year or a Julian day? Only a plan knows.
    ("pgloader_sqlite.db", "stamps", "StartTime"): "ambiguous",
    ("pgloader_sqlite.db", "stamps", "EndTime"): "ambiguous",
}

pytestmark = pytest.mark.skipif(
    not corpus_files(), reason=f"the shared corpus is not at {CORPUS}; nothing to migrate"
)


@pytest.mark.parametrize("db", corpus_files(), ids=lambda p: p.name)
def test_corpus_database_migrates_with_only_explained_rejects(
    db: Path, pg: PgSchema, tmp_path: Path
) -> None:
    report = migrate(db, pg.target, MigrateOptions(schema=pg.schema, run_dir=tmp_path / "run"))

    assert report.reconciled
    # And the proof: every row and column equals transform(source).
    assert report.verify is not None and report.verify["ok"], report.verify
    src = open_readonly(db)
    schema = discover(src)
    for result in report.tables:
        expected = src.execute(f"SELECT count(*) FROM {quote_ident(result.source)}").fetchone()[0]
        assert result.read == expected, result.source
        (in_pg,) = pg.query(f'SELECT count(*) FROM "{result.target}"')[0]
        assert in_pg == result.loaded == expected - result.rejected, result.source
    assert {t.name for t in schema.tables} == {t.source for t in report.tables}

    rejects = []
    if report.rejects_dir:
        for path in Path(report.rejects_dir).glob("*.jsonl"):
            rejects += [json.loads(line) for line in path.read_text().splitlines()]
    for r in rejects:
        key = (db.name, r["table"], r["column"])
        assert key in EXPECTED_REJECTS, f"unexpected reject {r}"
        assert EXPECTED_REJECTS[key] in r["reason"]
    assert len(rejects) == report.rows_rejected

    # Every foreign key of the source exists in PostgreSQL and is validated.
    fk_count = sum(len(t.foreign_keys) for t in schema.tables)
    validated = pg.query(
        "SELECT count(*) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
        "WHERE n.nspname = %s AND c.contype = 'f' AND c.convalidated",
        (pg.schema,),
    )[0][0]
    assert validated == fk_count
    src.close()


def test_corpus_keys_point_at_the_same_rows_after_migration(pg: PgSchema, tmp_path: Path) -> None:
    db = CORPUS / "Chinook_Sqlite.sqlite"
    migrate(db, pg.target, MigrateOptions(schema=pg.schema, run_dir=tmp_path / "run"))
    with sqlite3.connect(db) as src:
        expected = src.execute(
            "SELECT il.InvoiceLineId, t.Name, c.LastName FROM InvoiceLine il "
            "JOIN Track t ON t.TrackId = il.TrackId JOIN Invoice i ON i.InvoiceId = il.InvoiceId "
            "JOIN Customer c ON c.CustomerId = i.CustomerId ORDER BY 1"
        ).fetchall()
    got = pg.query(
        'SELECT il."InvoiceLineId", t."Name", c."LastName" FROM "InvoiceLine" il '
        'JOIN "Track" t ON t."TrackId" = il."TrackId" '
        'JOIN "Invoice" i ON i."InvoiceId" = il."InvoiceId" '
        'JOIN "Customer" c ON c."CustomerId" = i."CustomerId" ORDER BY 1'
    )
    assert [tuple(r) for r in got] == expected
