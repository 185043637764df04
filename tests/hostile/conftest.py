"""The hostile-inputs and faults suite (issue 7): every test here is one case.

A case is handled correctly when its test passes: lite2pg either migrated correctly or
failed with one clear line and a non-zero exit, leaving the source untouched and the
target as it was or resumable. A case that can lose rows reports how many it lost through
the ``rows_lost`` fixture (the test asserts 0 as well). At the end of the session the
suite prints the reliability table that the README quotes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests._tables import FAULT_INJECTED, ROWS_LOST

HERE = Path(__file__).resolve().parent

RowsLost = Callable[[int], None]
FaultInjected = Callable[[bool], None]


@pytest.fixture
def rows_lost(request: pytest.FixtureRequest) -> Iterator[RowsLost]:
    """Record how many rows a case lost (source rows neither in the target nor rejected):
    it travels with the case's report to the reliability table (tests/_tables.py)."""

    def record(n: int) -> None:
        request.node.user_properties.append((ROWS_LOST, n))

    yield record


@pytest.fixture
def fault_injected(request: pytest.FixtureRequest) -> Iterator[FaultInjected]:
    """Record whether a fault case injected its fault (the kill landed at its point, the cut
    hit a live run...): the reliability table counts only cases that did, and a case in
    tests/hostile/test_faults.py that records nothing is not counted either."""

    def record(injected: bool) -> None:
        request.node.user_properties.append((FAULT_INJECTED, injected))

    yield record
