"""Every option of every command says what it does in --help."""

from __future__ import annotations

from collections.abc import Iterator

import click

from lite2pg.cli import main


def _commands(cmd: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from _commands(sub, f"{path} {name}")


def test_every_option_of_every_command_has_help_text() -> None:
    commands = list(_commands(main, "lite2pg"))
    # Arguments cannot carry help in click: each command's docstring names them instead.
    missing = [
        f"{path} {'/'.join(p.opts)}"
        for path, cmd in commands
        for p in cmd.params
        if isinstance(p, click.Option) and not (p.help or "").strip()
    ]

    assert len(commands) >= 20  # the walk reached the subcommands
    assert missing == []


def test_every_command_has_help_text() -> None:
    assert [path for path, cmd in _commands(main, "lite2pg") if not (cmd.help or "").strip()] == []
