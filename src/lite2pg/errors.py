"""The few exceptions lite2pg raises; the CLI turns each into a one-line message."""

from __future__ import annotations


class Lite2pgError(Exception):
    """Base class: a known failure whose message says what is wrong and how to fix it."""

    exit_code = 2


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


class PlanError(Lite2pgError):
    """A migration plan (TOML) is invalid; `key` names the place at fault."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"plan: {key}: {problem}")


class TransformError(Lite2pgError):
    """A value cannot be transformed; the row goes to rejects with this reason.

    The message never contains the value itself when the column is secret.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
