"""The few exceptions lite2pg raises; the CLI turns each into a one-line message."""

from __future__ import annotations

import errno
import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from lite2pg.reasons import Category

P = ParamSpec("P")
R = TypeVar("R")


class Lite2pgError(Exception):
    """Base class: a known failure whose message says what is wrong and how to fix it."""

    exit_code = 2

    def __reduce__(self) -> tuple[Any, ...]:
        # A worker process raises it and the parent re-raises it: pickle it as it is, since
        # the subclasses' __init__ take other arguments than the message in self.args.
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(cls: type[Lite2pgError], args: tuple[Any, ...], state: dict[str, Any]) -> Lite2pgError:
    e = cls.__new__(cls)
    e.args = args
    e.__dict__.update(state)
    return e


class UsageError(Lite2pgError):
    """Options that do not go together, or a malformed option value."""

    def __init__(self, problem: str, hint: str) -> None:
        self.problem = problem
        super().__init__(f"{problem} (hint: {hint})")


class SourceError(Lite2pgError):
    """The SQLite source cannot be opened or read."""

    def __init__(self, path: str, problem: str, hint: str = "") -> None:
        self.path = path
        self.problem = problem
        message = f"source {path}: {problem}"
        super().__init__(f"{message} (hint: {hint})" if hint else message)


class TargetError(Lite2pgError):
    """The PostgreSQL target cannot be reached or does not accept what we need to do."""

    def __init__(self, problem: str, hint: str = "") -> None:
        self.problem = problem
        super().__init__(f"target: {problem}" + (f" (hint: {hint})" if hint else ""))


class SchemaError(Lite2pgError):
    """The source schema cannot be mapped onto the target as asked."""

    def __init__(self, table: str, problem: str, hint: str = "") -> None:
        self.table = table
        self.problem = problem
        super().__init__(f"table {table}: {problem}" + (f" (hint: {hint})" if hint else ""))


class CaseCollisionError(Lite2pgError):
    """Values a COLLATE NOCASE unique key holds apart in SQLite would be one value in
    PostgreSQL, which folds more than A-Z: one line per group of such values."""

    def __init__(self, groups: list[str], hint: str) -> None:
        self.groups = groups
        lines = "".join(f"\n  {g}" for g in groups)
        super().__init__(
            f"{len(groups)} group(s) of values differ only in case beyond A-Z and would "
            f"break a case-insensitive unique key in PostgreSQL:{lines}\n(hint: {hint})"
        )


class SyncError(Lite2pgError):
    """Online sync or cutover cannot go on: no change capture, a check that failed inside
    the freeze, a change PostgreSQL refused. Nothing of the failed step was applied."""

    def __init__(self, problem: str, hint: str) -> None:
        self.problem = problem
        super().__init__(f"sync: {problem} (hint: {hint})")


class PlanError(Lite2pgError):
    """A migration plan (TOML) is invalid; `key` names the place at fault."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"plan: {key}: {problem}")


class TransformError(Lite2pgError):
    """A value cannot be transformed; the row goes to rejects with this reason.

    The message never contains the value itself when the column is secret. `category` is
    the reason without the value (what `check` groups by).
    """

    def __init__(self, reason: str, category: Category = Category.OTHER) -> None:
        self.reason = reason
        self.category = category
        super().__init__(reason)


class Interrupted(Lite2pgError):
    """Ctrl-C (SIGINT): the message says what state the target was left in."""

    exit_code = 130  # the shell's code for a process ended by SIGINT

    def __init__(self, state: str, hint: str) -> None:
        self.state = state
        super().__init__(f"interrupted: {state} (hint: {hint})")


class RunDirError(Lite2pgError):
    """A file lite2pg writes (the run directory, its artifacts) cannot be written."""

    def __init__(self, path: str, problem: str, hint: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"cannot write {path}: {problem} (hint: {hint})")


# The disk or the directory, not lite2pg: full, over quota, over the file size limit.
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_NO_ACCESS = {errno.EROFS, errno.EACCES, errno.EPERM}


def run_dir_error(e: OSError) -> RunDirError | None:
    """The one-line error for an OSError of the run directory's disk, else None (a bug)."""
    path = str(e.filename) if e.filename else "the run directory"
    problem = e.strerror or str(e)
    if e.errno in _NO_SPACE:
        return RunDirError(path, problem, "free some space, or pass --run-dir on a disk with room")
    if e.errno in _NO_ACCESS:
        return RunDirError(path, problem, "pass --run-dir a directory you can write to")
    return None


def file_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a full or unwritable disk under `fn` into a `RunDirError`."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except OSError as e:
            known = run_dir_error(e)
            if known is None:
                raise
            raise known from e

    return wrapper
