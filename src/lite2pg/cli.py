"""The lite2pg command line: flags -> options -> one library call -> exit code.

Exit codes: 0 success; 1 finished but rows were rejected or keys could not be built
(0 with --allow-rejects); 2 a known error (one line on stderr, nothing half-written).
"""

from __future__ import annotations

import copy
import functools
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import click
import psycopg
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table as RichTable
from rich.text import Text

from lite2pg import source as source_mod
from lite2pg import target as target_mod
from lite2pg.cli_params import recover_run, source_argument
from lite2pg.errors import Interrupted, Lite2pgError, UsageError
from lite2pg.load import TableResult
from lite2pg.plan import NAMES_MODES, load_plan
from lite2pg.profiles import PROFILE_CHOICES
from lite2pg.report import RunReport, print_summary
from lite2pg.run import MigrateOptions, migrate
from lite2pg.runtarget import run_target


class PlainProgress:
    """Progress as plain lines, for logs and pipes."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._started = 0.0
        self._steps: set[tuple[str, str]] = set()

    def start_table(self, name: str, total: int) -> None:
        self._started = time.perf_counter()
        self.console.print(f"loading {name} ({total} rows)")

    def advance(self, name: str, done: int) -> None:
        pass

    def end_table(self, result: TableResult) -> None:
        extra = f", {result.rejected} rejected" if result.rejected else ""
        self.console.print(
            f"loaded {result.source}: {result.loaded} rows{extra} in {result.seconds:.2f}s"
        )

    def phase(self, name: str) -> None:
        self.console.print(f"{name} ...")

    def step(self, stage: str, name: str, done: int, total: int) -> None:
        key = (stage, name)
        if key not in self._steps:
            self._steps.add(key)
            self.console.print(f"{stage} {name} ({total} rows) ...")


class RateColumn(ProgressColumn):
    """Rows per second of a task."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} rows/s", style="progress.data.speed")


class BarProgress:
    """Rich progress bars, one per table, on a terminal."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            RateColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> BarProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def start_table(self, name: str, total: int) -> None:
        self._tasks[name] = self.progress.add_task(name, total=total)

    def advance(self, name: str, done: int) -> None:
        self.progress.update(self._tasks[name], completed=done)

    def end_table(self, result: TableResult) -> None:
        task = self._tasks[result.source]
        self.progress.update(task, completed=result.read, total=result.read)

    def phase(self, name: str) -> None:
        self.progress.console.print(f"{name} ...")

    def step(self, stage: str, name: str, done: int, total: int) -> None:
        key = f"{stage} {name}"
        if key not in self._tasks:
            self._tasks[key] = self.progress.add_task(key, total=total)
        self.progress.update(self._tasks[key], completed=done)


def _fail(e: Lite2pgError) -> None:
    click.echo(f"lite2pg: {'' if isinstance(e, Interrupted) else 'error: '}{e}", err=True)
    sys.exit(e.exit_code)


class _Commands(click.Group):
    """The command group: Ctrl-C anywhere ends with one line and exit code 130 (commands
    that change state say more themselves, through `Interrupted`); a server error, with one
    line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("lite2pg: interrupted", err=True)
            sys.exit(Interrupted.exit_code)
        except psycopg.Error as e:
            # The last net: a server error no command turned into a message (a table
            # dropped or changed in the target since the run) is one line, not a traceback.
            _fail(target_mod.refused(e, f"running lite2pg {ctx.invoked_subcommand or ''}".strip()))


def _parse_casts(values: tuple[str, ...]) -> dict[str, str]:
    casts: dict[str, str] = {}
    for v in values:
        key, sep, typ = v.partition("=")
        if not sep or not key or not typ:
            raise UsageError(
                f"--cast {v!r} is not TABLE.COLUMN=TYPE", "e.g. --cast users.age=bigint"
            )
        casts[key.strip()] = typ.strip()
    return casts


def _profile_option(f: Any) -> Any:
    return click.option(
        "--profile",
        type=click.Choice(PROFILE_CHOICES),
        default="auto",
        show_default=True,
        help="The ORM that wrote the database (auto: detected by its migrations table); "
        "its built-in plan applies under --plan.",
    )(f)


def run_migrate(
    source: Path,
    target_uri: str | None,
    options: MigrateOptions,
    *,
    allow_rejects: bool,
    quiet: bool,
    target: target_mod.Target | None = None,
    keep_artifacts: bool | None = None,
) -> int:
    """Resolve the target, migrate with progress, print the summary; return the exit code."""
    err = Console(stderr=True)
    out = Console()
    # A wrong path fails before an embedded server is started for it.
    source_mod.check_sqlite_file(source)
    tgt = target or target_mod.resolve(target_uri)
    # Artifacts are for real targets: rehearsals on the embedded server stream through.
    options.keep_artifacts = (
        keep_artifacts if keep_artifacts is not None else tgt.origin != "embedded"
    )
    if tgt.origin == "embedded":
        # Never wrapped: both are copied and pasted.
        err.print(f"embedded PostgreSQL: {tgt.dsn}", soft_wrap=True)
        err.print(f"open it with: {tgt.psql_command_in(options.schema)}", soft_wrap=True)
    if tgt.note:
        err.print(f"note: {tgt.note}", soft_wrap=True)
    report: RunReport
    if quiet:
        report = migrate(source, tgt, options)
    elif err.is_terminal:
        with BarProgress(err) as bars:
            report = migrate(source, tgt, options, bars)
    else:
        report = migrate(source, tgt, options, PlainProgress(err))
    if not quiet:
        print_summary(report, out)
    out.print(report.verdict())
    html = Path(report.run_dir) / "report.html"
    out.print(f"report: {html if html.exists() else Path(report.run_dir) / 'report.json'}")
    return report.exit_code(allow_rejects)


_NAMES = click.option(
    "--names",
    type=click.Choice(NAMES_MODES),
    default=None,
    help="fold: names declared unquoted in SQLite become lower case, as PostgreSQL reads "
    "the app's unquoted SQL; quoted ones keep their case. keep: every name keeps its case. "
    "[default: the plan's `names`, else fold]",
)


_EXCLUDE = click.option(
    "--exclude-table",
    "exclude",
    multiple=True,
    metavar="GLOB",
    help="Leave out the tables this glob matches (repeatable; case-insensitive, e.g. "
    "'django_*'). Rows that reference one are orphans: the plan's on_orphan policy applies.",
)


@click.group(cls=_Commands)
@click.version_option(package_name="lite2pg")
def main() -> None:
    """Move a SQLite database into PostgreSQL, proven row by row."""


@main.command("migrate")
@source_argument
@click.option(
    "--target",
    "target_uri",
    metavar="URI",
    help="libpq URI; default DATABASE_URL, PG*, else embedded.",
)
@click.option("--schema", default="public", show_default=True, help="Target schema.")
@click.option(
    "--data-only", is_flag=True, help="Load into tables that already exist (matched by name)."
)
@click.option("--truncate", is_flag=True, help="With --data-only: empty the target tables first.")
@click.option("--drop", is_flag=True, help="Drop target tables of the same name first.")
@click.option(
    "--cast", "casts", multiple=True, metavar="TABLE.COLUMN=TYPE", help="Override a column's type."
)
@click.option(
    "--table", "tables", multiple=True, metavar="NAME", help="Only these tables (repeatable)."
)
@_EXCLUDE
@click.option(
    "--plan", "plan_name", metavar="PLAN", help="A plan TOML file, or a built-in plan's name."
)
@click.option(
    "--run-dir",
    type=click.Path(path_type=Path),
    help="Run directory (default .lite2pg/runs/<UTC time>).",
)
@click.option("--allow-rejects", is_flag=True, help="Exit 0 even when rows were rejected.")
@click.option(
    "--no-verify", is_flag=True, help="Skip the row-by-row verification at the end (faster)."
)
@click.option(
    "--keep-artifacts/--no-keep-artifacts",
    default=None,
    help="Write export/ and transformed/ CSVs with a manifest in the run directory "
    "[default: on, except for the embedded PostgreSQL].",
)
@click.option(
    "--batch-size", type=click.IntRange(1, 1_000_000), default=5_000, show_default=True,
    help="Rows read from SQLite and converted at a time.",
)  # fmt: skip
@click.option(
    "--keep-failed", is_flag=True,
    help="Keep the data copies (snapshot, export/, transformed/) of a run that fails "
    "before it publishes [default: removed].",
)  # fmt: skip
@_NAMES
@click.option("-q", "--quiet", is_flag=True, help="Only the verdict.")
@_profile_option
def migrate_cmd(
    source: Path,
    target_uri: str | None,
    schema: str,
    data_only: bool,
    truncate: bool,
    drop: bool,
    casts: tuple[str, ...],
    tables: tuple[str, ...],
    exclude: tuple[str, ...],
    plan_name: str | None,
    run_dir: Path | None,
    allow_rejects: bool,
    no_verify: bool,
    keep_artifacts: bool | None,
    batch_size: int,
    keep_failed: bool,
    names: str | None,
    quiet: bool,
    profile: str,
) -> None:
    """Copy every table of SOURCE (a SQLite file) into PostgreSQL, then verify it.

    A database written by Django, Prisma, SQLAlchemy (Alembic) or ActiveRecord gets that
    ORM's profile: a built-in plan for how it stores values in SQLite (Prisma's epoch
    milliseconds, Django's hex UUIDs and JSON text ...), under your --plan.

    Example: lite2pg migrate legacy.db --target postgresql://app@localhost/app
    """
    try:
        if truncate and not data_only:
            raise UsageError("--truncate goes with --data-only", "add --data-only, or use --drop")
        if drop and data_only:
            raise UsageError(
                "--drop and --data-only exclude each other", "--data-only --truncate empties"
            )
        options = MigrateOptions(
            plan=load_plan(plan_name) if plan_name else None,
            schema=schema,
            data_only=data_only,
            truncate=truncate,
            drop=drop,
            casts=_parse_casts(casts),
            run_dir=run_dir,
            batch_size=batch_size,
            tables=list(tables) or None,
            exclude=exclude,
            verify=not no_verify,
            profile=profile,
            names=names,
            keep_failed=keep_failed,
        )
        code = run_migrate(
            source, target_uri, options, allow_rejects=allow_rejects, quiet=quiet,
            keep_artifacts=keep_artifacts,
        )  # fmt: skip
    except Lite2pgError as e:
        _fail(e)
    sys.exit(code)


@main.command("verify")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--target", "target_uri", metavar="URI", help="Default: the server the run recorded.")
@click.option(
    "--sample", type=click.IntRange(0, 1000), default=5, show_default=True,
    help="Random rows per table shown side by side in report.html (spot-checks).",
)  # fmt: skip
@click.option(
    "--seed", type=int, default=0, show_default=True,
    help="Seed of the spot-checks' random rows (the same seed, the same rows).",
)  # fmt: skip
@click.option(
    "--float-tolerance", type=click.FloatRange(min=0), default=0.0, show_default=True,
    help="Largest absolute difference by which a floating-point value still counts as "
    "equal (0: bit for bit).",
)  # fmt: skip
def verify_cmd(
    run_dir: Path, target_uri: str | None, sample: int, seed: int, float_tolerance: float
) -> None:
    """Prove that a migrate run's target equals transform(snapshot), row by row.

    Counts reconcile, foreign keys hold, every row and column matches, per-table digests
    are stored, and a few random rows are shown side by side in RUN_DIR/report.html.

    Example: lite2pg verify .lite2pg/runs/<run> --target postgresql://app@localhost/app
    """
    from lite2pg.verify import verify

    err = Console(stderr=True)
    recover_run(run_dir, target_uri)
    try:
        target = run_target(run_dir, target_uri)
        if err.is_terminal:
            with BarProgress(err) as bars:
                report = verify(
                    run_dir, target, sample=sample, seed=seed, float_tolerance=float_tolerance,
                    progress=functools.partial(bars.step, "verify"),
                )  # fmt: skip
        else:
            report = verify(
                run_dir, target, sample=sample, seed=seed, float_tolerance=float_tolerance
            )
    except psycopg.OperationalError as e:
        _fail(target_mod.server_failure(e, "verifying", "verify writes nothing: run it again"))
    except Lite2pgError as e:
        _fail(e)
    out = Console()
    out.print(str(report))
    if report.evidence is not None:
        out.print(report.evidence.verdict())
    out.print(f"report: {run_dir / 'report.html'}")
    sys.exit(0 if report.ok else 1)


@main.command("export")
@source_argument
@click.option(
    "--run-dir", type=click.Path(path_type=Path), help="Default .lite2pg/runs/<UTC time>."
)
@click.option("--plan", "plan_name", metavar="PLAN", help="A plan TOML file, or a built-in name.")
@click.option("--table", "tables", multiple=True, metavar="NAME", help="Only these tables.")
@_EXCLUDE
@click.option("--schema", default="public", show_default=True, help="Target schema (for load).")
@click.option("--data-only", is_flag=True, help="load: into tables that already exist.")
@click.option("--truncate", is_flag=True, help="load --data-only: empty them first.")
@click.option(
    "--cast", "casts", multiple=True, metavar="TABLE.COLUMN=TYPE",
    help="Override a column's PostgreSQL type (repeatable).",
)  # fmt: skip
@_profile_option
@_NAMES
def export_cmd(
    source: Path,
    run_dir: Path | None,
    plan_name: str | None,
    tables: tuple[str, ...],
    exclude: tuple[str, ...],
    schema: str,
    data_only: bool,
    truncate: bool,
    casts: tuple[str, ...],
    profile: str,
    names: str | None,
) -> None:
    """Snapshot SOURCE and write each table as CSV, with SHA-256s in manifest.json.

    The CSVs keep every SQLite value exactly (NULL apart from '', 5 apart from '5', BLOBs
    as \\x-hex) and are mode 0600: they are copies of the source.

    Example: lite2pg export dev.db --run-dir rehearsal-1
    """
    from lite2pg.lifecycle import export

    try:
        if truncate and not data_only:
            raise UsageError("--truncate goes with --data-only", "add --data-only")
        options = MigrateOptions(
            plan=load_plan(plan_name) if plan_name else None,
            tables=list(tables) or None,
            exclude=exclude,
            schema=schema,
            data_only=data_only,
            truncate=truncate,
            casts=_parse_casts(casts),
            profile=profile,
            names=names,
        )
        out = export(source, run_dir, options)
    except Lite2pgError as e:
        _fail(e)
    click.echo(f"exported to {out} (manifest: {out / 'manifest.json'})")


@main.command("transform")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def transform_cmd(run_dir: Path) -> None:
    """Run the exported snapshot through the plan into transformed/<table>.csv.

    Example: lite2pg transform rehearsal-1
    """
    from lite2pg.stages import transform

    try:
        counts = transform(run_dir)
    except Lite2pgError as e:
        _fail(e)
    for table, c in counts.items():
        click.echo(f"{table}: {c['read']} read, {c['rejected']} rejected, {c['filtered']} filtered")


@main.command("load")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--target",
    "target_uri",
    metavar="URI",
    help="libpq URI; default: the run's, DATABASE_URL, PG*.",
)
@click.option("--drop", is_flag=True, help="Replace target tables of the same name.")
@click.option("--no-verify", is_flag=True, help="Skip the verification at the end.")
@click.option("--allow-rejects", is_flag=True, help="Exit 0 even when rows were rejected.")
def load_cmd(
    run_dir: Path, target_uri: str | None, drop: bool, no_verify: bool, allow_rejects: bool
) -> None:
    """Copy the transformed files in, after re-checking their SHA-256 against the manifest.

    A file changed since transform wrote it is refused. The load is staged and published
    in one transaction: killed at any moment, it leaves the target as it was.

    Example: lite2pg load rehearsal-1 --target postgresql://app@db/app
    """
    from lite2pg.stages import load

    try:
        report = load(run_dir, run_target(run_dir, target_uri), drop=drop, verify=not no_verify)
    except Lite2pgError as e:
        _fail(e)
    out = Console()
    print_summary(report, out)
    out.print(report.verdict())
    sys.exit(report.exit_code(allow_rejects))


@main.command("status")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def status_cmd(run_dir: Path) -> None:
    """What a run has done, what is left, what failed.

    Example: lite2pg status .lite2pg/runs/<run>
    """
    from lite2pg.lifecycle import status

    try:
        click.echo(str(status(run_dir)))
    except Lite2pgError as e:
        _fail(e)


@main.command("cutover")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--config",
    "config",
    type=click.Path(path_type=Path),
    required=True,
    help="The app's config: .env, TOML, YAML, JSON or INI.",
)
@click.option("--key", metavar="DOTTED.KEY", help="The setting (default DATABASE_URL in .env).")
@click.option("--target", "target_uri", metavar="URI", help="Default: the server the run recorded.")
@click.option("--smoke", metavar="COMMAND", help="The app's own tests, run with the new URL.")
@click.option(
    "--smoke-timeout", type=click.FloatRange(min=1), default=600.0, show_default=True,
    help="Seconds the --smoke command may run before it counts as failed.",
)  # fmt: skip
@click.option(
    "--online", is_flag=True,
    help="The app is still writing (after prepare and sync): catch up, freeze writes "
    "for milliseconds, drain, check, switch, then verify the state handed over.",
)  # fmt: skip
@click.option(
    "--max-lag", type=click.IntRange(0), default=200, show_default=True,
    help="--online: catch up until at most this many changes are left, then freeze.",
)  # fmt: skip
@click.option(
    "--lock-wait", type=click.FloatRange(min=0.0), default=5.0, show_default=True,
    help="--online: seconds to wait for SQLite's write lock.",
)  # fmt: skip
@click.option("--no-verify", is_flag=True, help="--online: skip the verify after the switch.")
def cutover_cmd(
    run_dir: Path,
    config: Path,
    key: str | None,
    target_uri: str | None,
    smoke: str | None,
    smoke_timeout: float,
    online: bool,
    max_lag: int,
    lock_wait: float,
    no_verify: bool,
) -> None:
    """After a passing verify, point the app's config at PostgreSQL and smoke-test it.

    The config is rewritten atomically, with a backup next to it. A sample of users must
    log in with their original passwords, and --smoke runs the app's own tests with
    DATABASE_URL set to the target: if they fail, the old config is put back.

    Example: lite2pg cutover RUN --config app/.env --smoke "pytest app/tests"

    With --online (the app still writes to SQLite; see lite2pg prepare and sync): catch
    up, take SQLite's write lock, drain the last changes, check them and the counts, switch
    the config and block further SQLite writes, release; then verify the handed-over state.
    If anything fails before the release, the app stays on SQLite, unharmed.
    """
    from lite2pg import cutover_intent, intent
    from lite2pg.lifecycle import cutover
    from lite2pg.protocols import SWITCH

    interrupted = [
        kind for kind in (cutover_intent.KIND, SWITCH) if intent.unfinished(run_dir, kind)
    ]
    try:
        dsn = run_target(run_dir, target_uri).dsn if interrupted else None
    except Lite2pgError as e:
        _fail(e)
    recover_run(run_dir, target_uri, dsn=dsn)
    for kind in interrupted:
        after = intent.read(run_dir, kind)
        switched = after is not None and after.data.get("action") != "restore"
        if after is not None and switched and "forwards" in after.state:
            return  # the interrupted cutover is done now: not a second switch over it
    if online:
        _cutover_online(
            run_dir, config, key, target_uri, smoke, smoke_timeout, max_lag, lock_wait,
            not no_verify,
        )  # fmt: skip
        return
    try:
        result = cutover(
            run_dir, run_target(run_dir, target_uri), config, key=key, smoke=smoke,
            smoke_timeout=smoke_timeout,
        )  # fmt: skip
    except Lite2pgError as e:
        _fail(e)
    click.echo(str(result))


def _cutover_online(
    run_dir: Path,
    config: Path,
    key: str | None,
    target_uri: str | None,
    smoke: str | None,
    smoke_timeout: float,
    max_lag: int,
    lock_wait: float,
    verify_after: bool,
) -> None:
    from lite2pg.online import cutover_online

    err = Console(stderr=True)
    try:
        result = cutover_online(
            run_dir, run_target(run_dir, target_uri), config, key=key, max_lag=max_lag,
            lock_wait=lock_wait, verify_after=verify_after, smoke=smoke,
            smoke_timeout=smoke_timeout, on_round=lambda r: err.print(str(r)),
            on_phase=lambda p: err.print(f"{p} ..."),
        )  # fmt: skip
    except Lite2pgError as e:
        _fail(e)
    click.echo(str(result))
    if result.verify_ok is False:
        sys.exit(1)


@main.command("rollback")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--target", "target_uri", metavar="URI", help="Default: the server the run recorded.")
@click.option("--drop", is_flag=True, help="Drop the tables instead of emptying them.")
@click.option("--reload", "reload_", is_flag=True, help="Then load again from the snapshot.")
def rollback_cmd(run_dir: Path, target_uri: str | None, drop: bool, reload_: bool) -> None:
    """Empty exactly the tables a run loaded, in one transaction; undo its cutover.

    Example: lite2pg rollback RUN --target postgresql://app@db/app --reload
    """
    from lite2pg.lifecycle import rollback

    recover_run(run_dir, target_uri)
    try:
        result = rollback(run_dir, run_target(run_dir, target_uri), drop=drop, reload=reload_)
    except Lite2pgError as e:
        _fail(e)
    click.echo(str(result))


_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]i?b|b)?\s*", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}  # fmt: skip


def _size(text: str) -> int:
    """'5GB', '800 MB', '1.5GiB' or a plain number of bytes."""
    m = _SIZE.fullmatch(text)
    if m is None:
        raise UsageError(f"--production-size {text!r} is not a size", "e.g. 5GB or 800MB")
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "b").lower()])


@main.command("rehearse")
@source_argument
@click.option("--plan", "plan_name", metavar="PLAN", help="The plan the real run will use.")
@click.option(
    "--target", "target_uri", metavar="URI",
    help="Where to rehearse [default: the embedded PostgreSQL].",
)  # fmt: skip
@click.option(
    "--production-size", metavar="SIZE",
    help="The production SQLite file's size (5GB), to scale the times [default: SOURCE's].",
)  # fmt: skip
@click.option("--production-db", default="prod.db", show_default=True, help="For the commands.")
@click.option(
    "--production-target", default="postgresql://app@db.example/app", show_default=True,
    help="For the commands of the cutover day.",
)  # fmt: skip
@click.option("--config", default=".env", show_default=True, help="The app's config file.")
@click.option("--schema", default="public", show_default=True, help="Target schema.")
@click.option("--run-dir", type=click.Path(path_type=Path), help="Run directory.")
def rehearse_cmd(
    source: Path,
    plan_name: str | None,
    target_uri: str | None,
    production_size: str | None,
    production_db: str,
    production_target: str,
    config: str,
    schema: str,
    run_dir: Path | None,
) -> None:
    """Rehearse the migration of SOURCE and write the sign-off document (rehearsal.md).

    A full migrate and verify (on the embedded PostgreSQL unless --target), then one
    Markdown file for the DBA, the tech lead and the sponsor: what moves, what the plan
    drops and changes, rejects by reason, mapped values, behaviour changes, each stage's
    time scaled to the production size, and the commands of the cutover day.

    Example: lite2pg rehearse copy-of-prod.db --plan plan.toml --production-size 5GB
    """
    from lite2pg import rehearsal
    from lite2pg.rundir import new_run_dir

    try:
        size = _size(production_size) if production_size else None
        options = MigrateOptions(
            plan=load_plan(plan_name) if plan_name else None,
            run_dir=run_dir or new_run_dir(),
            schema=schema,
        )
        code = run_migrate(source, target_uri, options, allow_rejects=True, quiet=False)
        assert options.run_dir is not None
        commands = rehearsal.cutover_commands(
            production_db, f"runs/{options.run_dir.name}", plan_name, production_target, config
        )
        path = rehearsal.write(
            options.run_dir,
            source_bytes=source.stat().st_size,
            production_bytes=size,
            commands=commands,
        )
    except Lite2pgError as e:
        _fail(e)
    click.echo(f"rehearsal: {path}")
    sys.exit(code)


@main.command("retry")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--plan", "plan_name", metavar="PLAN", required=True,
    help="The plan lines that fix the rejects (lite2pg check proposes them), laid over "
    "the run's plan.",
)  # fmt: skip
@click.option(
    "--target", "target_uri", metavar="URI",
    help="The server the run loaded into [default: the one run.json records].",
)  # fmt: skip
@click.option("--no-verify", is_flag=True, help="Skip verifying the run again afterwards.")
def retry_cmd(run_dir: Path, plan_name: str, target_uri: str | None, no_verify: bool) -> None:
    """Load a run's rejected rows again, through its plan with PLAN's fixes laid over it.

    One transaction, parents before children; rows already loaded must come out of the
    new plan unchanged. The run then is the new plan's: run.json, rejects/ and report.json
    say so, and verify proves it again. Run it until nothing is left rejected.

    Example: lite2pg retry .lite2pg/runs/<run> --plan fix.toml --target postgresql://...
    """
    from lite2pg.retry import retry

    try:
        result = retry(
            run_dir, run_target(run_dir, target_uri), load_plan(plan_name),
            verify_after=not no_verify,
        )  # fmt: skip
    except Lite2pgError as e:
        _fail(e)
    click.echo(str(result))
    for t in result.tables:
        click.echo(f"  {t.table}: {t.loaded} of {t.retried} loaded, {t.rejected} still rejected")
    sys.exit(0 if result.ok and not result.rejected else 1)


@main.command("check")
@source_argument
@click.option("--plan", "plan_name", metavar="PLAN", help="A plan TOML file, or a built-in name.")
@click.option(
    "--cast", "casts", multiple=True, metavar="TABLE.COLUMN=TYPE",
    help="Override a column's PostgreSQL type (repeatable).",
)  # fmt: skip
@click.option("--table", "tables", multiple=True, metavar="NAME", help="Only these tables.")
@_EXCLUDE
@click.option("--hash", "hash_passwords", is_flag=True, help="Hash passwords too (slow).")
@click.option(
    "--examples", type=click.IntRange(0, 100), default=3, show_default=True,
    help="Keys of rejected rows shown per group.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@_profile_option
@click.option(
    "--show-plan",
    is_flag=True,
    help="Print the plan a run would use (the ORM profile's, yours over it) as TOML "
    "to edit and pass with --plan, and nothing else.",
)
@_NAMES
def check_cmd(
    source: Path,
    plan_name: str | None,
    casts: tuple[str, ...],
    tables: tuple[str, ...],
    exclude: tuple[str, ...],
    hash_passwords: bool,
    examples: int,
    as_json: bool,
    profile: str,
    show_plan: bool,
    names: str | None,
) -> None:
    """Preflight: what would a migration of SOURCE reject, and why? Writes nothing.

    Runs source reading and every transform of the plan (password hashing only with
    --hash), then lists the rows a real run would reject: one line per table, column and
    reason, with example values and the plan lines that would fix them. Then the value
    distribution of every mapped column (unknown values first), orphans per foreign key
    and stored values that disagree with their declared type. Exit 0 only when a real run
    would reject nothing.

    Example: lite2pg check legacy.db --plan helpdesk

    Example: lite2pg check app.db --show-plan > plan.toml
    """
    from lite2pg.check import check

    try:
        report = check(
            source,
            load_plan(plan_name) if plan_name else None,
            casts=_parse_casts(casts),
            tables=list(tables) or None,
            exclude=exclude,
            hash_passwords=hash_passwords,
            examples=examples,
            profile=profile,
            names=names,
        )
    except Lite2pgError as e:
        _fail(e)
    out = Console()
    if show_plan:
        click.echo(
            report.plan_text or "# no plan: no ORM profile applies and none was given\n", nl=False
        )
        sys.exit(0)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, ensure_ascii=False, default=str))
        sys.exit(0 if report.ok else 1)
    if report.profile is not None:
        _print_profile(report.profile, out)
    for line in report.reject_lines():
        click.echo(line)  # plain: plan lines hold [brackets] that rich would read as markup
    for name, values in report.maps.items():
        t = RichTable(title=f"mapped values of {name}", title_justify="left")
        for col in ("source value", "rows", "becomes"):
            t.add_column(col)
        for v in values:
            becomes = "UNKNOWN" if v.unknown else repr(v.result)
            t.add_row(repr(v.value), str(v.count), becomes)
        out.print(t)
    for o in report.orphans:
        out.print(
            f"orphans: {o['table']}({', '.join(o['columns'])}) -> {o['references']}: "
            f"{o['rows']} row(s), policy {o['policy']}"
        )
    for d in report.disagreements:
        found = ", ".join(f"{n} {k}" for k, n in d["found"].items())
        out.print(
            f"type disagreement: {d['table']}.{d['column']} declared {d['declared']} "
            f"(-> {d['target']}) holds {found}"
        )
    for change in report.behaviour_changes:
        out.print(f"behaviour change: {change}")
    for collision in report.case_collisions:
        out.print(f"case-only duplicates: {collision}", markup=False)
    if report.case_collisions:
        first = report.case_collisions[0]
        out.print(
            "hint: SQLite's COLLATE NOCASE folds A-Z only, PostgreSQL folds every letter: "
            "make these values differ in more than case, or load the column "
            f"case-sensitively, e.g. --cast {first.table}.{first.column}=text",
            markup=False,
        )
    for suggestion in report.suggestions:
        out.print(f"suggestion: {suggestion}")
    for line in report.ledger:
        out.print(line, markup=False)
    if hash_passwords:
        out.print(f"hashed {report.passwords_hashed:,} password(s)", markup=False)
    out.print(str(report), markup=False)
    sys.exit(0 if report.ok else 1)


def _print_profile(profile: dict[str, Any], out: Console) -> None:
    """The ORM profile a run would apply: summary, then one line per plan line."""
    where = f"detected by {profile['found']}" if profile.get("found") else "named by --profile"
    if profile.get("revision"):
        where += f"; migrations at {profile['revision']}"
    out.print(f"profile: {profile['summary']} ({where})", soft_wrap=True, markup=False)
    for line in profile.get("lines") or []:
        out.print(f"  plan: {line}", soft_wrap=True, markup=False)
    for note in profile.get("notes") or []:
        out.print(f"  note: {note}", soft_wrap=True, markup=False)


@main.command("demo")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=Path("lite2pg-demo"),
    show_default=True,
    help="Where dev.db and the run directory go.",
)
@click.option(
    "--users", type=click.IntRange(1), default=200, show_default=True,
    help="Users in the generated helpdesk database.",
)  # fmt: skip
@click.option(
    "--tickets", type=click.IntRange(0), default=2_000, show_default=True,
    help="Tickets in the generated helpdesk database.",
)  # fmt: skip
@click.option(
    "--audit-logs", type=click.IntRange(0), default=8_000, show_default=True,
    help="Audit log rows in the generated helpdesk database.",
)  # fmt: skip
@click.option(
    "--target",
    "target_uri",
    metavar="URI",
    help="libpq URI; default DATABASE_URL, PG*, else embedded.",
)
@click.option(
    "--schema",
    default="helpdesk",
    show_default=True,
    help="Target schema for the new app's tables.",
)
def demo_cmd(
    directory: Path,
    users: int,
    tickets: int,
    audit_logs: int,
    target_uri: str | None,
    schema: str,
) -> None:
    """Make a messy legacy helpdesk SQLite database and migrate it with the helpdesk plan.

    It shows the whole job: plaintext passwords hashed (argon2id), legacy statuses, roles
    and priorities mapped, mixed date formats repaired, orphans handled, ids kept, and the
    rows that cannot be migrated honestly listed in rejects/.

    Example: lite2pg demo --users 500 --tickets 5000
    """
    from lite2pg.demo import make_legacy_helpdesk
    from lite2pg.run import prepare_schema

    try:
        directory.mkdir(parents=True, exist_ok=True)
        db = directory / "dev.db"
        if not db.exists():
            counts = make_legacy_helpdesk(db, users=users, tickets=tickets, audit_logs=audit_logs)
            click.echo(f"wrote {db}: {counts}")
        else:
            click.echo(f"using {db} (delete it for a fresh one)")
        plan = load_plan("helpdesk")
        tgt = target_mod.resolve(target_uri)
        created = prepare_schema(tgt, schema, plan)
        click.echo(
            f"created the new app's schema {schema!r} from the helpdesk plan"
            if created
            else f"schema {schema!r} exists; its tables are emptied and loaded again"
        )
        options = MigrateOptions(
            plan=plan,
            schema=schema,
            data_only=True,
            truncate=True,
            run_dir=directory / "runs" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
        )
        code = run_migrate(db, target_uri, options, allow_rejects=True, quiet=False, target=tgt)
    except Lite2pgError as e:
        _fail(e)
    sys.exit(code)


def _add_commands() -> None:
    from lite2pg.cli_embedded import embedded_cmd
    from lite2pg.cli_online import cleanup_cmd, prepare_cmd, sync_cmd

    for command in (prepare_cmd, sync_cmd, cleanup_cmd, embedded_cmd):
        main.add_command(command)
    # `lite2pg server status|stop`: the same commands under the name a user guesses first.
    server = copy.copy(embedded_cmd)
    server.hidden = True
    main.add_command(server, "server")


_add_commands()


if __name__ == "__main__":
    main()
