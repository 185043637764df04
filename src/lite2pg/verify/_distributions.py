"""Application-level checks: value distributions of `map` columns and rows per parent key
of foreign key columns, source-through-plan against PostgreSQL."""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
from collections.abc import Callable, Sequence
from typing import Any

from psycopg import sql

from lite2pg.schema import TableMap
from lite2pg.verify._canon import _pg_canon, _show
from lite2pg.verify._report import MAX_PAIRS, MAX_SHOWN, DistributionCheck
from lite2pg.verify._run import _Run
from lite2pg.verify._stream import _UnitResult

# Rows per FK value are an app check beside the proof (every row's FK value is compared
# with the row): past this many distinct values of a column, its counts are not held in
# memory (at 5 GB, 2M accounts held 680 MB) and the check is listed as not made.
FK_GROUPS_HELD = 200_000


class _FkTotals:
    """Rows per FK value of one table, summed over its units as they finish."""

    def __init__(self) -> None:
        self.columns: dict[str, tuple[collections.Counter[Any], ...]] = {}
        # Fast path units: raw FK values of their slow chunks' source rows, per column.
        self.raw_slow: dict[str, collections.Counter[Any]] = {}
        self.fast = False
        # Columns with too many distinct values to hold (_main.FK_GROUPS_HELD): not checked.
        self.not_held: list[str] = []

    def add_source(
        self,
        column: str,
        raw: collections.Counter[Any],
        key: Callable[[Any], Any],
        integers: bool,
    ) -> None:
        """Count the rows the fast path proved equal: the snapshot's rows per raw value of
        the column (`raw`, after the plan's filter) less those of the slow chunks, each raw
        value as the canonical value `key` makes of it (those rows are equal on both sides,
        so that is their value in PostgreSQL too). With `integers` (an integer column), an
        int is its own canonical value: the only ones left after the slow chunks'."""
        if column in self.not_held:
            return
        proved: collections.Counter[Any] = collections.Counter()
        slow = self.raw_slow.get(column)
        if slow:
            raw = raw.copy()
            raw.subtract(slow)
        if integers:
            proved.update({(v if type(v) is int else key(v)): n for v, n in raw.items() if n})
        else:
            proved.update({key(value): n for value, n in raw.items() if n})
        if len(proved) < sum(1 for n in raw.values() if n):
            # Two raw values with one canonical value (5 and '5' in a text column): add up.
            proved.clear()
            for value, n in raw.items():
                if n:
                    proved[key(value)] += n
        totals = self.columns.setdefault(
            column, (collections.Counter(), collections.Counter(), collections.Counter())
        )
        _add(totals[0], proved)
        self._hold(column)

    def add(self, unit: _UnitResult) -> None:
        if unit.fk_raw_slow is not None:
            self.fast = True
            for column, counts in unit.fk_raw_slow.items():
                if column in self.not_held:
                    continue
                held = self.raw_slow.setdefault(column, collections.Counter())
                _add(held, counts)
                if len(held) > FK_GROUPS_HELD:
                    del self.raw_slow[column]
                    self.columns.pop(column, None)
                    self.not_held.append(column)
            unit.fk_raw_slow = {}
        for column, shared in unit.fk_shared.items():
            if column in self.not_held:
                continue
            totals = self.columns.setdefault(
                column, (collections.Counter(), collections.Counter(), collections.Counter())
            )
            _add(totals[0], shared)
            _add(totals[1], unit.fk_source.get(column, collections.Counter()))
            _add(totals[2], unit.fk_target.get(column, collections.Counter()))
            self._hold(column)
        # Only the totals are kept: a unit's counts can be as many as the parent's rows.
        unit.fk_shared, unit.fk_source, unit.fk_target = {}, {}, {}

    def _hold(self, column: str) -> None:
        """Past FK_GROUPS_HELD values, a column's counts go (and its check is not made)."""
        if sum(map(len, self.columns[column])) > FK_GROUPS_HELD:
            del self.columns[column]
            self.not_held.append(column)

    def checks(self, table: str) -> list[DistributionCheck]:
        """Source-through-plan (the expected rows) against PostgreSQL's rows."""
        out: list[DistributionCheck] = []
        for column in sorted(set(self.not_held)):
            check = DistributionCheck(table, column, "foreign key")
            check.not_made = "too many distinct values to hold in memory"
            out.append(check)
        for column in sorted(set(self.columns) - set(self.not_held)):
            shared, src_only, tgt_only = self.columns[column]
            check = DistributionCheck(table, column, "foreign key")
            src = tgt = shared
            if +src_only or +tgt_only:
                src = shared + src_only + collections.Counter()  # drops counts <= 0
                tgt = shared + tgt_only + collections.Counter()
            check.groups_source = sum(map(bool, src.values()))
            check.groups_target = (
                check.groups_source if src is tgt else sum(map(bool, tgt.values()))
            )
            check.source_digest = _distribution_digest(src)
            same = src is tgt or src == tgt  # Counter equality walks every key: once
            check.target_digest = check.source_digest if same else _distribution_digest(tgt)
            if not same:
                check.differences = _differences(src, tgt)
            out.append(check)
        return out


def _add(total: collections.Counter[Any], counts: collections.Counter[Any]) -> None:
    """total += counts, the cheaper way: a dict update in C into an empty total; else one
    step per distinct value, or counting the elements in C when that is fewer steps."""
    if not total:
        dict.update(total, counts)
    elif len(counts) * 4 < counts.total():
        get = total.get
        for k, n in counts.items():
            total[k] = get(k, 0) + n
    else:
        total.update(counts.elements())


def _map_distributions(
    run: _Run, tm: TableMap, units: Sequence[_UnitResult]
) -> list[DistributionCheck]:
    """Each `map` column: the values transform(source) gives against PostgreSQL's GROUP BY."""
    out: list[DistributionCheck] = []
    columns = sorted({c for u in units for c in u.mapped})
    for column in columns:
        source_counts: collections.Counter[Any] = collections.Counter()
        pairs: collections.Counter[tuple[str, str]] = collections.Counter()
        for u in units:
            source_counts.update(u.mapped.get(column, {}))
            pairs.update(u.pairs.get(column, {}))
        c = next(c for c in tm.columns if c.target == column)
        rows = run.pg.execute(
            sql.SQL("SELECT {}, count(*) FROM {}.{} GROUP BY 1").format(
                _pg_canon(c), sql.Identifier(run.opts.schema), sql.Identifier(tm.target)
            )
        ).fetchall()
        target_counts = {r[0]: int(r[1]) for r in rows}
        check = DistributionCheck(tm.source.name, column, "map")
        check.groups_source = sum(1 for v in source_counts.values() if v)
        check.groups_target = len(target_counts)
        check.source_digest = _distribution_digest(source_counts)
        check.target_digest = _distribution_digest(target_counts)
        check.differences = _differences(source_counts, target_counts)
        check.mapping = [
            {"before": before, "after": after, "rows": n}
            for (before, after), n in sorted(pairs.items(), key=lambda x: (-x[1], x[0]))
        ][:MAX_PAIRS]
        out.append(check)
    return out


def _differences(
    src: collections.abc.Mapping[Any, int], tgt: collections.abc.Mapping[Any, int]
) -> list[dict[str, Any]]:
    """The first MAX_SHOWN values whose counts differ, in value order (NULL first)."""
    out: list[dict[str, Any]] = []
    for k in sorted(set(src) | set(tgt), key=_value_order):
        a, b = src.get(k, 0), tgt.get(k, 0)
        if a != b and len(out) < MAX_SHOWN:
            out.append({"value": _show(k), "source": a, "target": b})
    return out


def _value_order(v: Any) -> tuple[int, str]:
    return (0, "") if v is None else (1, repr(v))


def _distribution_digest(counts: collections.abc.Mapping[Any, int]) -> str:
    """SHA-256 of (value, count) pairs in value order (NULL first), zero counts left out."""
    keys = [k for k, n in counts.items() if n and k is not None]
    try:
        keys.sort()
    except TypeError:  # values of several types: any fixed order will do
        keys.sort(key=_value_order)
    if counts.get(None):
        keys.insert(0, None)
    values = list(map(counts.__getitem__, keys))
    h = hashlib.sha256()
    if keys:
        h.update(_pickled([tuple(keys), tuple(values)]))
    return h.hexdigest()


def _pickled(rows: Sequence[tuple[Any, ...]]) -> memoryview:
    """The tuples as the concatenation of each one's pickle (protocol 3, no memo), as
    lite2pg-v1 row digests were: distribution digests keep that definition."""
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, 3)
    pickler.fast = True  # no memo: equal values always give equal bytes
    pickler.dump((None, None, None, None, *rows))
    # Strip PROTO 3 + MARK + 4 x NONE at the front and TUPLE + STOP at the end.
    return buf.getbuffer()[7:-2]
