"""report.html as people see it: the verdict says what the run did, and the page fits a
1280 px screen in a real browser (Debian's chromium, headless)."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lite2pg.run import MigrateOptions, migrate

from .conftest import MakeDb, PgSchema

SCREEN_WIDTH = 1280
# Run in the page after it loads: open every <details> (a spot-check's long values must
# wrap too, not only while folded), then leave what we measure on <body> for --dump-dom.
_PROBE = """<script>
document.querySelectorAll("details").forEach(d => { d.open = true; });
const b = document.body, v = document.querySelector(".verdict");
b.dataset.scrollWidth = document.documentElement.scrollWidth;
b.dataset.innerWidth = window.innerWidth;
b.dataset.verdict = v.firstChild.textContent;
b.dataset.verdictClass = v.className;
</script>
"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no chromium on PATH (Debian: apt-get install chromium); report.html not rendered")


def _render(page: Path, tmp_path: Path) -> dict[str, str]:
    """Open a copy of `page` in headless chromium at 1280 px; the probe's measurements."""
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8") + _PROBE, encoding="utf-8")
    home = tmp_path / "chromium-home"  # its profile and caches, kept under tmp_path
    home.mkdir(exist_ok=True)
    done = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",  # CI runs as root, where chromium's sandbox will not start
            "--disable-gpu",
            f"--user-data-dir={home / 'profile'}",
            f"--window-size={SCREEN_WIDTH},900",
            "--dump-dom",
            probe.as_uri(),
        ],
        env={
            **os.environ,
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home),
            "XDG_CACHE_HOME": str(home),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    body = re.search(r"<body([^>]*)>", done.stdout)
    assert body, done.stdout[:2000]
    return {k: html.unescape(v) for k, v in re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1))}


def _messy_db(make_db: MakeDb) -> Path:
    """10 posts with a date PostgreSQL cannot take, a view only SQLite runs, long values."""
    return make_db(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id),"
        " body TEXT, posted DATE);"
        "CREATE VIEW user_codes AS SELECT printf('%05d', id) AS code FROM users;",
        (
            "INSERT INTO users VALUES (?, ?)",
            [(i, "x" * 400 if i % 2 else f"user {i}") for i in range(1, 21)],
        ),
        (
            "INSERT INTO posts VALUES (?, ?, ?, ?)",
            [
                (i, i % 20 + 1, "lorem" * 200, "2020-01-01" if i % 4 else "not a date")
                for i in range(1, 41)
            ],
        ),
    )


def test_report_html_fits_a_1280px_screen_and_says_what_was_left_behind(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    migrate(
        _messy_db(make_db),
        pg.target,
        MigrateOptions(schema=pg.schema, run_dir=run_dir),
    )

    seen = _render(run_dir / "report.html", tmp_path)

    assert seen["inner-width"] == str(SCREEN_WIDTH)
    assert int(seen["scroll-width"]) <= SCREEN_WIDTH, seen
    assert seen["verdict"] == "VERIFIED, with 10 rows rejected and 1 view not migrated"
    assert "warn" in seen["verdict-class"].split()


def test_report_html_says_a_bare_verified_only_when_nothing_was_left_behind(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);",
        ("INSERT INTO notes (body) VALUES (?)", [("one",), ("two",)]),
    )
    run_dir = tmp_path / "run"
    migrate(db, pg.target, MigrateOptions(schema=pg.schema, run_dir=run_dir))

    page = (run_dir / "report.html").read_text()

    banner = re.search(r'<div class="verdict ([a-z]+)">([^<]*)<', page)
    assert banner, page[:2000]
    assert banner.groups() == ("ok", "VERIFIED")


def test_report_html_folds_each_spot_check(make_db: MakeDb, pg: PgSchema, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    migrate(_messy_db(make_db), pg.target, MigrateOptions(schema=pg.schema, run_dir=run_dir))

    page = (run_dir / "report.html").read_text()

    spot = page[page.index("<h2>Spot-checks") :]
    assert spot.count("<details>") == spot.count("<summary>") > 0
