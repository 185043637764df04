"""The run's evidence record: the SHA-256 of every file verify relies on, signed.

A run directory holds what verify checks the target against: run.json (what was asked),
the SQLite snapshot (what was loaded), manifest.json, rejects/*.jsonl (the rows not
loaded, and why) and report.json's counts. `evidence.json` lists the SHA-256 of each of
those files and the counts per table, with an HMAC-SHA256 over the whole record whose key
(`.evidence-key`, 32 random bytes, mode 0600) is made when the run starts. Every command
that legitimately changes one of those files writes the record again (`write_evidence`);
verify recomputes it all, so a hand edit of any of them (a row deleted in PostgreSQL and a
matching line added to rejects/, say) is named. The key is only as safe as the run
directory: it catches edits, not an attacker who can also run lite2pg's code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lite2pg.artifacts import MANIFEST_NAME, atomic_write, file_sha256
from lite2pg.rundir import SNAPSHOT_NAME

__all__ = [
    "COUNTED",
    "EVIDENCE_NAME",
    "FORMAT",
    "KEY_NAME",
    "Evidence",
    "file_sha256",
    "new_key",
    "pinned_files",
    "read_key",
    "read_record",
    "report_counts",
    "signature",
    "write_evidence",
]

EVIDENCE_NAME = "evidence.json"
KEY_NAME = ".evidence-key"
FORMAT = "lite2pg-evidence-v1"
RUN_FILE = "run.json"
REPORT_FILE = "report.json"
REJECTS_DIR = "rejects"
# The per-table numbers of report.json that are pinned (verify's own section is not: it is
# rewritten by every verify).
COUNTED = ("target", "read", "loaded", "rejected", "filtered")


def new_key(run_dir: Path) -> bytes:
    """A fresh key for a new run, replacing any earlier one (mode 0600 from the start)."""
    key = secrets.token_bytes(32)
    atomic_write(run_dir / KEY_NAME, key.hex().encode("ascii") + b"\n", mode=0o600, exact_mode=True)
    return key


def read_key(run_dir: Path) -> bytes | None:
    """The run's key, or None when there is none (or it is not one lite2pg wrote)."""
    try:
        text = (run_dir / KEY_NAME).read_text(encoding="ascii").strip()
        key = bytes.fromhex(text)
    except (OSError, ValueError):
        return None
    return key if len(key) == 32 else None


def pinned_files(run_dir: Path) -> list[str]:
    """The files the record pins, relative to the run directory, as they are now: run.json,
    the snapshot, manifest.json and every file under rejects/."""
    out = [n for n in (RUN_FILE, SNAPSHOT_NAME, MANIFEST_NAME) if (run_dir / n).is_file()]
    rejects = run_dir / REJECTS_DIR
    if rejects.is_dir():
        out.extend(
            p.relative_to(run_dir).as_posix() for p in sorted(rejects.rglob("*")) if p.is_file()
        )
    return out


def report_counts(run_dir: Path) -> dict[str, dict[str, Any]]:
    """report.json's counts per source table ({} when there is no report yet)."""
    try:
        data = json.loads((run_dir / REPORT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out: dict[str, dict[str, Any]] = {}
    for t in data.get("tables") or []:
        if isinstance(t, dict) and "source" in t:
            out[str(t["source"])] = {k: t.get(k) for k in COUNTED}
    return out


def signature(key: bytes, body: dict[str, Any]) -> str:
    """HMAC-SHA256 (hex) of a record's body, over its canonical JSON."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hmac.new(key, text.encode("ascii"), hashlib.sha256).hexdigest()


@dataclass
class Evidence:
    """The record as written: the files' SHA-256s, the counts, who wrote it and when."""

    files: dict[str, str]
    counts: dict[str, dict[str, Any]]
    written_by: str
    written_at: str

    def body(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "written_by": self.written_by,
            "written_at": self.written_at,
            "files": self.files,
            "report_counts": self.counts,
        }


def _carried_snapshot_hash(run_dir: Path, key: bytes) -> str | None:
    """The snapshot's SHA-256 from the record already there, when its HMAC holds. The
    snapshot never changes after the run made it, so the hash pinned then is the one to
    keep (a snapshot edited since still fails verify against it)."""
    try:
        data = json.loads((run_dir / EVIDENCE_NAME).read_text(encoding="utf-8"))
        body = {k: v for k, v in data.items() if k != "hmac_sha256"}
        if not hmac.compare_digest(str(data.get("hmac_sha256", "")), signature(key, body)):
            return None
        value = data["files"][SNAPSHOT_NAME]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def write_evidence(run_dir: Path, written_by: str, snapshot_sha256: str | None = None) -> None:
    """Write (or write again) run_dir/evidence.json, atomically, signed with the run's key.

    `snapshot_sha256`: the snapshot's hash when the caller has it (a new snapshot); else
    the one the current record pins, else it is computed. A run without a key (made by an
    older lite2pg) gets one now."""
    key = read_key(run_dir)
    if key is None:
        key = new_key(run_dir)
    elif snapshot_sha256 is None:
        snapshot_sha256 = _carried_snapshot_hash(run_dir, key)
    files: dict[str, str] = {}
    for name in pinned_files(run_dir):
        if name == SNAPSHOT_NAME and snapshot_sha256 is not None:
            files[name] = snapshot_sha256
        else:
            files[name] = file_sha256(run_dir / name)
    record = Evidence(
        files=files,
        counts=report_counts(run_dir),
        written_by=written_by,
        written_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    ).body()
    record["hmac_sha256"] = signature(key, record)
    text = json.dumps(record, indent=2, sort_keys=True, ensure_ascii=True) + "\n"
    atomic_write(run_dir / EVIDENCE_NAME, text.encode("ascii"), mode=0o600, exact_mode=True)


def read_record(run_dir: Path) -> dict[str, Any] | None:
    """evidence.json as written, or None when there is none; ValueError when damaged."""
    path = run_dir / EVIDENCE_NAME
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data
