"""Crash-consistent at every step (issue 15): each command that changes state is run once
under strace to list the system calls that change it (files renamed, synced, written or
removed, COMMITs sent to PostgreSQL), then again and again, SIGKILLed right after one of
them (tests/crash/_strace.py). After every kill:

- `lite2pg status RUN` answers (exit 0, or one line with a hint), and the same command run
  again finishes the job;
- the target is the old state or the new one, never a mix;
- the app's config and SQLite's write block agree (SQLite refuses writes exactly when the
  config names PostgreSQL);
- no write the app got an OK for is lost;
- the source file is byte-identical, except for what prepare and cutover add.

By default each command is killed at each distinct kind of call once (those after a
COMMIT or at a protocol file first, then a seeded sample), within a few minutes in all;
`pytest --all-points` kills it after every call listed. pytest prints the table of
commands x kill points x outcomes at the end (tests/_tables.py), which the README quotes.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from lite2pg import capture
from lite2pg.cutover import current_value
from lite2pg.errors import Lite2pgError
from lite2pg.lifecycle import cutover, rollback, status
from lite2pg.run import MigrateOptions, migrate
from lite2pg.staging import stage_name
from lite2pg.sync import forget_sync_state
from lite2pg.target import Target

from .._tables import CRASH_POINT
from ..hostile._harness import file_digest
from . import _strace

LITE2PG = [sys.executable, "-m", "lite2pg"]
# Kill points per command in the default run: enough for every kind of call in most
# commands, few enough that the whole sweep stays within about two minutes on 2 cores.
DEFAULT_POINTS = 5
SQLITE_URL = "DATABASE_URL=sqlite:///app.db\n"


@pytest.fixture(scope="module")
def strace() -> str:
    found = _strace.available()
    if found is None:
        pytest.skip("strace is not installed or cannot trace here (apt-get install strace)")
    return found


@pytest.fixture
def budget(request: pytest.FixtureRequest) -> int | None:
    """Kill points per command: None (every one) with --all-points."""
    return None if request.config.getoption("all_points") else DEFAULT_POINTS


# --- the world a command runs in -------------------------------------------------------


def make_source(path: Path, variant: int, rows: int = 60) -> Path:
    """notes and tags with a foreign key; each variant has the same shape, other values."""
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);"
            "CREATE TABLE tags (id INTEGER PRIMARY KEY, note_id INTEGER REFERENCES notes(id),"
            " tag TEXT);"
        )
        conn.executemany(
            "INSERT INTO notes (id, body) VALUES (?, ?)",
            [(i, f"v{variant} note {i}") for i in range(1, rows + 1)],
        )
        conn.executemany(
            "INSERT INTO tags (id, note_id, tag) VALUES (?, ?, ?)",
            [(i, 1 + i % rows, f"v{variant}-t{i}") for i in range(1, rows + 1)],
        )
        conn.commit()
    return path


def pg_rows(dsn: str, schema: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of `schema` with its rows, in key order."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", (schema,)
        ).fetchall()
        for (t,) in tables:
            q = sql.SQL("SELECT * FROM {}.{} ORDER BY 1").format(
                sql.Identifier(schema), sql.Identifier(t)
            )
            out[str(t)] = [tuple(r) for r in conn.execute(q).fetchall()]
    return out


def sqlite_rows(path: Path, tables: tuple[str, ...] = ("notes", "tags")) -> dict[str, list[Any]]:
    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
        return {
            t: [tuple(r) for r in conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()]
            for t in tables
        }


def user_schema(path: Path) -> list[tuple[Any, ...]]:
    """sqlite_master without what prepare and cutover add (`_lite2pg_*` objects)."""
    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY 2")
        return [tuple(r) for r in rows if not str(r[1]).startswith("_lite2pg")]


def stage_left(dsn: str, schema: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return bool(
            conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (stage_name(schema),)
            ).fetchall()
        )


def drop_schema(dsn: str, schema: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name in (schema, stage_name(schema)):
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def forget_sync(dsn: str, run_dir: Path) -> None:
    """The run's sync position and rejected keys (in the shared lite2pg schema)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        forget_sync_state(conn, run_dir)


def cli(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LITE2PG, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)
    return done


def status_answers(run_dir: Path) -> str:
    """`lite2pg status RUN` after a kill (in this process: the CLI prints the same): the
    listing, which finishes an interrupted cutover, or a known error with a hint when the
    kill came before the run directory had a run in it."""
    try:
        return str(status(run_dir))
    except Lite2pgError as e:
        assert "(hint: " in str(e), e
        return ""


# --- the sweep --------------------------------------------------------------------------


@dataclass
class Sweep:
    """Run a command under strace, then kill it at each chosen point, and tally."""

    command: str
    strace: str
    base: Path
    budget: int | None
    request: pytest.FixtureRequest
    dsn: str = ""  # the server: after a kill, its sessions must be gone before the next run
    env: dict[str, str] = field(default_factory=dict)
    tried: int = 0
    landed: int = 0

    def __post_init__(self) -> None:
        # libpq names the command's sessions by this, so that the ones a kill left can be
        # waited for (the server ends them when it reads the closed socket).
        self.app = f"lite2pg-crash-{uuid.uuid4().hex[:8]}"
        self.env["PGAPPNAME"] = self.app

    def settle(self) -> None:
        """Until the killed command's sessions are gone (their locks with them)."""
        if not self.dsn:
            return
        deadline = time.monotonic() + 30
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while time.monotonic() < deadline:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                    (self.app,),
                ).fetchone()
                if row and row[0] == 0:
                    return
                time.sleep(0.02)
        pytest.fail(f"sessions of a killed command still open after 30 s ({self.app})")

    def done(self) -> None:
        """Most kills must land: a run that made fewer calls than the reference would
        otherwise pass untested (only injected kills count in the table)."""
        assert self.landed * 2 >= self.tried > 0, (self.landed, self.tried)

    def reference(self, cmd: list[str]) -> list[_strace.KillPoint]:
        """The whole command once, traced: its state-changing calls as kill points."""
        run = _strace.traced(
            self.strace, cmd, log=self.base / "reference.strace", base=self.base,
            cwd=self.base, env=self._env(),
        )  # fmt: skip
        assert run.returncode == 0, (run.stdout, run.stderr)
        points = _strace.kill_points(run.calls)
        assert points, "strace listed no state-changing call"
        chosen = _strace.sample(points, self.budget, seed=self.command)
        self.request.node.user_properties.append(
            (
                CRASH_POINT,
                {
                    "command": self.command,
                    "calls": len(_strace.changes(run.calls)),
                    "points": len(points),
                    "chosen": len(chosen),
                },
            )
        )
        return chosen

    def _env(self) -> dict[str, str]:
        base = {
            k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"
        }
        return {**base, **self.env}

    def kill(self, cmd: list[str], point: _strace.KillPoint) -> _strace.Run:
        """The command run again and killed at `point` (when it gets there: see landed)."""
        self.tried += 1
        run = _strace.traced(
            self.strace, cmd, log=self.base / f"kill{self.tried}.strace", base=self.base,
            cwd=self.base, env=self._env(), inject=point.at,
        )  # fmt: skip
        self.settle()
        return run

    def record(self, point: _strace.KillPoint, run: _strace.Run, state: str) -> None:
        planned = f"{point.at.syscall}#{point.at.ordinal}"
        self.landed += run.killed
        landed = (
            "not injected (the command ended first)" if not run.killed
            else "as planned" if run.killed_at == planned
            else f"in another thread or process ({run.killed_at or 'not the main thread'})"
        )  # fmt: skip
        self.request.node.user_properties.append(
            (
                CRASH_POINT,
                {"command": self.command, "point": point.label, "landed": landed, "state": state},
            )
        )


def _classify(found: object, old: object, new: object) -> str:
    if found == old:
        return "old"
    if found == new:
        return "new"
    return "HALF"


# --- migrate (both paths) and load: all or nothing -------------------------------------


@pytest.mark.parametrize("path", ["staged", "data-only"])
def test_migrate_killed_after_any_state_change_leaves_old_or_new_and_runs_again(
    strace: str, pg_dsn: str, tmp_path: Path, request: pytest.FixtureRequest,
    budget: int | None, path: str,
) -> None:  # fmt: skip
    """The default path stages tables and publishes them in one transaction; --data-only
    loads into the app's tables in one transaction. Sources a and b alternate, so the old
    and the new state differ."""
    schema = f"crash_{uuid.uuid4().hex[:10]}"
    srcs = [make_source(tmp_path / "a.db", 1), make_source(tmp_path / "b.db", 2)]
    digests = [file_digest(s) for s in srcs]
    target = Target(pg_dsn, "--target")
    flags = ["--drop"] if path == "staged" else ["--data-only", "--truncate"]
    sweep = Sweep(f"migrate ({path})", strace, tmp_path, budget, request, dsn=pg_dsn)

    def cmd(i: int) -> list[str]:
        return [*LITE2PG, "migrate", str(srcs[i % 2]), "--target", pg_dsn, "--schema", schema,
                *flags, "--run-dir", str(tmp_path / f"run{i}"), "-q"]  # fmt: skip

    try:
        migrate(srcs[1], target, MigrateOptions(schema=schema, run_dir=tmp_path / "setup",
                                                verify=False))  # fmt: skip
        fp = {1: pg_rows(pg_dsn, schema)}
        points = sweep.reference(cmd(0))
        fp[0] = pg_rows(pg_dsn, schema)
        assert fp[0] != fp[1]
        for i, point in enumerate(points, 1):
            old, new = fp[(i + 1) % 2], fp[i % 2]
            assert pg_rows(pg_dsn, schema) == old
            run = sweep.kill(cmd(i), point)
            state = _classify(pg_rows(pg_dsn, schema), old, new)
            sweep.record(point, run, state)
            assert state != "HALF", point.label
            assert [file_digest(s) for s in srcs] == digests, point.label
            status_answers(tmp_path / f"run{i}")
            ok(cli(*cmd(i)[3:], cwd=tmp_path))  # the same command again finishes it
            assert pg_rows(pg_dsn, schema) == new, point.label
            assert not stage_left(pg_dsn, schema), point.label
        sweep.done()
    finally:
        drop_schema(pg_dsn, schema)


def test_load_killed_after_any_state_change_leaves_old_or_new_and_runs_again(
    strace: str, pg_dsn: str, tmp_path: Path, request: pytest.FixtureRequest,
    budget: int | None,
) -> None:  # fmt: skip
    schema = f"crash_{uuid.uuid4().hex[:10]}"
    runs = []
    for i, variant in enumerate((1, 2)):
        src = make_source(tmp_path / f"src{i}.db", variant)
        run_dir = tmp_path / f"art{i}"
        ok(cli("export", str(src), "--run-dir", str(run_dir), "--schema", schema, cwd=tmp_path))
        ok(cli("transform", str(run_dir), cwd=tmp_path))
        runs.append(run_dir)
    sweep = Sweep("load", strace, tmp_path, budget, request, dsn=pg_dsn)

    def cmd(i: int) -> list[str]:
        return [*LITE2PG, "load", str(runs[i % 2]), "--target", pg_dsn, "--drop"]

    try:
        ok(cli(*cmd(1)[3:], cwd=tmp_path))
        fp = {1: pg_rows(pg_dsn, schema)}
        points = sweep.reference(cmd(0))
        fp[0] = pg_rows(pg_dsn, schema)
        assert fp[0] != fp[1]
        for i, point in enumerate(points, 1):
            old, new = fp[(i + 1) % 2], fp[i % 2]
            run = sweep.kill(cmd(i), point)
            state = _classify(pg_rows(pg_dsn, schema), old, new)
            sweep.record(point, run, state)
            assert state != "HALF", point.label
            status_answers(runs[i % 2])
            ok(cli(*cmd(i)[3:], cwd=tmp_path))
            assert pg_rows(pg_dsn, schema) == new, point.label
            assert not stage_left(pg_dsn, schema), point.label
        sweep.done()
    finally:
        drop_schema(pg_dsn, schema)


# --- cutover (offline) and rollback: the config and the target move together ------------


@dataclass
class Offline:
    """A verified run of a.db and the app's .env, on a schema of its own."""

    dsn: str
    base: Path
    schema: str = field(default_factory=lambda: f"crash_{uuid.uuid4().hex[:10]}")

    def __post_init__(self) -> None:
        self.db = make_source(self.base / "app.db", 1)
        self.digest = file_digest(self.db)
        self.run = self.base / "run"
        self.config = self.base / ".env"
        self.config.write_text(SQLITE_URL)
        migrate(self.db, self.target, MigrateOptions(schema=self.schema, run_dir=self.run))

    @property
    def target(self) -> Target:
        return Target(self.dsn, "--target")

    def config_value(self) -> str:
        value = current_value(self.config)  # it parses: never empty, never half-written
        assert value in ("sqlite:///app.db", self.dsn), value
        return "postgresql" if value == self.dsn else "sqlite"

    def cutover_line(self) -> str:
        listing = status_answers(self.run)
        lines = [x for x in listing.splitlines() if x.startswith("cutover")]
        assert lines, listing
        return lines[-1]


def _state(line: str) -> str:
    """'cutover    done: /app/.env' -> 'done: /app/.env'"""
    return line.split(None, 1)[1] if " " in line else ""


@pytest.fixture
def offline(pg_dsn: str, tmp_path: Path) -> Iterator[Offline]:
    world = Offline(pg_dsn, tmp_path)
    yield world
    drop_schema(pg_dsn, world.schema)


def test_cutover_killed_after_any_state_change_leaves_the_config_whole_and_status_truthful(
    strace: str, offline: Offline, request: pytest.FixtureRequest, budget: int | None
) -> None:
    w = offline
    sweep = Sweep("cutover", strace, w.base, budget, request, dsn=w.dsn)
    cmd = [*LITE2PG, "cutover", str(w.run), "--config", str(w.config), "--target", w.dsn]
    points = sweep.reference(cmd)
    assert w.config_value() == "postgresql"
    for point in points:
        rollback(w.run, w.target)  # back to SQLite (the tables emptied: cutover reads none)
        assert w.config_value() == "sqlite"
        run = sweep.kill(cmd, point)
        where = w.config_value()
        sweep.record(point, run, "old" if where == "sqlite" else "new")
        line = w.cutover_line()  # status: finishes an interrupted step, then tells
        if where == "postgresql":  # a config that names PostgreSQL is a cutover done
            assert _state(line).startswith("done"), (point.label, line)
        else:  # still on SQLite: the operator runs the cutover again
            assert not _state(line).startswith("done"), (point.label, line)
            ok(cli(*cmd[3:], cwd=w.base))
        assert w.config_value() == "postgresql", point.label
        assert _state(w.cutover_line()).startswith("done"), point.label
        assert file_digest(w.db) == w.digest
    sweep.done()


def test_rollback_killed_after_any_state_change_never_points_the_app_at_emptied_tables(
    strace: str, offline: Offline, request: pytest.FixtureRequest, budget: int | None
) -> None:
    w = offline
    sweep = Sweep("rollback", strace, w.base, budget, request, dsn=w.dsn)
    cmd = [*LITE2PG, "rollback", str(w.run), "--target", w.dsn]
    full = pg_rows(w.dsn, w.schema)
    empty: dict[str, list[tuple[Any, ...]]] = {t: [] for t in full}
    cutover(w.run, w.target, w.config)
    points = sweep.reference(cmd)
    assert (pg_rows(w.dsn, w.schema), w.config_value()) == (empty, "sqlite")
    for point in points:
        rollback(w.run, w.target, reload=True)  # the tables loaded again ...
        cutover(w.run, w.target, w.config)  # ... and the app on them
        run = sweep.kill(cmd, point)
        tables, where = pg_rows(w.dsn, w.schema), w.config_value()
        state = _classify(tables, full, empty)
        sweep.record(point, run, state)
        assert state != "HALF", point.label
        # never the app on PostgreSQL with its tables emptied (the config goes back first)
        assert not (state == "new" and where == "postgresql"), point.label
        w.cutover_line()  # status finishes an interrupted rollback, or says what is left
        ok(cli(*cmd[3:], cwd=w.base))
        assert (pg_rows(w.dsn, w.schema), w.config_value()) == (empty, "sqlite"), point.label
        assert file_digest(w.db) == w.digest
    sweep.done()


# --- online: sync, and cutover --online with the app writing the whole time -------------

APP = r"""
import sqlite3, sys, time
from pathlib import Path
db, oks, stop = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
conn = sqlite3.connect(db, timeout=30, isolation_level=None)
n = 0
with oks.open("a") as out:
    while not stop.exists():
        n += 1
        try:
            cur = conn.execute("INSERT INTO notes (body) VALUES (?)", (f"app write {n}",))
        except sqlite3.DatabaseError as e:
            if "moved to PostgreSQL" in str(e):
                break  # the app would now re-read its config
            raise
        out.write(f"{cur.lastrowid}\n")  # the OK the app got
        out.flush()
        time.sleep(0.002)
"""


@dataclass
class App:
    """An app process writing to SQLite and keeping the ids it got an OK for."""

    db: Path
    base: Path

    def __post_init__(self) -> None:
        self.oks = self.base / f"oks-{uuid.uuid4().hex[:6]}"
        self.stop_file = self.oks.with_suffix(".stop")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", APP, str(self.db), str(self.oks), str(self.stop_file)],
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def stop(self) -> set[int]:
        """Stop it; the ids it was told OK for."""
        self.stop_file.touch()
        _, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err
        return self.told_ok()

    def told_ok(self) -> set[int]:
        return {int(x) for x in self.oks.read_text().split()} if self.oks.exists() else set()

    def kill(self) -> None:
        """After a failed case: nothing left running."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=60)


@dataclass
class Online:
    """A prepared app.db, migrated into its own schema, its .env on SQLite."""

    dsn: str
    base: Path
    n: int

    def __post_init__(self) -> None:
        self.schema = f"crash_{uuid.uuid4().hex[:10]}"
        self.dir = self.base / f"w{self.n}"
        self.dir.mkdir()
        self.db = make_source(self.dir / "app.db", 1)
        capture.prepare(self.db)
        self.schema_before = user_schema(self.db)
        self.rows_before = sqlite_rows(self.db)
        self.run = self.dir / "run"
        self.config = self.dir / ".env"
        self.config.write_text(SQLITE_URL)
        target = Target(self.dsn, "--target")
        migrate(self.db, target, MigrateOptions(schema=self.schema, run_dir=self.run,
                                                verify=False))  # fmt: skip

    def blocked(self) -> bool:
        with closing(sqlite3.connect(f"{self.db.resolve().as_uri()}?mode=ro", uri=True)) as c:
            return bool(capture.blocked(c, ["notes", "tags"]))

    def on_postgresql(self) -> bool:
        value = current_value(self.config)
        assert value in ("sqlite:///app.db", self.dsn), value
        return value == self.dsn


def test_online_cutover_killed_after_any_state_change_loses_no_write_the_app_was_told_ok(
    strace: str, pg_dsn: str, tmp_path: Path, request: pytest.FixtureRequest,
    budget: int | None,
) -> None:  # fmt: skip
    # One point more than the others: its protocol has SQLite's commit inside the freeze.
    more = None if budget is None else budget + 1
    sweep = Sweep("cutover --online", strace, tmp_path, more, request, dsn=pg_dsn)
    worlds: list[Online] = []
    apps: list[App] = []

    def cmd(w: Online) -> list[str]:
        return [*LITE2PG, "cutover", str(w.run), "--config", str(w.config), "--target",
                pg_dsn, "--online", "--no-verify"]  # fmt: skip

    def check(w: Online, oks: set[int]) -> None:
        """Forwards: SQLite blocked, every OK in PostgreSQL, both sides the same rows."""
        assert w.on_postgresql() and w.blocked()
        lite = sqlite_rows(w.db)
        assert {r[0] for r in lite["notes"]} >= oks
        assert lite["notes"][: len(w.rows_before["notes"])] == w.rows_before["notes"]
        assert lite["tags"] == w.rows_before["tags"]  # the app writes notes only
        pg = pg_rows(pg_dsn, w.schema)
        assert pg["notes"] == lite["notes"] and pg["tags"] == lite["tags"]
        assert user_schema(w.db) == w.schema_before  # only _lite2pg_* objects were added

    def world() -> Online:
        worlds.append(Online(pg_dsn, tmp_path, len(worlds)))
        return worlds[-1]

    try:
        w = world()
        app = App(w.db, w.dir)
        apps.append(app)
        points = sweep.reference(cmd(w))
        check(w, app.stop())
        for point in points:
            w = world()
            app = App(w.db, w.dir)
            apps.append(app)
            run = sweep.kill(cmd(w), point)
            status_answers(w.run)  # finishes an interrupted cutover, either way
            forwards = w.on_postgresql()
            # the config and the write block agree, whichever way it was finished
            assert w.blocked() == forwards, point.label
            sweep.record(point, run, "new" if forwards else "old")
            if not forwards:  # the app stays on SQLite: its writes so far are there
                told_ok = app.told_ok()  # first: the app writes on, and says OK after
                assert {r[0] for r in sqlite_rows(w.db)["notes"]} >= told_ok, point.label
                ok(cli(*cmd(w)[3:], cwd=w.dir))  # the cutover again, the app still writing
            check(w, app.stop())
        sweep.done()
    finally:
        for a in apps:
            a.kill()
        for w in worlds:
            drop_schema(pg_dsn, w.schema)
            forget_sync(pg_dsn, w.run)


def test_sync_killed_after_any_state_change_applies_a_round_whole_or_not_at_all(
    strace: str, pg_dsn: str, tmp_path: Path, request: pytest.FixtureRequest,
    budget: int | None,
) -> None:  # fmt: skip
    sweep = Sweep("sync", strace, tmp_path, budget, request, dsn=pg_dsn)
    w = Online(pg_dsn, tmp_path, 0)
    cmd = [*LITE2PG, "sync", str(w.run), "--target", pg_dsn]
    step = iter(range(1, 10_000))

    def app_writes() -> None:
        k = next(step)
        with closing(sqlite3.connect(w.db)) as conn, conn:
            conn.executemany(
                "INSERT INTO notes (body) VALUES (?)", [(f"s{k}-{j}",) for j in range(3)]
            )
            conn.execute("UPDATE notes SET body = body || '!' WHERE id IN (?, ?)", (k, k + 7))
            conn.execute("DELETE FROM tags WHERE id = ?", (k,))

    def mirrored() -> dict[str, list[Any]]:
        return {t: [tuple(r) for r in rows] for t, rows in sqlite_rows(w.db).items()}

    try:
        app_writes()
        points = sweep.reference(cmd)
        assert pg_rows(pg_dsn, w.schema) == mirrored()
        for point in points:
            old = pg_rows(pg_dsn, w.schema)
            app_writes()
            new = mirrored()
            digest = file_digest(w.db)
            run = sweep.kill(cmd, point)
            state = _classify(pg_rows(pg_dsn, w.schema), old, new)
            sweep.record(point, run, state)
            assert state != "HALF", point.label
            assert file_digest(w.db) == digest  # sync only reads the source
            status_answers(w.run)
            ok(cli(*cmd[3:], cwd=tmp_path))
            assert pg_rows(pg_dsn, w.schema) == new, point.label
        sweep.done()
    finally:
        drop_schema(pg_dsn, w.schema)
        forget_sync(pg_dsn, w.run)
