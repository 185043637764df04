"""The hostile-inputs and faults suite (issue 7): every test here is one case.

A case is handled correctly when its test passes: lite2pg either migrated correctly or
failed with one clear line and a non-zero exit, leaving the source untouched and the
target as it was or resumable. A case that can lose rows reports how many it lost through
the ``rows_lost`` fixture (the test asserts 0 as well). At the end of the session the
suite prints the reliability table that the README quotes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@dataclass
class _Tally:
    cases: int = 0
    handled: int = 0
    skipped: int = 0
    lost: int = 0


@dataclass
class _Reliability:
    groups: dict[str, _Tally] = field(default_factory=lambda: defaultdict(_Tally))
    lost_by_node: dict[str, int] = field(default_factory=dict)


_STATE = _Reliability()


def _group(nodeid: str) -> str:
    """tests/hostile/test_files.py::test_x[a] -> files"""
    module = nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
    return module.removeprefix("test_").removesuffix(".py")


def _is_hostile(nodeid: str) -> bool:
    return "tests/hostile/" in nodeid.replace("\\", "/")


RowsLost = Callable[[int], None]


@pytest.fixture
def rows_lost(request: pytest.FixtureRequest) -> Iterator[RowsLost]:
    """Record how many rows a case lost (source rows neither in the target nor rejected)."""
    nodeid = request.node.nodeid

    def record(n: int) -> None:
        _STATE.lost_by_node[nodeid] = _STATE.lost_by_node.get(nodeid, 0) + n

    yield record


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not _is_hostile(report.nodeid):
        return
    tally = _STATE.groups[_group(report.nodeid)]
    if report.when == "call":
        tally.cases += 1
        if report.passed:
            tally.handled += 1
        tally.lost += _STATE.lost_by_node.get(report.nodeid, 0)
    elif report.skipped:
        tally.skipped += 1
    elif report.failed and report.when == "setup":
        tally.cases += 1


def reliability_lines() -> list[str]:
    if not _STATE.groups:
        return []
    rows = sorted(_STATE.groups.items())
    total = _Tally()
    out = ["| group | cases tried | handled correctly | rows lost |", "|---|---|---|---|"]
    for name, t in rows:
        out.append(f"| {name} | {t.cases} | {t.handled} | {t.lost} |")
        total.cases += t.cases
        total.handled += t.handled
        total.lost += t.lost
        total.skipped += t.skipped
    out.append(f"| **all** | **{total.cases}** | **{total.handled}** | **{total.lost}** |")
    if total.skipped:
        out.append(f"\n{total.skipped} case(s) skipped (see the skip reasons above).")
    return out


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = reliability_lines()
    if not lines:
        return
    terminalreporter.section("lite2pg reliability (tests/hostile)")
    for line in lines:
        terminalreporter.write_line(line)
