"""The rows a run logged as rejected (rejects/<table>.jsonl): their keys, reason categories,
and the check that none of them is in PostgreSQL."""

from __future__ import annotations

import collections
import json
import re
from pathlib import Path
from typing import Any

from psycopg import sql

from lite2pg.rows import from_json_value
from lite2pg.schema import TableMap
from lite2pg.verify._canon import Row, _pg_canon
from lite2pg.verify._report import MAX_SHOWN, TableVerification
from lite2pg.verify._run import _key_columns, _Run, _safe
from lite2pg.verify._table import _Table

_PG_REFUSED = "PostgreSQL refused the row"


class _RunRejects:
    """Keys of the rows the run logged as rejected (rejects/<table>.jsonl)."""

    def __init__(self, path: Path, table: _Table | None) -> None:
        self.keys: set[tuple[Any, ...]] = set()
        self.refused_rows: list[dict[str, Any]] = []
        self.reasons: collections.Counter[str] = collections.Counter()
        self.count = 0
        if not path.is_file():
            return
        with path.open(encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                record = json.loads(line)
                self.count += 1
                reason = str(record.get("reason") or "")
                self.reasons[_reason_category(reason)] += 1
                if table is None:
                    continue
                key = record.get("key") or {}
                if table.key_s and "row_number" not in key:
                    columns = table.pipe.source_columns
                    raw = [from_json_value(key.get(columns[i])) for i in table.key_s]
                    fake = (1, *[None] * table.n)
                    fake_list = list(fake)
                    for i, v in zip(table.key_s, raw, strict=True):
                        fake_list[1 + i] = v
                    self.keys.add(table.key_of_source(tuple(fake_list), None))
                elif reason.startswith(_PG_REFUSED):
                    self.refused_rows.append(
                        {k: from_json_value(v) for k, v in (record.get("row") or {}).items()}
                    )


_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_NUMBER = re.compile(r"(?<![\w-])-?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?![\w-])")


def _reason_category(reason: str) -> str:
    """A reject reason without its values, so that reasons can be counted as categories."""
    text = _QUOTED.sub("…", reason)
    text = re.sub(r"x'[0-9a-f]*(?:\.\.\.)?'", "…", text)
    return _NUMBER.sub("#", text)[:120]


def _check_run_rejects(
    run: _Run, tm: TableMap, tv: TableVerification, gone: dict[str, list[Row]]
) -> None:
    """Rows the run logged as rejected must not be in PostgreSQL; also the reasons chart."""
    path = run.run_dir / "rejects" / f"{_safe(tm.source.name)}.jsonl"
    t = _Table(run, tm.source.name, gone) if _key_columns(tm) and path.is_file() else None
    rejects = _RunRejects(path, t)
    tv.reject_reasons = dict(rejects.reasons.most_common(12))
    if t is None or not rejects.keys:
        return
    keys = [[(k[1] if len(k) > 1 else None) for k in key] for key in rejects.keys]
    present: list[Row] = []
    for start in range(0, len(keys), 1000):
        chunk = keys[start : start + 1000]
        cond = sql.SQL(" OR ").join(
            sql.SQL("({})").format(
                sql.SQL(" AND ").join(
                    sql.SQL("{} = {}").format(_pg_canon(tm.columns[i]), sql.Literal(v))
                    for i, v in zip(t.key_s, key, strict=True)
                )
            )
            for key in chunk
        )
        present.extend(
            run.pg.execute(
                sql.SQL("SELECT {} FROM {}.{} WHERE {}").format(
                    sql.SQL(", ").join(_pg_canon(tm.columns[i]) for i in t.key_s),
                    sql.Identifier(run.opts.schema),
                    sql.Identifier(tm.target),
                    cond,
                )
            ).fetchall()
        )
    tv.run_rejects_present = len(present)
    for key in present[: max(0, MAX_SHOWN - len(tv.differences))]:
        tv.differences.append(
            {"kind": "logged as rejected but present", "key": t.key_display(list(key))}
        )
