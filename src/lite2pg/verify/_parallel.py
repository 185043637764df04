"""Content jobs: key ranges per table (or slices of a table without a key), run parents
first, in worker processes (forkserver) when the run is big enough; `_run_unit` is what
each worker runs."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools
import math
import multiprocessing
import multiprocessing.context
import multiprocessing.forkserver
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lite2pg.layout import table_plan
from lite2pg.plan import orphan_policy
from lite2pg.schema import TableMap
from lite2pg.target import Target
from lite2pg.verify._canon import Row
from lite2pg.verify._content import _Ordered
from lite2pg.verify._distributions import _FkTotals
from lite2pg.verify._fast import _Fast, fast_path_refusal
from lite2pg.verify._report import VerifyError
from lite2pg.verify._run import _open_run, _Run
from lite2pg.verify._sorted import _Sorted
from lite2pg.verify._stream import _Stream, _UnitResult, _UnitSpec
from lite2pg.verify._table import _Table, _Unordered
from lite2pg.verify._unordered import _UnorderedStream
from lite2pg.workers import deferred_interrupts, ignore_interrupts, kill_pool


def _run_unit(spec: _UnitSpec) -> _UnitResult:
    """Verify the content of one table (or key range): runs in a worker process."""
    started = time.perf_counter()
    run = _open_run(Path(spec.run_dir), Target(spec.dsn, "--target"), spec.pg_snapshot)
    try:
        res = _UnitResult(spec.table, spec.unit)
        t = _Table(run, spec.table, spec.gone)
        if not t.key_s:
            job = _Sorted(t, spec, res)
            _compare(job)
            res = job.res  # a new one when the comparison started over without order
        else:
            try:
                res.refusal = fast_path_refusal(t)
                _compare(_Ordered(t, spec, res) if res.refusal else _Fast(t, spec, res))
            except _Unordered:
                res = _UnitResult(spec.table, spec.unit, refusal="keys of mixed storage classes")
                res.notes.append(
                    "source keys do not sort as the target's (mixed storage classes): "
                    "compared without order"
                )
                _compare(_UnorderedStream(_Table(run, spec.table, spec.gone), spec, res))
        res.seconds = time.perf_counter() - started
        return res
    finally:
        run.close()


def _compare(job: _Stream) -> None:
    try:
        job.run()
    finally:
        job.close()


def _unit_specs(
    run_dir: Path,
    target: Target,
    pg_snapshot: str | None,
    order: Sequence[TableMap],
    sizes: dict[str, int],
    bounds: dict[str, tuple[int, int] | None],
    sample: int,
    seed: int,
    tolerance: float,
    unit_rows: int,
) -> dict[str, list[_UnitSpec]]:
    """Content jobs per table: key ranges of about `unit_rows` rows for big rowid tables."""
    out: dict[str, list[_UnitSpec]] = {}
    for tm in order:
        name = tm.source.name
        ranges: list[tuple[int | None, int | None]] = [(None, None)]
        b = bounds.get(name)
        if b is not None:
            lo, hi = b
            n = max(1, math.ceil(sizes[name] / unit_rows))
            width = max(1, math.ceil((hi - lo + 1) / n))
            cuts = [lo + k * width for k in range(1, n) if lo + k * width <= hi]
            edges: list[int | None] = [None, *cuts, None]
            ranges = list(itertools.pairwise(edges))
        # Each range samples passwords on its own: spread the sample over them.
        per = math.ceil(sample / len(ranges)) if sample else 0
        out[name] = [
            _UnitSpec(
                str(run_dir), target.dsn, pg_snapshot, name, k, a, z, {}, per, seed, tolerance
            )
            for k, (a, z) in enumerate(ranges)
        ]
    return out


def _context() -> multiprocessing.context.ForkServerContext:
    """Workers fork from a server that has imported lite2pg once (if it starts now; a
    server a migrate started has its own imports)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["lite2pg.verify"])
    return context


def start_workers_early(rows: int, jobs: int, parallel_min_rows: int) -> None:
    """Start the forkserver now when the content jobs will want worker processes (`rows`
    and `jobs`: what the run reports, as `_run_jobs` will decide), so that its imports
    (0.3 s of CPU) overlap the catalog and count checks instead of delaying the first job.
    A wrong guess costs an idle process."""
    if min(os.cpu_count() or 1, jobs) < 2 or rows < parallel_min_rows:
        return
    try:
        _context()
    except ValueError:  # no forkserver on this platform: the pool starts processes its way
        return
    with deferred_interrupts():
        multiprocessing.forkserver.ensure_running()


def _waits_for(run: _Run) -> dict[str, set[str]]:
    """Tables whose rejected rows decide which references of another table are orphans.

    A parent the run says it took whole (no row rejected or filtered) decides nothing: its
    children need not wait for it. Should that be untrue, the parent's own comparison
    fails, so the shortcut cannot turn a wrong target into a pass."""
    names = {tm.source.name.lower(): tm.source.name for tm in run.maps}
    whole = run.whole
    out: dict[str, set[str]] = {}
    for tm in run.maps:
        tp = table_plan(run.opts.plan, tm.source.name)
        parents: set[str] = set()
        for fk in tm.source.foreign_keys:
            parent = names.get(fk.ref_table.lower())
            if (
                parent
                and parent != tm.source.name
                and parent not in whole
                and orphan_policy(tp, fk.columns) != "keep"
            ):
                parents.add(parent)
        out[tm.source.name] = parents
    return out


Progress = Callable[[str, int, int], None]  # table, rows compared so far, rows in all


def _run_jobs(
    main: _Run,
    order: Sequence[TableMap],
    specs: dict[str, list[_UnitSpec]],
    sizes: dict[str, int],
    parallel_min_rows: int,
    progress: Progress | None = None,
) -> tuple[dict[str, list[_UnitResult]], dict[str, _FkTotals]]:
    """Run every content job, parents before the children whose orphans they decide, in
    worker processes when the run is big enough. `progress` hears of each table as its
    key ranges finish (rows estimated from the share of ranges done)."""
    waits = _waits_for(main)
    # Parents come first in `order`; a wait on a later table closes a cycle: drop it.
    position = {tm.source.name: k for k, tm in enumerate(order)}
    for name in waits:
        waits[name] = {p for p in waits[name] if position[p] < position[name]}
    jobs = sum(len(v) for v in specs.values())
    workers = min(os.cpu_count() or 1, jobs)
    pool: concurrent.futures.Executor
    if workers > 1 and sum(sizes.values()) >= parallel_min_rows:
        pool = concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=_context(), initializer=ignore_interrupts
        )
    else:
        pool = _InlineExecutor()
    results: dict[str, list[_UnitResult]] = {name: [] for name in specs}
    fk_totals = {name: _FkTotals() for name in specs}
    pending = {name: len(v) for name, v in specs.items()}
    gone: dict[str, list[Row]] = {}
    done: set[str] = set()
    todo = list(specs)

    def weight(spec: _UnitSpec) -> float:
        return -sizes[spec.table] / max(1, len(specs[spec.table]))

    running: dict[concurrent.futures.Future[_UnitResult], _UnitSpec] = {}
    again: set[str] = set()  # tables a slice of which asked for one job over every row

    def submit(spec: _UnitSpec) -> None:
        if isinstance(pool, concurrent.futures.ProcessPoolExecutor):
            with deferred_interrupts():  # a submit may start a worker process
                running[pool.submit(_run_unit, spec)] = spec
        else:
            running[pool.submit(_run_unit, spec)] = spec

    killed = False
    try:
        while todo or running:
            ready = [n for n in todo if waits[n] <= done]
            for name in ready:
                todo.remove(name)
            # Largest jobs first, so that the last ones to finish are short.
            for spec in sorted(
                (dataclasses.replace(s, gone=dict(gone)) for n in ready for s in specs[n]),
                key=weight,
            ):
                submit(spec)
            if not running:
                raise VerifyError("tables", "jobs wait on each other in a cycle", "report this bug")
            finished, _ = concurrent.futures.wait(
                running, return_when=concurrent.futures.FIRST_COMPLETED
            )
            for future in finished:
                spec = running.pop(future)
                out = future.result()
                pending[spec.table] -= 1
                if out.whole_again:
                    again.add(spec.table)
                else:
                    results[spec.table].append(out)
                    fk_totals[spec.table].add(out)
                    for k, v in out.gone.items():
                        gone.setdefault(k, []).extend(v)
                    if progress is not None:
                        units = len(specs[spec.table])
                        share = (units - pending[spec.table]) / units
                        progress(spec.table, round(sizes[spec.table] * share), sizes[spec.table])
                if pending[spec.table]:
                    continue
                if spec.table in again:
                    # A slice of a table without a key its texts did not prove: the other
                    # slices' results go, one job compares every row as multisets.
                    again.discard(spec.table)
                    results[spec.table] = []
                    fk_totals[spec.table] = _FkTotals()
                    pending[spec.table] = 1
                    first = specs[spec.table][0]
                    submit(
                        dataclasses.replace(first, lo=None, hi=None, gone=dict(gone), texts=False)
                    )
                else:
                    done.add(spec.table)
    except BaseException:
        for future in running:
            future.cancel()
        killed = isinstance(pool, concurrent.futures.ProcessPoolExecutor)
        kill_pool(pool)
        raise
    finally:
        if not killed:
            pool.shutdown(wait=True, cancel_futures=True)
    return results, fk_totals


class _InlineExecutor(concurrent.futures.Executor):
    """Runs each job at once in this process (small runs: no worker start-up)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as e:
            future.set_exception(e)
        return future
