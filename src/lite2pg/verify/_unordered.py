"""Tables without a usable key order: the multisets of canonical rows compared by an
order-independent digest."""

from __future__ import annotations

from decimal import InvalidOperation

from lite2pg.verify._canon import Row, null_marker, row_hash, row_text
from lite2pg.verify._stream import _Stream


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
        res.gone = dict(t.gone.recorded)
