"""The export stage: every table of a snapshot as CSV, and what the manifest says of each.

`lite2pg export` runs it in its own process; a migrate that keeps artifacts runs it in a
background process beside the load (`start_export`). The run waits for its check of the
snapshot before publishing, and for the CSVs at the end.
"""

from __future__ import annotations

import dataclasses
import functools
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lite2pg import source, workers
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
    progress: Callable[[str, int], None] | None = None,
    *,
    check: bool = True,
) -> list[FileInfo]:
    """Check every page of the snapshot (unless the caller did), hash it, and write each
    table's CSV (mode 0600: every export is a copy of the source). The snapshot's own entry
    comes first; `checked` gets it as soon as the snapshot is checked, before the CSVs."""
    src = source.open_readonly(snapshot)
    try:
        if check:  # artifacts are kept to be trusted later: every page (indexes too) first
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
                    progress=None if progress is None else functools.partial(progress, t.name),
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


Progress = Callable[[str, int, int], None]  # table, rows written, rows in all


def _run_job(
    conn: Any,
    snapshot: Path,
    source_path: Path,
    tables: list[TableExport],
    run_dir: Path,
    sizes: dict[str, int],
) -> None:
    """The background process: the export, with its progress, then its files or its
    error, through the pipe.

    It runs at the load's priority: at a lower one it got almost no time while the load
    kept both cores busy and then ran alone at the end (measured: 0.4 s more wall time on
    a 500k-row database)."""

    workers.ignore_interrupts()

    def progress(table: str, done: int) -> None:
        conn.send(("progress", (table, done, sizes.get(table, done))))

    try:
        files = export_tables(
            snapshot, source_path, tables, run_dir,
            checked=lambda info: conn.send(("checked", info)), progress=progress,
        )  # fmt: skip
        conn.send(("ok", files))
    except BaseException as e:
        try:
            conn.send(("error", e))
        except Exception:  # an error that does not pickle: its text
            conn.send(("error", RuntimeError(f"export failed: {e}")))
    finally:
        conn.close()


class ExportJob:
    """The export stage running in a background process; a thread here takes its messages
    (progress, the checked snapshot, the files or the error). `result` waits for it,
    `cancel` stops it (the CSVs are renamed into place only when complete)."""

    def __init__(
        self,
        snapshot: Path,
        source_path: Path,
        tables: Sequence[TableExport],
        run_dir: Path,
        *,
        sizes: dict[str, int] | None = None,
        progress: Progress | None = None,
    ) -> None:
        mp = workers.context()
        self._export_dir = run_dir / "export"
        self._progress = progress
        self._snapshot: FileInfo | None = None
        self._files: list[FileInfo] | None = None
        self._error: BaseException | None = None
        self._checked = threading.Event()
        self._done = threading.Event()
        self._conn, child = mp.Pipe(duplex=False)
        self._proc = mp.Process(
            target=_run_job,
            args=(child, snapshot, source_path, list(tables), run_dir, dict(sizes or {})),
            name="lite2pg-export",
            daemon=True,
        )
        with workers.deferred_interrupts():
            self._proc.start()
        child.close()
        self._reader = threading.Thread(target=self._read, name="lite2pg-export-reader")
        self._reader.daemon = True
        self._reader.start()

    def _read(self) -> None:
        try:
            while True:
                kind, value = self._conn.recv()
                if kind == "progress":
                    if self._progress is not None:
                        self._progress(*value)
                elif kind == "checked":
                    self._snapshot = value
                    self._checked.set()
                elif kind == "ok":
                    self._files = list(value)
                    return
                elif kind == "error":
                    self._error = value
                    return
        except (EOFError, OSError):
            self._proc.join()
            self._error = RuntimeError(
                f"the export process ended without a result (exit code {self._proc.exitcode})"
            )
        finally:
            self._checked.set()
            self._done.set()

    def checked(self) -> FileInfo:
        """Wait until the snapshot is checked page by page (and hashed): its entry."""
        self._checked.wait()
        if self._snapshot is None:
            self._done.wait()
            raise self._error or RuntimeError("the export process gave no snapshot")
        return self._snapshot

    def result(self) -> list[FileInfo]:
        """Wait for every CSV: the snapshot's entry, then one per table."""
        self._done.wait()
        self._proc.join()
        if self._error is not None:
            raise self._error
        assert self._files is not None
        return self._files

    def cancel(self) -> None:
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join()
            for tmp in self._export_dir.glob(".*.tmp"):  # its unfinished CSV
                tmp.unlink(missing_ok=True)
        self._proc.join()
        self._reader.join(timeout=5)
        self._conn.close()


def start_export(
    snapshot: Path,
    source_path: Path,
    tables: Sequence[TableExport],
    run_dir: Path,
    *,
    sizes: dict[str, int] | None = None,
    progress: Progress | None = None,
) -> ExportJob:
    return ExportJob(snapshot, source_path, tables, run_dir, sizes=sizes, progress=progress)
