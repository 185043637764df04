"""SQLite side: open read-only, snapshot, discover the schema, stream rows in batches."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lite2pg import installed, native
from lite2pg.errors import RunDirError, SourceError, UsageError

SQLITE_HEADER = b"SQLite format 3\x00"
# How long to wait for another process's write lock before giving up with a clear error:
# long enough for an app's ordinary write transactions, short enough to not look hung.
BUSY_TIMEOUT_S = 30.0
BUSY_TIMEOUT_ENV = "LITE2PG_BUSY_TIMEOUT"


@dataclass(frozen=True)
class Stored:
    """What a column actually holds: its storage classes, besides NULL."""

    classes: frozenset[str]  # of 'integer', 'real', 'text', 'blob'
    # Every integer is within 2**53 of zero, so a double holds each one exactly.
    ints_fit_double: bool = True
    # For a column meant to hold JSON (declared JSON or JSONB, or CHECKed with json_valid):
    # how many values jsonb would not take as they are; None for other columns.
    json_invalid: int | None = None
    # For a column declared UUID, GUID or UNIQUEIDENTIFIER: how many values are no uuid.
    uuid_invalid: int | None = None


@dataclass(frozen=True)
class Column:
    """One column as SQLite declares it."""

    name: str
    declared_type: str
    not_null: bool
    default_sql: str | None
    pk_position: int  # 0 when not part of the primary key, else 1-based position
    generated: bool = False
    # What the column holds, for a column whose declared type says nothing about it
    # (`typed_by_values`) or that may hold JSON or uuids (`Stored`); None for the others.
    stored: Stored | None = None
    # Declared "quoted" ([x], `x`, 'x'): the name keeps its case in PostgreSQL.
    quoted: bool = False
    collation: str | None = None  # the COLLATE its definition gives (NOCASE in upper case)


@dataclass(frozen=True)
class Index:
    """An index, a UNIQUE constraint (origin 'u') or the primary key (origin 'pk')."""

    name: str
    columns: tuple[str, ...]
    unique: bool
    origin: str  # 'c' CREATE INDEX, 'u' UNIQUE constraint, 'pk' primary key
    sql: str | None  # CREATE INDEX text, for partial or expression indexes
    plain: bool  # False for partial or expression indexes
    descending: tuple[bool, ...] = ()
    constraint: str | None = None  # the CONSTRAINT name the DDL gives a UNIQUE or PRIMARY KEY
    # Per column, the collation the index compares with (a column's own COLLATE included),
    # in upper case for SQLite's built-in ones.
    collations: tuple[str, ...] = ()

    @property
    def nocase(self) -> bool:
        """Whether any column of the index compares without case (COLLATE NOCASE)."""
        return "NOCASE" in self.collations


@dataclass(frozen=True)
class ForeignKey:
    """A foreign key from `columns` of a table to `ref_columns` of `ref_table`."""

    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]  # resolved to the parent's primary key when omitted
    on_update: str
    on_delete: str
    deferrable: bool = False
    name: str | None = None  # the CONSTRAINT name the DDL gives it
    parent_found: bool = True  # False: the source has no table `ref_table` (no orphans then)


@dataclass(frozen=True)
class Table:
    """A migratable SQLite table and everything that hangs on it."""

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    rowid_alias: str | None  # the INTEGER PRIMARY KEY column that is the rowid, if any
    autoincrement: bool
    without_rowid: bool
    strict: bool
    indexes: tuple[Index, ...]
    foreign_keys: tuple[ForeignKey, ...]
    checks: tuple[str, ...]  # CHECK expressions in SQLite SQL
    sql: str
    sequence_value: int | None  # sqlite_sequence.seq for AUTOINCREMENT tables
    # CONSTRAINT names the DDL gives: SQLite keeps them only in the CREATE TABLE text.
    pk_name: str | None = None
    check_names: tuple[str | None, ...] = ()  # one per entry of `checks`
    quoted: bool = False  # the table's name was declared quoted
    # CONSTRAINT and index names declared quoted (the others fold to lower case).
    quoted_names: frozenset[str] = frozenset()

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


@dataclass(frozen=True)
class Skipped:
    """A schema object that lite2pg does not migrate as such, and why."""

    kind: str  # view, trigger, virtual table, shadow table, internal table
    name: str
    reason: str
    sql: str | None = None


@dataclass(frozen=True)
class SourceSchema:
    """Everything discovered in one SQLite database."""

    tables: tuple[Table, ...]
    views: tuple[Skipped, ...]
    skipped: tuple[Skipped, ...] = field(default=())
    # What the app will see behave differently, found in the schema itself.
    changes: tuple[str, ...] = field(default=())

    def table(self, name: str) -> Table:
        for t in self.tables:
            if t.name == name:
                return t
        raise KeyError(name)


def quote_ident(name: str) -> str:
    """Quote an identifier for SQLite."""
    return '"' + name.replace('"', '""') + '"'


def check_sqlite_file(path: Path) -> None:
    """Fail with a clear SourceError unless `path` is a readable SQLite 3 database file."""
    if not path.exists():
        raise SourceError(str(path), "no such file", "check the path")
    if path.is_dir():
        raise SourceError(str(path), "is a directory, not a SQLite file", "give the .db file")
    try:
        with path.open("rb") as f:
            header = f.read(100)
    except OSError as e:
        raise SourceError(str(path), f"cannot read: {e.strerror}", "check permissions") from e
    if len(header) == 0:
        raise SourceError(str(path), "file is empty", "is this the right file?")
    if not header.startswith(SQLITE_HEADER):
        raise SourceError(
            str(path),
            "not a SQLite 3 database (bad header)",
            "encrypted (SQLCipher) files must be decrypted first; other files are not SQLite",
        )


def busy_timeout() -> float:
    """Seconds to wait for a writer's lock on the source: $LITE2PG_BUSY_TIMEOUT, else 30."""
    raw = os.environ.get(BUSY_TIMEOUT_ENV)
    if raw is None or not raw.strip():
        return BUSY_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < 86_400:
        raise UsageError(
            f"{BUSY_TIMEOUT_ENV}={raw!r} is not a number of seconds",
            f"e.g. {BUSY_TIMEOUT_ENV}=30",
        )
    return value


def _locked(e: sqlite3.Error) -> bool:
    return isinstance(e, sqlite3.OperationalError) and (
        "locked" in str(e).lower() or "busy" in str(e).lower()
    )


def source_error(path: Path, e: sqlite3.Error, doing: str) -> SourceError:
    """The one-line error for a SQLite failure while `doing` something to the source."""
    if _locked(e):
        return SourceError(
            str(path),
            f"{doing}: {e}: a writer held the lock for more than {busy_timeout():g}s",
            f"retry when the app is idle, or wait longer with {BUSY_TIMEOUT_ENV}=SECONDS",
        )
    if getattr(e, "sqlite_errorname", "") == "SQLITE_READONLY_ROLLBACK":
        return SourceError(
            str(path),
            f"{doing}: a write transaction was interrupted and its {path.name}-journal must "
            "be rolled back first, which a read-only reader may not do",
            f"stop the app, then let SQLite roll it back: sqlite3 {path} 'PRAGMA quick_check'",
        )
    if isinstance(e, sqlite3.OperationalError) and "unable to open" in str(e).lower():
        return SourceError(
            str(path),
            f"{doing}: {e}",
            "a WAL database needs its -shm file, or a directory where SQLite may create it",
        )
    if getattr(e, "sqlite_errorname", "") in _DAMAGED or not isinstance(
        e, sqlite3.OperationalError
    ):
        return SourceError(
            str(path),
            f"{doing}: the file is corrupt ({e})",
            f"recover it first: sqlite3 {path} .recover | sqlite3 recovered.db",
        )
    return SourceError(str(path), f"{doing}: {e}", "is the file readable and complete?")


_DAMAGED = ("SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_IOERR_SHORT_READ")
# SQLite's codes for a write that failed: the snapshot's disk, not the source.
_WRITE_FAILED = ("SQLITE_FULL", "SQLITE_IOERR_WRITE", "SQLITE_IOERR_FSYNC", "SQLITE_IOERR_TRUNCATE")


# quick_check also reports rows that break a CHECK, NOT NULL or STRICT type: the data's
# problem, not the file's; the load rejects such rows (or reports the constraint) itself.
_DATA_PROBLEM = re.compile(r"CHECK constraint failed|NULL value in |(non-)?\w+ value in ")


# Collations every SQLite has; any other name in the schema is one the app registers on its
# own connections, without which SQLite refuses to read the tables and indexes that use it.
BUILTIN_COLLATIONS = frozenset({"BINARY", "NOCASE", "RTRIM"})
# Names that say "compare without case": nocase_utf8, unicase, utf8_general_ci, ...
_CASELESS_NAME = re.compile(r"nocase|unicase|caseless|insensitive|icase|(?:^|[^a-z])ci(?:[^a-z]|$)")


def _caseless(a: str, b: str) -> int:
    x, y = a.casefold(), b.casefold()
    return (x > y) - (x < y)


def _codepoints(a: str, b: str) -> int:
    return (a > b) - (a < b)


def is_caseless(collation: str) -> bool:
    """Whether the fallback for an app's collation compares without case (by its name)."""
    return bool(_CASELESS_NAME.search(collation.lower()))


def app_collations(conn: sqlite3.Connection) -> list[tuple[str, str, str, str | None]]:
    """(collation, object type, object name, column) for every COLLATE in the schema's SQL
    that names a collation SQLite does not have built in."""
    found: list[tuple[str, str, str, str | None]] = []
    rows = conn.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE sql LIKE '%collate%' ORDER BY rowid"
    ).fetchall()
    for kind, name, text in rows:
        toks = [t.group(0) for t in _tokens(text)]
        item: str | None = None
        after_open = False
        for i, tok in enumerate(toks):
            if after_open:
                item = unquote_ident(tok)
            after_open = tok in ("(", ",")
            if tok.upper() == "COLLATE" and i + 1 < len(toks):
                collation = unquote_ident(toks[i + 1])
                if collation.upper() not in BUILTIN_COLLATIONS:
                    found.append((collation, kind, name, item))
    return found


def register_collations(conn: sqlite3.Connection) -> None:
    """Give `conn` a fallback for each collation the app registers itself: case-insensitive
    (casefold) for names that say so, else code point order. Deterministic, so that every
    connection of a run reads the same."""
    for collation in {c for c, *_ in app_collations(conn)}:
        conn.create_collation(collation, _caseless if is_caseless(collation) else _codepoints)


def collation_changes(conn: sqlite3.Connection) -> list[str]:
    """The behaviour changes that the app's own collations bring, one line per use."""
    lines: list[str] = []
    for collation, kind, name, column in app_collations(conn):
        where = f"column {name}.{column}" if kind == "table" and column else f"{kind} {name}"
        if kind == "index" and column:
            where = f"index {name} (column {column})"
        how = "case-insensitive, by casefold" if is_caseless(collation) else "code point order"
        line = (
            f"{where} uses collation {collation}, which the app registers; read with a "
            f"fallback ({how}); PostgreSQL uses its default collation"
        )
        if line not in lines:
            lines.append(line)
    return lines


def open_readonly(path: Path) -> sqlite3.Connection:
    """Open a SQLite database read-only; the source is never modified."""
    check_sqlite_file(path)
    uri = f"{path.resolve().as_uri()}?mode=ro"
    try:
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=busy_timeout(), check_same_thread=False)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError as e:
            if "unable to open" not in str(e).lower() or not _quiet_wal(path):
                raise
            # A WAL database in a directory SQLite cannot write to (no -shm can be made).
            # With no -wal file there is nothing uncheckpointed and no writer (a writer
            # would need to create -wal): the main file is the whole database.
            conn = sqlite3.connect(
                uri + "&immutable=1", uri=True, timeout=busy_timeout(), check_same_thread=False
            )
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        register_collations(conn)
    except sqlite3.DatabaseError as e:
        raise source_error(path, e, "cannot open") from e
    return conn


def _quiet_wal(path: Path) -> bool:
    """True for a WAL-mode database file without a -wal file (or with an empty one)."""
    with path.open("rb") as f:
        header = f.read(20)
    wal = Path(f"{path}-wal")
    return header[18:20] == b"\x02\x02" and (not wal.exists() or wal.stat().st_size == 0)


def snapshot(path: Path, dest: Path) -> None:
    """Copy a consistent snapshot of `path` to `dest`.

    A database in rollback-journal mode is copied as a file while this process holds a read
    transaction on it: SQLite writes the main file only under an exclusive lock, which a
    reader's shared lock keeps out, so the file is consistent for as long as the copy
    takes (the kernel copies it: 0.2 s where the backup API took 0.7 to 0.9 s for 69 MB).
    A WAL database goes through SQLite's online backup API, whose one step copies every
    page under a single read lock, committed WAL frames included.
    """
    src = open_readonly(path)
    try:
        # The copy holds whatever the source holds, plaintext passwords included: 0600.
        os.close(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        if _copy_under_read_lock(src, path, dest):
            return
        dst = sqlite3.connect(dest)
        # The snapshot is a scratch copy: a crash mid-copy means copying again, so skip
        # the journal and fsyncs.
        dst.execute("PRAGMA journal_mode=OFF")
        dst.execute("PRAGMA synchronous=OFF")
        try:
            src.backup(dst, pages=-1)
        except sqlite3.DatabaseError as e:
            if getattr(e, "sqlite_errorname", "") in _WRITE_FAILED or "disk is full" in str(e):
                raise RunDirError(
                    str(dest), str(e), "free some space, or pass --run-dir on a disk with room"
                ) from e
            raise source_error(path, e, "snapshot failed") from e
        finally:
            dst.close()
    finally:
        src.close()


def _copy_under_read_lock(src: sqlite3.Connection, path: Path, dest: Path) -> bool:
    """Copy the main file of a rollback-journal database inside a read transaction of `src`;
    False (nothing copied) for a WAL database, whose main file lacks the WAL's frames."""
    try:
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the shared lock
    except sqlite3.DatabaseError as e:
        raise source_error(path, e, "snapshot failed") from e
    try:
        # Read under the lock: a switch to WAL needs the exclusive lock, so the mode holds.
        if src.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
            return False
        try:
            # The lock is POSIX's, which closing any descriptor of the file drops: the
            # copy's own descriptor closes only once every byte is read.
            shutil.copyfile(path, dest)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise RunDirError(
                    str(dest), str(e), "free some space, or pass --run-dir on a disk with room"
                ) from e
            raise SourceError(
                str(path), f"snapshot failed: {e.strerror or e}", "check that the file can be read"
            ) from e
        return True
    finally:
        with contextlib.suppress(sqlite3.Error):
            src.rollback()


def quick_check(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a damaged file: PRAGMA quick_check reads every page once (about 4 s per GB
    here). `check` runs it; a load does not, since reading a table's rows reads each of
    its pages anyway, and a damaged one fails the run before anything is published."""
    try:
        problems = [
            " ".join(r[0].split())
            for r in conn.execute("PRAGMA quick_check(100)")
            if not _DATA_PROBLEM.match(r[0])
        ][:3] or ["ok"]
    except sqlite3.DatabaseError as e:
        raise source_error(path, e, "checking the file") from e
    if problems != ["ok"]:
        raise SourceError(
            str(path),
            f"the file is corrupt (quick_check: {'; '.join(problems)})",
            f"recover it first: sqlite3 {path} .recover | sqlite3 recovered.db",
        )


_AUTOINC = re.compile(r"\bAUTOINCREMENT\b", re.IGNORECASE)


_TOKEN = re.compile(
    r"""
    '(?:[^']|'')*'            # string
  | "(?:[^"]|"")*"            # quoted identifier
  | `(?:[^`]|``)*`            # backtick identifier
  | \[[^\]]*\]                # bracket identifier
  | --[^\n]*                  # line comment
  | /\*.*?\*/                 # block comment
  | [A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*   # word (SQLite's IdChar)
  | \d+(?:\.\d*)?(?:[eE][+-]?\d+)? # number
  | \S                        # any other single character
    """,
    re.VERBOSE | re.DOTALL,
)


def _tokens(sql: str) -> list[re.Match[str]]:
    """Tokens of SQLite SQL (quoted strings and identifiers whole), comments dropped."""
    return [m for m in _TOKEN.finditer(sql) if not m.group(0).startswith(("--", "/*"))]


def extract_checks(create_sql: str) -> tuple[str, ...]:
    """Return the expressions of every CHECK constraint in a CREATE TABLE statement."""
    toks = _tokens(create_sql)
    checks: list[str] = []
    i = 0
    while i < len(toks):
        if (
            toks[i].group(0).upper() == "CHECK"
            and i + 1 < len(toks)
            and toks[i + 1].group(0) == "("
        ):
            depth = 0
            for j in range(i + 1, len(toks)):
                t = toks[j].group(0)
                depth += t == "("
                depth -= t == ")"
                if depth == 0:
                    checks.append(create_sql[toks[i + 1].end() : toks[j].start()].strip())
                    i = j
                    break
        i += 1
    return tuple(checks)


def has_autoincrement(create_sql: str) -> bool:
    """True when the table was declared with AUTOINCREMENT (outside strings and comments)."""
    if not _AUTOINC.search(create_sql):
        return False
    return any(t.group(0).upper() == "AUTOINCREMENT" for t in _tokens(create_sql))


# Words that give a declared type an affinity other than NUMERIC (SQLite's rules 1-4), and
# the words of NUMERIC-affinity types that lite2pg maps by name (schema.map_declared_type).
_AFFINITY_WORDS = ("INT", "CHAR", "CLOB", "TEXT", "BLOB", "REAL", "FLOA", "DOUB")
_NAMED_NUMERIC = ("NUMERIC", "DECIMAL", "BOOL", "DATE", "TIME")
# Beyond this, a double cannot hold every integer: 2**53 + 1 is not a double.
_DOUBLE_EXACT = 2**53


def typed_by_values(declared: str) -> bool:
    """Whether what a column holds decides its PostgreSQL type: SQLite gives its declared
    type NUMERIC affinity by rule 5 (`MONEY`, `NUMBER`, `LONG`, `ANY`...), under which the
    stored value decides, and no word in it names a type lite2pg maps."""
    d = declared.upper()
    return bool(d.strip()) and not any(w in d for w in _AFFINITY_WORDS + _NAMED_NUMERIC)


@dataclass(frozen=True)
class Declared:
    """A constraint as a CREATE TABLE statement declares it, with its CONSTRAINT name."""

    kind: str  # 'pk', 'u' (UNIQUE), 'check' or 'fk'
    name: str | None
    columns: tuple[str, ...] = ()  # the table's columns it covers (pk, u, fk)
    ref_table: str = ""  # fk: the parent table as written
    expr: str = ""  # check: the expression in SQLite SQL
    # pk, u: columns and explicit collations in lower case; SQLite keeps one index for
    # constraints with the same spec
    spec: str = ""


_TABLE_CONSTRAINT = frozenset({"CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"})
# Words that start a column constraint; each one ends the reach of a CONSTRAINT name.
_COLUMN_CONSTRAINT = frozenset(
    {"PRIMARY", "NOT", "NULL", "UNIQUE", "CHECK", "DEFAULT", "COLLATE", "REFERENCES", "GENERATED"}
    | {"AS"}
)


def unquote_ident(token: str) -> str:
    """A SQLite name as written ("x", `x`, [x], 'x' or bare) -> the name itself."""
    first = token[:1]
    if first in ('"', "`", "'") and len(token) >= 2 and token[-1] == first:
        return token[1:-1].replace(first * 2, first)
    if first == "[" and token.endswith("]"):
        return token[1:-1]
    return token


def is_quoted(token: str) -> bool:
    """Whether a name was written quoted ("x", [x], `x` or 'x'): it then keeps its case."""
    return token[:1] in ('"', "[", "`", "'")


@dataclass(frozen=True)
class DeclaredColumn:
    """A column as a CREATE TABLE statement spells it."""

    name: str
    quoted: bool
    collation: str | None  # NOCASE, RTRIM, BINARY in upper case; an app's as written


def _definitions(create_sql: str) -> list[list[re.Match[str]]]:
    """The tokens of each column definition and table constraint of a CREATE TABLE."""
    toks = _tokens(create_sql)
    words = [t.group(0) for t in toks]
    if "(" not in words:
        return []  # CREATE TABLE ... AS SELECT is stored with its columns, but be safe
    out: list[list[re.Match[str]]] = []
    depth = 0
    start = words.index("(") + 1
    for i in range(start - 1, len(words)):
        w = words[i]
        depth += w == "("
        depth -= w == ")"
        if (depth == 1 and w == ",") or depth == 0:
            out.append(toks[start:i])
            start = i + 1
        if depth == 0:
            break
    return out


def declared_constraints(create_sql: str) -> tuple[Declared, ...]:
    """Every PRIMARY KEY, UNIQUE, CHECK and FOREIGN KEY of a CREATE TABLE statement, table
    and column level, in the order written, with the CONSTRAINT name each one has."""
    out: list[Declared] = []
    for toks in _definitions(create_sql):
        _definition(create_sql, toks, out)
    return tuple(out)


def declared_columns(create_sql: str) -> tuple[DeclaredColumn, ...]:
    """The columns of a CREATE TABLE statement as written: name, quoting, COLLATE."""
    out: list[DeclaredColumn] = []
    for toks in _definitions(create_sql):
        words = [t.group(0) for t in toks]
        if not words or words[0].upper() in _TABLE_CONSTRAINT:
            continue
        at = _At(create_sql, toks)
        collation: str | None = None
        i = 1
        while i < len(words):
            if words[i] == "(":  # a type's size, CHECK (...), DEFAULT (...): not the column's
                i = at.close(i) + 1
                continue
            if words[i].upper() == "COLLATE" and i + 1 < len(words):
                collation = builtin_collation(unquote_ident(words[i + 1]))
            i += 1
        out.append(DeclaredColumn(unquote_ident(words[0]), is_quoted(words[0]), collation))
    return tuple(out)


def builtin_collation(name: str) -> str:
    """A collation name with SQLite's built-in ones (any case) in upper case."""
    return name.upper() if name.upper() in BUILTIN_COLLATIONS else name


def created_name(create_sql: str) -> tuple[str, bool] | None:
    """The name a CREATE TABLE/INDEX/VIEW/TRIGGER statement creates, and whether it was
    written quoted; None when the statement has no name where one is expected."""
    toks = [t.group(0) for t in _tokens(create_sql)]
    up = [t.upper() for t in toks]
    kinds = [i for i, w in enumerate(up) if w in ("TABLE", "INDEX", "VIEW", "TRIGGER")]
    if not kinds:
        return None
    i = kinds[0] + 1
    if up[i : i + 3] == ["IF", "NOT", "EXISTS"]:
        i += 3
    if up[i + 1 : i + 2] == ["."]:  # main.name
        i += 2
    if i >= len(toks):
        return None
    return unquote_ident(toks[i]), is_quoted(toks[i])


def quoted_constraint_names(create_sql: str) -> frozenset[str]:
    """The CONSTRAINT names a CREATE TABLE statement writes quoted."""
    toks = [t.group(0) for t in _tokens(create_sql)]
    return frozenset(
        unquote_ident(toks[i + 1])
        for i, w in enumerate(toks[:-1])
        if w.upper() == "CONSTRAINT" and is_quoted(toks[i + 1])
    )


def _definition(text: str, toks: list[re.Match[str]], out: list[Declared]) -> None:
    """The constraints of one column definition or one table constraint."""
    words = [t.group(0) for t in toks]
    up = [w.upper() for w in words]
    at = _At(text, toks)
    if not words:
        return
    if up[0] in _TABLE_CONSTRAINT:
        name = None
        i = 0
        if up[0] == "CONSTRAINT":
            name, i = unquote_ident(at.word(1)), 2
        kind = at.upper(i)
        if kind == "PRIMARY":
            cols, _, spec = at.column_list(i + 2)
            out.append(Declared("pk", name, cols, spec=spec))
        elif kind == "UNIQUE":
            cols, _, spec = at.column_list(i + 1)
            out.append(Declared("u", name, cols, spec=spec))
        elif kind == "CHECK":
            out.append(Declared("check", name, expr=at.inside(i + 1)))
        elif kind == "FOREIGN":
            cols, j, _ = at.column_list(i + 2)
            if at.upper(j) == "REFERENCES":
                out.append(Declared("fk", name, cols, ref_table=unquote_ident(at.word(j + 1))))
        return
    column = unquote_ident(words[0])
    pending: str | None = None
    i = 1
    while i < len(words):
        w = up[i]
        if w == "(":
            i = at.close(i) + 1
            continue
        if w == "CONSTRAINT":
            pending = unquote_ident(at.word(i + 1))
            i += 2
            continue
        if w == "PRIMARY":
            out.append(Declared("pk", pending, (column,), spec=column.lower()))
        elif w == "UNIQUE":
            out.append(Declared("u", pending, (column,), spec=column.lower()))
        elif w == "CHECK":
            out.append(Declared("check", pending, expr=at.inside(i + 1)))
        elif w == "REFERENCES":
            out.append(Declared("fk", pending, (column,), ref_table=unquote_ident(at.word(i + 1))))
        if w in _COLUMN_CONSTRAINT:
            pending = None
        i += 1


class _At:
    """Reads the tokens of one definition; past the end there is only the empty word."""

    def __init__(self, text: str, toks: list[re.Match[str]]) -> None:
        self.text = text
        self.toks = toks

    def word(self, i: int) -> str:
        return self.toks[i].group(0) if i < len(self.toks) else ""

    def upper(self, i: int) -> str:
        return self.word(i).upper()

    def close(self, i: int) -> int:
        """The index of the ")" that closes the "(" at `i` (the last token if none does)."""
        depth = 0
        for j in range(i, len(self.toks)):
            w = self.toks[j].group(0)
            depth += w == "("
            depth -= w == ")"
            if depth == 0:
                return j
        return len(self.toks) - 1

    def inside(self, i: int) -> str:
        """The text between the "(" at `i` and its ")"."""
        if self.word(i) != "(":
            return ""
        return self.text[self.toks[i].end() : self.toks[self.close(i)].start()].strip()

    def column_list(self, i: int) -> tuple[tuple[str, ...], int, str]:
        """The names in a "(a COLLATE x DESC, b)" list at `i`, the index after it, and its
        columns and collations in lower case."""
        if self.word(i) != "(":
            return (), i, ""
        end = self.close(i)
        cols: list[str] = []
        spec: list[str] = []
        for j in range(i + 1, end):
            w = self.toks[j].group(0)
            if self.toks[j - 1].group(0) in ("(", ","):
                cols.append(unquote_ident(w))
                spec.append(cols[-1].lower())
            elif self.toks[j - 1].group(0).upper() == "COLLATE":
                spec[-1] += " collate " + unquote_ident(w).lower()
        return tuple(cols), end + 1, ",".join(spec)


def rename_index(create_sql: str, name: str) -> str:
    """A CREATE INDEX statement with its index named `name` (double-quoted, unqualified)."""
    toks = _tokens(create_sql)
    words = [t.group(0).upper() for t in toks]
    if "INDEX" not in words:
        return create_sql
    i = words.index("INDEX") + 1
    if words[i : i + 3] == ["IF", "NOT", "EXISTS"]:
        i += 3
    end = i + 2 if words[i + 1 : i + 2] == ["."] else i  # main.name
    if end >= len(toks):
        return create_sql
    quoted = '"' + name.replace('"', '""') + '"'
    return create_sql[: toks[i].start()] + quoted + create_sql[toks[end].end() :]


def discover(conn: sqlite3.Connection, *, values: bool = True) -> SourceSchema:
    """Read the schema of every table, index, foreign key, view and trigger.

    With `values`, columns that are `typed_by_values` get what they hold (`Column.stored`),
    read in one streaming pass over each table that has such columns.
    """
    try:
        return _discover(conn, values)
    except sqlite3.DatabaseError as e:
        raise SourceError("database", f"cannot read the schema: {e}", "is the file corrupt?") from e


def _discover(conn: sqlite3.Connection, values: bool) -> SourceSchema:
    master = {
        (row[0], row[1]): (row[2], row[3])
        for row in conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")
    }
    sequences: dict[str, int] = {}
    if ("table", "sqlite_sequence") in master:
        sequences = {
            str(n): int(s) for n, s in conn.execute("SELECT name, seq FROM sqlite_sequence")
        }

    tables: list[Table] = []
    skipped: list[Skipped] = []
    views: list[Skipped] = []
    for schema, name, kind, _ncol, wr, strict in conn.execute("PRAGMA main.table_list").fetchall():
        if schema != "main":
            continue
        if kind == "view":
            views.append(Skipped("view", name, "view", master.get(("view", name), ("", None))[1]))
            continue
        if name.startswith("sqlite_"):
            if name not in (
                "sqlite_sequence",
                "sqlite_schema",
                "sqlite_master",
                "sqlite_temp_master",
            ):
                skipped.append(Skipped("internal table", name, "SQLite internal table"))
            continue
        if kind == "virtual":
            sql = master.get(("table", name), ("", None))[1]
            skipped.append(Skipped("virtual table", name, "virtual tables are not migrated", sql))
            continue
        if kind == "shadow":
            skipped.append(Skipped("shadow table", name, "belongs to a virtual table"))
            continue
        if installed.is_changes_table(name, master.get(("table", name), ("", None))[1]):
            own = sum(
                1
                for (kind, trigger), (tbl, _) in master.items()
                if kind == "trigger" and installed.is_installed_trigger(trigger, tbl)
            )
            why = f"lite2pg's own change log and its {own} trigger(s) (lite2pg prepare)"
            skipped.append(Skipped("lite2pg table", name, why))
            continue  # never migrated: not the application's data
        table = _table(conn, name, bool(wr), bool(strict), master, sequences)
        tables.append(_with_stored(conn, table) if values else table)

    for (kind, name), (tbl, sql) in sorted(master.items()):
        if kind == "trigger" and not installed.is_installed_trigger(name, tbl):
            skipped.append(
                Skipped(
                    "trigger",
                    name,
                    f"trigger on {tbl}: SQLite trigger bodies are not migrated",
                    sql,
                )
            )
    _resolve_fk_targets(tables)
    changes = tuple(collation_changes(conn))
    return SourceSchema(tuple(tables), tuple(views), tuple(skipped), changes)


def _table(
    conn: sqlite3.Connection,
    name: str,
    without_rowid: bool,
    strict: bool,
    master: dict[tuple[str, str], tuple[str, str | None]],
    sequences: dict[str, int],
) -> Table:
    q = quote_ident(name)
    cols: list[Column] = []
    for _cid, cname, ctype, notnull, dflt, pk, hidden in conn.execute(f"PRAGMA table_xinfo({q})"):
        if hidden == 1:  # hidden column of a virtual table
            continue
        cols.append(
            Column(
                name=cname,
                declared_type=ctype or "",
                not_null=bool(notnull),
                default_sql=dflt,
                pk_position=int(pk),
                generated=hidden in (2, 3),
            )
        )
    sql = master.get(("table", name), ("", ""))[1] or ""
    cols = _as_declared(cols, sql)
    pk_cols = tuple(
        c.name for c in sorted((c for c in cols if c.pk_position), key=lambda c: c.pk_position)
    )
    rowid_alias = None
    if (
        not without_rowid
        and len(pk_cols) == 1
        and next(c for c in cols if c.name == pk_cols[0]).declared_type.upper() == "INTEGER"
    ):
        rowid_alias = pk_cols[0]

    indexes: list[Index] = []
    for _seq, iname, unique, origin, partial in conn.execute(f"PRAGMA index_list({q})").fetchall():
        icols: list[str] = []
        desc: list[bool] = []
        colls: list[str] = []
        plain = not partial
        for _seqno, cid, icname, idesc, coll, key in conn.execute(
            f"PRAGMA index_xinfo({quote_ident(iname)})"
        ):
            if not key:
                continue
            if cid == -2 or icname is None:  # expression
                plain = False
                continue
            icols.append(icname)
            desc.append(bool(idesc))
            colls.append(builtin_collation(coll or "BINARY"))
        indexes.append(
            Index(
                name=iname,
                columns=tuple(icols),
                unique=bool(unique),
                origin=origin,
                sql=master.get(("index", iname), ("", None))[1],
                plain=plain,
                descending=tuple(desc),
                collations=tuple(colls),
            )
        )
    if pk_cols and rowid_alias is None and not any(i.origin == "pk" for i in indexes):
        indexes.append(Index(f"{name}_pk", pk_cols, True, "pk", None, True))

    fks: dict[int, list[Any]] = {}
    for fid, _seq, ref, frm, to, on_update, on_delete, _match in conn.execute(
        f"PRAGMA foreign_key_list({q})"
    ):
        fks.setdefault(fid, []).append((ref, frm, to, on_update, on_delete))
    deferrable = "DEFERRABLE INITIALLY DEFERRED" in re.sub(r"\s+", " ", sql.upper())
    own = {c.name.lower(): c.name for c in cols}  # FK clauses may spell names in any case
    foreign_keys = tuple(
        ForeignKey(
            columns=tuple(own.get(p[1].lower(), p[1]) for p in parts),
            ref_table=parts[0][0],
            ref_columns=tuple(p[2] for p in parts if p[2] is not None),
            on_update=parts[0][3],
            on_delete=parts[0][4],
            deferrable=deferrable,
        )
        for _fid, parts in sorted(fks.items())
    )
    autoinc = has_autoincrement(sql)
    declared = declared_constraints(sql)
    checks = extract_checks(sql)
    named_checks = [d for d in declared if d.kind == "check"]
    if [d.expr for d in named_checks] != list(checks):
        named_checks = [Declared("check", None, expr=e) for e in checks]  # never expected
    return Table(
        name=name,
        columns=tuple(cols),
        primary_key=pk_cols,
        rowid_alias=rowid_alias,
        autoincrement=autoinc,
        without_rowid=without_rowid,
        strict=strict,
        indexes=_name_unique(indexes, declared),
        foreign_keys=_name_foreign_keys(foreign_keys, declared),
        checks=checks,
        sql=sql,
        sequence_value=sequences.get(name) if autoinc else None,
        pk_name=next((d.name for d in declared if d.kind == "pk"), None),
        check_names=tuple(d.name for d in named_checks),
        quoted=_quoted_name(sql),
        quoted_names=quoted_constraint_names(sql)
        | {ix.name for ix in indexes if ix.origin == "c" and _quoted_name(ix.sql or "")},
    )


JSON_TYPES = frozenset({"JSON", "JSONB"})
UUID_TYPES = frozenset({"UUID", "GUID", "UNIQUEIDENTIFIER"})
_JSON_VALID_CALL = re.compile(
    r"""\bjson_valid\s*\(\s*("(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\]|[A-Za-z_]\w*)\s*\)""",
    re.I,
)
# SQLite calls this (a Python function) only for JSON text with \u0000 or surrogate escapes:
# the values whose jsonb reading json_valid() cannot vouch for.
_JSONB_OK = "_lite2pg_jsonb_ok"
_STRING = re.compile(r"'(?:[^']|'')*'", re.S)


def base_type(declared: str) -> str:
    """A declared type's name without size or quotes, in upper case: 'varchar(20)' -> VARCHAR."""
    return " ".join(declared.upper().replace('"', " ").split()).split("(")[0].strip()


def json_checked(table: Table) -> frozenset[str]:
    """Columns (lower case) that a CHECK tests with json_valid(column), as Django's
    JSONField does."""
    return frozenset(
        unquote_ident(m.group(1)).lower()
        for check in table.checks
        for m in _JSON_VALID_CALL.finditer(_STRING.sub("''", check))
    )


def _jsonb_ok(value: object) -> int:
    try:
        native.parse_json(str(value), binary=True)
    except native.NotExact:
        return 0
    return 1


def _json_invalid_sql(q: str) -> str:
    """SQLite SQL: how many non-NULL values of column q jsonb does not take as they are.
    CASE, not AND/OR, which SQLite evaluates whole: Python runs only for suspect text.
    (A number beyond numeric's range is not looked for: that row is rejected, with the
    reason, by the load.)"""
    text = (
        f"WHEN NOT json_valid({q}) THEN 1 WHEN {native.jsonb_suspect_sql(q)} "
        f"THEN NOT {_JSONB_OK}({q}) ELSE 0"
        if native.SQLITE_HAS_JSON
        else f"ELSE NOT {_JSONB_OK}({q})"
    )
    return (
        f"sum(CASE WHEN {q} IS NULL THEN 0 WHEN typeof({q}) = 'integer' THEN 0 "
        f"WHEN typeof({q}) = 'real' THEN NOT abs({q}) < 9e999 "
        f"WHEN typeof({q}) <> 'text' THEN 1 {text} END)"
    )


def _uuid_invalid_sql(q: str) -> str:
    return (
        f"sum(CASE WHEN {q} IS NULL THEN 0 WHEN typeof({q}) = 'blob' THEN length({q}) <> 16 "
        f"ELSE NOT {native.uuid_text_sql(q)} END)"
    )


def _quoted_name(create_sql: str) -> bool:
    created = created_name(create_sql)
    return created is not None and created[1]


def _as_declared(cols: list[Column], create_sql: str) -> list[Column]:
    """`cols` with the quoting and COLLATE their CREATE TABLE text gives them (an ALTER
    TABLE that renames or adds a column rewrites that text, so it is always current)."""
    declared = {d.name.lower(): d for d in declared_columns(create_sql)}
    out: list[Column] = []
    for c in cols:
        d = declared.get(c.name.lower())
        out.append(c if d is None else replace(c, quoted=d.quoted, collation=d.collation))
    return out


def _with_stored(conn: sqlite3.Connection, table: Table) -> Table:
    """`table` with `Column.stored` filled for its `typed_by_values` columns and those that
    may hold JSON or uuids, in one pass over the table."""
    checked = json_checked(table)
    wanted: list[tuple[Column, str | None]] = []
    for c in table.columns:
        base = base_type(c.declared_type)
        kind = (
            "json"
            if base in JSON_TYPES or c.name.lower() in checked
            else "uuid"
            if base in UUID_TYPES
            else None
        )
        if kind is not None or typed_by_values(c.declared_type):
            wanted.append((c, kind))
    if not wanted:
        return table
    exprs: list[str] = []
    for c, kind in wanted:
        q = quote_ident(c.name)
        exprs += [f"max(typeof({q}) = '{k}')" for k in ("integer", "real", "text", "blob")]
        exprs.append(
            f"max(CASE WHEN typeof({q}) = 'integer' "
            f"THEN {q} NOT BETWEEN -{_DOUBLE_EXACT} AND {_DOUBLE_EXACT} END)"
        )
        exprs.append(
            _json_invalid_sql(q) if kind == "json" else _uuid_invalid_sql(q) if kind else "NULL"
        )
    if any(kind == "json" for _, kind in wanted):
        conn.create_function(_JSONB_OK, 1, _jsonb_ok, deterministic=True)
    # Aggregates without GROUP BY: one pass, constant memory, whatever the table's size.
    row = conn.execute(f"SELECT {', '.join(exprs)} FROM {quote_ident(table.name)}").fetchone()
    stored: dict[str, Stored] = {}
    for i, (c, kind) in enumerate(wanted):
        flags = row[6 * i : 6 * i + 4]
        classes = frozenset(
            k for k, f in zip(("integer", "real", "text", "blob"), flags, strict=True) if f
        )
        invalid = None if kind is None else int(row[6 * i + 5] or 0)
        stored[c.name] = Stored(
            classes,
            ints_fit_double=not row[6 * i + 4],
            json_invalid=invalid if kind == "json" else None,
            uuid_invalid=invalid if kind == "uuid" else None,
        )
    columns = tuple(
        replace(c, stored=stored[c.name]) if c.name in stored else c for c in table.columns
    )
    return replace(table, columns=columns)


def _name_unique(indexes: list[Index], declared: Sequence[Declared]) -> tuple[Index, ...]:
    """Give each PRIMARY KEY and UNIQUE index the CONSTRAINT name its DDL declares.

    SQLite numbers these indexes (sqlite_autoindex_T_N) in the order written, and keeps one
    index for constraints that repeat another's columns: that index takes the first name
    any of them gives."""
    left = [d for d in declared if d.kind in ("pk", "u")]

    def number(ix: Index) -> int:
        tail = ix.name.rpartition("_")[2]
        return int(tail) if tail.isdigit() else 0

    named: dict[str, str] = {}
    for ix in sorted((i for i in indexes if i.origin in ("pk", "u")), key=number):
        cols = [c.lower() for c in ix.columns]
        kind = "pk" if ix.origin == "pk" else "u"
        match = next(
            (d for d in left if d.kind == kind and [c.lower() for c in d.columns] == cols), None
        )
        if match is None:
            continue
        same = [d for d in left if d.kind == kind and d.spec == match.spec] or [match]
        left = [d for d in left if d not in same and d is not match]
        name = next((d.name for d in [match, *same] if d.name is not None), None)
        if name is not None:
            named[ix.name] = name
    return tuple(
        dataclasses.replace(ix, constraint=named[ix.name]) if ix.name in named else ix
        for ix in indexes
    )


def _name_foreign_keys(
    fks: tuple[ForeignKey, ...], declared: Sequence[Declared]
) -> tuple[ForeignKey, ...]:
    """Give each foreign key the CONSTRAINT name its DDL declares. PRAGMA foreign_key_list
    numbers them last written first."""
    left = [d for d in reversed(declared) if d.kind == "fk"]
    out: list[ForeignKey] = []
    for fk in fks:
        sig = ([c.lower() for c in fk.columns], fk.ref_table.lower())
        match = next(
            (d for d in left if ([c.lower() for c in d.columns], d.ref_table.lower()) == sig),
            None,
        )
        if match is not None:
            left.remove(match)
            fk = dataclasses.replace(fk, name=match.name)
        out.append(fk)
    return tuple(out)


def _resolve_fk_targets(tables: list[Table]) -> None:
    """Fill in parent columns for `REFERENCES parent` without a column list (the parent's PK)."""
    by_name = {t.name.lower(): t for t in tables}
    for i, t in enumerate(tables):
        fixed: list[ForeignKey] = []
        for fk in t.foreign_keys:
            if not fk.ref_columns and fk.ref_table.lower() in by_name:
                parent = by_name[fk.ref_table.lower()]
                fk = ForeignKey(
                    fk.columns,
                    parent.name,
                    parent.primary_key,
                    fk.on_update,
                    fk.on_delete,
                    fk.deferrable,
                    fk.name,
                )
            elif fk.ref_table.lower() in by_name:
                parent = by_name[fk.ref_table.lower()]
                # SQLite matches column names whatever their case; PostgreSQL does not.
                spelled = {c.name.lower(): c.name for c in parent.columns}
                fk = ForeignKey(
                    fk.columns,
                    parent.name,
                    tuple(spelled.get(c.lower(), c) for c in fk.ref_columns),
                    fk.on_update,
                    fk.on_delete,
                    fk.deferrable,
                    fk.name,
                )
            else:
                fk = dataclasses.replace(fk, parent_found=False)
            fixed.append(fk)
        object.__setattr__(tables[i], "foreign_keys", tuple(fixed))


def count_rows(conn: sqlite3.Connection, table: str, where: str | None = None) -> int:
    """Number of rows in a table (optionally matching a filter)."""
    sql = f"SELECT count(*) FROM {quote_ident(table)}"
    if where:
        sql += f" WHERE {where}"
    return int(conn.execute(sql).fetchone()[0])


class InvalidText(bytes):
    """TEXT whose bytes are not valid UTF-8, surfaced as bytes so the row can be rejected."""


def decode_text(raw: bytes) -> str | bytes:
    """A text_factory that turns invalid UTF-8 into `InvalidText` instead of failing."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return InvalidText(raw)


def stream_rows(
    conn: sqlite3.Connection,
    table: Table,
    select_exprs: Sequence[str],
    *,
    where: str | None = None,
    batch_size: int = 5_000,
    order_by: Sequence[str] | None = None,
) -> Iterator[tuple[list[tuple[Any, ...]], bool]]:
    """Yield the rows of `table` in batches, in storage order (or by the SQLite expressions
    `order_by`), each with a flag that says whether it was read with the slow decoder (then
    text may be `InvalidText`).

    Text that is not valid UTF-8 makes Python's fast decoder fail for the whole cursor; the
    stream then restarts after the last row it yielded (a table scan's order is stable) with
    a slower decoder that hands such values over as `InvalidText` bytes, so one bad value
    costs one row, not the run.
    """
    sql = f"SELECT {', '.join(select_exprs)} FROM {quote_ident(table.name)}"
    if where:
        sql += f" WHERE ({where})"
    if order_by:
        sql += f" ORDER BY {', '.join(order_by)}"
    return stream_query(conn, sql, batch_size)


def stream_query(
    conn: sqlite3.Connection, sql: str, batch_size: int = 5_000
) -> Iterator[tuple[list[tuple[Any, ...]], bool]]:
    """Batches of a query's rows, each with a flag saying whether the slow decoder read it.

    The query must return rows in a stable order (a plain scan does): after a decoding
    failure it is re-run with `LIMIT -1 OFFSET <rows already yielded>`.
    """
    yielded = 0
    slow = False
    caller_factory = conn.text_factory
    while True:
        cur = conn.cursor()
        cur.row_factory = None
        conn.text_factory = decode_text if slow else str
        try:
            cur.execute(sql + (f" LIMIT -1 OFFSET {yielded}" if yielded else ""))
            while True:
                try:
                    rows = cur.fetchmany(batch_size)
                except sqlite3.OperationalError as e:
                    if "decode" in str(e).lower() and not slow:
                        slow = True
                        break
                    raise
                if not rows:
                    return
                yielded += len(rows)
                yield rows, slow
        finally:
            # A run that stops midway may collect this generator after its connection
            # closed: there is nothing left to release then.
            with contextlib.suppress(sqlite3.ProgrammingError):
                cur.close()
                conn.text_factory = caller_factory
