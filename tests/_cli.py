"""Running the real command line as a user does, and reading its one error line: shared
by the CLI tests and the hostile-inputs suite."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ERROR_PREFIX = "lite2pg: error:"
# What PlainProgress writes to stderr before a failure: "<phase> ...", "loading t (3 rows)".
PROGRESS_LINE = re.compile(r"^(\S.* \.\.\.|loading .+ \(\d+ rows\)|loaded .+: .*)$")

Result = subprocess.CompletedProcess[str]


def cli(
    *args: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 180,
) -> Result:
    """Run `python -m lite2pg ARGS` in `cwd` as a user would, with no PG*/DATABASE_URL."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
    return subprocess.run(
        [sys.executable, "-m", "lite2pg", *args],
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def known_error(result: Result) -> str:
    """Assert the command failed the documented way (one line with a hint, exit 2, no
    traceback); return that line."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith(ERROR_PREFIX)]
    assert len(errors) == 1, f"want one {ERROR_PREFIX!r} line, got stderr:\n{result.stderr}"
    assert lines[-1] == errors[0], result.stderr
    others = [line for line in lines[:-1] if not PROGRESS_LINE.match(line)]
    assert not others, f"stderr has more than progress and the error:\n{result.stderr}"
    assert "(hint: " in errors[0], errors[0]
    assert result.returncode == 2, (result.returncode, result.stderr)
    return errors[0]
