"""Verify's third section: the run's evidence. First evidence.json (`lite2pg.evidence`) is
recomputed: its HMAC with the run's key, the SHA-256 of every file it pins (and no file
added), report.json's counts. Then every row the run logged as refused by PostgreSQL is
replayed: the row transform(source) gives for its key is COPYed into its table in a
transaction that is rolled back, and the claim stands only if PostgreSQL refuses it again.

Password columns are replayed with a placeholder hash of the policy's own kind (of a
random plaintext, made once per policy): a rejects file holds REDACTED there, and no
plaintext password ever reaches PostgreSQL. A refusal counts only when it is the data's
fault (SQLSTATE classes 22, 23, 54, P0: a value, a constraint, a limit, a trigger); any
other error (no privilege, no such table) leaves the claim unproven, which fails."""

from __future__ import annotations

import hmac
import json
import re
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg

from lite2pg import evidence
from lite2pg.load import copy_statement
from lite2pg.rows import RowRejected, TableCounts, from_json_value, safe_filename
from lite2pg.rundir import SNAPSHOT_NAME
from lite2pg.source import quote_ident
from lite2pg.target import Target, connect, server_failure
from lite2pg.transforms.passwords import HashResult, PasswordPolicy, hash_plaintext, prepare
from lite2pg.verify._canon import REDACTED, Row
from lite2pg.verify._report import EvidenceCheck
from lite2pg.verify._run import _Run
from lite2pg.verify._table import _Table

_PG_REFUSED = "PostgreSQL refused the row"
# SQLSTATE classes that say the row itself is at fault: data exception, integrity
# constraint violation, program limit exceeded, raise exception (a trigger).
_DATA_FAULT = ("22", "23", "54", "P0")
_SQLSTATE = re.compile(r"\[([0-9A-Z]{5})\]\s*$")


def check_record(run_dir: Path, snapshot_sha256: str | None, check: EvidenceCheck) -> None:
    """Recompute evidence.json: its HMAC, each pinned file's SHA-256 (`snapshot_sha256`:
    the snapshot's, already computed by verify), no file added, report.json's counts."""
    try:
        record = evidence.read_record(run_dir)
    except (OSError, ValueError) as e:
        check.state = "broken"
        check.problems.append(f"{evidence.EVIDENCE_NAME} is damaged ({e})")
        return
    if record is None:
        check.state = "not pinned"
        check.problems.append(
            f"evidence not pinned (run made by an older lite2pg): no {evidence.EVIDENCE_NAME}, "
            "so the snapshot, manifest, rejects and counts cannot be proven unedited; "
            "run migrate again to pin them"
        )
        return
    check.written_by = str(record.get("written_by") or "")
    check.written_at = str(record.get("written_at") or "")
    key = evidence.read_key(run_dir)
    body = {k: v for k, v in record.items() if k != "hmac_sha256"}
    if key is None:
        check.state = "broken"
        check.problems.append(
            f"the evidence key {evidence.KEY_NAME} is missing or damaged: "
            f"{evidence.EVIDENCE_NAME} cannot be proven to be the run's own"
        )
    elif not hmac.compare_digest(
        str(record.get("hmac_sha256") or ""), evidence.signature(key, body)
    ):
        check.state = "broken"
        check.problems.append(
            f"{evidence.EVIDENCE_NAME} was edited: its HMAC does not match the run's key"
        )
    files = record.get("files")
    pinned: dict[str, str] = files if isinstance(files, dict) else {}
    now = evidence.pinned_files(run_dir)
    for name in sorted(set(pinned) | set(now)):
        if name not in now:
            state = "missing"
        elif name not in pinned:
            state = "added"
        else:
            actual = (
                snapshot_sha256
                if name == SNAPSHOT_NAME and snapshot_sha256
                else evidence.file_sha256(run_dir / name)
            )
            state = "unchanged" if actual == pinned[name] else "changed"
        check.files[name] = state
        if state != "unchanged":
            check.state = "broken"
            what = {
                "missing": "was removed",
                "added": "was added",
                "changed": "was edited (its SHA-256 differs from the one pinned)",
            }[state]
            check.problems.append(f"{name} {what} since {check.written_by or 'the run'}")
    counts = record.get("report_counts")
    pinned_counts: dict[str, Any] = counts if isinstance(counts, dict) else {}
    check.counts_tables = len(pinned_counts)
    current = evidence.report_counts(run_dir)
    for table in sorted(set(pinned_counts) | set(current)):
        was, now_ = pinned_counts.get(table), current.get(table)
        if was == now_:
            continue
        check.state = "broken"
        if was is None or now_ is None:
            check.problems.append(
                f"report.json: table {table} was {'added' if was is None else 'removed'}"
            )
            continue
        changed = ", ".join(
            f"{k} {was.get(k)} -> {now_.get(k)}"
            for k in evidence.COUNTED
            if was.get(k) != now_.get(k)
        )
        check.problems.append(f"report.json: the counts of {table} were edited ({changed})")


class _Placeholders:
    """One hash per password policy, of a random plaintext: what a refused row's password
    column is replayed with (the column's kind of value, never a real password)."""

    def __init__(self) -> None:
        self._made: dict[PasswordPolicy, str] = {}

    def get(self, policy: PasswordPolicy) -> str:
        if policy not in self._made:
            self._made[policy] = hash_plaintext(policy, secrets.token_urlsafe(16))
        return self._made[policy]


def replay_refused(
    run: _Run, target: Target, gone: dict[str, list[Row]], check: EvidenceCheck
) -> None:
    """Replay every row the run logged as refused by PostgreSQL (see the module's doc)."""
    pending: list[tuple[str, list[dict[str, Any]]]] = []
    for tm in run.maps:
        path = run.run_dir / "rejects" / f"{safe_filename(tm.source.name)}.jsonl"
        if not path.is_file():
            continue
        refused: list[dict[str, Any]] = []
        with path.open(encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    check.problems.append(f"{path.name}: a line is not JSON")
                    continue
                if isinstance(record, dict) and str(record.get("reason") or "").startswith(
                    _PG_REFUSED
                ):
                    refused.append(record)
        if refused:
            pending.append((tm.source.name, refused))
    if not pending:
        return
    conn = connect(target)
    try:
        placeholders = _Placeholders()
        # One transaction, never committed; each row under a savepoint rolled back.
        with conn.transaction(force_rollback=True):
            # Deferred constraints are checked at COMMIT, which never comes: check now.
            conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for name, records in pending:
                t = _Table(run, name, gone)
                for record in records:
                    _replay_one(run, conn, t, record, placeholders, check)
    except psycopg.OperationalError as e:
        raise server_failure(
            e, "replaying refused rows", "verify writes nothing: run it again"
        ) from None
    finally:
        conn.close()


def _replay_one(
    run: _Run,
    conn: psycopg.Connection[Any],
    t: _Table,
    record: dict[str, Any],
    placeholders: _Placeholders,
    check: EvidenceCheck,
) -> None:
    tm = t.tm
    key = record.get("key") if isinstance(record.get("key"), dict) else {}
    assert isinstance(key, dict)
    shown = ", ".join(f"{k}={_short(v)}" for k, v in key.items()) or "(no key)"
    where = f"{tm.source.name} ({shown})"
    values: Sequence[Any] | None = None
    typed = True
    if t.key_s and "row_number" not in key and "row" not in key:
        found = _from_source(run, t, key, placeholders)
        if isinstance(found, str):  # transform(source) rejects it now: absent, as it must be
            check.notes.append(f"{where}: logged as refused; transform(source) rejects it: {found}")
            return
        values = found
    if values is None:
        values = _from_record(t, record, placeholders)
        typed = False
        if values is None:
            check.problems.append(
                f"{where}: logged as refused by PostgreSQL, but its row cannot be replayed "
                "(a secret column is redacted and the snapshot has no row with its key)"
            )
            return
        if t.key_s:
            check.notes.append(f"{where}: no snapshot row has the logged key; replayed as logged")
    check.replayed += 1
    stmt = copy_statement(run.opts.schema, tm.target, tm.target_columns[: len(values)], False)
    accepted = False
    try:
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(stmt) as cp:
                if typed and t.pipe.dump_types:
                    cp.set_types(t.pipe.dump_types[: len(values)])
                cp.write_row(values)
            accepted = True
            raise psycopg.Rollback()
    except psycopg.OperationalError:
        raise
    except psycopg.Error as e:
        state = e.sqlstate or ""
        if not state.startswith(_DATA_FAULT):
            check.problems.append(
                f"{where}: logged as refused by PostgreSQL, and the replay could not tell: "
                f"{(e.diag.message_primary or type(e).__name__)} [{state}]"
            )
            return
        check.refused_again += 1
        logged = _SQLSTATE.search(str(record.get("reason") or ""))
        if logged and logged.group(1) != state:
            check.notes.append(
                f"{where}: refused again, now with SQLSTATE {state} (logged {logged.group(1)})"
            )
        return
    except (TypeError, ValueError) as e:
        check.problems.append(f"{where}: logged as refused, and its values cannot be sent: {e}")
        return
    if accepted:
        check.accepted.append(
            {"table": tm.source.name, "key": {k: _short(v) for k, v in key.items()}}
        )
        check.problems.append(
            f"{where}: logged as refused by PostgreSQL, yet PostgreSQL takes the row now: "
            "it should have been loaded"
        )


def _from_source(
    run: _Run, t: _Table, key: dict[str, Any], placeholders: _Placeholders
) -> list[Any] | str | None:
    """The row the load sent for `key`: the snapshot's row through the run's pipeline (a
    placeholder hash in password columns); a reason when the pipeline rejects it; None when
    the snapshot has no row with the key."""
    columns = t.pipe.source_columns
    names = [columns[i] for i in t.key_s]
    if not all(n in key for n in names):
        return None
    cond = " AND ".join(f"{quote_ident(n)} = ?" for n in names)
    query = (
        f"SELECT {', '.join(t.sqlite_select)} FROM {quote_ident(t.tm.source.name)} "
        f"WHERE {cond} LIMIT 2"
    )
    rows = run.src.execute(query, [from_json_value(key[n]) for n in names]).fetchall()
    if len(rows) != 1:
        return None
    raw = tuple(rows[0])
    values = raw[1 : 1 + t.n] + raw[1 + t.n + t.n_const :]
    try:
        out = list(t.pipe.slow(values, TableCounts()))
    except RowRejected as e:
        return e.reason
    for pos, _column, policy in t.pipe.hashed:
        prepared = prepare(policy, out[pos])
        if isinstance(prepared, HashResult):
            if prepared.error is not None:
                return prepared.error.reason
            out[pos] = prepared.value
        else:
            out[pos] = placeholders.get(policy)
    return out + list(t.pipe.constants)


def _from_record(
    t: _Table, record: dict[str, Any], placeholders: _Placeholders
) -> list[Any] | None:
    """The row as the rejects file logged it (values after conversion, as text where JSON
    has no type), or None when a secret column other than a password is redacted."""
    row = record.get("row") if isinstance(record.get("row"), dict) else None
    if row is None:
        return None
    hashed = {column: policy for _pos, column, policy in t.pipe.hashed}
    out: list[Any] = []
    for column in t.pipe.source_columns:
        v = from_json_value(row.get(column))
        if v == REDACTED:
            if column not in hashed:
                return None
            v = placeholders.get(hashed[column])
        out.append(v)
    return out


def _short(value: Any) -> str:
    text = str(from_json_value(value))
    return text if len(text) <= 40 else text[:37] + "..."
