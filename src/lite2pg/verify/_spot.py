"""Spot-checks: a few seeded random rows per table, source raw -> expected -> target."""

from __future__ import annotations

import random
from typing import Any

from psycopg import sql

from lite2pg import source
from lite2pg.rows import TableCounts
from lite2pg.schema import TableMap
from lite2pg.source import quote_ident
from lite2pg.transforms.passwords import (
    CacheReader,
)
from lite2pg.verify._canon import REDACTED, Row, _pg_canon, _show
from lite2pg.verify._passwords import _Password, _password_matches
from lite2pg.verify._run import _Run
from lite2pg.verify._table import _Table


def _spot_checks(
    run: _Run, tm: TableMap, gone: dict[str, list[Row]], sample: int, seed: int
) -> list[dict[str, Any]]:
    """`sample` seeded random rows: source raw -> what the plan makes of it -> target."""
    if sample <= 0:
        return []
    # A few rows only: read them with the decoder that survives invalid UTF-8 text.
    factory = run.src.text_factory
    run.src.text_factory = source.decode_text
    try:
        return _spot_checks_decoded(run, tm, gone, sample, seed)
    finally:
        run.src.text_factory = factory


def _spot_checks_decoded(
    run: _Run, tm: TableMap, gone: dict[str, list[Row]], sample: int, seed: int
) -> list[dict[str, Any]]:
    t = _Table(run, tm.source.name, gone)
    name = quote_ident(tm.source.name)
    raw_cols = [quote_ident(c) for c in t.pipe.source_columns]
    where = f"({t.pipe.where})" if t.pipe.where else "1"
    rng = random.Random(f"{seed}:{tm.source.name}")
    picked: list[Row] = []

    # The expressions verify compares and the raw columns shown are read by two queries:
    # together they can pass SQLite's 2,000-column limit on a wide table.
    def both(where_one: str, params: tuple[Any, ...]) -> Row | None:
        halves = []
        for exprs in (t.sqlite_select, raw_cols):
            row = run.src.execute(
                f"SELECT {', '.join(exprs)} FROM {name} WHERE {where_one}", params
            ).fetchone()
            if row is None:
                return None
            halves.append(tuple(row))
        return halves[0] + halves[1]

    if not tm.source.without_rowid:
        lo, hi = run.src.execute(  # two subqueries: each a lookup, not one scan for both
            f"SELECT (SELECT min(rowid) FROM {name}), (SELECT max(rowid) FROM {name})"
        ).fetchone()
        if lo is not None:
            seen: set[int] = set()
            for _ in range(sample * 3):
                if len(picked) >= sample:
                    break
                found = run.src.execute(
                    f"SELECT rowid FROM {name} WHERE rowid >= ? AND {where} ORDER BY rowid LIMIT 1",
                    (rng.randint(lo, hi),),
                ).fetchone()
                if found is None or found[0] in seen:
                    continue
                seen.add(found[0])
                row = both("rowid = ?", (found[0],))
                if row is not None:
                    picked.append(row)
    else:
        total = source.count_rows(run.src, tm.source.name, t.pipe.where)
        order = ", ".join(t.sqlite_order) or "1"
        for k in sorted(rng.sample(range(total), min(sample, total))):
            row = both(f"{where} ORDER BY {order} LIMIT 1 OFFSET ?", (k,))
            if row is not None:
                picked.append(row)
    width = len(t.sqlite_select)
    counts = TableCounts()
    cache = CacheReader.open(run.run_dir) if t.pipe.hashed else None
    out: list[dict[str, Any]] = []
    try:
        for row in picked:
            out.append(_spot_check(run, t, row[:width], row[width:], counts, cache))
    finally:
        if cache is not None:
            cache.close()
    return out


def _spot_check(
    run: _Run,
    t: _Table,
    raw: Row,
    shown: Row,
    counts: TableCounts,
    cache: CacheReader | None,
) -> dict[str, Any]:
    tm = t.tm
    expected, reason, _column = t.expect(raw, counts, cache, [0] * len(t.pipe.hashed))
    if expected is None:
        key_values = [raw[1 + i] for i in t.key_s]
    else:
        key_values = [expected[1 + i] for i in t.key_s]
    target_row: Row | None = None
    if t.key_s and None not in key_values:
        cond = sql.SQL(" AND ").join(
            sql.SQL("{} = {}").format(_pg_canon(tm.columns[i]), sql.Literal(v))
            for i, v in zip(t.key_s, key_values, strict=True)
        )
        target_row = run.pg.execute(
            sql.SQL("SELECT {} FROM {} WHERE {}").format(t.pg_select, t.qualified, cond)
        ).fetchone()
    columns = []
    for i, c in enumerate(tm.columns):
        secret = t.secret[i]
        e = None if expected is None else expected[1 + i]
        g = None if target_row is None else target_row[1 + i]
        if isinstance(e, _Password):
            same = _password_matches(e, g)
            e_text = REDACTED
        else:
            same = e == g and type(e) is type(g)
            e_text = _show(e, secret)
        checked = expected is not None and target_row is not None
        columns.append(
            {
                "column": c.target,
                "source": _show(shown[i], secret) if c.source is not None else "(added)",
                "expected": e_text if expected is not None else "",
                "target": _show(g, secret) if target_row is not None else "",
                "ok": bool(same) if checked else None,
            }
        )
    if expected is None:
        outcome = f"rejected: {reason}"
    elif not t.key_s:
        outcome = "not looked up (no key)"
    elif target_row is None:
        outcome = "missing in PostgreSQL"
    else:
        outcome = "equal" if all(c["ok"] for c in columns) else "differs"
    return {
        "table": tm.source.name,
        "key": t.key_display(key_values) if t.key_s else {},
        "outcome": outcome,
        "columns": columns,
    }
