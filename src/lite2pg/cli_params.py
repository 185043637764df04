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
