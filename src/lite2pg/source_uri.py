"""SOURCE as a user pastes it from an app's config: a path, or a SQLite URL (SQLAlchemy's
`sqlite:///app.db`, Prisma's `file:./dev.db`, SQLite's own `file:` URI) that names one."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

from lite2pg.errors import SourceError

__all__ = ["sqlite_path"]

# sqlite:, sqlite+pysqlite:, sqlite+aiosqlite: ... (SQLAlchemy's dialect+driver).
_SQLALCHEMY = re.compile(r"sqlite(\+[a-z0-9_]+)?:", re.IGNORECASE)
_MEMORY_HINT = "an in-memory database has nothing to migrate: give the database file"


def sqlite_path(text: str) -> Path:
    """The file a SOURCE argument names: a path as it is, or the path inside
    `sqlite:///rel.db`, `sqlite:////abs.db`, `sqlite:rel.db`, `file:rel.db`,
    `file:///abs.db` (a query such as `?mode=ro` is dropped). A file whose name merely
    looks like a URL is taken as that file."""
    if Path(text).exists():
        return Path(text)
    m = _SQLALCHEMY.match(text)
    if m:
        rest = text[m.end() :].partition("?")[0]
        if rest.startswith("//"):  # sqlite://<host>/<path>: SQLAlchemy has no host
            host, _, path = rest[2:].partition("/")
            if host:
                raise SourceError(
                    text, "a SQLite URL names no host", "sqlite:///relative.db or sqlite:////abs.db"
                )
            rest = path
        return _file(text, rest)
    if text[:5].lower() == "file:":
        # SQLite's URI: file:rel.db, file:/abs.db, file:///abs.db, file://localhost/abs.db;
        # %-escapes decoded, the query (?mode=ro&cache=shared) and fragment dropped.
        rest = unquote(re.split(r"[?#]", text[5:], maxsplit=1)[0])
        if rest.startswith("//"):
            host, slash, path = rest[2:].partition("/")
            if host not in ("", "localhost"):
                raise SourceError(
                    text, f"a file: URI on another host ({host})", "copy the file here first"
                )
            rest = slash + path
        return _file(text, rest)
    return Path(text)


def _file(text: str, path: str) -> Path:
    if path in ("", ":memory:"):
        raise SourceError(text, "names no file", _MEMORY_HINT)
    return Path(path)
