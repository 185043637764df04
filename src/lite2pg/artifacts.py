"""The run directory's artifacts: table CSVs, the manifest that pins them, and the journal.

CSV encoding
------------
Each table is one RFC 4180 file: UTF-8 (no BOM), comma separated, fields quoted only when
needed (QUOTE_MINIMAL) with quotes doubled, CRLF line ends, and a header row with the
column names. Every field holds one SQLite value whose storage class is told apart by the
field's shape, so ids, numbers and ordinary text read as themselves in a spreadsheet and
only the few values that would be misread carry a backslash prefix:

==================  ==============================================  ====================
value               written as                                      examples
==================  ==============================================  ====================
NULL                an empty field (quoted or not)                  ``,,``
INTEGER             decimal, no leading zeros                       ``5``, ``-9223372036854775808``
REAL                Python's ``repr`` (always has ``.``, ``e``,     ``5.0``, ``-0.0``, ``1e+16``,
                    or is inf/nan), which round-trips exactly       ``inf``, ``-inf``
TEXT                as is                                           ``hello``, ``01234``, ``a,b``
TEXT, escaped       ``\\s`` + the text, when the text is empty,     ``\\s`` (''), ``\\s5`` ('5'),
                    would read as an INTEGER or REAL, starts with   ``\\s\\N``, ``\\s=1+1``
                    a backslash, or starts with ``= + - @``, tab
                    or CR (a spreadsheet would run it as a formula)
BLOB                ``\\x`` + lowercase hex, PostgreSQL's bytea      ``\\x``, ``\\x00ff``
                    hex format
TEXT, not UTF-8     ``\\i`` + lowercase hex of its bytes             ``\\iff``
==================  ==============================================  ====================

Why this scheme: SQLite types each value, not each column, so the type has to travel with
the value; a sidecar of column types could not say that one row's ``5`` is text. Telling
NULL from '' by quoted versus unquoted empty fields does not survive spreadsheets, pandas
or a re-save, whereas a prefix is plain text that any tool keeps. Prefixing only the
ambiguous values keeps the file readable and small; the prefix is always a backslash
followed by one letter, so a reader never guesses. Text that only resembles a number
loosely (``01234``, `` 5``, ``1E5``, ``Infinity``) is not escaped: the reader's number
patterns are exact. Text read back with invalid UTF-8 is `lite2pg.source.InvalidText`,
the type the rest of lite2pg uses for it.

Files that may hold plaintext secrets are created mode 0600 (never chmod-ed later), and the
manifest says which they are.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import io
import json
import os
import re
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from lite2pg.errors import Lite2pgError
from lite2pg.source import InvalidText, quote_ident, stream_query

__all__ = [
    "JOURNAL_NAME",
    "MANIFEST_NAME",
    "STAGES",
    "STATES",
    "ArtifactChanged",
    "ArtifactError",
    "FileInfo",
    "Journal",
    "Manifest",
    "ManifestFile",
    "atomic_json",
    "atomic_write",
    "atomic_writer",
    "describe_file",
    "fsync_dir",
    "read_manifest",
    "read_table_csv",
    "verify_file",
    "write_manifest",
    "write_table_csv",
]

MANIFEST_NAME = "manifest.json"
JOURNAL_NAME = "journal.json"
MANIFEST_VERSION = 1
JOURNAL_VERSION = 1
# Rows per batch when reading a CSV back: the same order as the SQLite side's batches.
READ_BATCH_SIZE = 5_000
# Hashing reads files in 1 MiB chunks: big enough to be fast, small enough to not matter.
_CHUNK = 1 << 20
# csv refuses fields over 128 KiB by default; a SQLite value can be up to 1 GB (2 GB as hex).
_FIELD_LIMIT = 2**31 - 1

STAGES = ("export", "transform", "load", "verify", "cutover")
STATES = ("pending", "running", "done", "failed")
# Which command writes the files under each top-level folder, for "re-run ..." hints.
_WRITER = {"export": "export", "transformed": "transform", "rejects": "transform"}

_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_REAL = re.compile(r"-?(?:[0-9]+\.[0-9]+(?:e[-+][0-9]+)?|[0-9]+e[-+][0-9]+|inf)|nan")
_HEX = re.compile(r"(?:[0-9a-f]{2})*")
# Leading characters that make a spreadsheet treat a cell as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class ArtifactError(Lite2pgError):
    """An artifact of a run directory is missing, damaged or not what was expected."""

    def __init__(self, what: str, problem: str, hint: str) -> None:
        self.what = what
        self.problem = problem
        self.hint = hint
        super().__init__(f"{what}: {problem} (hint: {hint})")


class ArtifactChanged(Lite2pgError):
    """A file differs from what the manifest recorded when it was written (or is gone)."""

    def __init__(self, relative_path: str, problem: str, stage: str) -> None:
        self.relative_path = relative_path
        self.problem = problem
        self.stage = stage
        super().__init__(f"{relative_path} {problem}; re-run {stage}")


# --- CSV ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileInfo:
    """A written artifact: where, its SHA-256 (hex), size in bytes, data rows, and secrecy."""

    path: Path
    sha256: str
    size: int
    rows: int
    secret: bool = False


def encode_value(value: object) -> str:
    """One SQLite value as a CSV field (see the module docstring)."""
    if value is None:
        return ""
    if isinstance(value, InvalidText):
        return "\\i" + bytes(value).hex()
    if isinstance(value, str):
        if (
            not value
            or value.startswith(("\\", *_FORMULA_START))
            or _INT.fullmatch(value)
            or _REAL.fullmatch(value)
        ):
            return "\\s" + value
        return value
    if isinstance(value, bool):  # a bool is an int to Python, never a SQLite value
        raise TypeError(f"not a SQLite value: {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    raise TypeError(f"not a SQLite value: {type(value).__name__}")


def decode_field(field_: str) -> object:
    """A CSV field back to the SQLite value it encodes; ValueError when it is malformed."""
    if not field_:
        return None
    if field_[0] == "\\":
        tag, rest = field_[1:2], field_[2:]
        if tag == "s":
            return rest
        if tag in ("x", "i"):
            if not _HEX.fullmatch(rest):
                raise ValueError(f"\\{tag} must be followed by lowercase hex pairs")
            raw = bytes.fromhex(rest)
            return raw if tag == "x" else InvalidText(raw)
        raise ValueError(f"unknown escape \\{tag} (expected \\s, \\x or \\i)")
    if _INT.fullmatch(field_):
        return int(field_)
    if _REAL.fullmatch(field_):
        return float(field_)
    return field_


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable (where the platform allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some platforms cannot open a directory; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_table_csv(
    conn: sqlite3.Connection,
    table: str,
    columns: Sequence[str],
    path: Path,
    *,
    batch_size: int = 5000,
    secret: bool = False,
    progress: Callable[[int], None] | None = None,
) -> FileInfo:
    """Export one SQLite table to `path` as CSV (see the module docstring), streamed;
    `progress` gets the rows written so far after each batch.

    The file appears under its name only once complete (temp file + rename), so a killed
    export never leaves a truncated CSV behind. `secret` files are created mode 0600.
    """
    # Check the names first: SQLite reads an unknown "column" as a string literal.
    caller_factory, conn.text_factory = conn.text_factory, str
    try:
        known = {r[1] for r in conn.execute(f"PRAGMA table_xinfo({quote_ident(table)})")}
    finally:
        conn.text_factory = caller_factory
    if not known:
        raise ArtifactError(f"table {table}", "no such table", "check the table name")
    missing = [c for c in columns if c not in known]
    if missing or not columns:
        raise ArtifactError(
            f"table {table}",
            f"no column {', '.join(missing)}" if missing else "no columns to export",
            f"it has {', '.join(sorted(known))}",
        )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = _tmp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if secret else 0o644)
    digest = hashlib.sha256()
    size = rows = 0
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    # SQLite encodes each field (`_field_sql`) and the csv module writes the rows: no
    # Python code runs per value, except for text that is not UTF-8.
    sql = f"SELECT {', '.join(_field_sql(c) for c in columns)} FROM {quote_ident(table)}"
    try:
        with open(fd, "wb") as f:

            def flush() -> None:
                nonlocal size
                data = buf.getvalue().encode("utf-8")
                buf.seek(0)
                buf.truncate()
                digest.update(data)
                size += len(data)
                f.write(data)

            writer.writerow(columns)
            for batch, slow in stream_query(conn, sql, batch_size):
                writer.writerows(_invalid_text_fixed(batch) if slow else batch)
                rows += len(batch)
                flush()
                if progress is not None:
                    progress(rows)
            flush()
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return FileInfo(path, digest.hexdigest(), size, rows, secret)


def _field_sql(column: str) -> str:
    """SQL giving a column's value as its CSV field (`encode_value`'s scheme), or as an
    integer, real or NULL, which the csv module writes as `encode_value` would.

    Text is escaped when `encode_value` escapes it, and also when it is made of digits and
    `.e+-` with a `.` or an `e` (a superset of the REAL pattern: escaping more text than
    needed still reads back exactly)."""
    q = quote_ident(column)
    number_like = (
        f"{q} IN ('0', 'inf', 'nan') OR ({q} GLOB '[1-9]*' AND {q} NOT GLOB '*[^0-9]*') "
        f"OR ({q} GLOB '[0-9]*' AND {q} NOT GLOB '*[^0-9.e+-]*' "
        f"AND ({q} GLOB '*.*' OR {q} GLOB '*e*'))"
    )
    escaped = (
        f"{q} = '' OR substr({q}, 1, 1) IN ('\\', '=', '+', '-', '@', char(9), char(13)) "
        f"OR {number_like}"
    )
    return (
        f"CASE typeof({q}) WHEN 'text' THEN CASE WHEN {escaped} THEN '\\s' || {q} ELSE {q} END "
        f"WHEN 'blob' THEN '\\x' || lower(hex({q})) ELSE {q} END"
    )


def _invalid_text_fixed(batch: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """A batch read by the slow decoder: text that is not UTF-8 (InvalidText, maybe with
    the `\\s` that `_field_sql` put before it) becomes its `\\i` field."""
    out = []
    for row in batch:
        if any(isinstance(v, InvalidText) for v in row):
            row = tuple(
                "\\i" + bytes(v).removeprefix(b"\\s").hex() if isinstance(v, InvalidText) else v
                for v in row
            )
        out.append(row)
    return out


def read_table_csv(path: Path) -> Iterator[list[tuple[object, ...]]]:
    """Read a CSV written by `write_table_csv` back as batches of rows of the original values."""
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(_FIELD_LIMIT)
    rerun = f"re-run {_WRITER.get(path.parent.name, 'the stage that wrote it')}"
    try:
        f = path.open("r", encoding="utf-8", newline="")
    except FileNotFoundError:
        raise ArtifactError(str(path), "no such file", rerun) from None
    with f:
        reader = csv.reader(f, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            raise ArtifactError(str(path), "empty file, no header row", rerun) from None
        except (csv.Error, UnicodeDecodeError) as e:
            raise ArtifactError(str(path), f"not a CSV: {e}", rerun) from None
        width = len(header)
        batch: list[tuple[object, ...]] = []
        try:
            for record in reader:
                if len(record) != width:
                    raise ArtifactError(
                        f"{path} line {reader.line_num}",
                        f"{len(record)} fields, the header has {width}",
                        f"the file was edited or truncated; {rerun}",
                    )
                try:
                    batch.append(tuple(decode_field(v) for v in record))
                except ValueError as e:
                    raise ArtifactError(f"{path} line {reader.line_num}", str(e), rerun) from None
                if len(batch) >= READ_BATCH_SIZE:
                    yield batch
                    batch = []
        except (csv.Error, UnicodeDecodeError) as e:
            raise ArtifactError(
                f"{path} line {reader.line_num}", f"not valid CSV: {e}", rerun
            ) from None
        if batch:
            yield batch


# --- files, manifest ---------------------------------------------------------------------


@contextlib.contextmanager
def atomic_writer(path: Path, *, mode: int = 0o644, exact_mode: bool = False) -> Iterator[BinaryIO]:
    """A file that appears under `path` only whole and durable: written under a temporary
    name in the same directory, fsynced, renamed over `path`, the directory fsynced.

    Every file a later command trusts (run.json, the journal, the manifest, evidence,
    reports, intents, the app's config) is written through here or `atomic_write`, so a
    kill or a power cut leaves the old file or the new one, never a torn one. The file is
    created with `mode` (narrowed by the umask, unless `exact_mode`). An exception inside
    the block removes the temporary file and leaves `path` as it was.
    """
    tmp = _tmp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        if exact_mode:
            os.fchmod(fd, mode)  # before any data: the umask only ever narrows it
        with open(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write(
    path: Path, data: bytes | str, *, mode: int = 0o644, exact_mode: bool = False
) -> None:
    """Replace `path` with `data` (text is written as UTF-8) durably: see `atomic_writer`."""
    with atomic_writer(path, mode=mode, exact_mode=exact_mode) as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)


def atomic_json(path: Path, data: Any, *, mode: int = 0o644) -> None:
    """`data` as indented JSON (non-ASCII kept as is), durably: see `atomic_writer`."""
    atomic_write(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n", mode=mode)


def file_sha256(path: Path) -> str:
    """SHA-256 (hex) of a file, read in chunks."""
    return _hash_file(path)[0]


def _hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def describe_file(path: Path, *, rows: int = 0, secret: bool = False) -> FileInfo:
    """FileInfo of a file written by other means (the snapshot, a transform's output)."""
    sha, size = _hash_file(path)
    return FileInfo(path, sha, size, rows, secret)


@dataclass(frozen=True)
class ManifestFile:
    """One artifact as the manifest records it; `path` is relative to the run directory."""

    path: str
    sha256: str
    size: int
    rows: int
    secret: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "size": self.size,
            "rows": self.rows,
            "secret": self.secret,
        }


@dataclass
class Manifest:
    """manifest.json: every artifact's SHA-256, size, rows and secrecy; each table's schema."""

    files: dict[str, ManifestFile] = field(default_factory=dict)
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, run_dir: Path, info: FileInfo) -> ManifestFile:
        """Record a file that lies inside `run_dir`; replaces an earlier entry for it."""
        try:
            rel = info.path.resolve().relative_to(run_dir.resolve()).as_posix()
        except ValueError:
            raise ArtifactError(
                str(info.path),
                f"not inside the run directory {run_dir}",
                "write artifacts under the run directory",
            ) from None
        entry = ManifestFile(rel, info.sha256, info.size, info.rows, info.secret)
        self.files[rel] = entry
        return entry

    def set_table(self, name: str, schema: Mapping[str, Any]) -> None:
        """Record the schema a table was exported/loaded with (any JSON-able mapping)."""
        self.tables[name] = json.loads(json.dumps(dict(schema)))  # a copy, checked JSON-able

    def secret_files(self) -> list[str]:
        """Relative paths of the files that hold plaintext secrets."""
        return sorted(p for p, f in self.files.items() if f.secret)

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": MANIFEST_VERSION,
            "files": [f.as_dict() for _, f in sorted(self.files.items())],
            "tables": self.tables,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        files = {
            str(f["path"]): ManifestFile(
                str(f["path"]),
                str(f["sha256"]),
                int(f["size"]),
                int(f["rows"]),
                bool(f["secret"]),
            )
            for f in data["files"]
        }
        return cls(files, {str(k): dict(v) for k, v in data["tables"].items()})


def write_manifest(run_dir: Path, manifest: Manifest) -> None:
    """Write run_dir/manifest.json atomically."""
    text = json.dumps(manifest.as_dict(), indent=2, ensure_ascii=False) + "\n"
    atomic_write(run_dir / MANIFEST_NAME, text.encode("utf-8"))


def read_manifest(run_dir: Path) -> Manifest:
    """Read run_dir/manifest.json."""
    path = run_dir / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != MANIFEST_VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {MANIFEST_VERSION}")
        return Manifest.from_dict(data)
    except FileNotFoundError:
        raise ArtifactError(str(path), "no such file", "run `lite2pg export` first") from None
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ArtifactError(str(path), f"damaged: {e}", "re-run export") from None


def _short(sha: str) -> str:
    return sha[:12]


def verify_file(run_dir: Path, relative_path: str, *, manifest: Manifest | None = None) -> None:
    """Raise ArtifactChanged unless the file still has the size and SHA-256 the manifest says."""
    m = manifest if manifest is not None else read_manifest(run_dir)
    stage = _WRITER.get(relative_path.split("/", 1)[0], "the stage that wrote it")
    entry = m.files.get(relative_path)
    if entry is None:
        raise ArtifactError(
            relative_path, f"not listed in {MANIFEST_NAME}", f"re-run {stage} to record it"
        )
    path = run_dir / relative_path
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ArtifactChanged(relative_path, "is missing (the manifest lists it)", stage) from None
    if size != entry.size:
        raise ArtifactChanged(
            relative_path,
            f"changed since it was written (size {size} != {entry.size} bytes)",
            stage,
        )
    sha, _ = _hash_file(path)
    if sha != entry.sha256:
        raise ArtifactChanged(
            relative_path,
            f"changed since it was written (sha256 {_short(sha)}… != {_short(entry.sha256)}…)",
            stage,
        )


# --- journal -----------------------------------------------------------------------------


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Journal:
    """journal.json: the state of each stage and of each table within it.

    `Journal(run_dir)` continues the journal already there (if any); every change is
    written atomically at once, so a killed run leaves the last state it reached.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.path = run_dir / JOURNAL_NAME
        self._lock = threading.Lock()
        self._stages: dict[str, dict[str, Any]] = {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("version") != JOURNAL_VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {JOURNAL_VERSION}")
            self._stages = {str(k): dict(v) for k, v in data["stages"].items()}
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ArtifactError(
                str(self.path), f"damaged: {e}", "delete it to start the stages over"
            ) from None

    @classmethod
    def load(cls, run_dir: Path) -> Journal:
        """The journal of an existing run directory (empty if no stage has run yet)."""
        if not run_dir.is_dir():
            raise ArtifactError(
                str(run_dir), "no such run directory", "give a directory under .lite2pg/runs/"
            )
        return cls(run_dir)

    def _save(self) -> None:
        data = {"version": JOURNAL_VERSION, "stages": self._stages}
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        atomic_write(self.path, text.encode("utf-8"))

    @staticmethod
    def _check(state: str, reason: str | None) -> None:
        if state not in STATES:
            raise ValueError(f"unknown state {state!r}; expected one of {', '.join(STATES)}")
        if state == "failed" and not reason:
            raise ValueError("a failed state needs a reason")

    def _stage(self, name: str) -> dict[str, Any]:
        return self._stages.setdefault(name, {"state": "pending", "tables": {}})

    def set_stage(self, name: str, state: str, *, reason: str | None = None) -> None:
        """Record a stage's state (`failed` needs a reason)."""
        self._check(state, reason)
        with self._lock:
            entry = self._stage(name)
            entry["state"] = state
            entry["updated_at"] = _now()
            if state == "running":  # status tells a live stage from a killed one by it
                entry["pid"] = os.getpid()
            else:
                entry.pop("pid", None)
            if reason:
                entry["reason"] = reason
            else:
                entry.pop("reason", None)
            self._save()

    def set_table(self, stage: str, table: str, state: str, **info: Any) -> None:
        """Record a table's state within a stage, with JSON-able details (reason=..., rows=...)."""
        self._check(state, info.get("reason"))
        record = {"state": state, "updated_at": _now(), **info}
        json.dumps(record)  # a TypeError here, not a half-written journal later
        with self._lock:
            self._stage(stage)["tables"][table] = record
            self._save()

    def stage_state(self, name: str) -> str:
        """The state of a stage ('pending' if never recorded)."""
        return str(self._stages.get(name, {}).get("state", "pending"))

    def table_state(self, stage: str, table: str) -> str:
        """The state of a table within a stage ('pending' if never recorded)."""
        rec = self._stages.get(stage, {}).get("tables", {}).get(table, {})
        return str(rec.get("state", "pending"))

    def tables(self, stage: str, state: str | None = None) -> list[str]:
        """Tables recorded for a stage, optionally only those in `state`."""
        recs = self._stages.get(stage, {}).get("tables", {})
        return [t for t, r in recs.items() if state is None or r.get("state") == state]

    def as_dict(self) -> dict[str, Any]:
        return {"version": JOURNAL_VERSION, "stages": json.loads(json.dumps(self._stages))}

    def summary(self) -> str:
        """What is done, what is left and what failed, for `lite2pg status`."""
        names = [*STAGES, *(s for s in self._stages if s not in STAGES)]
        lines: list[str] = []
        done: list[str] = []
        left: list[str] = []
        failed: list[str] = []
        for name in names:
            entry = self._stages.get(name, {})
            state = str(entry.get("state", "pending"))
            tables: dict[str, dict[str, Any]] = entry.get("tables", {})
            counts = {s: sum(1 for r in tables.values() if r.get("state") == s) for s in STATES}
            detail = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
            line = f"{name:<10} {state:<8}"
            if detail:
                line += f" tables: {detail}"
            if entry.get("reason"):
                line += f" ({entry['reason']})"
            lines.append(line.rstrip())
            for t, r in tables.items():
                if r.get("state") == "failed":
                    lines.append(f"  {t}: failed: {r.get('reason')}")
                    failed.append(f"{name}/{t}")
            if state == "done":
                done.append(name)
            else:
                unfinished = len(tables) - counts["done"]
                left.append(f"{name} ({unfinished} of {len(tables)} tables)" if tables else name)
            if state == "failed":
                failed.append(name)
        lines.append("")
        lines.append(f"done: {', '.join(done) or 'nothing yet'}")
        lines.append(f"left: {', '.join(left) or 'nothing'}")
        lines.append(f"failed: {', '.join(failed) or 'nothing'}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()
