"""Crash injection with strace (issue 15): list the system calls of a command that change
state, then run it again and SIGKILL it at one of them.

strace's `-e inject=SYSCALL:signal=KILL:when=N` delivers SIGKILL when a tracee *enters*
its N-th call of SYSCALL, so that call never runs. Killing at the entry of state-changing
call k therefore leaves exactly the state right after call k-1 (nothing between them
changes state), and a kill point is named after the call it follows: "after COMMIT",
"after rename -> journal.json". strace counts calls per syscall and per tracee (each
thread and process on its own); the calls listed are the command's main thread's, counted
there, and the log of every injected run says where the kill really landed.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# What changes state: files renamed, synced, written or removed; the PostgreSQL socket.
TRACED = (
    "rename", "renameat", "renameat2", "fsync", "fdatasync", "write", "pwrite64",
    "unlink", "unlinkat", "sendto",
)  # fmt: skip
_LINE = re.compile(r"^(?P<pid>\d+) +(?P<rest>.*)$")
_CALL = re.compile(r"^(?P<name>[a-z0-9_]+)\((?P<args>.*)$")
_FD_PATH = re.compile(r"^\d+<(?P<path>[^>]*)>")
_RESULT = re.compile(r"\) += (?P<ret>-?\d+|\?)")
# atomic_write's temporary names: .journal.json.1234.89abcdef.tmp -> journal.json.tmp
_TMP = re.compile(r"^\.?(?P<name>.+?)\.\d+\.[0-9a-f]{8}\.tmp$")
_STAMP = re.compile(r"\d{8}T\d{6}(\.\d+)?Z")  # a backup's or a reload's UTC time
_COMMIT = '\\vCOMMIT\\0"'  # a simple-query COMMIT as strace prints its bytes
# The statements a transaction sent before its COMMIT, as a COMMIT's kill point names them.
_VERBS = "INSERT|UPDATE|DELETE|TRUNCATE|DROP|CREATE|ALTER|COPY|SELECT|SET"
# A simple query ("Q", 4 length bytes, the SQL) or a parse ("P", 4 bytes, a statement name
# ending in NUL, the SQL), as strace escapes bytes: \0, \000, \v, \\ or one character.
_BYTE = r"(?:\\[0-7]{1,3}|\\.|[^\\])"
_SQL = re.compile(rf'"(?:Q{_BYTE}{{4}}|P{_BYTE}{{4}}(?:[^\\]|\\[^0])*\\0+)\s*({_VERBS})\b')
_WRITES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE", "DROP", "CREATE", "ALTER", "COPY")


@dataclass(frozen=True)
class Call:
    """One system call of the traced command's main thread."""

    syscall: str
    ordinal: int  # the how-many-th call of this syscall in its thread (strace's when=)
    what: str  # e.g. "rename -> journal.json", "COMMIT", "pwrite64 app.db-journal"
    # Another thread or process made its call of this number earlier in the reference run:
    # when=N would likely land there first.
    contested: bool = False


@dataclass(frozen=True)
class KillPoint:
    """Kill at the entry of `at`, the call that follows `after`: the state is the one
    right after `after`."""

    after: Call
    at: Call

    @property
    def label(self) -> str:
        return f"after {self.after.what}"


def available() -> str | None:
    """strace's path when it can trace and inject here, else None."""
    strace = shutil.which("strace") or (
        "/usr/bin/strace" if Path("/usr/bin/strace").exists() else None
    )
    if strace is None:
        return None
    probe = subprocess.run(
        [strace, "-f", "-o", os.devnull, "-e", "trace=getpid", "-e",
         "inject=getpid:retval=1:when=1", "true"],
        capture_output=True, timeout=30,
    )  # fmt: skip
    return strace if probe.returncode == 0 else None


def _short(path: str, base: Path) -> str:
    """A path as a kill point names it: relative to the case directory, digits of
    per-attempt directory names and temporary file names folded away."""
    p = Path(path) if Path(path).is_absolute() else base / path
    m = _TMP.match(p.name)
    name = _STAMP.sub("<time>", f"{m['name']}.tmp" if m else p.name)
    try:
        rel = p.parent.resolve().relative_to(base.resolve()).parts
    except ValueError:
        rel = ()
    return "/".join([*(re.sub(r"\d+", "", x) for x in rel), name])


def _inside(path: str, base: Path) -> bool:
    """Whether a path (relative ones are the command's: it runs in `base`) is the case's."""
    p = Path(path) if Path(path).is_absolute() else base / path
    return p.resolve().is_relative_to(base.resolve())


def _describe(name: str, args: str, ret: str, base: Path, verbs: list[str]) -> str | None:
    """What a state-changing call does, or None for a call that changes nothing of ours.
    `verbs`: the statements the connection sent since its last COMMIT."""
    if name == "sendto":
        if _COMMIT not in args:
            m = _SQL.search(args)
            if m and m[1] not in verbs:
                verbs.append(m[1])
            return None
        wrote = [v for v in verbs if v in _WRITES]
        verbs.clear()
        return f"COMMIT of {'+'.join(wrote)}" if wrote else "COMMIT (no writes)"
    if ret.startswith("-"):
        return None  # it failed: nothing changed
    if name.startswith(("rename", "unlink")):
        paths = re.findall(r'"([^"]*)"', args)
        if not paths or not _inside(paths[-1], base):
            return None
        return f"{name.rstrip('at2')} {'-> ' if name.startswith('rename') else ''}" + _short(
            paths[-1], base
        )
    m = _FD_PATH.match(args)
    if m is None or not m["path"].startswith("/") or m["path"].startswith("/dev/"):
        return None  # a pipe, a socket, a terminal
    path = m["path"]
    if not _inside(path, base):
        return None  # a temporary file of a library, not the run's
    if name in ("fsync", "fdatasync") and Path(path).is_dir():
        return f"{name} dir {_short(path + '/x', base).rsplit('/', 1)[0] or '.'}"
    return f"{name} {_short(path, base)}"


def parse(log: Path, base: Path) -> tuple[list[Call], str | None]:
    """The main thread's traced calls in order (with strace's per-thread ordinals; `what`
    is empty for one that changes nothing of ours), and the call ("sendto#12") that
    thread was entering when SIGKILL ended it, if it was."""
    first: int | None = None
    counts: dict[str, int] = {}
    calls: list[Call] = []
    pending: dict[str, tuple[str, int, int]] = {}
    last: str | None = None
    killed: str | None = None
    sent: dict[str, list[str]] = {}  # per socket: statements since its last COMMIT
    others: dict[int, dict[str, int]] = {}  # other threads' and processes' counts
    reached: dict[tuple[str, int], int] = {}  # (syscall, number) -> first line, elsewhere
    entered: list[int] = []  # the line each main-thread call was entered on
    for line, raw in enumerate(log.read_text(errors="replace").splitlines()):
        m = _LINE.match(raw)
        if m is None:
            continue
        pid, rest = int(m["pid"]), m["rest"]
        first = pid if first is None else first
        if pid != first:
            o = _CALL.match(rest)
            if o is not None and o["name"] in TRACED:
                mine = others.setdefault(pid, {})
                mine[o["name"]] = mine.get(o["name"], 0) + 1
                reached.setdefault((o["name"], mine[o["name"]]), line)
            continue
        if rest.startswith("+++ killed by SIGKILL"):
            killed = last
            continue
        if rest.startswith("<... "):
            name = rest[5:].split(" ", 1)[0]
            if name not in pending:
                continue
            args, n, at = pending.pop(name)
            rest, last = f"{name}({args}{rest}", None
        else:
            c = _CALL.match(rest)
            if c is None or c["name"] not in TRACED:
                continue
            name = c["name"]
            counts[name] = counts.get(name, 0) + 1
            n = counts[name]
            if rest.endswith("<unfinished ...>"):
                pending[name] = (c["args"].removesuffix("<unfinished ...>"), n, line)
                last = None  # blocked in it: a kill here is not at its entry
                continue
            at = line
        r = _RESULT.search(rest)
        ret = r["ret"] if r else "?"
        if ret == "?":
            last = f"{name}#{n}"  # entered, never returned: where the kill landed
            continue
        last = None
        c = _CALL.match(rest)
        args = c["args"] if c else ""
        what = _describe(name, args, ret, base, sent.setdefault(args.split("<", 1)[0], []))
        calls.append(Call(name, n, what or ""))
        entered.append(at)
    calls = [
        dataclasses.replace(c, contested=reached.get((c.syscall, c.ordinal), at) < at)
        for c, at in zip(calls, entered, strict=True)
    ]
    return calls, killed


def kill_points(calls: Sequence[Call]) -> list[KillPoint]:
    """One kill point per state-changing call: at the entry of the main thread's next
    traced call, so that the process dies right after it (none after the very last).
    When another thread reached that call's number first, the next uncontested call is
    taken instead, if no state changes before it."""
    points = []
    for i, c in enumerate(calls[:-1]):
        if not c.what:
            continue
        at = calls[i + 1]
        for later in calls[i + 1 :]:
            if not later.contested:
                at = later
                break
            if later.what:
                break
        points.append(KillPoint(c, at))
    return points


def changes(calls: Sequence[Call]) -> list[Call]:
    """The state-changing ones."""
    return [c for c in calls if c.what]


def _priority(p: KillPoint) -> int:
    """0: right after the app's config moved, or SQLite committed (its journal went);
    1: after a COMMIT that wrote, or inside SQLite's commit (its journal written);
    2: after any other rename, or a write to the app's database; 3: the rest."""
    after = p.after.what
    if after.startswith("rename") and (".env" in after or "config" in after):
        return 0
    if after.startswith("unlink") and after.endswith("-journal"):
        return 0
    if after.startswith("COMMIT of") or after.endswith("-journal"):
        return 1
    if after.startswith("rename") or "app.db" in after:
        return 2
    return 3


def sample(points: Sequence[KillPoint], budget: int | None, seed: str) -> list[KillPoint]:
    """Every point (budget None); else each distinct kind of point once, in order of
    priority, a tier sampled with a seed when it does not fit, up to `budget` points."""
    if budget is None:
        return list(points)
    seen: dict[str, KillPoint] = {}
    for p in points:
        if p.label.startswith("after COMMIT") or p.label.endswith("-journal"):
            # The last: a command's final COMMIT is the one that publishes; SQLite's journal
            # is whole (hot, to be rolled back) after its last write.
            seen[p.label] = p
        else:
            seen.setdefault(p.label, p)
    rng = random.Random(seed)
    # Always the last COMMIT that wrote: the one that publishes (or applies) the work.
    chosen = [p for p in points if p.label.startswith("after COMMIT of")][-1:]
    for tier in (0, 1, 2, 3):
        kinds = [p for p in seen.values() if _priority(p) == tier and p not in chosen]
        room = budget - len(chosen)
        chosen += kinds if len(kinds) <= room else rng.sample(kinds, room)
    order = {id(p): i for i, p in enumerate(points)}
    return sorted(chosen, key=lambda p: order[id(p)])


@dataclass
class Run:
    """One run of a command under strace."""

    returncode: int
    stdout: str
    stderr: str
    killed_at: str | None  # "sendto#12": the call SIGKILL landed on, in the main thread
    calls: list[Call]

    @property
    def killed(self) -> bool:
        return (
            self.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL) or self.killed_at is not None
        )


def traced(
    strace: str,
    cmd: Sequence[str],
    *,
    log: Path,
    base: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    inject: Call | None = None,
    timeout: float = 180,
) -> Run:
    """Run `cmd` under strace; with `inject`, SIGKILL it at the entry of that call."""
    if inject is None:
        # seccomp-bpf: untraced calls run at full speed. strace 6.1 does not deliver an
        # injected signal to a tracee stopped by its filter, so the kill runs go without.
        opts = ["--seccomp-bpf", "-e", "trace=" + ",".join(TRACED)]
    else:
        opts = ["-e", "trace=" + ",".join(TRACED),
                "-e", f"inject={inject.syscall}:signal=KILL:when={inject.ordinal}"]  # fmt: skip
    full = [strace, "-f", "-y", "-s", "160", "-o", str(log), *opts, "--", *cmd]
    done = subprocess.run(
        full, cwd=cwd, env=dict(env) if env is not None else None, capture_output=True,
        text=True, timeout=timeout, check=False, start_new_session=True,
    )  # fmt: skip
    calls, killed = parse(log, base)
    return Run(done.returncode, done.stdout, done.stderr, killed, calls)
