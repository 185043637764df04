"""Schema discovery: what SQLite keeps only in the CREATE TABLE text."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lite2pg.source import Table, declared_constraints, discover, snapshot


def _table(path: Path, ddl: str, name: str) -> Table:
    conn = sqlite3.connect(path)
    try:
        conn.executescript(ddl)
        return discover(conn).table(name)
    finally:
        conn.close()


def test_constraint_names_at_table_and_column_level_are_found(tmp_path: Path) -> None:
    t = _table(
        tmp_path / "a.db",
        "CREATE TABLE p (id INTEGER PRIMARY KEY, a TEXT, b TEXT, UNIQUE (a, b));"
        "CREATE TABLE t (\n"
        "  id TEXT NOT NULL CONSTRAINT [pk t] PRIMARY KEY,\n"
        "  x INTEGER DEFAULT (abs(-1)) CONSTRAINT fk_x REFERENCES p ON DELETE SET NULL,\n"
        "  y TEXT COLLATE NOCASE CONSTRAINT uq_y UNIQUE CONSTRAINT ck_y CHECK (y <> ','),\n"
        "  z TEXT, -- a comment with CONSTRAINT no CHECK (\n"
        "  w TEXT /* CONSTRAINT nor_this UNIQUE */,\n"
        "  CHECK (z NOT IN ('(', ')')),\n"
        '  CONSTRAINT "ck (z)" CHECK ((length(z) > 0) OR (z IS NULL)),\n'
        "  UNIQUE (z), CONSTRAINT uq_z_again UNIQUE (z),\n"
        "  CONSTRAINT `fk zw` FOREIGN KEY (z, w) REFERENCES p (a, b),\n"
        "  FOREIGN KEY (w, z) REFERENCES p (a, b)\n"
        ") WITHOUT ROWID;",
        "t",
    )
    assert t.pk_name == "pk t"
    assert dict(zip(t.checks, t.check_names, strict=True)) == {
        "y <> ','": "ck_y",
        "z NOT IN ('(', ')')": None,
        "(length(z) > 0) OR (z IS NULL)": "ck (z)",
    }
    unique = {ix.columns: ix.constraint for ix in t.indexes if ix.origin == "u"}
    # SQLite keeps one index for UNIQUE (z) written twice: it takes the name given.
    assert unique == {("y",): "uq_y", ("z",): "uq_z_again"}
    assert {(fk.columns, fk.name) for fk in t.foreign_keys} == {
        (("x",), "fk_x"),
        (("z", "w"), "fk zw"),
        (("w", "z"), None),
    }


def test_unnamed_constraints_have_no_name(tmp_path: Path) -> None:
    t = _table(
        tmp_path / "a.db",
        "CREATE TABLE p (id INTEGER PRIMARY KEY);"
        "CREATE TABLE t (id INTEGER PRIMARY KEY, u TEXT UNIQUE CHECK (u > ''),"
        "  p_id INTEGER REFERENCES p);",
        "t",
    )
    assert t.pk_name is None
    assert t.check_names == (None,)
    assert [ix.constraint for ix in t.indexes] == [None]
    assert [fk.name for fk in t.foreign_keys] == [None]


_NAME = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00", exclude_categories=["Cs"]),
    min_size=1,
    max_size=20,
)


def _quoted(name: str, style: int) -> str:
    if style == 0:
        return '"' + name.replace('"', '""') + '"'
    if style == 1:
        return "`" + name.replace("`", "``") + "`"
    return "'" + name.replace("'", "''") + "'"


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(_NAME, min_size=5, max_size=5, unique=True), style=st.integers(0, 2))
def test_any_quoted_constraint_name_is_read_back_exactly(
    tmp_path: Path, names: list[str], style: int
) -> None:
    pk, uq, ck, fk, tfk = (_quoted(n, style) for n in names)
    ddl = (
        f"CREATE TABLE t (id INTEGER CONSTRAINT {pk} PRIMARY KEY,"
        f" a TEXT CONSTRAINT {uq} UNIQUE CONSTRAINT {ck} CHECK (a <> ')'),"
        f" b INTEGER CONSTRAINT {fk} REFERENCES t (id),"
        f" c INTEGER, CONSTRAINT {tfk} FOREIGN KEY (c) REFERENCES t)"
    )
    found = {(d.kind, d.name) for d in declared_constraints(ddl)}
    assert found == {
        ("pk", names[0]),
        ("u", names[1]),
        ("check", names[2]),
        ("fk", names[3]),
        ("fk", names[4]),
    }
    path = tmp_path / "h.db"
    path.unlink(missing_ok=True)
    t = _table(path, ddl, "t")  # SQLite takes the statement as the parser reads it
    assert (t.pk_name, t.check_names) == (names[0], (names[2],))
    assert {fk.name for fk in t.foreign_keys} == {names[3], names[4]}


def test_a_rollback_journal_snapshot_holds_the_committed_rows_and_no_pending_ones(
    tmp_path: Path,
) -> None:
    db = tmp_path / "live.db"
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, note TEXT)")
    writer.executemany("INSERT INTO t VALUES (?, ?)", [(i, "x" * 500) for i in range(1, 2001)])
    # The app is inside a write transaction (RESERVED lock, a -journal file): its rows are
    # not committed and must not be in the copy; the file copy runs under a shared lock.
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("DELETE FROM t WHERE id <= 1000")
    writer.execute("INSERT INTO t VALUES (5000, 'pending')")
    dest = tmp_path / "snap.db"
    snapshot(db, dest)
    writer.execute("COMMIT")
    writer.close()

    assert dest.stat().st_mode & 0o777 == 0o600
    with closing(sqlite3.connect(dest)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*), min(id), max(id) FROM t").fetchone() == (
            2000,
            1,
            2000,
        )


def test_a_wal_snapshot_still_holds_the_frames_not_yet_checkpointed(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    writer.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1, 101)])
    # The main file alone lacks these rows: a file copy would lose them.
    dest = tmp_path / "snap.db"
    snapshot(db, dest)
    writer.close()

    with closing(sqlite3.connect(dest)) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (100,)
