"""Click arguments shared by the command modules."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from lite2pg.errors import Lite2pgError
from lite2pg.source_uri import sqlite_path


def _source_path(ctx: click.Context, param: click.Parameter, value: str) -> Path:
    try:
        return sqlite_path(value)
    except Lite2pgError as e:
        click.echo(f"lite2pg: error: {e}", err=True)
        sys.exit(e.exit_code)


def source_argument(f: Any) -> Any:
    """SOURCE: a SQLite file's path, or a SQLite URL naming one (sqlite:///app.db,
    file:./dev.db); one that names no file fails with the one-line error. Read as text:
    a Path would fold the URL's '//'."""
    return click.argument("source", callback=_source_path)(f)


def recover_run(run_dir: Path, target_uri: str | None, *, dsn: str | None = None) -> None:
    """Before a command over a run: finish what a crash interrupted (protocols.py) and say
    so, one line for each."""
    from lite2pg.protocols import recover
    from lite2pg.runtarget import run_target

    try:
        lines = recover(run_dir, lambda: run_target(run_dir, target_uri), dsn=dsn)
    except Lite2pgError as e:
        click.echo(f"lite2pg: error: {e}", err=True)
        sys.exit(e.exit_code)
    for line in lines:
        click.echo(line)
