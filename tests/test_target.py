"""Which PostgreSQL lite2pg writes to: --target, DATABASE_URL, PG*, else embedded."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import psycopg.conninfo
import pytest

from lite2pg.errors import TargetError
from lite2pg.target import check_server_version, connect, redact, resolve

from .conftest import MakeDb, PgSchema


def test_target_flag_wins_over_database_url_and_pg_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://from-env/db")
    monkeypatch.setenv("PGHOST", "elsewhere")
    assert resolve("postgresql://flag/db").origin == "--target"
    assert resolve(None).dsn == "postgresql://from-env/db"
    monkeypatch.delenv("DATABASE_URL")
    assert resolve(None).origin == "PG* environment"


def test_password_never_shows_in_the_displayed_target() -> None:
    assert redact("postgresql://app:s3cret@db/app") == "postgresql://app:***@db/app"
    assert "s3cret" not in redact("host=db user=app password=s3cret")


def test_migrate_without_target_uses_database_url(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (7);")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["DATABASE_URL"] = pg.dsn
    result = subprocess.run(
        [sys.executable, "-m", "lite2pg", "migrate", str(db), "--schema", pg.schema,
         "--run-dir", str(tmp_path / "run"), "-q"],
        env=env, capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert pg.query("SELECT id FROM t") == [(7,)]


def test_migrate_without_target_uses_the_pg_variables(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    info = psycopg.conninfo.conninfo_to_dict(pg.dsn)
    if not info.get("host") or str(info["host"]).startswith("/"):
        pytest.skip("the test server is reached through a socket directory, not host/port")
    db = make_db("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (8);")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        PGHOST=str(info["host"]),
        PGPORT=str(info.get("port") or 5432),
        PGUSER=str(info.get("user") or "postgres"),
        PGDATABASE=str(info.get("dbname") or "postgres"),
    )
    result = subprocess.run(
        [sys.executable, "-m", "lite2pg", "migrate", str(db), "--schema", pg.schema,
         "--run-dir", str(tmp_path / "run"), "-q"],
        env=env, capture_output=True, text=True, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert pg.query("SELECT id FROM t") == [(8,)]


def test_servers_older_than_postgresql_13_are_refused_with_a_hint(pg: PgSchema) -> None:
    for too_old in (90624, 110022, 120020):
        with pytest.raises(TargetError, match=r"runs PostgreSQL (9|11|12), older than lite2pg"):
            check_server_version(too_old)
    for supported in (130000, 150019, 180004, 190000):
        check_server_version(supported)
    with connect(pg.target) as conn:  # the real test server passes the same check
        assert conn.info.server_version // 10000 >= 13


# What the kernel is told, per socket, before it connects: strace's own decoding.
_SYSCALL = re.compile(r"^(?P<pid>\d+) +(?P<call>setsockopt|connect)\((?P<fd>\d+), (?P<args>.*)")
_KEEPALIVE = {"SO_KEEPALIVE, [1]", "TCP_KEEPIDLE, [30]", "TCP_KEEPINTVL, [10]", "TCP_KEEPCNT, [3]"}


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_every_connection_a_migrate_opens_to_the_server_sets_tcp_keepalives(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    params = psycopg.conninfo.conninfo_to_dict(pg.dsn)
    host = str(params.get("host") or "")
    if not host or host.startswith("/"):
        pytest.skip("the test server is reached over a Unix socket (no TCP keepalives)")
    port = int(params.get("port") or 5432)
    probe = subprocess.run(["strace", "-f", "-o", os.devnull, "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"strace cannot trace here: {probe.stderr.decode(errors='replace')[:200]}")
    db = make_db(
        "CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT);"
        "CREATE TABLE b (id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES a(id));",
        ("INSERT INTO a VALUES (?, ?)", [(i, f"v{i}") for i in range(200)]),
        ("INSERT INTO b VALUES (?, ?)", [(i, i % 200) for i in range(500)]),
    )
    trace = tmp_path / "strace.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DATABASE_URL"}
    done = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=setsockopt,connect", "-o", str(trace),
         sys.executable, "-m", "lite2pg", "migrate", str(db), "--target", pg.dsn,
         "--schema", pg.schema, "--run-dir", str(tmp_path / "run")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    options: dict[tuple[str, str], set[str]] = {}
    connections = 0
    for line in trace.read_text().splitlines():
        m = _SYSCALL.match(line)
        if m is None:
            continue
        sock = (m["pid"], m["fd"])
        if m["call"] == "setsockopt":
            options.setdefault(sock, set()).add(m["args"].split(", ", 1)[1].rsplit(",", 1)[0])
        elif f"htons({port})" in m["args"]:
            connections += 1
            missing = _KEEPALIVE - options.pop(sock, set())
            assert not missing, f"connection without {sorted(missing)}: {line}"
    # The load's workers, the publish and verify each open their own: more than one.
    assert connections > 2, trace.read_text()[-2000:]


def test_connections_are_opened_in_one_place_so_all_get_its_settings() -> None:
    package = Path(__file__).resolve().parents[1] / "src" / "lite2pg"
    openers = sorted(
        str(p.relative_to(package))
        for p in package.rglob("*.py")
        if re.search(r"psycopg\.(Async)?Connection\.connect\(|psycopg\.connect\(", p.read_text())
    )
    assert openers == ["target.py"]
