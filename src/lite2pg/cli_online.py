"""The online-migration commands: prepare, sync, cleanup (cutover --online is in cli.py)."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from types import FrameType

import click

from lite2pg.cli_params import recover_run, source_argument
from lite2pg.errors import Lite2pgError
from lite2pg.runtarget import run_target


def _fail(e: Lite2pgError) -> None:
    click.echo(f"lite2pg: error: {e}", err=True)
    sys.exit(e.exit_code)


@click.command("prepare")
@source_argument
@click.option("--table", "tables", multiple=True, metavar="NAME", help="Only these tables.")
def prepare_cmd(source: Path, tables: tuple[str, ...]) -> None:
    """Install change capture on a live SQLite database, for an online migration.

    Adds a table _lite2pg_changes and triggers (named _lite2pg_*) on each table that log
    the key of every inserted, updated or deleted row. The app keeps running; its writes
    cost one extra row each. Then: lite2pg migrate SOURCE, lite2pg sync RUN --follow,
    lite2pg cutover RUN --config PATH --online. lite2pg cleanup SOURCE removes it all.
    """
    from lite2pg.capture import prepare

    try:
        done = prepare(source, tables or None)
    except Lite2pgError as e:
        _fail(e)
    again = " (replacing an earlier prepare)" if done.already else ""
    click.echo(
        f"prepared {source}{again}: table _lite2pg_changes and {done.triggers} triggers "
        f"on {len(done.tables)} table(s): {', '.join(done.tables)}"
    )
    if done.keyless:
        click.echo(f"no primary key (reloaded whole on each change): {', '.join(done.keyless)}")
    click.echo(f"remove with: lite2pg cleanup {source}")


@click.command("cleanup")
@source_argument
def cleanup_cmd(source: Path) -> None:
    """Remove everything prepare (and an online cutover's write block) added to SOURCE."""
    from lite2pg.capture import cleanup

    try:
        done = cleanup(source)
    except Lite2pgError as e:
        _fail(e)
    if not done.triggers and not done.table:
        click.echo(f"{source} has no lite2pg change capture; nothing to remove")
        return
    click.echo(
        f"removed from {source}: {done.triggers} trigger(s)"
        + (" and table _lite2pg_changes" if done.table else "")
    )
    if done.blocked:
        click.echo("writes to its tables are allowed again (the cutover's block is gone)")


@click.command("sync")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--target", "target_uri", metavar="URI", help="Default: the server the run recorded.")
@click.option("--follow", is_flag=True, help="Keep applying changes until interrupted.")
@click.option(
    "--interval", type=click.FloatRange(min=0.01), default=0.2, show_default=True,
    help="With --follow: seconds between polls when caught up.",
)  # fmt: skip
@click.option(
    "--capture",
    "capture_mode",
    type=click.Choice(["triggers", "diff"]),
    default=None,
    help="How changes are found (default: as the run was prepared). diff compares a "
    "new snapshot with the last one and changes nothing in the source.",
)
def sync_cmd(
    run_dir: Path,
    target_uri: str | None,
    follow: bool,
    interval: float,
    capture_mode: str | None,
) -> None:
    """Apply the source's changes since the run's snapshot to PostgreSQL, through the
    run's plan, in order and idempotently; resumes where the last sync stopped.

    Prints the lag (changes and seconds behind). With --follow it runs until Ctrl-C or
    SIGTERM, finishing the round in progress.

    Example: lite2pg sync .lite2pg/runs/20261124T101500Z --follow
    """
    from lite2pg.sync import Round, sync

    stopping = False

    def stop(_sig: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    last_print = 0.0

    def show(r: Round) -> None:
        nonlocal last_print
        now = time.monotonic()
        if not follow or now - last_print >= 1.0 or r.changes:
            click.echo(str(r))
            last_print = now

    recover_run(run_dir, target_uri)
    try:
        total = sync(
            run_dir, run_target(run_dir, target_uri), follow=follow, interval=interval,
            on_round=show, stop=lambda: stopping, capture=capture_mode,
        )  # fmt: skip
    except Lite2pgError as e:
        _fail(e)
    click.echo(
        f"sync: {total.changes} change(s) applied up to {total.last}; "
        f"lag {total.behind} change(s), {total.lag_seconds:.1f}s"
    )
