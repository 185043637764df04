"""Worker processes: every pool of a run (table loads, the export, verify, password
hashing) forks from one forkserver, which imports lite2pg once.

`start_early` starts that server at the beginning of a run, so that its imports overlap
the snapshot instead of delaying the first table (0.3 s measured on a 2-core machine).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
from multiprocessing.context import ForkServerContext

__all__ = ["context", "start_early"]

# What the server imports before it forks a worker: the stages the workers run.
PRELOAD = ["lite2pg.staging", "lite2pg.export"]


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
    multiprocessing.forkserver.ensure_running()
