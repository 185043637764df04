"""Race lite2pg against the floor and the tools a user would pick instead, on one SQLite file.

python bench/race.py bench/data/helpdesk-u4000-t100000-a400000-s1.db --rounds 3
python bench/race.py DB --lite2pg /path/to/other/build/bin/lite2pg --only l2p-fast --only floor
python bench/race.py DB --rounds 3 --json bench/out/race.json

Contenders, interleaved in every round, each into its own fresh database hb_race_<name>
(dropped, created, CHECKPOINT, then the clock starts):

  l2p-default  lite2pg migrate DB --target URI --run-dir DIR -q   (the command a user types:
               artifacts and verify)
  l2p-fast     the same with --no-keep-artifacts --no-verify
  floor        tables created with lite2pg's types (NOT NULL inline), then per table
               sqlite3 -csv DB "SELECT * FROM T" | psql URI -c "\\copy T from stdin csv"
  duckdb       bench/peers/duck_migrate.py (DuckDB + the duckdb-ext-sqlite/-postgres wheels):
               ATTACH both, CREATE TABLE pg.public.T AS SELECT * FROM sq.T
  dlt          bench/peers/dlt_migrate.py: sql_database source, connectorx backend, parquet,
               postgres destination (ADBC COPY)
  pgloader     LOAD DATABASE FROM sqlite://DB INTO URI WITH include drop, create tables,
               create indexes, reset sequences (the Debian package)

lite2pg is the executable given with --lite2pg, else the one on PATH: any build can race.
The peers come from bench/peers/install.sh (venvs under --peers).

Equal work: after each contender, the harness adds with plain SQL whatever the SQLite
schema declares and the contender did not make: NOT NULL, primary keys, UNIQUE, indexes,
foreign keys, an identity on each INTEGER PRIMARY KEY, and the sequences set past max(id)
and SQLite's AUTOINCREMENT mark ("top-up"). It is timed inside the contender's wall time.
Column types stay as each tool made them. Then rows per table are counted against SQLite.

Memory: see harness.py. Peak of all processes = the contender's whole process tree (summed
VmRSS, sampled every 0.1 s) plus the private memory of the PostgreSQL backends serving its
database, in the same sample; the largest single process is ru_maxrss from wait4.

Ctrl-C (or SIGTERM) kills the running contender's process group and drops the databases.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
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
    Lite2pgBuild,
    Measured,
    TableModel,
    TreeSampler,
    create_tables,
    drop_databases,
    fmt,
    fresh_database,
    kill_children,
    median,
    on_signals_interrupt,
    pipe_measured,
    resolve_lite2pg,
    run_measured,
    server_settings,
    sqlite_model,
    tail,
)

CONTENDERS = ("l2p-default", "l2p-fast", "floor", "duckdb", "dlt", "pgloader")
LITE2PG = ("l2p-default", "l2p-fast")
PEER_SCRIPTS = {"duckdb": ("duck", "duck_migrate.py"), "dlt": ("dlt", "dlt_migrate.py")}
DEFAULT_PEERS = Path(os.environ.get("PEERS", Path.home() / ".cache/lite2pg-peers"))
COMMANDS = {
    "l2p-default": "`lite2pg migrate DB --target URI --run-dir DIR -q`",
    "l2p-fast": "`lite2pg migrate DB --target URI --run-dir DIR -q"
    " --no-keep-artifacts --no-verify`",
    "floor": '`sqlite3 -csv DB "SELECT * FROM T" | psql URI -c "\\copy T from stdin csv"`'
    " per table, into tables made with lite2pg's types",
    "duckdb": "DuckDB `CREATE TABLE pg.public.T AS SELECT * FROM sq.T` per table"
    " (bench/peers/duck_migrate.py)",
    "dlt": "dlt `sql_database` (connectorx) -> parquet -> postgres via ADBC"
    " (bench/peers/dlt_migrate.py)",
    "pgloader": "`pgloader` LOAD DATABASE ... WITH include drop, create tables,"
    " create indexes, reset sequences",
}


def dbname(contender: str) -> str:
    return "hb_race_" + contender.replace("-", "_")


# -------------------------------------------------------------------------------- top-up
def _norm(s: str) -> str:
    return re.sub(r"[^0-9a-z]", "", s.lower())


def find_name(name: str, names: list[str]) -> str | None:
    """`name` among `names`: exact, then lower case, then ignoring case and punctuation
    (tools fold or normalize names differently)."""
    for same in (
        lambda n: n == name,
        lambda n: n == name.lower(),
        lambda n: _norm(n) == _norm(name),
    ):
        for n in names:
            if same(n):
                return n
    return None


def public_tables(conn: psycopg.Connection[Any]) -> list[str]:
    rows = conn.execute(
        "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE nspname = 'public' AND relkind IN ('r', 'p')"
    ).fetchall()
    return [str(r[0]) for r in rows]


@dataclass
class _PgTable:
    name: str
    columns: dict[str, str | None]  # SQLite column -> PostgreSQL column
    notnull: set[str]
    hasdefault: set[str]
    pk: bool
    unique: list[list[str]]
    indexed: list[list[str]]
    fks: list[list[str]]


def _pg_table(conn: psycopg.Connection[Any], m: TableModel, name: str) -> _PgTable:
    reg = sql.Identifier("public", name).as_string(conn)
    cols = conn.execute(
        "SELECT attname, attnotnull, attidentity <> '' OR atthasdef FROM pg_attribute"
        " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
        (reg,),
    ).fetchall()
    idx = conn.execute(
        "SELECT indisprimary, indisunique, array(SELECT a.attname FROM unnest(i.indkey)"
        " WITH ORDINALITY k(n, o) JOIN pg_attribute a ON a.attrelid = i.indrelid"
        " AND a.attnum = k.n ORDER BY k.o) FROM pg_index i WHERE indrelid = %s::regclass",
        (reg,),
    ).fetchall()
    fks = conn.execute(
        "SELECT array(SELECT a.attname FROM unnest(conkey) WITH ORDINALITY k(n, o)"
        " JOIN pg_attribute a ON a.attrelid = conrelid AND a.attnum = k.n ORDER BY k.o)"
        " FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
        (reg,),
    ).fetchall()
    names = [str(c[0]) for c in cols]
    return _PgTable(
        name=name,
        columns={c[0]: find_name(c[0], names) for c in m.columns},
        notnull={c[0] for c in cols if c[1]},
        hasdefault={c[0] for c in cols if c[2]},
        pk=any(r[0] for r in idx),
        unique=[list(r[2]) for r in idx if r[1]],
        indexed=[list(r[2]) for r in idx],
        fks=[list(r[0]) for r in fks],
    )


def topup_statements(
    conn: psycopg.Connection[Any], model: Mapping[str, TableModel]
) -> tuple[list[sql.Composed], list[sql.Composed]]:
    """(DDL the contender's tables lack, then the sequence settings every contender gets)."""
    rels = public_tables(conn)
    pgt: dict[str, _PgTable] = {}
    for t, m in model.items():
        found = find_name(t, rels)
        if found is not None:
            pgt[t] = _pg_table(conn, m, found)

    def tbl(t: str) -> sql.Identifier:
        return sql.Identifier("public", pgt[t].name)

    def mapped(t: str, cols: list[str]) -> list[str]:
        return [pgt[t].columns.get(c) or c for c in cols]

    def col_list(t: str, cols: list[str]) -> sql.Composed:
        return sql.SQL(", ").join(map(sql.Identifier, mapped(t, cols)))

    first: list[sql.Composed] = []
    indexes: list[sql.Composed] = []
    fkeys: list[sql.Composed] = []
    identities: list[sql.Composed] = []
    sequences: list[sql.Composed] = []
    for t, m in model.items():
        if t not in pgt:
            continue
        p = pgt[t]
        for c, _decl, _pg, not_null in m.columns:
            pc = p.columns.get(c)
            if not_null and pc and pc not in p.notnull and c not in m.pk:
                first.append(
                    sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET NOT NULL").format(
                        tbl(t), sql.Identifier(pc)
                    )
                )
        if m.pk and not p.pk:
            first.append(
                sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(tbl(t), col_list(t, m.pk))
            )
        for u in m.unique:
            if mapped(t, u) not in p.unique:
                first.append(
                    sql.SQL("ALTER TABLE {} ADD UNIQUE ({})").format(tbl(t), col_list(t, u))
                )
        for icols, unique in m.indexes:
            want = mapped(t, icols)
            if not any(x[: len(want)] == want for x in p.indexed):
                indexes.append(
                    sql.SQL("CREATE {}INDEX ON {} ({})").format(
                        sql.SQL("UNIQUE " if unique else ""), tbl(t), col_list(t, icols)
                    )
                )
        for frm, ref, to in m.fks:
            if ref in pgt and mapped(t, frm) not in p.fks:
                target = to if all(to) else model[ref].pk
                fkeys.append(
                    sql.SQL("ALTER TABLE {} ADD FOREIGN KEY ({}) REFERENCES {} ({})").format(
                        tbl(t), col_list(t, frm), tbl(ref), col_list(ref, target)
                    )
                )
        if m.rowid_pk and (pc := p.columns.get(m.pk[0])):
            if pc not in p.hasdefault:
                identities.append(
                    sql.SQL(
                        "ALTER TABLE {} ALTER COLUMN {} ADD GENERATED BY DEFAULT AS IDENTITY"
                    ).format(tbl(t), sql.Identifier(pc))
                )
            # past max(id) and the AUTOINCREMENT mark, whether the tool set it or not
            sequences.append(
                sql.SQL(
                    "SELECT setval(pg_get_serial_sequence({}, {}),"
                    " greatest(coalesce(max({}), 0), {}, 1)) FROM {}"
                ).format(
                    sql.Literal(sql.Identifier("public", p.name).as_string(conn)),
                    sql.Literal(pc),
                    sql.Identifier(pc),
                    sql.Literal(int(m.autoincrement or 0)),
                    tbl(t),
                )
            )
    return first + indexes + fkeys + identities, sequences


# ---------------------------------------------------------------------------- contenders
@dataclass
class Run:
    """One contender in one round."""

    contender: str
    round: int
    status: str = "ok"
    wall_s: float | None = None  # tool + top-up
    tool_s: float | None = None
    topup_s: float | None = None
    topup_added: int = 0  # DDL statements the top-up had to add (sequence settings apart)
    all_mb: float | None = None
    client_mb: float | None = None
    client_private_mb: float | None = None
    server_mb: float | None = None
    largest_mb: float | None = None
    top: dict[str, float] = field(default_factory=dict)
    rows: int | None = None
    expected: int = 0
    note: str = ""


@dataclass
class Ctx:
    db: Path
    server: str
    peers: Path
    lite2pg: Lite2pgBuild
    out: Path
    model: dict[str, TableModel]
    env: dict[str, str] = field(default_factory=dict)


def contender_argv(ctx: Ctx, contender: str, url: str, workdir: Path) -> list[str]:
    run_dir = str(workdir / "run")
    migrate = [ctx.lite2pg.path, "migrate", str(ctx.db), "--target", url, "--run-dir", run_dir]
    if contender == "l2p-default":
        return [*migrate, "-q"]
    if contender == "l2p-fast":
        return [*migrate, "-q", "--no-keep-artifacts", "--no-verify"]
    if contender in ("duckdb", "dlt"):
        venv, script = PEER_SCRIPTS[contender]
        return [
            str(ctx.peers / venv / "bin/python"),
            str(BENCH / "peers" / script),
            str(ctx.db),
            url,
        ]
    if contender == "pgloader":
        load = workdir / "race.load"
        load.write_text(
            f"LOAD DATABASE\n  FROM sqlite://{ctx.db}\n  INTO {url}\n"
            "  WITH include drop, create tables, create indexes, reset sequences;\n"
        )
        return ["pgloader", str(load)]
    raise ValueError(contender)


def run_floor(ctx: Ctx, url: str, log: Path, sampler: TreeSampler) -> Measured:
    """Tables with lite2pg's types, then one sqlite3 | psql pipe per table."""
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        create_tables(conn, ctx.model)
    env = {**os.environ, "PGTZ": "UTC"}
    largest = 0.0
    for t in ctx.model:
        quoted = sql.Identifier("public", t).as_string(None)
        m = pipe_measured(
            ["sqlite3", "-csv", str(ctx.db), f"SELECT * FROM {sql.Identifier(t).as_string(None)}"],
            [
                "psql",
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                url,
                "-c",
                f"\\copy {quoted} from stdin csv",
            ],
            log,
            env=env,
            sampler=sampler,
        )
        largest = max(largest, m.max_rss_mb)
        if m.code:
            return Measured(time.perf_counter() - started, m.code, largest)
    return Measured(time.perf_counter() - started, 0, largest)


def count_rows(url: str, model: Mapping[str, TableModel]) -> tuple[int, str]:
    """Rows in PostgreSQL, and what differs from SQLite's counts ('' if nothing)."""
    got, problems = 0, []
    with psycopg.connect(url, autocommit=True) as conn:
        rels = public_tables(conn)
        for t, m in model.items():
            pt = find_name(t, rels)
            n: int | None = None
            if pt is not None:
                q = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("public", pt))
                row = conn.execute(q).fetchone()
                n = int(row[0]) if row else None
            got += n or 0
            if n != m.rows:
                problems.append(f"{t}: {'no table' if n is None else n}/{m.rows}")
    return got, "; ".join(problems)


def run_one(ctx: Ctx, contender: str, rnd: int) -> Run:
    """Fresh database, the contender's process(es), top-up, row counts."""
    name = dbname(contender)
    r = Run(contender, rnd, expected=sum(m.rows for m in ctx.model.values()))
    url = fresh_database(ctx.server, name)
    workdir = Path(tempfile.mkdtemp(prefix=f"{contender}-r{rnd}-", dir=ctx.out))
    log = ctx.out / f"{contender}.log"
    note = ""
    try:
        with TreeSampler(ctx.server, [name]) as sampler:
            started = time.perf_counter()
            if contender == "floor":
                m = run_floor(ctx, url, log, sampler)
            else:
                argv = contender_argv(ctx, contender, url, workdir)
                m = run_measured(argv, log, env={**os.environ, **ctx.env}, sampler=sampler)
            r.tool_s = time.perf_counter() - started
            if m.code:
                note = f"exit {m.code}: {tail(log)}"
            topup_started = time.perf_counter()
            with psycopg.connect(url, autocommit=True, options="-c TimeZone=UTC") as conn:
                added, sequences = topup_statements(conn, ctx.model)
                for stmt in added + sequences:
                    try:
                        conn.execute(stmt)
                    except psycopg.Error as e:
                        what = stmt.as_string(conn)[:80]
                        note += f" top-up failed: {what}: {e.diag.message_primary}"
            r.topup_s = time.perf_counter() - topup_started
            r.wall_s = time.perf_counter() - started
            r.topup_added = len(added)
        peaks = sampler.peaks()
        # A process shorter than the sampling interval is seen by wait4 only: the sums are
        # at least the largest process.
        r.largest_mb = m.max_rss_mb
        r.client_mb = max(peaks.client_mb, m.max_rss_mb)
        r.all_mb = max(peaks.all_mb, r.client_mb)
        r.server_mb = peaks.server_mb
        r.client_private_mb, r.top = peaks.client_private_mb, peaks.top
        with log.open("a") as fh:
            fh.write(f"[race] round {rnd}: top-up added {len(added)} statement(s)\n")
            fh.writelines(f"  {s.as_string(None)}\n" for s in added)
        r.rows, problem = count_rows(url, ctx.model)
        if note or problem:
            r.status = "failed"
            r.note = "; ".join(x for x in (note.strip(), problem and f"rows {problem}") if x)
    except psycopg.Error as e:  # a harness-side failure marks the run; the race goes on
        r.status, r.note = "failed", f"{type(e).__name__}: {str(e).splitlines()[0]}"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # lite2pg's run dir holds a source snapshot
    return r


# -------------------------------------------------------------------------------- report
MEDIANS = (
    "wall_s",
    "tool_s",
    "topup_s",
    "all_mb",
    "client_mb",
    "client_private_mb",
    "server_mb",
    "largest_mb",
)


def summarize(runs: list[Run], contenders: list[str]) -> dict[str, dict[str, Any]]:
    """Medians over the rounds that finished with the right counts, and ratios to the floor."""
    summary: dict[str, dict[str, Any]] = {}
    for c in contenders:
        mine = [r for r in runs if r.contender == c]
        ok = [r for r in mine if r.status == "ok"]
        summary[c] = {
            "ok_rounds": len(ok),
            "rounds": len(mine),
            **{k: median(getattr(r, k) for r in ok) for k in MEDIANS},
            "topup_added": max((r.topup_added for r in mine), default=0),
            "rows": median(r.rows for r in mine),
            "expected": mine[0].expected if mine else 0,
            "walls": [None if r.wall_s is None else round(r.wall_s, 3) for r in mine],
            "note": next((r.note for r in mine if r.note), ""),
        }
    floor = summary.get("floor", {}).get("wall_s")
    for s in summary.values():
        s["x_floor"] = s["wall_s"] / floor if s["wall_s"] and floor else None
    return summary


def peer_versions(peers: Path) -> dict[str, str]:
    def out(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
            return done.stdout.strip().splitlines()[0] if done.stdout.strip() else "?"
        except OSError as e:
            return f"missing ({e.strerror})"

    return {
        "duckdb": out(
            [str(peers / "duck/bin/python"), "-c", "import duckdb; print(duckdb.__version__)"]
        ),
        "dlt": out(
            [
                str(peers / "dlt/bin/python"),
                "-c",
                "import dlt, connectorx, adbc_driver_postgresql as a;"
                " print(dlt.__version__, 'connectorx', connectorx.__version__,"
                " 'adbc-driver-postgresql', a.__version__)",
            ]
        ),
        "pgloader": out(["pgloader", "--version"]),
        "sqlite3": out(["sqlite3", "--version"]).split(" ")[0],
        "psql": out(["psql", "--version"]),
    }


def markdown(report: Mapping[str, Any]) -> str:
    """An entry for bench/RESULTS.md."""
    s: dict[str, dict[str, Any]] = report["summary"]
    lines = [
        f"### {report['date']}: the peer race (bench/race.py)",
        "",
        "```",
        report["command"],
        "```",
        "",
        f"Database: {report['db']['name']} ({report['db']['counts']}; "
        f"{report['db']['bytes']:,} bytes). lite2pg: {report['lite2pg']['path']} "
        f"({report['lite2pg']['version']}; {report['lite2pg']['source']}).",
        f"Machine: {report['machine']['cores']} cores, load average "
        f"{report['machine']['load_start']:.2f} at the start; PostgreSQL "
        f"{report['postgres']['server_version']} (shared_buffers "
        f"{report['postgres']['shared_buffers']}, maintenance_work_mem "
        f"{report['postgres']['maintenance_work_mem']}). Peers: "
        + "; ".join(f"{k} {v}" for k, v in report["versions"].items())
        + ".",
        f"Median of {report['rounds']} interleaved round(s); every contender ends with the same"
        " keys, indexes, FKs and identities (top-up inside its wall time).",
        "",
        "| contender | ok rounds | wall s | × floor |"  # noqa: RUF001
        " of which top-up s (statements added) "
        "| peak MB, all processes | client / server MB | largest process MB "
        "| rows loaded / SQLite |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c, v in s.items():
        rows = "-" if v["rows"] is None else f"{int(v['rows']):,}"
        lines.append(
            f"| {c} | {v['ok_rounds']}/{v['rounds']} | {fmt(v['wall_s'])} | {fmt(v['x_floor'])}"
            f" | {fmt(v['topup_s'])} ({v['topup_added']}) | {fmt(v['all_mb'], '.0f')}"
            f" | {fmt(v['client_mb'], '.0f')} / {fmt(v['server_mb'], '.0f')}"
            f" | {fmt(v['largest_mb'], '.0f')} | {rows} / {v['expected']:,} |"
        )
    lines.append("")
    lines += [f"- {c}: {COMMANDS[c]}" for c in s]
    notes = [f"- {c} failed: {v['note']}" for c, v in s.items() if v["note"]]
    lines += notes
    lines += [
        "",
        "Peak MB, all processes: the contender's process tree (summed VmRSS) plus the private"
        " memory (RssAnon) of the PostgreSQL backends serving its database, summed in the same"
        " 0.1 s sample; shared_buffers is counted for nobody. Largest process: ru_maxrss (wait4).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Race the contenders; print a line per run, then an entry for RESULTS.md."""
    doc = __doc__ or ""
    ap = argparse.ArgumentParser(
        description=doc.splitlines()[0],
        epilog=doc.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("db", type=Path, help="SQLite file to migrate")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds (medians kept)")
    ap.add_argument("--lite2pg", help="lite2pg executable (default: the one on PATH)")
    ap.add_argument("--server", default=DEFAULT_SERVER, help="server URL (maintenance database)")
    ap.add_argument("--peers", type=Path, default=DEFAULT_PEERS, help="bench/peers/install.sh's")
    ap.add_argument("--only", action="append", choices=CONTENDERS, help="repeatable")
    ap.add_argument("--skip", action="append", choices=CONTENDERS, default=[], help="repeatable")
    ap.add_argument("--out", type=Path, help="logs (default bench/out/race-<time>)")
    ap.add_argument("--json", type=Path, help="write every run and the medians here")
    ap.add_argument("--keep", action="store_true", help="keep the hb_race_* databases")
    a = ap.parse_args(argv)

    db = a.db.resolve()
    if not db.is_file():
        ap.error(f"{db}: no such file")
    build = resolve_lite2pg(a.lite2pg)
    contenders = [c for c in (a.only or CONTENDERS) if c not in a.skip]
    out = a.out or OUT / f"race-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    out.mkdir(parents=True, exist_ok=True)
    ctx = Ctx(
        db,
        a.server,
        a.peers,
        build,
        out,
        sqlite_model(db),
        env={"RUNTIME__DLTHUB_TELEMETRY": "false"},
    )
    on_signals_interrupt()
    counts = ", ".join(f"{t}={m.rows}" for t, m in ctx.model.items())
    expected = sum(m.rows for m in ctx.model.values())
    load_start = os.getloadavg()[0]
    print(f"database: {db} ({counts}; {db.stat().st_size:,} bytes)")
    print(f"lite2pg: {build.path} ({build.version}; {build.source})")
    versions = peer_versions(a.peers)
    print("peers: " + "; ".join(f"{k} {v}" for k, v in versions.items()))
    pg = server_settings(a.server)
    print(
        f"machine: {os.cpu_count()} cores, load average {load_start:.2f}; PostgreSQL "
        + ", ".join(f"{k} {v}" for k, v in pg.items())
    )
    print(f"logs: {out}", flush=True)

    runs: list[Run] = []
    try:
        for rnd in range(1, a.rounds + 1):
            for c in contenders:
                r = run_one(ctx, c, rnd)
                runs.append(r)
                print(
                    f"round {rnd}/{a.rounds} {c:<11} {r.status:<6} wall {fmt(r.wall_s)} s"
                    f" (tool {fmt(r.tool_s)} + top-up {fmt(r.topup_s)}, {r.topup_added} added)"
                    f" peak {fmt(r.all_mb, '.0f')} MB (client {fmt(r.client_mb, '.0f')}"
                    f" + server {fmt(r.server_mb, '.0f')}; largest {fmt(r.largest_mb, '.0f')})"
                    f" rows {r.rows}/{r.expected} load {os.getloadavg()[0]:.2f}"
                    + (f"  {r.note}" if r.note else ""),
                    flush=True,
                )
    except KeyboardInterrupt as e:
        print(f"\ninterrupted ({e}): stopping children, dropping databases", file=sys.stderr)
        kill_children()
        return 130
    finally:
        kill_children()
        if not a.keep:
            drop_databases(a.server, [dbname(c) for c in CONTENDERS])

    summary = summarize(runs, contenders)
    report: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": shlex.join(sys.orig_argv),
        "db": {
            "path": str(db),
            "name": db.name,
            "bytes": db.stat().st_size,
            "counts": counts,
            "rows": expected,
        },
        "lite2pg": asdict(build),
        "versions": versions,
        "postgres": pg,
        "machine": {
            "cores": os.cpu_count(),
            "load_start": load_start,
            "load_end": os.getloadavg()[0],
            "platform": platform.platform(),
        },
        "rounds": a.rounds,
        "summary": summary,
        "runs": [asdict(r) for r in runs],
        "logs": str(out),
    }
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(report, indent=1) + "\n")
    print("\n" + markdown(report))
    failed = [c for c, v in summary.items() if v["ok_rounds"] < v["rounds"]]
    return 1 if any(c in failed for c in (*LITE2PG, "floor")) else 0


if __name__ == "__main__":
    sys.exit(main())
