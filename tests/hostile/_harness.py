"""What every hostile case needs: run the real CLI, read its one error line, fingerprint the
source and the target before and after, count rows on both sides."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from lite2pg.rows import safe_filename
from lite2pg.source import quote_ident, register_collations

from .._cli import ERROR_PREFIX, PROGRESS_LINE, Result, cli, known_error
from ..conftest import PgSchema, staging_schema


def succeeded(result: Result, *, code: int = 0) -> None:
    """Assert the command ended with `code` and without a traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)


def target_args(pg: PgSchema, run_dir: Path) -> list[str]:
    return ["--target", pg.dsn, "--schema", pg.schema, "--run-dir", str(run_dir)]


def file_digest(path: Path) -> dict[str, str]:
    """SHA-256 of a database file and of its -wal and -journal files when they exist.

    The -shm file is left out: it is a shared-memory index that every reader may rewrite.
    """
    out: dict[str, str] = {}
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-journal")):
        if p.is_file():
            out[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def pg_state(pg: PgSchema) -> dict[str, Any]:
    """The test schema's tables with their columns and rows, and any lite2pg schema left."""
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        stage = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname = %s", (staging_schema(pg.schema),)
        ).fetchall()
        out: dict[str, Any] = {"stage": stage}
        for (t,) in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", (pg.schema,)
        ).fetchall():
            cols = conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                (pg.schema, t),
            ).fetchall()
            rows = conn.execute(
                sql.SQL("SELECT * FROM {}.{}").format(sql.Identifier(pg.schema), sql.Identifier(t))
            ).fetchall()
            out[t] = {"columns": cols, "rows": sorted(map(repr, rows))}
    return out


def pg_count(pg: PgSchema, table: str) -> int:
    """Rows in a table of the test schema; 0 when it does not exist."""
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = %s", (pg.schema, table)
        ).fetchone()
        if not exists:
            return 0
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {}.{}").format(
                sql.Identifier(pg.schema), sql.Identifier(table)
            )
        ).fetchone()
    assert row is not None
    return int(row[0])


def sqlite_count(path: Path, table: str) -> int:
    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
        register_collations(conn)  # a file that needs the app's collations to be read
        return int(conn.execute(f"SELECT count(*) FROM {quote_ident(table)}").fetchone()[0])


def rejects(run_dir: Path, table: str) -> list[dict[str, Any]]:
    """The reject records of one table (none when there is no rejects file)."""
    path = run_dir / "rejects" / f"{safe_filename(table)}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def lost(source_rows: int, pg: PgSchema, table: str, run_dir: Path) -> int:
    """Rows neither in the target nor in the rejects file."""
    return source_rows - pg_count(pg, table) - len(rejects(run_dir, table))


def report(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    return data


def run_artifacts(
    db: Path, pg: PgSchema, run_dir: Path, cwd: Path, *export_args: str
) -> tuple[Result, Result, Result]:
    """export, transform, load through the CLI (stopping at the first that fails)."""
    exp = cli("export", str(db), "--run-dir", str(run_dir), "--schema", pg.schema, *export_args,
              cwd=cwd)  # fmt: skip
    if exp.returncode != 0:
        return exp, exp, exp
    tr = cli("transform", str(run_dir), cwd=cwd)
    if tr.returncode != 0:
        return exp, tr, tr
    return exp, tr, cli("load", str(run_dir), "--target", pg.dsn, cwd=cwd)


def migrated(
    db: Path,
    pg: PgSchema,
    run_dir: Path,
    *args: str,
    code: int = 0,
) -> tuple[Result, dict[str, Any], int]:
    """Run `migrate` (artifacts path unless args say otherwise) and check the contract: the
    exit code, a passing verify, the source byte-identical. Returns the result, report.json
    and the rows lost over all tables (source rows neither in the target nor rejected)."""
    before = file_digest(db)
    result = cli("migrate", str(db), *target_args(pg, run_dir), *args, cwd=run_dir.parent)
    succeeded(result, code=code)
    assert file_digest(db) == before
    rep = report(run_dir)
    assert rep["verify"]["ok"], rep["verify"]["problems"]
    gone = 0
    for t in rep["tables"]:
        n = sqlite_count(db, t["source"]) - t["filtered"]
        gone += n - pg_count(pg, t["target"]) - len(rejects(run_dir, t["source"]))
    return result, rep, gone


__all__ = ["ERROR_PREFIX", "PROGRESS_LINE", "Result", "cli", "known_error"]
