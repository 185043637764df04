"""The export stage: every table of a snapshot as CSV, and what the manifest says of each.

`lite2pg export` runs it in its own process; a migrate that keeps artifacts runs it in a
background thread beside the load (`start_export`). The run waits for its check of the
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

from lite2pg import source
from lite2pg.artifacts import FileInfo, Manifest, describe_file, write_table_csv
from lite2pg.rows import safe_filename

__all__ = ["ExportJob", "TableExport", "export_tables", "record_tables", "start_export"]

# Rows per batch of the CSVs: the export runs beside the load in the run's own process, and
# 1,000 rows held it 8 MB above its start where 5,000 held it 23 MB, at no more CPU.
BATCH_ROWS = 1_000


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
                    batch_size=BATCH_ROWS,
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


class _Cancelled(Exception):
    """Raised in the export thread at its next batch once the run cancels it."""


class ExportJob:
    """The export stage running in a background thread of the run's process. `result`
    waits for it, `cancel` stops it at its next batch (the CSVs are renamed into place
    only when complete).

    A thread, not a process: a process forked for it held about 50 MB (the interpreter and
    lite2pg's modules, counted once more) for as long as the load and verify ran, and that
    was the run's peak. SQLite reads with the GIL released and the csv module writes a
    batch in C, so the thread needs little of the GIL the run's other threads use."""

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
        self._export_dir = run_dir / "export"
        self._snapshot: FileInfo | None = None
        self._files: list[FileInfo] | None = None
        self._error: BaseException | None = None
        self._checked = threading.Event()
        self._done = threading.Event()
        self._stop = threading.Event()
        totals = dict(sizes or {})

        def step(table: str, done: int) -> None:
            if self._stop.is_set():
                raise _Cancelled
            if progress is not None:
                progress(table, done, totals.get(table, done))

        def checked(info: FileInfo) -> None:
            self._snapshot = info
            self._checked.set()

        def work() -> None:
            try:
                self._files = export_tables(
                    snapshot, source_path, list(tables), run_dir, checked=checked, progress=step
                )
            except BaseException as e:  # handed to whoever waits for the result
                self._error = e
            finally:
                self._checked.set()
                self._done.set()

        self._thread = threading.Thread(target=work, name="lite2pg-export", daemon=True)
        self._thread.start()

    def checked(self) -> FileInfo:
        """Wait until the snapshot is checked page by page (and hashed): its entry."""
        self._checked.wait()
        if self._snapshot is None:
            self._done.wait()
            raise self._error or RuntimeError("the export gave no snapshot")
        return self._snapshot

    def result(self) -> list[FileInfo]:
        """Wait for every CSV: the snapshot's entry, then one per table."""
        self._done.wait()
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._files is not None
        return self._files

    def cancel(self) -> None:
        """Stop the export at its next batch (write_table_csv removes its temp file)."""
        self._stop.set()
        self._thread.join()


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
