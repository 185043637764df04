"""The ordered comparison: both sides streamed in key order, equal windows compared with one
list comparison, a differing window merged row by row through the run's pipeline."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg import sql

from lite2pg.coerce import Family
from lite2pg.load import prefetch
from lite2pg.verify._canon import REDACTED, Row, _cmp, _Digests, _show, null_marker
from lite2pg.verify._passwords import _Password, _PasswordChecks
from lite2pg.verify._stream import WINDOW, _Stream, _UnitResult, _UnitSpec
from lite2pg.verify._table import _Table, _Unordered


class _Ordered(_Stream):
    """The streaming merge of one key range: source rows (through the pipeline) against
    PostgreSQL's canonical rows, both in key order."""

    def __init__(self, t: _Table, spec: _UnitSpec, res: _UnitResult) -> None:
        super().__init__(t, spec, res)
        self.digests = _Digests([null_marker(c.pg_type) for c in t.columns])
        self.last_key: tuple[Any, ...] | None = None
        self.passwords = _PasswordChecks(
            res.passwords, t.pipe.hashed, spec.sample, f"{spec.seed}:{t.tm.source.name}:{spec.unit}"
        )
        self.other_cache: dict[tuple[int, str], str | None] = {}

    def run(self) -> None:
        self.compare_range()
        self._finish()

    def compare_range(self) -> None:
        """Merge the rows of the key range [self.lo, self.hi) into the job's results."""
        src = _Buffer(self._source_batches(True))
        tgt = _Buffer(prefetch(self._target_batches(True), depth=2))
        res = self.res
        digests = self.digests
        while True:
            src.fill(WINDOW)
            tgt.fill(WINDOW)
            if not src.left and not tgt.left:
                break
            n = min(src.left, tgt.left, WINDOW)
            if n:
                s = src.window(n)
                p = tgt.window(n)
                if s == p:
                    digests.both(p)
                    if self.fk_getters:
                        self._count_both(p)
                    src.pos += n
                    tgt.pos += n
                    res.fast += n
                    res.present += n
                    continue
            s = src.window(WINDOW)
            p = tgt.window(WINDOW)
            i, j = self._merge(
                s, p, src.done and src.left == len(s), tgt.done and tgt.left == len(p)
            )
            src.pos += i
            tgt.pos += j
        src.close()
        tgt.close()

    def _merge(self, s: list[Row], p: list[Row], s_final: bool, p_final: bool) -> tuple[int, int]:
        t, res = self.t, self.res
        i = j = 0
        exp_rows: list[Row] = []
        pg_rows: list[Row] = []
        exact = True
        while True:
            if i == len(s):
                if s_final:
                    while j < len(p):
                        self._extra(p[j])
                        pg_rows.append(p[j])
                        j += 1
                        exact = False
                break
            if j == len(p) and not p_final:
                break
            raw = s[i]
            lazy = raw[0] == 1
            expected: Row | None = None
            reason = column = None
            if not lazy:
                expected, reason, column = self._expect(raw)
            key = t.key_of_source(raw, expected)
            try:
                if self.last_key is not None and key < self.last_key:
                    raise _Unordered
                cmp = -1 if j == len(p) else _cmp(key, t.key_of_target(p[j]))
            except TypeError:
                raise _Unordered from None
            self.last_key = key
            res.slow += 1
            if cmp < 0:  # no such row in PostgreSQL
                if lazy:
                    expected, reason, column = self._expect(raw)
                exact &= self._absent(raw, key, expected, reason, column)
                i += 1
            elif cmp > 0:
                res.slow -= 1
                self._extra(p[j])
                pg_rows.append(p[j])
                j += 1
                exact = False
            else:
                prow = p[j]
                pg_rows.append(prow)
                i += 1
                j += 1
                if lazy and raw == prow:
                    exp_rows.append(prow)
                    self._observe(raw, prow)
                    res.present += 1
                    continue
                if lazy:
                    expected, reason, column = self._expect(raw)
                if expected is None:
                    res.rejected_present += 1
                    self._difference(
                        "rejected but present",
                        key,
                        reason=f"transform(source) rejects it: {reason}",
                        column=column,
                    )
                    exact = False
                    continue
                final, diffs, same = self._compare_row(expected, prow)
                exp_rows.append(final)
                exact &= same
                self._observe(raw, final)
                if diffs:
                    res.changed += 1
                    self._difference("changed", key, columns=diffs)
                else:
                    res.present += 1
        if exact:
            self.digests.both(pg_rows)
        else:
            self.digests.apart(exp_rows, pg_rows)
        self._count_target(pg_rows)
        return i, j

    def _absent(
        self,
        raw: Row,
        key: tuple[Any, ...],
        expected: Row | None,
        reason: str | None,
        column: str | None,
    ) -> bool:
        """A source row PostgreSQL does not have; True when that is as it should be."""
        res = self.res
        if expected is None:
            res.rejected += 1
            self._gone(raw)
            return True
        if key in self.rejects.keys:
            res.refused += 1
            self._gone(raw)
            return True
        res.missing += 1
        final = tuple((None if isinstance(v, _Password) else v) for v in expected)
        self._observe(raw, final)
        self._difference("missing", key)
        return False

    def _count_both(self, rows: Sequence[Row]) -> None:
        for get, shared, _src, _tgt in self.fk_getters:
            shared.update(map(get, rows))

    def _extra(self, prow: Row) -> None:
        self.res.extra += 1
        self._difference("extra", self.t.key_of_target(prow))

    def _compare_row(self, expected: Row, prow: Row) -> tuple[Row, list[dict[str, str]], bool]:
        """(expected row as hashed into the digest, differing columns, bit-exact equal)."""
        t = self.t
        final = list(expected)
        diffs: list[dict[str, str]] = []
        same = True
        tol = self.spec.tolerance
        for i, c in enumerate(t.columns):
            e = expected[1 + i]
            g = prow[1 + i]
            ok: bool
            if isinstance(e, _Password):
                ok = self.passwords.check(c.source or c.target, e, g)
                final[1 + i] = g if ok else "<not the password's hash>"
            elif e is None or g is None:
                ok = e is None and g is None
            elif c.pg_type.family is Family.FLOAT:
                exact = e == g and math.copysign(1.0, e) == math.copysign(1.0, g)
                ok = exact or (tol > 0 and abs(e - g) <= tol)
                same &= exact
            elif c.pg_type.family is Family.OTHER and e != g:
                ok = self._pg_parse(i, e) == g
                if ok:
                    final[1 + i] = g
            else:
                ok = e == g and type(e) is type(g)
            if not ok:
                same = False
                diffs.append(
                    {
                        "column": c.target,
                        "source": REDACTED if isinstance(e, _Password) else _show(e, t.secret[i]),
                        "target": _show(g, t.secret[i] or isinstance(e, _Password)),
                    }
                )
        return tuple(final), diffs, same

    def _pg_parse(self, i: int, text: str) -> str | None:
        """PostgreSQL's canonical text of `text` as column i's type (uuid case, json...)."""
        key = (i, text)
        if key not in self.other_cache:
            c = self.t.columns[i]
            try:
                with self.t.run.pg.transaction():
                    row = self.t.run.pg.execute(
                        sql.SQL("SELECT %s::text::{}::text").format(sql.SQL(c.pg_type.sql)),
                        (text,),
                    ).fetchone()
                self.other_cache[key] = None if row is None else row[0]
            except psycopg.Error:
                self.other_cache[key] = None
            if len(self.other_cache) > 10_000:
                self.other_cache.clear()
        return self.other_cache.get(key)

    def _finish(self) -> None:
        res = self.res
        self.passwords.verify_samples()
        res.source_digest, res.target_digest = self.digests.result()
        res.gone = dict(self.t.gone.recorded)


class _Buffer:
    """Rows of one side, refilled batch by batch, consumed from `pos`."""

    def __init__(self, batches: Iterator[list[Row]]) -> None:
        self.batches = batches
        self.rows: list[Row] = []
        self.pos = 0
        self.done = False

    @property
    def left(self) -> int:
        return len(self.rows) - self.pos

    def fill(self, n: int) -> None:
        while not self.done and self.left < n:
            batch = next(self.batches, None)
            if batch is None:
                self.done = True
                break
            self.rows = batch if self.pos == len(self.rows) else self.rows[self.pos :] + batch
            self.pos = 0

    def window(self, n: int) -> list[Row]:
        if self.pos == 0 and len(self.rows) <= n:
            return self.rows
        return self.rows[self.pos : self.pos + n]

    def close(self) -> None:
        close = getattr(self.batches, "close", None)
        if close is not None:
            close()
