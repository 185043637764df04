"""Worker processes: every pool of a run (table loads, verify, password hashing) forks
from one forkserver, which imports lite2pg once.

`start_early` starts that server at the beginning of a run, so that its imports overlap
the snapshot instead of delaying the first table (0.3 s measured on a 2-core machine).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import multiprocessing.forkserver
import signal
import threading
from collections.abc import Iterator
from multiprocessing.context import ForkServerContext
from types import FrameType
from typing import Any

__all__ = ["context", "deferred_interrupts", "ignore_interrupts", "kill_pool", "start_early"]

# What the server imports before it forks a worker: the stages the workers run (the export
# runs in a thread of the run's own process).
PRELOAD = ["lite2pg.staging"]


def context() -> ForkServerContext:
    """The forkserver context, with lite2pg preloaded (once the server runs, it keeps the
    modules it started with)."""
    mp = multiprocessing.get_context("forkserver")
    mp.set_forkserver_preload(PRELOAD)
    return mp


def start_early() -> None:
    """Start the forkserver now, where the platform has one."""
    try:
        context()
    except ValueError:  # no forkserver here (Windows): pools start processes their way
        return
    with deferred_interrupts(), _sigint_ignored_by_child():
        multiprocessing.forkserver.ensure_running()


@contextlib.contextmanager
def _sigint_ignored_by_child() -> Iterator[None]:
    """Start the forkserver from here with SIGINT ignored, which it inherits.

    The server ignores Ctrl-C only once it has imported `PRELOAD`; a Ctrl-C in the second
    that takes (the run may be loading by then) killed it with a traceback of its own. A
    signal ignored at exec stays ignored, for the server and every worker it forks: the
    parent alone decides what Ctrl-C means (`ignore_interrupts`). Here, SIGINT is blocked
    meanwhile (Linux keeps a blocked signal pending even while it is ignored), so a Ctrl-C
    in between reaches this process's own handler once the block ends."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(
        signal, "pthread_sigmask"
    ):
        yield
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def ignore_interrupts(*_: Any) -> None:
    """A worker's first act: Ctrl-C reaches the whole process group, and the parent alone
    decides what it means (it stops the workers and says what state the target is in)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def kill_pool(pool: concurrent.futures.Executor | None) -> None:
    """Stop a process pool's workers now, mid-task (its COPY is then rolled back by the
    server), instead of waiting for the tasks they run."""
    if not isinstance(pool, concurrent.futures.ProcessPoolExecutor):
        return
    kill = getattr(pool, "kill_workers", None)  # public from Python 3.14
    if kill is not None:
        with contextlib.suppress(OSError, ValueError):
            kill()
    else:  # before 3.14 the pool names its processes only in this attribute
        for proc in dict(getattr(pool, "_processes", None) or {}).values():
            with contextlib.suppress(OSError, ValueError):
                proc.kill()
    # Wait for the pool's own thread to see them gone (else the interpreter's exit races
    # it over the pipe it closes), but not forever.
    closer = threading.Thread(
        target=pool.shutdown, kwargs={"wait": True, "cancel_futures": True}, daemon=True
    )
    closer.start()
    closer.join(timeout=10)


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold Ctrl-C while a worker process is being started, and raise it right after.

    A start asks the forkserver over a socket; cut off halfway, the server dies with a
    traceback of its own on the user's terminal."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only
        return
    held: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        held.append(signum)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if held and callable(previous):
            previous(signal.SIGINT, None)
