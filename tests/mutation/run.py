"""The mutation run: cosmic-ray changes one thing in a module, and that module's tests must fail.

    python tests/mutation/run.py                       # every mutant of every module
    python tests/mutation/run.py --sample 20 --seed 1  # 20 seeded mutants per module
    python tests/mutation/run.py --ci --sample 3       # the modules CI draws from

Each module (tests/mutation/modules.toml) is mutated in a copy of src/ of its own under a
temporary directory, never in the checkout, and its mutants run only the tests listed for
it, with PYTHONPATH pointing at the copy. Modules run side by side (--jobs). A mutant
survives when its tests pass; each survivor must be explained in tests/mutation/survivors.toml
(an equivalent mutant, or why no test can tell), else the run exits 1 and prints its diff.
Tests that need PostgreSQL use LITE2PG_TEST_DSN, else one embedded server for the whole run.
"""

from __future__ import annotations

import argparse
import ast
import compileall
import datetime
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkResult

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PACKAGE = ROOT / "src" / "lite2pg"
SUMMARY_BEGIN = "<!-- mutation-summary:begin -->"
SUMMARY_END = "<!-- mutation-summary:end -->"


@dataclass(frozen=True)
class Module:
    name: str  # path under src/lite2pg
    tests: tuple[str, ...]
    ci: bool
    most: int  # at most this many mutants in a sampled run (0: no cap)


@dataclass(frozen=True)
class Survivor:
    """A mutant whose tests passed: the line as written and as mutated."""

    module: str
    operator: str
    line: str
    mutant: str
    diff: str
    function: str  # where it is, as cosmic-ray names it (a line may recur elsewhere)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.module, self.operator, self.line, self.mutant)


@dataclass
class Outcome:
    module: str
    total: int = 0
    annotations: int = 0
    run: int = 0
    killed: int = 0
    incompetent: int = 0
    survivors: list[Survivor] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""


def load_modules() -> list[Module]:
    data = tomllib.loads((HERE / "modules.toml").read_text())
    return [
        Module(name, tuple(spec["tests"]), bool(spec.get("ci", False)), int(spec.get("most", 0)))
        for name, spec in data["modules"].items()
    ]


class Reasons:
    """Reviewed survivors (survivors.toml): module, operator, line and mutated line, and
    optionally the function, when the same line elsewhere may not survive for that reason."""

    def __init__(self) -> None:
        data = tomllib.loads((HERE / "survivors.toml").read_text())
        self.entries: dict[tuple[str, str, str, str], list[str | None]] = {}
        for entry in data.get("survivor", []):
            key = (entry["module"], entry["operator"], entry["line"], entry["mutant"])
            if not entry.get("reason"):
                raise SystemExit(f"mutation: survivors.toml: an entry without a reason: {key}")
            self.entries.setdefault(key, []).append(entry.get("function"))

    def __contains__(self, survivor: Survivor) -> bool:
        where = self.entries.get(survivor.key, [])
        return any(f is None or f == survivor.function for f in where)


def _changed_lines(diff: str) -> tuple[str, str]:
    """The mutated line's text before and after, from cosmic-ray's unified diff."""
    old = [ln[1:].strip() for ln in diff.splitlines() if ln[:1] == "-" and ln[:3] != "---"]
    new = [ln[1:].strip() for ln in diff.splitlines() if ln[:1] == "+" and ln[:3] != "+++"]
    return " / ".join(old), " / ".join(new)


def annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Where the module's annotations are: with `from __future__ import annotations` they are
    never evaluated, so a mutant there (`int | None` -> `int - None`) is equivalent."""
    spans = []
    for node in ast.walk(ast.parse(source)):
        notes: list[ast.expr | None] = []
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            notes.append(node.returns)
        elif isinstance(node, ast.arg | ast.AnnAssign):
            notes.append(node.annotation)
        for n in notes:
            if n is not None and n.end_lineno is not None and n.end_col_offset is not None:
                spans.append(((n.lineno, n.col_offset), (n.end_lineno, n.end_col_offset)))
    return spans


def _pytest_command(module: Module, basetemp: Path) -> list[str]:
    # -o addopts=: one process per mutant (no xdist); -x: the first failure kills it.
    return [
        sys.executable,
        "-m",
        "pytest",
        "-o",
        "addopts=",
        "-p",
        "no:cacheprovider",
        "-x",
        "-q",
        f"--basetemp={basetemp}",
        *module.tests,
    ]


def run_module(
    module: Module, workdir: Path, sample: int, seed: str, env: dict[str, str]
) -> Outcome:
    """Mutate one module in a copy of src/ and run each chosen mutant against its tests."""
    started = time.monotonic()
    outcome = Outcome(module.name)
    slug = module.name.replace("/", "_").removesuffix(".py")
    space = workdir / slug
    shutil.copytree(ROOT / "src", space / "src", ignore=shutil.ignore_patterns("__pycache__"))
    # Byte-code for the unmutated copy, so that each mutant compiles only the mutated file:
    # copytree keeps the sources' mtimes, and a mutated (or restored) file is newer than its
    # .pyc, so Python reads that one file from source (and writes no .pyc for it).
    compileall.compile_dir(space / "src", quiet=1)
    target = space / "src" / "lite2pg" / module.name
    env = {**env, "PYTHONPATH": str(space / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    command = _pytest_command(module, space / "pytest")

    # The tests must pass on the unmutated copy, or every mutant would count as killed.
    baseline_started = time.monotonic()
    base = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    baseline = time.monotonic() - baseline_started
    if base.returncode != 0:
        outcome.error = f"tests fail unmutated:\n{base.stdout[-3000:]}{base.stderr[-2000:]}"
        return outcome

    config = space / "cosmic-ray.toml"
    config.write_text(
        "[cosmic-ray]\n"
        f"module-path = {str(target)!r}\n"
        # A mutant that loops forever is killed by the timeout: three times the baseline.
        f"timeout = {max(30.0, 3 * baseline):.0f}\n"
        "excluded-modules = []\n"
        f"test-command = {shlex.join(command)!r}\n"
        '[cosmic-ray.distributor]\nname = "local"\n'
    )
    session = space / "session.sqlite"
    cosmic = [sys.executable, "-m", "cosmic_ray.cli"]
    subprocess.run([*cosmic, "init", str(config), str(session)], cwd=ROOT, env=env, check=True)

    with use_db(str(session), WorkDB.Mode.open) as db:
        items = sorted(
            db.work_items,
            key=lambda w: (w.mutations[0].operator_name, w.mutations[0].occurrence),
        )
        source = target.read_text()
        if "from __future__ import annotations" not in source:
            raise SystemExit(f"mutation: {module.name} evaluates its annotations; see run.py")
        spans = annotation_spans(source)
        skipped = WorkResult(worker_outcome=WorkerOutcome.SKIPPED)
        in_notes = [
            w for w in items if any(a <= tuple(w.mutations[0].start_pos) < b for a, b in spans)
        ]
        db.set_multiple_results([w.job_id for w in in_notes], skipped)
        items = [w for w in items if w not in in_notes]
        outcome.total = len(items)
        outcome.annotations = len(in_notes)
        chosen = items
        if sample and module.most:
            sample = min(sample, module.most)
        if 0 < sample < len(items):
            chosen = random.Random(f"{seed}:{module.name}").sample(items, sample)
        keep = {w.job_id for w in chosen}
        db.set_multiple_results([w.job_id for w in items if w.job_id not in keep], skipped)

    subprocess.run(
        [*cosmic, "exec", str(config), str(session)],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )

    with use_db(str(session), WorkDB.Mode.open) as db:
        for item, result in db.completed_work_items:
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                continue
            if result.worker_outcome == WorkerOutcome.NO_TEST:
                continue
            outcome.run += 1
            if result.test_outcome == TestOutcome.SURVIVED:
                line, mutant = _changed_lines(result.diff or "")
                operator = item.mutations[0].operator_name
                diff = result.diff or ""
                function = str(item.mutations[0].definition_name or "")
                outcome.survivors.append(
                    Survivor(module.name, operator, line, mutant, diff, function)
                )
            elif result.test_outcome == TestOutcome.INCOMPETENT:
                outcome.incompetent += 1
            else:
                outcome.killed += 1
    outcome.survivors.sort(key=lambda s: s.key)
    outcome.seconds = time.monotonic() - started
    return outcome


@contextmanager
def test_server(workdir: Path) -> Iterator[str]:
    """LITE2PG_TEST_DSN, else one embedded PostgreSQL for every mutant of the run."""
    dsn = os.environ.get("LITE2PG_TEST_DSN")
    if dsn:
        yield dsn
        return
    from lite2pg import embedded

    data_dir = workdir / "pg"
    server = embedded.start(data_dir)
    try:
        yield server.uri
    finally:
        embedded.stop(data_dir)


HEADER = "| module | mutants | run | killed | survived, reasoned | survived, unexplained | run on |"


def summary_rows(outcomes: list[Outcome], reasons: Reasons, command: str) -> list[str]:
    """One table row per module: its counts, and when and how it was last run."""
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    rows = []
    for o in outcomes:
        reasoned = sum(1 for s in o.survivors if s in reasons)
        cells = [o.total, o.run, o.killed, reasoned, len(o.survivors) - reasoned]
        counts = " | ".join(str(n) for n in cells)
        rows.append(f"| `{o.module}` | {counts} | {today}, `{command}` |")
    return rows


def write_summary(rows: list[str]) -> None:
    """Put `rows` in tests/README.md's table, keeping the other modules' rows, and total it."""
    readme = ROOT / "tests" / "README.md"
    text = readme.read_text()
    head, rest = text.split(SUMMARY_BEGIN, 1)
    block, tail = rest.split(SUMMARY_END, 1)
    fresh = {row.split("`")[1]: row for row in rows}
    kept = [
        line
        for line in block.splitlines()
        if line.startswith("| `") and line.split("`")[1] not in fresh
    ]
    order = [m.name for m in load_modules()]
    table = sorted(
        [*kept, *rows],
        key=lambda r: order.index(m) if (m := r.split("`")[1]) in order else len(order),
    )
    totals = [0] * 5
    for row in table:
        cells = [c.strip() for c in row.split("|")[2:7]]
        totals = [a + int(b) for a, b in zip(totals, cells, strict=True)]
    total = "| **all** | " + " | ".join(f"**{n}**" for n in totals) + " | |"
    lines = [HEADER, "|---|---|---|---|---|---|---|", *table, total]
    readme.write_text(head + SUMMARY_BEGIN + "\n" + "\n".join(lines) + "\n" + SUMMARY_END + tail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sample", type=int, default=0, help="mutants per module (0: all)")
    parser.add_argument("--seed", default="1", help="the sample's seed")
    parser.add_argument("--jobs", type=int, default=2, help="modules mutated side by side")
    parser.add_argument("--ci", action="store_true", help="only the modules marked ci = true")
    parser.add_argument("--module", action="append", default=[], help="only this module")
    parser.add_argument("--write-summary", action="store_true", help="update tests/README.md")
    args = parser.parse_args(argv)

    modules = load_modules()
    if args.ci:
        modules = [m for m in modules if m.ci]
    if args.module:
        unknown = set(args.module) - {m.name for m in modules}
        if unknown:
            print(f"mutation: no module {', '.join(sorted(unknown))} in modules.toml")
            return 2
        modules = [m for m in modules if m.name in args.module]
    given = argv if argv is not None else sys.argv[1:]
    shown = [shlex.quote(a) for a in given if a != "--write-summary"]
    command = " ".join(["python tests/mutation/run.py", *shown])

    with tempfile.TemporaryDirectory(prefix="lite2pg-mutation-") as tmp:
        workdir = Path(tmp)
        with test_server(workdir) as dsn:
            env = {**os.environ, "LITE2PG_TEST_DSN": dsn, "HYPOTHESIS_PROFILE": "ci"}
            with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
                futures = [
                    pool.submit(run_module, m, workdir, args.sample, args.seed, env)
                    for m in modules
                ]
                outcomes = [f.result() for f in futures]

    reasons = Reasons()  # read now: they may have been written while the run went on
    failed = False
    for o in outcomes:
        if o.error:
            print(f"== {o.module}: {o.error}")
            failed = True
        for s in o.survivors:
            if s not in reasons:
                failed = True
                print(f"== {s.module}: survived, unexplained ({s.operator})\n{s.diff}")
                print("   survivors.toml entry:")
                for k in ("module", "function", "operator", "line", "mutant"):
                    print(f"   {k} = {getattr(s, k)!r}")
        print(
            f"{o.module}: {o.run} of {o.total} mutants run ({o.annotations} in annotations left "
            f"out), {o.killed} killed, "
            f"{len(o.survivors)} survived, {o.incompetent} incompetent, {o.seconds:.0f} s"
        )
    rows = summary_rows(outcomes, reasons, command)
    print("\n".join([HEADER, *rows]))
    if args.write_summary:
        write_summary(rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
