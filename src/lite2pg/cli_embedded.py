"""The embedded-server commands: lite2pg embedded status | stop | upgrade."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from lite2pg import embedded
from lite2pg.errors import Lite2pgError

_DIR = click.option(
    "--dir",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=embedded.EMBEDDED_DIR,
    show_default=True,
    help="The embedded server's data directory.",
)


def _fail(e: Lite2pgError) -> None:
    click.echo(f"lite2pg: error: {e}", err=True)
    sys.exit(e.exit_code)


@click.group("embedded")
def embedded_cmd() -> None:
    """The embedded PostgreSQL that lite2pg starts when no target is given."""


@embedded_cmd.command("status")
@_DIR
def status_cmd(data_dir: Path) -> None:
    """Which PostgreSQL made the data directory, and whether it runs."""
    try:
        majors = ", ".join(map(str, embedded.shipped_majors()))
        made_by = embedded.data_major(data_dir)
        uri = embedded.running_uri(data_dir) if made_by else None
    except Lite2pgError as e:
        _fail(e)
    click.echo(f"data directory  {data_dir.absolute()}")
    click.echo(f"made by         {f'PostgreSQL {made_by}' if made_by else 'nothing yet'}")
    click.echo(f"server          {f'running at {uri}' if uri else 'not running'}")
    new = embedded.default_major()
    click.echo(f"this lite2pg    runs PostgreSQL {majors}; new data directories get {new}")
    if made_by and made_by < embedded.NEWEST_MAJOR:
        click.echo(f"upgrade with    lite2pg embedded upgrade --dir {data_dir}")


@embedded_cmd.command("stop")
@_DIR
def stop_cmd(data_dir: Path) -> None:
    """Stop the embedded server (it keeps running after lite2pg exits)."""
    try:
        stopped = embedded.stop(data_dir)
    except Lite2pgError as e:
        _fail(e)
    click.echo(
        f"stopped the embedded PostgreSQL in {data_dir}" if stopped else "it was not running"
    )


@embedded_cmd.command("upgrade")
@_DIR
def upgrade_cmd(data_dir: Path) -> None:
    """Move the data directory to the newest PostgreSQL with pg_upgrade.

    The server is stopped (clients are disconnected) and the old directory is kept as
    DIR.<old major>; nothing in it changes. Delete that backup once you no longer need it.
    """
    try:
        done = embedded.upgrade(data_dir)
    except Lite2pgError as e:
        _fail(e)
    if done is None:
        click.echo(f"{data_dir} is on PostgreSQL {embedded.NEWEST_MAJOR} already")
        return
    click.echo(
        f"upgraded {data_dir} from PostgreSQL {done.old_major} to {done.new_major}; "
        f"the old data directory is kept in {done.backup_dir}"
    )
