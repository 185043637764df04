"""Which raw mover should carry the rows? Five engines move every table's rows SQLite ->
PostgreSQL into pre-created tables (lite2pg's types, no keys), timed; then each moves a
probe of awkward values, to show what it does with them.

python bench/engines.py bench/data/helpdesk-u4000-t100000-a400000-s1.db --rounds 3
python bench/engines.py DB --rounds 3 --json bench/out/engines.json
python bench/engines.py DB --only psycopg-text --only duckdb --no-probe

Engines (bench/peers/movers.py has the code of each):
  psycopg-text    Python sqlite3 fetchmany -> psycopg text COPY, write_row, set_types as
                  lite2pg passes them: what lite2pg's load does (without its per-value checks)
  psycopg-binary  the same rows -> COPY (FORMAT BINARY) with set_types (psycopg's C dumpers);
                  timestamps parsed to datetime in Python first, as binary COPY needs
  duckdb          DuckDB with the sqlite and postgres extension wheels: ATTACH both,
                  INSERT INTO pg.public.T SELECT ... FROM sq.T (its COPY binary underneath)
  cx-adbc         connectorx SQLite -> Arrow batches -> ADBC PostgreSQL adbc_ingest (COPY binary)
  csv             sqlite3 -csv | psql \\copy csv, one pipe per table (the floor's data step)

Each run: fresh database hb_eng_<engine>, tables created, CHECKPOINT, then the mover's
process; "move s" is the mover's own clock from the first read to the last commit (no
interpreter start, imports or connecting), "process s" the whole process. Rows/s = rows /
move s. Memory as in race.py (harness.py). Afterwards every table's content is digested in
PostgreSQL (count and sum of hashtextextended(row::text)) and compared with psycopg-text's.

The probe (unless --no-probe): a small SQLite file with one table per awkward value (a TEXT
value in an INTEGER column, a REAL in a TEXT column, invalid UTF-8 ...), each with one
ordinary row and one awkward row. Every engine moves it, and so does `lite2pg migrate
--allow-rejects`, which checks every value against its column. The table says, per case
and engine: exact, the value that arrived instead, row rejected, or table refused.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sqlite3
import sys
import tempfile
from collections.abc import Mapping
from contextlib import closing
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from harness import (
    BENCH,
    DEFAULT_SERVER,
    OUT,
    TableModel,
    TreeSampler,
    create_tables,
    drop_databases,
    fmt,
    fresh_database,
    kill_children,
    median,
    on_signals_interrupt,
    resolve_lite2pg,
    run_measured,
    server_settings,
    sqlite_model,
    tail,
    with_dbname,
)

ENGINES = ("psycopg-text", "psycopg-binary", "duckdb", "cx-adbc", "csv")
DEFAULT_PEERS = Path(os.environ.get("PEERS", Path.home() / ".cache/lite2pg-peers"))
MOVERS = BENCH / "peers" / "movers.py"
# What each engine gives up, as the probe shows it on the versions raced (see RESULTS.md).
GIVES_UP = {
    "psycopg-text": "nothing by itself: values go as text and PostgreSQL parses them; a value"
    " of another type fails the table unless converted first (lite2pg's per-value checks do"
    " that and reject exactly); one Python call per row",
    "psycopg-binary": "values must be the column's Python type: timestamps parsed in Python"
    " first; booleans by Python truth ('false' and 2 become true)",
    "duckdb": "reads SQLite by declared type: a value of another storage class, invalid"
    " UTF-8 or a NUL stops the whole table; an integer in a DATETIME is taken as epoch"
    " seconds; an offset is dropped (18:33+02:00 lands as 18:33 UTC)",
    "cx-adbc": "reads SQLite by declared type: a value of another storage class, invalid"
    " UTF-8, an offset in a DATETIME stop the whole table; 2 in a BOOLEAN becomes true",
    "csv": "the sqlite3 shell's text: REAL cut to 15 digits (0.30000000000000004 -> 0.3),"
    " text cut at a NUL, a BLOB in a text column lands as ''; silently",
}


def python_for(engine: str, peers: Path) -> str:
    if engine == "duckdb":
        return str(peers / "duck/bin/python")
    if engine == "cx-adbc":
        return str(peers / "dlt/bin/python")
    return sys.executable  # lite2pg's venv: psycopg; csv needs only the standard library


def spec(model: Mapping[str, TableModel]) -> dict[str, Any]:
    return {
        "tables": [
            {"name": t, "columns": [[c[0], c[2]] for c in m.columns]} for t, m in model.items()
        ]
    }


def digest(url: str, model: Mapping[str, TableModel]) -> dict[str, list[int]]:
    """Per table: rows, and the sum of a 64-bit hash of each row's text (UTC)."""
    out: dict[str, list[int]] = {}
    with psycopg.connect(url, autocommit=True, options="-c TimeZone=UTC") as conn:
        for t in model:
            row = conn.execute(
                sql.SQL(
                    "SELECT count(*), coalesce(sum(hashtextextended(x::text, 0)), 0) FROM {} x"
                ).format(sql.Identifier("public", t))
            ).fetchone()
            out[t] = [int(row[0]), int(row[1])] if row else [0, 0]
    return out


@dataclass
class Run:
    engine: str
    round: int
    status: str = "ok"
    move_s: float | None = None
    process_s: float | None = None
    rows: int = 0
    rows_per_s: float | None = None
    all_mb: float | None = None
    client_mb: float | None = None
    client_private_mb: float | None = None
    server_mb: float | None = None
    tables: dict[str, Any] = field(default_factory=dict)
    digest: dict[str, list[int]] = field(default_factory=dict)
    note: str = ""


def move(
    engine: str,
    db: Path,
    model: Mapping[str, TableModel],
    server: str,
    peers: Path,
    out: Path,
    name: str,
) -> Run:
    """One engine moves `db` into a fresh database `name` (kept: the caller drops it)."""
    r = Run(engine, 0)
    url = fresh_database(server, name)
    with psycopg.connect(url, autocommit=True) as conn:
        create_tables(conn, model)
        conn.execute("CHECKPOINT")
    work = Path(tempfile.mkdtemp(prefix=f"{engine}-", dir=out))
    spec_path, result_path = work / "spec.json", work / "result.json"
    spec_path.write_text(json.dumps(spec(model)))
    log = out / f"{engine}.log"
    argv = [
        python_for(engine, peers),
        str(MOVERS),
        engine,
        str(db),
        url,
        str(spec_path),
        str(result_path),
    ]
    try:
        with TreeSampler(server, [name]) as sampler:
            m = run_measured(argv, log, sampler=sampler)
        peaks = sampler.peaks()
        r.process_s = m.wall_s
        r.client_mb = max(peaks.client_mb, m.max_rss_mb)
        r.all_mb = max(peaks.all_mb, r.client_mb)
        r.server_mb = peaks.server_mb
        r.client_private_mb = peaks.client_private_mb
        if not result_path.exists():
            r.status, r.note = "failed", f"exit {m.code}: {tail(log)}"
            return r
        result = json.loads(result_path.read_text())
        r.move_s, r.tables = result["move_s"], result["tables"]
        r.rows = sum(t["rows"] for t in r.tables.values())
        r.rows_per_s = r.rows / r.move_s if r.move_s else None
        errors = [f"{t}: {v['error']}" for t, v in r.tables.items() if v["error"]]
        if errors:
            r.status, r.note = "failed", "; ".join(errors)
        r.digest = digest(url, model)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return r


# ----------------------------------------------------------------------------------- probe
@dataclass(frozen=True)
class Case:
    """One awkward value in a column of some declared type.

    `faithful` is how PostgreSQL prints the value (TimeZone UTC) when it arrived exactly;
    None when the column's type cannot hold it, so that refusing it is the only exact move.
    """

    name: str
    declared: str
    ordinary: str  # SQL literal of the ordinary row's value
    awkward: str  # SQL expression of the awkward value
    faithful: str | None
    what: str
    retype: bool = False  # store untyped, then declare `declared` (writable_schema)


CASES = (
    Case("text_in_integer", "INTEGER", "7", "'abc'", None, "TEXT 'abc' in an INTEGER column"),
    Case("real_in_integer", "INTEGER", "7", "1.5", None, "REAL 1.5 in an INTEGER column"),
    Case("blob_in_integer", "INTEGER", "7", "X'0102'", None, "BLOB x'0102' in an INTEGER column"),
    Case("real_in_text", "TEXT", "'ok'", "0.1", "0.1", "REAL 0.1 in a TEXT column", retype=True),
    Case("invalid_utf8", "TEXT", "'ok'", "CAST(X'C328' AS TEXT)", None,
         "invalid UTF-8 text (c3 28) in a TEXT column"),
    Case("nul_in_text", "TEXT", "'ok'", "'a' || char(0) || 'b'", None,
         "text with a NUL in a TEXT column"),
    Case("blob_in_text", "TEXT", "'ok'", "X'00FF'", None, "BLOB x'00ff' in a TEXT column"),
    Case("csv_specials", "TEXT", "'ok'", "'a,\"b\"' || char(10) || 'c'", 'a,"b"\nc',
         "text with a comma, quotes and a newline"),
    Case("text_in_real", "REAL", "0.5", "'n/a'", None, "TEXT 'n/a' in a REAL column"),
    Case("real_digits", "REAL", "0.5", "0.1 + 0.2", "0.30000000000000004",
         "REAL 0.30000000000000004 (17 significant digits)"),
    Case("epoch_in_datetime", "DATETIME", "'2015-01-05 18:33:37'", "1613963657", None,
         "INTEGER 1613963657 in a DATETIME column (seconds? ms?)"),
    Case("text_in_datetime", "DATETIME", "'2015-01-05 18:33:37'", "'not a date'", None,
         "TEXT 'not a date' in a DATETIME column"),
    Case("offset_datetime", "DATETIME", "'2015-01-05 18:33:37'", "'2015-01-05T18:33:37+02:00'",
         "2015-01-05 16:33:37+00", "'2015-01-05T18:33:37+02:00' in a DATETIME column"),
    Case("yes_in_boolean", "BOOLEAN", "0", "'yes'", "true", "TEXT 'yes' in a BOOLEAN column"),
    Case("false_in_boolean", "BOOLEAN", "1", "'false'", "false",
         "TEXT 'false' in a BOOLEAN column"),
    Case("two_in_boolean", "BOOLEAN", "1", "2", None, "INTEGER 2 in a BOOLEAN column"),
)  # fmt: skip


def build_probe(path: Path) -> None:
    """The probe database: one table per case, row 1 ordinary, row 2 awkward."""
    with closing(sqlite3.connect(path)) as con:
        for c in CASES:
            decl = "" if c.retype else f" {c.declared}"
            con.execute(f"CREATE TABLE {c.name} (id INTEGER PRIMARY KEY, v{decl})")
            con.execute(f"INSERT INTO {c.name} VALUES (1, {c.ordinary}), (2, {c.awkward})")
        con.commit()
        retyped = [c for c in CASES if c.retype]
        if retyped:  # a value SQLite's affinity would have converted, as old files hold them
            con.execute("PRAGMA writable_schema = ON")
            for c in retyped:
                con.execute(
                    "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?",
                    (f"CREATE TABLE {c.name} (id INTEGER PRIMARY KEY, v {c.declared})", c.name),
                )
            con.commit()


def probe_outcome(url: str, case: Case, refused: str | None) -> str:
    """What arrived for the awkward row of `case`."""
    if refused:
        return "table refused"
    with psycopg.connect(url, autocommit=True, options="-c TimeZone=UTC") as conn:
        q = sql.SQL("SELECT id, v::text FROM {} ORDER BY id").format(
            sql.Identifier("public", case.name)
        )
        try:
            rows: dict[int, str | None] = dict(conn.execute(q).fetchall())
        except psycopg.errors.UndefinedTable:
            return "table missing"
    if 1 not in rows and 2 not in rows:
        return "table refused"
    if 2 not in rows:
        return "row rejected"
    got = rows[2]
    if got is not None and got == case.faithful:
        return "exact"
    return "→ NULL" if got is None else f"→ `{got!r}`"[:60]


def lite2pg_probe(lite2pg: str, probe: Path, server: str, out: Path) -> dict[str, str]:
    """lite2pg's outcome per case (its rejects' reasons in the log)."""
    name = "hb_eng_probe_lite2pg"
    url = fresh_database(server, name)
    run_dir = out / "probe-lite2pg-run"
    log = out / "probe-lite2pg.log"
    try:
        run_measured(
            [
                lite2pg,
                "migrate",
                str(probe),
                "--target",
                url,
                "--run-dir",
                str(run_dir),
                "-q",
                "--no-keep-artifacts",
                "--no-verify",
                "--allow-rejects",
            ],
            log,
        )
        reasons: dict[str, str] = {}
        for f in sorted((run_dir / "rejects").glob("*.jsonl")):
            for line in f.read_text().splitlines():
                rec = json.loads(line)
                reasons[rec["table"]] = rec["reason"]
        outcomes = {}
        for c in CASES:
            o = probe_outcome(url, c, None)
            outcomes[c.name] = o + (f" ({reasons[c.name]})" if c.name in reasons else "")
        return outcomes
    finally:
        drop_databases(server, [name])
        shutil.rmtree(run_dir, ignore_errors=True)


def run_probe(
    engines: list[str], lite2pg: str, server: str, peers: Path, out: Path
) -> dict[str, dict[str, str]]:
    """{case: {engine: outcome}}, plus each refusal's error under "errors"."""
    probe = out / "probe.db"
    probe.unlink(missing_ok=True)
    build_probe(probe)
    model = sqlite_model(probe)
    result: dict[str, dict[str, str]] = {c.name: {} for c in CASES}
    errors: dict[str, str] = {}
    for e in engines:
        name = "hb_eng_probe_" + e.replace("-", "_")
        try:
            r = move(e, probe, model, server, peers, out, name)
            for c in CASES:
                refused = r.tables.get(c.name, {}).get("error") if r.tables else r.note
                result[c.name][e] = probe_outcome(with_dbname(server, name), c, refused)
                if refused:
                    errors[f"{e} / {c.name}"] = refused
        finally:
            drop_databases(server, [name])
    for case, outcome in lite2pg_probe(lite2pg, probe, server, out).items():
        result[case]["lite2pg"] = outcome
    result["errors"] = errors
    return result


# ---------------------------------------------------------------------------------- report
def summarize(runs: list[Run], engines: list[str]) -> dict[str, dict[str, Any]]:
    reference: dict[str, list[int]] = next(
        (r.digest for r in runs if r.engine == "psycopg-text" and r.status == "ok"), {}
    )
    out: dict[str, dict[str, Any]] = {}
    for e in engines:
        mine = [r for r in runs if r.engine == e]
        ok = [r for r in mine if r.status == "ok"]
        same = [r.digest == reference for r in ok] if reference else []
        out[e] = {
            "ok_rounds": len(ok),
            "rounds": len(mine),
            "move_s": median(r.move_s for r in ok),
            "process_s": median(r.process_s for r in ok),
            "rows": max((r.rows for r in mine), default=0),
            "rows_per_s": median(r.rows_per_s for r in ok),
            "all_mb": median(r.all_mb for r in ok),
            "client_mb": median(r.client_mb for r in ok),
            "server_mb": median(r.server_mb for r in ok),
            "same_as_text": None if not same else all(same),
            "moves_s": [None if r.move_s is None else round(r.move_s, 3) for r in mine],
            "note": next((r.note for r in mine if r.note), ""),
        }
    return out


def markdown(report: Mapping[str, Any]) -> str:
    s: dict[str, dict[str, Any]] = report["summary"]
    lines = [
        f"### {report['date']}: raw movers for the load step (bench/engines.py)",
        "",
        "```",
        report["command"],
        "```",
        "",
        f"Database: {report['db']['name']} ({report['db']['counts']}; "
        f"{report['db']['bytes']:,} bytes), into pre-created tables with lite2pg's types, no"
        f" keys. Machine: {report['machine']['cores']} cores, load average"
        f" {report['machine']['load_start']:.2f} at the start; PostgreSQL"
        f" {report['postgres']['server_version']}. Median of {report['rounds']} interleaved"
        " round(s).",
        "",
        "| engine | move s | rows/s | process s | peak MB, all processes (client / server)"
        " | content = psycopg-text | gives up |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for e, v in s.items():
        same = {None: "-", True: "yes", False: "**no**"}[v["same_as_text"]]
        status = "" if v["ok_rounds"] == v["rounds"] else f" ({v['ok_rounds']}/{v['rounds']} ok)"
        lines.append(
            f"| {e}{status} | {fmt(v['move_s'])} | {fmt(v['rows_per_s'], ',.0f')}"
            f" | {fmt(v['process_s'])} | {fmt(v['all_mb'], '.0f')}"
            f" ({fmt(v['client_mb'], '.0f')} / {fmt(v['server_mb'], '.0f')})"
            f" | {same} | {GIVES_UP[e]} |"
        )
    lines += [f"- {e} failed: {v['note']}" for e, v in s.items() if v["note"]]
    probe = report.get("probe")
    if probe:
        engines = [e for e in s if e in next(iter(probe.values()))] + ["lite2pg"]
        lines += [
            "",
            "The probe: one ordinary and one awkward row per table; what arrived of the awkward"
            " one (`lite2pg` = `lite2pg migrate --allow-rejects`, with its reason).",
            "",
            "| value | " + " | ".join(engines) + " |",
            "|---" * (len(engines) + 1) + "|",
        ]
        for c in CASES:
            cells = [probe[c.name].get(e, "-").replace("|", "\\|") for e in engines]
            lines.append(f"| {c.what} | " + " | ".join(cells) + " |")
        lines += ["", "Each refusal's error is in the JSON (`probe.errors`)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    doc = __doc__ or ""
    ap = argparse.ArgumentParser(
        description=doc.splitlines()[0],
        epilog=doc.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("db", type=Path, help="SQLite file whose rows are moved")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds (medians kept)")
    ap.add_argument("--only", action="append", choices=ENGINES, help="repeatable")
    ap.add_argument("--lite2pg", help="lite2pg executable for the probe (default: on PATH)")
    ap.add_argument("--server", default=DEFAULT_SERVER, help="server URL (maintenance database)")
    ap.add_argument("--peers", type=Path, default=DEFAULT_PEERS, help="bench/peers/install.sh's")
    ap.add_argument("--no-probe", action="store_true", help="skip the awkward-values probe")
    ap.add_argument("--out", type=Path, help="logs (default bench/out/engines-<time>)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)

    db = a.db.resolve()
    if not db.is_file():
        ap.error(f"{db}: no such file")
    build = resolve_lite2pg(a.lite2pg) if not a.no_probe else None
    engines = list(a.only or ENGINES)
    out = a.out or OUT / f"engines-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    out.mkdir(parents=True, exist_ok=True)
    model = sqlite_model(db)
    on_signals_interrupt()
    counts = ", ".join(f"{t}={m.rows}" for t, m in model.items())
    load_start = os.getloadavg()[0]
    pg = server_settings(a.server)
    print(f"database: {db} ({counts}; {db.stat().st_size:,} bytes)")
    print(f"logs: {out}", flush=True)
    runs: list[Run] = []
    probe: dict[str, dict[str, str]] | None = None
    names = ["hb_eng_" + e.replace("-", "_") for e in ENGINES]
    try:
        for rnd in range(1, a.rounds + 1):
            for e in engines:
                r = move(e, db, model, a.server, a.peers, out, "hb_eng_" + e.replace("-", "_"))
                r.round = rnd
                runs.append(r)
                print(
                    f"round {rnd}/{a.rounds} {e:<14} {r.status:<6} move {fmt(r.move_s)} s"
                    f" ({fmt(r.rows_per_s, ',.0f')} rows/s; process {fmt(r.process_s)} s)"
                    f" peak {fmt(r.all_mb, '.0f')} MB (client {fmt(r.client_mb, '.0f')}"
                    f" + server {fmt(r.server_mb, '.0f')}) rows {r.rows:,}"
                    f" load {os.getloadavg()[0]:.2f}" + (f"  {r.note}" if r.note else ""),
                    flush=True,
                )
            drop_databases(a.server, names)
        if build is not None:
            print("probe ...", flush=True)
            probe = run_probe(engines, build.path, a.server, a.peers, out)
    except KeyboardInterrupt as e:
        print(f"\ninterrupted ({e}): stopping children, dropping databases", file=sys.stderr)
        kill_children()
        return 130
    finally:
        kill_children()
        drop_databases(a.server, names)

    summary = summarize(runs, engines)
    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": shlex.join(sys.orig_argv),
        "db": {"path": str(db), "name": db.name, "bytes": db.stat().st_size, "counts": counts},
        "postgres": pg,
        "machine": {
            "cores": os.cpu_count(),
            "load_start": load_start,
            "load_end": os.getloadavg()[0],
        },
        "lite2pg": asdict(build) if build else None,
        "rounds": a.rounds,
        "summary": summary,
        "probe": probe,
        "runs": [asdict(r) for r in runs],
    }
    print()
    print(markdown(report))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0 if all(v["ok_rounds"] == v["rounds"] for v in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
