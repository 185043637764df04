"""Tables without a usable key order: the multisets of canonical rows compared by an
order-independent digest."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from decimal import InvalidOperation
from pathlib import Path
from typing import Any

from lite2pg.rows import TableCounts
from lite2pg.verify._canon import Row, _show, null_marker, row_hash, row_text
from lite2pg.verify._stream import _Stream

# Rows named when the multisets differ (missing and extra ones, each side).
NAMED_ROWS = 20


class _UnorderedStream(_Stream):
    """A content job compared without key order."""

    def run(self) -> None:
        """Compare the multisets of canonical rows by an order-independent digest."""
        t, res = self.t, self.res
        res.mode = "unordered"
        modulus = 1 << 256
        nulls = [null_marker(c.pg_type) for c in t.columns]

        def _row_hash(row: Row) -> int:
            return row_hash(row_text(row, nulls))

        src_sum = 0
        # Without a key, a password cannot be looked up in the run's cache: not compared.
        hidden = {1 + pos for pos, _c, _p in t.pipe.hashed}
        if hidden:
            res.notes.append("password columns of a table without a primary key: not compared")
        for batch in self._source_batches(False):
            for raw in batch:
                res.slow += 1
                expected, _reason, _column = self._expect(raw)
                if expected is None:
                    res.rejected += 1
                    self._gone(raw)
                    continue
                if hidden:
                    expected = tuple(None if i in hidden else v for i, v in enumerate(expected))
                self._observe(raw, expected)
                final = expected
                src_sum = (src_sum + _row_hash(final)) % modulus
        # Rows PostgreSQL refused cannot be told apart by a key: take them out by value.
        refused: list[Row] = []
        for logged in self.rejects.refused_rows:
            values = [logged.get(c) for c in t.pipe.source_columns]
            try:
                canon = (
                    1,
                    *(t.canon[i](v) for i, v in enumerate(values)),
                    *t.consts,
                    *([0] * t.n_orph),
                )
            except (ValueError, TypeError, InvalidOperation):
                continue
            if hidden:
                canon = tuple(None if i in hidden else v for i, v in enumerate(canon))
            src_sum = (src_sum - _row_hash(canon)) % modulus
            res.refused += 1
            refused.append(canon)
        tgt_sum = 0
        for batch in self._target_batches(False):
            for prow in batch:
                if hidden:
                    prow = tuple(None if i in hidden else v for i, v in enumerate(prow))
                tgt_sum = (tgt_sum + _row_hash(prow)) % modulus
            self._count_target(batch)
        res.source_digest = src_sum.to_bytes(32, "big")
        res.target_digest = tgt_sum.to_bytes(32, "big")
        expected_rows = res.streamed - res.rejected - res.refused
        res.present = min(expected_rows, res.target_rows)
        if res.source_digest != res.target_digest:
            res.missing = max(0, expected_rows - res.target_rows)
            res.extra = max(0, res.target_rows - expected_rows)
            res.differences.append(
                {
                    "kind": "digest",
                    "key": {},
                    "reason": (
                        "the multiset of rows differs (order-independent digest); "
                        f"{expected_rows} expected rows, {res.target_rows} in PostgreSQL"
                    ),
                }
            )
            self._name_rows(_row_hash, hidden, refused)
        res.gone = dict(t.gone.recorded)

    def _name_rows(
        self, hash_of: Callable[[Row], int], hidden: set[int], refused: list[Row]
    ) -> None:
        """The digests differ: find the rows. Both sides' row hashes are counted in a
        temporary SQLite file (memory stays flat), then the rows whose counts differ are
        read again and named by their values; a missing and an extra row that differ in
        one column are one changed row, named with the column and both values."""
        t, res = self.t, self.res
        kept = (res.streamed, res.target_rows, res.orphans_nulled)  # the passes add to them

        def mask(row: Row) -> Row:
            return tuple(None if i in hidden else v for i, v in enumerate(row)) if hidden else row

        def expected_rows() -> Iterator[Row]:
            for batch in self._source_batches(False):
                for raw in batch:
                    out = t.expect(raw, TableCounts(), self.cache, self.pw_index)[0]
                    if out is not None:
                        yield mask(out)

        def target_rows() -> Iterator[Row]:
            for batch in self._target_batches(False):
                yield from (mask(r) for r in batch)

        with tempfile.TemporaryDirectory(prefix="lite2pg-verify-") as tmp:
            db = sqlite3.connect(Path(tmp) / "rows.db")
            try:
                db.execute("CREATE TABLE h (h BLOB NOT NULL, side INTEGER NOT NULL)")
                # A row PostgreSQL refused is expected absent: it counts as if it were there.
                for side, rows in ((0, expected_rows()), (1, target_rows()), (1, iter(refused))):
                    db.executemany(
                        "INSERT INTO h VALUES (?, ?)",
                        ((hash_of(r).to_bytes(32, "big"), side) for r in rows),
                    )
                odd = {
                    bytes(h): (int(s), int(g))
                    for h, s, g in db.execute(
                        "SELECT h, sum(side = 0), sum(side = 1) FROM h GROUP BY h "
                        f"HAVING sum(side = 0) != sum(side = 1) LIMIT {4 * NAMED_ROWS}"
                    )
                }
            finally:
                db.close()
        missing = self._rows_of(expected_rows(), hash_of, odd, lambda s, g: s > g)
        extra = self._rows_of(target_rows(), hash_of, odd, lambda s, g: g > s)
        res.streamed, res.target_rows, res.orphans_nulled = kept
        names = [c.target for c in t.columns]
        for m in missing:
            partner = next((x for x in extra if _one_apart(m, x)), None)
            if partner is not None:
                extra.remove(partner)
                i = next(k for k in range(len(names)) if m[1 + k] != partner[1 + k])
                res.differences.append(
                    {
                        "kind": "changed",
                        "key": self._row_key(m, skip=i),
                        "columns": [
                            {
                                "column": names[i],
                                "source": _show(m[1 + i], t.secret[i]),
                                "target": _show(partner[1 + i], t.secret[i]),
                            }
                        ],
                    }
                )
            else:
                res.differences.append({"kind": "missing", "key": self._row_key(m)})
        for x in extra:
            res.differences.append({"kind": "extra", "key": self._row_key(x)})

    def _rows_of(
        self,
        rows: Iterator[Row],
        hash_of: Callable[[Row], int],
        odd: dict[bytes, tuple[int, int]],
        wanted: Callable[[int, int], bool],
    ) -> list[Row]:
        out: list[Row] = []
        seen: dict[bytes, int] = {}
        for r in rows:
            h = hash_of(r).to_bytes(32, "big")
            counts = odd.get(h)
            if counts is None or not wanted(*counts):
                continue
            seen[h] = seen.get(h, 0) + 1
            if seen[h] <= abs(counts[0] - counts[1]) and len(out) < NAMED_ROWS:
                out.append(r)
        return out

    def _row_key(self, row: Row, skip: int | None = None) -> dict[str, Any]:
        """A row without a key, named by its other columns' values."""
        t = self.t
        return {
            c.target: _show(row[1 + i], t.secret[i]) for i, c in enumerate(t.columns) if i != skip
        }


def _one_apart(a: Row, b: Row) -> bool:
    return sum(1 for x, y in zip(a, b, strict=True) if x != y or type(x) is not type(y)) == 1
