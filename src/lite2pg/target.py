"""PostgreSQL side: find the target, start the embedded server, connect with clear errors."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from lite2pg import embedded
from lite2pg.errors import TargetError, UsageError

EMBEDDED_DIR = embedded.EMBEDDED_DIR

# When the server goes away mid-COPY, psycopg logs "error ignored terminating <Copy>" (and
# the like for rollbacks) before the error itself is raised; without a handler that goes to
# stderr through logging's last resort, beside lite2pg's one-line error. Records still reach
# any handler an application configures.
logging.getLogger("psycopg").addHandler(logging.NullHandler())

# What libpq says when the server is there but restarting (or died as we connected).
_GOING_AWAY = (
    "closed the connection unexpectedly",
    "shutting down",
    "starting up",
    "in recovery mode",
    "terminating connection",
)
_PG_ENV = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")


@dataclass(frozen=True)
class Target:
    """Where to write: a libpq conninfo (URI or key=value) and how it was chosen."""

    dsn: str
    origin: str  # "--target", "DATABASE_URL", "PG* environment", "embedded"
    psql_command: str | None = None
    note: str | None = None  # what the user should know about this target, e.g. an upgrade
    embedded_dir: Path | None = None  # the data directory of an embedded server

    @property
    def display(self) -> str:
        return redact(self.dsn) if self.dsn else "(from PG* environment)"

    def psql_command_in(self, schema: str) -> str | None:
        """The psql command (embedded server only) with `schema` on the search path, so
        that `\\dt` lists the tables a run put there."""
        if self.psql_command is None:
            return None
        return self.psql_command.replace(
            f'"{self.dsn}"', f'"{embedded.uri_in_schema(self.dsn, schema)}"'
        )


# Target.origin of the target a run recorded (runtarget.py), read back without its password.
RECORDED = "the run (run.json)"


def redact(dsn: str) -> str:
    """The conninfo with any password replaced by ***."""
    dsn = re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", dsn)
    # A key=value password may be quoted and hold spaces: 'correct horse \' battery'.
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'?|\S+)", r"\1***", dsn)


def resolve(target: str | None, *, embedded_dir: Path | None = None) -> Target:
    """--target, else DATABASE_URL, else the PG* variables, else an embedded PostgreSQL."""
    if target:
        return Target(target, "--target")
    if os.environ.get("DATABASE_URL"):
        return Target(os.environ["DATABASE_URL"], "DATABASE_URL")
    if any(os.environ.get(k) for k in _PG_ENV):
        return Target("", "PG* environment")
    return start_embedded(embedded_dir or EMBEDDED_DIR)


def start_embedded(data_dir: Path) -> Target:
    """Start (or reuse) an embedded PostgreSQL whose data lives in `data_dir`.

    The server keeps running after lite2pg exits so later commands and psql can use it.
    """
    server = embedded.start(data_dir)
    return Target(server.uri, "embedded", server.psql_command, server.note, data_dir.resolve())


# A link that dies without a FIN or RST (a NAT timeout, a pulled cable) is noticed in
# about a minute instead of hanging the run: TCP keepalives (libpq parameters).
KEEPALIVES: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


LOCK_TIMEOUT_ENV = "LITE2PG_LOCK_TIMEOUT"
LOCK_TIMEOUT_S = 60.0


def lock_wait(conn: psycopg.Connection[Any]) -> None:
    """In the caller's transaction: wait at most $LITE2PG_LOCK_TIMEOUT seconds (default 60;
    0 waits forever) for a lock on the app's tables, e.g. TRUNCATE or the publish behind
    an app's open transaction, rather than hang without a word."""
    raw = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
    try:
        seconds = float(raw) if raw else LOCK_TIMEOUT_S
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < 86_400:
        raise UsageError(
            f"{LOCK_TIMEOUT_ENV}={raw!r} is not a number of seconds", f"e.g. {LOCK_TIMEOUT_ENV}=60"
        )
    row = conn.execute("SHOW lock_timeout").fetchone()
    if row and str(row[0]) not in ("0", ""):
        return  # set for this session already (the DSN's options, the role or database)
    conn.execute(f"SET LOCAL lock_timeout = {int(seconds * 1000)}")


def connect(target: Target, *, autocommit: bool = False) -> psycopg.Connection[tuple[object, ...]]:
    """Connect, with settings every lite2pg session relies on; errors become one line."""
    try:
        conn = psycopg.connect(target.dsn, autocommit=autocommit, connect_timeout=10, **KEEPALIVES)
    except psycopg.OperationalError as e:
        # libpq puts one line per address tried (the last one says most) and continues a
        # line with tab-indented lines ("\tThis probably means the server terminated...").
        lines = [line for line in str(e).splitlines() if line.strip()]
        heads = [line for line in lines if not line[0].isspace()] or lines
        first = heads[-1].strip() if heads else "connection failed"
        hint = "check that the server runs and that host, port, user and password are right"
        if any(w in first.lower() for w in _GOING_AWAY):
            hint = (
                "the server is restarting or went away; once it answers, run the same command again"
            )
        elif "password" in first.lower() and target.origin == RECORDED:
            hint = (
                "the run keeps its target without the password: put it in PGPASSWORD or "
                "~/.pgpass, or give the target with --target"
            )
        elif "password" in first.lower():
            hint = "check the user name and password"
        elif "role" in first.lower() and "does not exist" in first.lower():
            hint = "check the user name: the server has no such role"
        elif "does not exist" in first.lower():
            hint = "create the database first, or name one that exists"
        raise TargetError(f"cannot connect to {target.display}: {first}", hint) from None
    except psycopg.ProgrammingError as e:
        raise TargetError(
            f"invalid target {target.display!r}: {e}", "use postgresql://user@host/db"
        ) from None
    try:
        check_server_version(conn.info.server_version)
    except TargetError:
        conn.close()
        raise
    try:
        with conn.cursor() as cur:
            # Dates are written and compared in UTC and ISO form whatever the server's
            # defaults.
            cur.execute("SET TimeZone = 'UTC'")
            cur.execute("SET DateStyle = 'ISO, YMD'")
            cur.execute("SET client_encoding = 'UTF8'")
            cur.execute("SET statement_timeout = 0")
            # Keys and indexes are built after the load, on whole tables: the 64MB default
            # makes large sorts spill to disk.
            cur.execute("SET maintenance_work_mem = '256MB'")
        if not autocommit:
            conn.commit()
    except psycopg.OperationalError as e:  # the connection went away right after it opened
        conn.close()
        raise server_failure(
            e, "setting up the session", "nothing was written; run the same command again"
        ) from None
    return conn


# The PostgreSQL majors lite2pg is tested on (README, "Supported PostgreSQL"). Older ones lack
# what it relies on or were never tried; newer ones are allowed, with no promise.
OLDEST_MAJOR = 13
NEWEST_TESTED_MAJOR = 18


def check_server_version(version_num: int) -> None:
    """Refuse a server older than OLDEST_MAJOR; `version_num` is server_version_num."""
    major = version_num // 10000
    if major < OLDEST_MAJOR:
        raise TargetError(
            f"the server runs PostgreSQL {major}, older than lite2pg supports "
            f"({OLDEST_MAJOR} to {NEWEST_TESTED_MAJOR})",
            "upgrade the server, or migrate into another one and pg_dump from there",
        )


ROLLED_BACK = "the target was rolled back; run the same command again"


def server_failure(e: psycopg.OperationalError, doing: str, then: str = ROLLED_BACK) -> TargetError:
    """An OperationalError while `doing` something ("loading users") as one line and a hint
    that ends with `then` (what to do next).

    psycopg files more than a lost connection under OperationalError: a lock_timeout that
    ran out, a statement someone cancelled, a server shutting down or restarting."""
    text = str(e).strip()
    first = text.splitlines()[0] if text else type(e).__name__
    if isinstance(e, psycopg.errors.LockNotAvailable):
        return TargetError(
            f"timed out waiting for a lock while {doing}: {first}",
            "another session holds a lock on a target table (pg_locks shows which): end it "
            f"or raise lock_timeout; {then}",
        )
    if isinstance(e, psycopg.errors.QueryCanceled):
        return TargetError(
            f"the server cancelled a statement while {doing}: {first}",
            f"a statement or lock timeout ran out, or someone ran pg_cancel_backend; {then}",
        )
    return TargetError(
        f"lost the connection while {doing}: {first}",
        f"the server restarted or the network failed; once it answers, {then}",
    )


def refused(e: psycopg.Error, doing: str) -> TargetError:
    """Any server error while `doing` something, as one line: a lost connection as
    server_failure says it, a statement PostgreSQL refused with its error's name."""
    if isinstance(e, psycopg.OperationalError):
        return server_failure(e, doing, "run the same command again")
    text = str(e).strip()
    first = (e.diag.message_primary if e.diag else None) or (text.splitlines() or [""])[0]
    problem = f"PostgreSQL refused a statement while {doing} ({type(e).__name__}: {first})"
    if isinstance(e, psycopg.errors.InsufficientPrivilege):
        return TargetError(problem, "connect as a role that may do this, or grant it")
    return TargetError(
        problem,
        "the target differs from what the run built (a table, column or type dropped or "
        "changed since?): put it back, or migrate again",
    )


def citext_type(conn: psycopg.Connection[Any], *, create: bool = True) -> str:
    """The citext type as this database spells it (schema-qualified), creating the
    extension when it is missing and `create`; "" when the database cannot have it.

    citext is a trusted extension from PostgreSQL 13: any user with CREATE on the database
    may create it. The caller's transaction is left as it was."""
    found = _citext_schema(conn)
    if found is None and create:
        try:
            with conn.transaction():
                conn.execute("CREATE EXTENSION IF NOT EXISTS citext")
        except psycopg.errors.UniqueViolation:
            pass  # another session created it at the same moment
        except psycopg.Error:
            return ""  # not installed on the server, or not allowed here
        found = _citext_schema(conn)
    return f"{found}.citext" if found is not None else ""


def _citext_schema(conn: psycopg.Connection[Any]) -> str | None:
    row = conn.execute(
        "SELECT quote_ident(n.nspname) FROM pg_extension e"
        " JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'citext'"
    ).fetchone()
    return str(row[0]) if row is not None else None
