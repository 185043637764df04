"""Prove that lite2pg installs from wheels alone on every supported Python and platform.

For each CPython in PYTHONS and each platform in PLATFORMS, resolve the runtime dependencies
(and, on Linux x86_64, the test extra) with `pip install --dry-run --only-binary=:all:`:
the resolution fails when any package would need a build. PyPI's metadata files make this
quick; nothing is installed. Exit 1 with the failing cases, else print the resolved set.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHONS = ("3.11", "3.12", "3.13", "3.14")


def _manylinux(arch: str) -> list[str]:
    # pip matches --platform exactly: list every manylinux tag a glibc 2.28 system accepts.
    return [f"manylinux_2_{minor}_{arch}" for minor in range(28, 16, -1)] + [
        f"manylinux2014_{arch}",
        f"linux_{arch}",
    ]


PLATFORMS = {
    "linux-x86_64": _manylinux("x86_64"),
    "linux-aarch64": _manylinux("aarch64"),
    "macos-arm64": [
        f"macosx_{major}_0_{a}" for major in range(14, 10, -1) for a in ("arm64", "universal2")
    ],
    "windows-amd64": ["win_amd64"],
}


def _requirements(*args: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "deps.py"), *args],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return out.split()


def resolve(python: str, tags: list[str], requirements: list[str]) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [
            sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
            "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
            "--target", str(Path(tmp) / "t"), "--report", str(report),
        ]  # fmt: skip
        for tag in tags:
            cmd += ["--platform", tag]
        done = subprocess.run([*cmd, *requirements], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
            return False, (errors[0] if errors else done.stderr.strip()[-300:])
        installed = json.loads(report.read_text())["install"]
        return True, ", ".join(
            f"{i['metadata']['name']} {i['metadata']['version']}" for i in installed
        )


def main() -> int:
    runtime = _requirements()
    with_tests = _requirements("--extra", "test")
    failures = 0
    for python in PYTHONS:
        for platform, tags in PLATFORMS.items():
            requirements = with_tests if platform == "linux-x86_64" else runtime
            ok, said = resolve(python, tags, requirements)
            print(f"{'ok  ' if ok else 'FAIL'} CPython {python} {platform}: {said}", flush=True)
            failures += not ok
    if failures:
        print(f"{failures} Python/platform pairs cannot install lite2pg from wheels alone")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
