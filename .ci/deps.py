"""Print lite2pg's declared dependencies, one requirement a line, from pyproject.toml.

    python .ci/deps.py                  # the runtime dependencies as declared
    python .ci/deps.py --extra test     # and the test extra's
    python .ci/deps.py --lowest ...     # each pinned to the lowest version it allows (==floor)

--lowest is the "dependency floor" CI run: a requirement without a >= floor is an error,
so every dependency states the oldest version lite2pg is tested with.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLOOR = re.compile(r"^(?P<name>[A-Za-z0-9._-]+(?:\[[^\]]+\])?)\s*>=\s*(?P<version>[^,;\s]+)")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--extra", action="append", default=[])
    parser.add_argument("--lowest", action="store_true")
    args = parser.parse_args()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in args.extra:
        requirements += project["optional-dependencies"][extra]
    for requirement in requirements:
        if not args.lowest:
            print(requirement)
            continue
        floor = FLOOR.match(requirement)
        if floor is None:
            print(f"{requirement!r} states no >= floor", file=sys.stderr)
            return 1
        print(f"{floor['name']}=={floor['version']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
