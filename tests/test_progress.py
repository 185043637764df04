"""Progress says how far a table really is: while passwords hash, rows hashed, not read."""

from __future__ import annotations

from pathlib import Path

from lite2pg import source
from lite2pg.layout import create_maps, select_tables, table_plan
from lite2pg.plan import parse_plan
from lite2pg.rows import RowStream, build_pipeline

from .conftest import MakeDb

ROWS = 40
PLAN = (
    "[tables.users.columns.password]\n"
    'transforms = [{ hash_password = { algorithm = "bcrypt", cost = 4 } }]\n'
)


def test_progress_counts_rows_hashed_not_rows_read_while_passwords_hash(
    make_db: MakeDb, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, password TEXT);",
        ("INSERT INTO users VALUES (?, ?)", [(i, f"secret-{i}") for i in range(1, ROWS + 1)]),
    )
    plan = parse_plan(PLAN)
    src = source.open_readonly(db)
    try:
        layout = select_tables(source.discover(src), None, plan, {})
        [tm], _ = create_maps(layout, plan)
        heard: list[int] = []
        stream = RowStream(
            src,
            build_pipeline(tm, table_plan(plan, "users"), None),
            None,
            run_dir=tmp_path,
            progress=lambda _table, done: heard.append(done),
            hash_workers=1,
        )
        hashed = sum(len(batch) for batch in stream.batches())
    finally:
        src.close()

    assert hashed == ROWS
    # Every row is read in the first batch; the bar moves as the hashes come back.
    assert heard[0] < ROWS
    assert heard == sorted(heard) and heard[-1] == ROWS
    assert len(set(heard)) >= ROWS // 4  # at least once per chunk of hashes
