"""Sinks beside COPY: the bytes a table's COPY sends to PostgreSQL also go to a file.

A migrate run keeps, as its transformed artifact, exactly what PostgreSQL received:
`transformed/<table>.copy` in PostgreSQL's COPY text format (one row per line, tab
separated, `\\N` for NULL, backslash escapes), pinned by SHA-256 in the manifest. The
file is a tee of the COPY stream: psycopg formats each row once (in C), and the same
buffer goes to the server and, through a queue, to a thread that hashes and writes it
while the load goes on. `lite2pg load RUN` sends such a file back to COPY as it is.

A careful replay (after PostgreSQL refused a row) COPYs batch by batch under savepoints;
only the batches PostgreSQL took reach the file, so it always holds what the table holds.
"""

from __future__ import annotations

import hashlib
import os
import queue
import secrets
import threading
from pathlib import Path
from typing import Any

import psycopg
from psycopg.copy import LibpqWriter

from lite2pg.artifacts import FileInfo, fsync_dir
from lite2pg.rows import safe_filename

__all__ = ["COPY_SUFFIX", "CopyFileSink", "TeeWriter", "concatenate", "copy_path"]

COPY_SUFFIX = ".copy"
# Chunks of COPY data waiting for the writer thread: psycopg hands over about 32 kB at a
# time, so the queue holds at most a few MB whatever the table's size.
_QUEUE_CHUNKS = 128
_CHUNK = 1 << 20


class CopyFileSink:
    """COPY data to a file in the background: SHA-256, size and rows counted on the way.

    The file is created mode 0600 and appears under its name only when `close` succeeds
    (temp file, fsync, rename, directory fsync); `abort` removes the temp file. `restart`
    drops what was written so far (the table is being loaded again from its first row).
    """

    def __init__(self, path: Path, *, secret: bool = False) -> None:
        self.path = path
        self.secret = secret
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        # Owner only, like every file of a run directory that holds the data.
        fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file = os.fdopen(fd, "wb")
        self._digest = hashlib.sha256()
        self._size = self._rows = 0
        self._queue: queue.Queue[tuple[str, bytes]] = queue.Queue(maxsize=_QUEUE_CHUNKS)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="lite2pg-tee", daemon=True)
        self._thread.start()

    def write(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        if data:
            self._queue.put(("data", data))

    def restart(self) -> None:
        self._queue.put(("restart", b""))

    def close(self) -> FileInfo:
        """Wait for the writer, make the file durable and give it its name."""
        self._queue.put(("close", b""))
        self._thread.join()
        if self._error is not None:
            self.abort()
            raise self._error
        os.replace(self._tmp, self.path)
        fsync_dir(self.path.parent)
        return FileInfo(self.path, self._digest.hexdigest(), self._size, self._rows, self.secret)

    def abort(self) -> None:
        if self._thread.is_alive():
            self._queue.put(("stop", b""))
            self._thread.join()
        self._file.close()
        self._tmp.unlink(missing_ok=True)

    def _drain(self) -> None:
        f = self._file
        while True:
            kind, data = self._queue.get()
            if kind == "stop":
                return
            if self._error is not None:
                continue  # keep taking chunks so that the producer never blocks
            try:
                if kind == "data":
                    f.write(data)
                    self._digest.update(data)  # releases the GIL for chunks this size
                    self._size += len(data)
                    self._rows += data.count(b"\n")  # COPY text escapes newlines in values
                elif kind == "restart":
                    f.seek(0)
                    f.truncate()
                    self._digest = hashlib.sha256()
                    self._size = self._rows = 0
                elif kind == "close":
                    f.flush()
                    os.fsync(f.fileno())
                    f.close()
                    return
            except BaseException as e:  # handed to the producer at its next write or close
                self._error = e
                if kind == "close":
                    return


class TeeWriter(LibpqWriter):
    """psycopg's COPY writer that also hands every chunk to a `CopyFileSink`.

    `buffered`: keep the chunks until PostgreSQL has taken the whole COPY (a careful
    batch, which may be refused and split), then hand them over.
    """

    def __init__(
        self, cursor: psycopg.Cursor[Any], sink: CopyFileSink, *, buffered: bool = False
    ) -> None:
        super().__init__(cursor)
        self.sink = sink
        self.buffered = buffered
        self.pending: list[bytes] = []

    def write(self, data: Any) -> None:
        super().write(data)
        chunk = bytes(data)
        if self.buffered:
            self.pending.append(chunk)
        else:
            self.sink.write(chunk)

    def finish(self, exc: BaseException | None = None) -> None:
        super().finish(exc)  # raises when PostgreSQL refused the data: nothing is handed over
        if exc is None:
            for chunk in self.pending:
                self.sink.write(chunk)
        self.pending = []


def copy_path(run_dir: Path, table: str, part: int = -1) -> Path:
    """Where a run keeps the COPY data of a table (of one part of it, while loading)."""
    suffix = f".part{part}" if part >= 0 else ""
    return run_dir / "transformed" / f"{safe_filename(table)}{suffix}{COPY_SUFFIX}"


def concatenate(parts: list[FileInfo], path: Path, *, secret: bool = False) -> FileInfo:
    """One file from the parts of a table loaded by several workers, in order; the parts
    are removed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    digest = hashlib.sha256()
    size = rows = 0
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.path.open("rb") as f:
                    while chunk := f.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        size += len(chunk)
                rows += part.rows
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    for part in parts:
        part.path.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return FileInfo(path, digest.hexdigest(), size, rows, secret)
