"""Whose step is it to finish: a recorded process is gone once killed, even unreaped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lite2pg import intent

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def test_a_killed_process_not_yet_reaped_is_gone_though_its_id_answers() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    started = intent.process_start(child.pid)
    assert intent.alive(child.pid, started)
    child.kill()
    # Wait for the exit without reaping: the id stays taken, by a zombie.
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    os.kill(child.pid, 0)  # the kernel still answers for it
    assert not intent.alive(child.pid, started)
    child.wait()


def test_a_live_process_under_a_recorded_id_that_started_at_another_time_is_not_the_one() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = intent.process_start(child.pid)
        assert started is not None and started > 0
        assert intent.alive(child.pid, started)
        assert intent.alive(child.pid)  # no start recorded (an older record): the id decides
        assert not intent.alive(child.pid, started - 1)
    finally:
        child.kill()
        child.wait()


def test_an_intent_record_from_before_the_start_was_kept_is_read_without_one(
    tmp_path: Path,
) -> None:
    record = intent.begin(tmp_path, "publish", ["rename"])
    assert record.pid_start == intent.process_start(os.getpid())
    intent.path(tmp_path, "publish").write_text(
        '{"kind": "publish", "steps": ["rename"], "state": "started", "pid": 1, '
        '"started_at": "2026-12-03T00:00:00+00:00"}'
    )
    old = intent.read(tmp_path, "publish")
    assert old is not None and old.pid_start is None and old.pid == 1
