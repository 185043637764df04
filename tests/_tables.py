"""The tables the suite prints at its end: the reliability table of tests/hostile (which the
README quotes) and verify's mutation table (path x kind, caught/tried).

They are plugins registered by tests/conftest.py, so that they count from the test reports
alone: run with pytest-xdist, the reports reach the controlling process, which prints the
tables; the rows a hostile case lost come with its report (`user_properties`)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import pytest

ROWS_LOST = "rows_lost"  # the user property a hostile case records its lost rows under
# The user property a fault case records True under once its fault demonstrably happened;
# a fault case (tests/hostile/test_faults.py) without it is left out of the table.
FAULT_INJECTED = "fault_injected"
CRASH_POINT = "crash_point"  # the user property tests/crash records each kill point under


@dataclass
class _Tally:
    cases: int = 0
    handled: int = 0
    skipped: int = 0
    lost: int = 0
    not_injected: int = 0


def _is_hostile(nodeid: str) -> bool:
    return "tests/hostile/" in nodeid.replace("\\", "/")


def _group(nodeid: str) -> str:
    """tests/hostile/test_files.py::test_x[a] -> files"""
    module = nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
    return module.removeprefix("test_").removesuffix(".py")


class Reliability:
    """Hostile cases tried, handled correctly, rows lost; per group (test module)."""

    def __init__(self) -> None:
        self.groups: dict[str, _Tally] = defaultdict(_Tally)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not _is_hostile(report.nodeid):
            return
        group = _group(report.nodeid)
        tally = self.groups[group]
        if report.when == "call":
            injected = [v for k, v in report.user_properties if k == FAULT_INJECTED]
            if group == "faults" and report.passed and not (injected and all(injected)):
                tally.not_injected += 1  # passed, but its fault never happened
                return
            tally.cases += 1
            if report.passed:
                tally.handled += 1
            tally.lost += sum(
                v for k, v in report.user_properties if k == ROWS_LOST and isinstance(v, int)
            )
        elif report.skipped:
            tally.skipped += 1
        elif report.failed and report.when == "setup":
            tally.cases += 1

    def lines(self) -> list[str]:
        if not self.groups:
            return []
        total = _Tally()
        out = ["| group | cases tried | handled correctly | rows lost |", "|---|---|---|---|"]
        for name, t in sorted(self.groups.items()):
            out.append(f"| {name} | {t.cases} | {t.handled} | {t.lost} |")
            total.cases += t.cases
            total.handled += t.handled
            total.lost += t.lost
            total.skipped += t.skipped
            total.not_injected += t.not_injected
        out.append(f"| **all** | **{total.cases}** | **{total.handled}** | **{total.lost}** |")
        if total.skipped:
            out.append(f"\n{total.skipped} case(s) skipped (see the skip reasons above).")
        if total.not_injected:
            out.append(
                f"\n{total.not_injected} fault case(s) not counted: their fault was not injected."
            )
        return out

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        lines = self.lines()
        if lines:
            terminalreporter.section("lite2pg reliability (tests/hostile)")
            for line in lines:
                terminalreporter.write_line(line)


class Mutations:
    """tests/test_verify_mutations.py: path x kind -> caught / tried."""

    def __init__(self) -> None:
        self.cells: dict[tuple[str, str], list[int]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if "test_one_change_to_the_target" not in report.nodeid or "[" not in report.nodeid:
            return
        case = report.nodeid.rsplit("[", 1)[1].rstrip("]")
        path, kind = case.split("-", 1)
        if kind.endswith("-cell"):
            kind = "cell"
        counts = self.cells.setdefault((path, kind), [0, 0])
        if report.when == "call" or (report.when == "setup" and not report.passed):
            counts[1] += 1
            counts[0] += report.passed

    def lines(self) -> list[str]:
        paths = list(dict.fromkeys(p for p, _ in self.cells))
        kinds = list(dict.fromkeys(k for _, k in self.cells))
        out = ["| path | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
        for path in paths:
            row = []
            for kind in kinds:
                caught, tried = self.cells.get((path, kind), (0, 0))
                row.append("n/a" if not tried else f"{caught}/{tried}")
            out.append(f"| {path} | " + " | ".join(row) + " |")
        return out

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.cells:
            terminalreporter.section("verify mutations caught (path x kind, caught/tried)")
            for line in self.lines():
                terminalreporter.write_line(line)


@dataclass
class _Command:
    calls: int = 0  # state-changing calls strace listed in a whole run
    chosen: int = 0  # kill points this run chose among them
    tried: int = 0
    landed: int = 0  # SIGKILL injected, as planned
    elsewhere: int = 0  # injected, but in another thread or process first
    old: int = 0
    new: int = 0
    half: int = 0
    failed: int = 0  # cases (tests) that failed


class CrashPoints:
    """tests/crash: per command, the calls listed, kill points tried, where the kill
    landed and the state it left (old, new, or a mix); and every kill point's outcome."""

    def __init__(self) -> None:
        self.commands: dict[str, _Command] = defaultdict(_Command)
        self.points: list[tuple[str, str, str, str]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if "tests/crash/" not in report.nodeid.replace("\\", "/") or report.when != "call":
            return
        seen: set[str] = set()
        for key, value in report.user_properties:
            if key != CRASH_POINT or not isinstance(value, dict):
                continue
            c = self.commands[value["command"]]
            seen.add(value["command"])
            if "calls" in value:
                c.calls += value["calls"]
                c.chosen += value["chosen"]
                continue
            c.tried += 1
            landed = str(value["landed"])
            if landed == "as planned":
                c.landed += 1
            elif not landed.startswith("not injected"):
                c.elsewhere += 1
            state = str(value["state"])
            c.old += state == "old"
            c.new += state == "new"
            c.half += state == "HALF"
            self.points.append((value["command"], str(value["point"]), landed, state))
        if report.failed:
            for name in seen:
                self.commands[name].failed += 1

    def lines(self) -> list[str]:
        out = [
            "| command | state-changing calls | kill points tried | SIGKILL landed as planned "
            "| landed in another thread | left the old state | left the new state | "
            "left a mix | recovered |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, c in self.commands.items():
            recovered = "all" if not c.failed and not c.half else "NO"
            out.append(
                f"| {name} | {c.calls} | {c.tried} | {c.landed} | {c.elsewhere} | {c.old} "
                f"| {c.new} | {c.half} | {recovered} |"
            )
        return out

    def detail(self) -> list[str]:
        out = ["| command | killed right after | landed | state left |", "|---|---|---|---|"]
        out += [f"| {c} | {p} | {landed} | {s} |" for c, p, landed, s in self.points]
        return out

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.commands:
            return
        terminalreporter.section("lite2pg crash points (tests/crash: SIGKILL after a system call)")
        for line in self.lines():
            terminalreporter.write_line(line)
        terminalreporter.write_line("")
        for line in self.detail():
            terminalreporter.write_line(line)
