"""The export stage: every table of a snapshot as CSV, and what the manifest says of each.

`lite2pg export` runs it in its own process; a migrate that keeps artifacts runs it in a
background process beside the load (`start_export`). The run waits for its check of the
snapshot before publishing, and for the CSVs at the end.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lite2pg import source
from lite2pg.artifacts import FileInfo, Manifest, describe_file, write_table_csv
from lite2pg.rows import safe_filename

__all__ = ["ExportJob", "TableExport", "export_tables", "record_tables", "start_export"]


@dataclass(frozen=True)
class TableExport:
    """One table to export: its columns, and whether the plan says it holds secrets."""

    name: str
    columns: tuple[str, ...]
    secret: bool


def tables_to_export(layout_tables: Sequence[source.Table], plan: Any) -> list[TableExport]:
    """The tables of a run, with the secrecy its plan gives them."""
    return [
        TableExport(
            t.name,
            tuple(c.name for c in t.columns),
            plan is not None and t.name in plan.tables and bool(plan.table(t.name).secret_columns),
        )
        for t in layout_tables
    ]


def export_tables(
    snapshot: Path,
    source_path: Path,
    tables: Sequence[TableExport],
    run_dir: Path,
    checked: Callable[[FileInfo], None] | None = None,
) -> list[FileInfo]:
    """Check every page of the snapshot, hash it, and write each table's CSV (mode 0600:
    every export is a copy of the source). The snapshot's own entry comes first; `checked`
    gets it as soon as the snapshot is checked, before the CSVs."""
    src = source.open_readonly(snapshot)
    try:
        # Artifacts are kept to be trusted later: check every page (indexes too) first.
        source.quick_check(src, source_path)
        out = [describe_file(snapshot, secret=True)]
        if checked is not None:
            checked(out[0])
        for t in tables:
            try:
                info = write_table_csv(
                    src,
                    t.name,
                    list(t.columns),
                    run_dir / "export" / f"{safe_filename(t.name)}.csv",
                    secret=True,
                )
            except sqlite3.DatabaseError as e:  # a damaged page met while reading rows
                raise source.source_error(source_path, e, f"reading {t.name}") from None
            # The manifest says which files hold plaintext passwords, by the plan.
            out.append(dataclasses.replace(info, secret=t.secret))
    finally:
        src.close()
    return out


def record_tables(
    manifest: Manifest,
    run_dir: Path,
    files: Sequence[FileInfo],
    layout_tables: Sequence[source.Table],
    tables: Sequence[TableExport],
) -> None:
    """The exported files and each table's shape, into the manifest."""
    for info in files:
        manifest.add(run_dir, info)
    secret = {t.name: t.secret for t in tables}
    for t in layout_tables:
        manifest.set_table(
            t.name,
            {
                "columns": [
                    {"name": c.name, "declared_type": c.declared_type, "not_null": c.not_null}
                    for c in t.columns
                ],
                "primary_key": list(t.primary_key),
                "holds_secrets": secret.get(t.name, False),
            },
        )


def _run_job(
    conn: Any, snapshot: Path, source_path: Path, tables: list[TableExport], run_dir: Path
) -> None:
    """The background process: the export, then its files or its error through the pipe.

    It runs at the load's priority: at a lower one it got almost no time while the load
    kept both cores busy and then ran alone at the end (measured: 0.4 s more wall time on
    a 500k-row database)."""
    try:
        files = export_tables(
            snapshot, source_path, tables, run_dir, lambda info: conn.send(("checked", info))
        )
        conn.send(("ok", files))
    except BaseException as e:
        try:
            conn.send(("error", e))
        except Exception:  # an error that does not pickle: its text
            conn.send(("error", RuntimeError(f"export failed: {e}")))
    finally:
        conn.close()


class ExportJob:
    """The export stage running in a background process; `result` waits for it, `cancel`
    stops it (its temp files go with it: the CSVs are renamed into place only when done)."""

    def __init__(
        self, snapshot: Path, source_path: Path, tables: Sequence[TableExport], run_dir: Path
    ) -> None:
        mp = multiprocessing.get_context("forkserver")
        mp.set_forkserver_preload(["lite2pg.export"])
        self._export_dir = run_dir / "export"
        self._snapshot: FileInfo | None = None
        self._conn, child = mp.Pipe(duplex=False)
        self._proc = mp.Process(
            target=_run_job,
            args=(child, snapshot, source_path, list(tables), run_dir),
            name="lite2pg-export",
            daemon=True,
        )
        self._proc.start()
        child.close()

    def checked(self) -> FileInfo:
        """Wait until the snapshot is checked page by page (and hashed): its entry."""
        if self._snapshot is None:
            kind, value = self._receive()
            if kind != "checked":
                raise RuntimeError(f"the export process said {kind!r} first")
            self._snapshot = value
        return self._snapshot

    def result(self) -> list[FileInfo]:
        """Wait for every CSV: the snapshot's entry, then one per table."""
        self.checked()
        _, value = self._receive()
        self._conn.close()
        self._proc.join()
        return list(value)

    def _receive(self) -> tuple[str, Any]:
        try:
            kind, value = self._conn.recv()
        except EOFError:
            self._proc.join()
            raise RuntimeError(
                f"the export process ended without a result (exit code {self._proc.exitcode})"
            ) from None
        if kind == "error":
            self._conn.close()
            self._proc.join()
            raise value
        return kind, value

    def cancel(self) -> None:
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join()
            for tmp in self._export_dir.glob(".*.tmp"):  # its unfinished CSV
                tmp.unlink(missing_ok=True)
        self._proc.join()
        self._conn.close()


def start_export(
    snapshot: Path, source_path: Path, tables: Sequence[TableExport], run_dir: Path
) -> ExportJob:
    return ExportJob(snapshot, source_path, tables, run_dir)
