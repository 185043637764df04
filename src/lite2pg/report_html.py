"""report.html: one self-contained page (inline CSS, no script, nothing fetched) for people.

It renders report.json as written by migrate and verify: the verdict in one line at the
top, per-table reconciliation, differences, reject reasons as bars, value mappings before
and after, foreign keys, distributions, timings and spot-checks. Every value is escaped;
report.json never holds a secret, so neither does this page.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lite2pg.artifacts import atomic_write

__all__ = ["render_html", "write_html"]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d232a;
background:#f6f7f9}
main{max-width:1200px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:20px;margin:8px 0}h2{font-size:16px;margin:28px 0 8px;border-bottom:1px solid #dde1e6;
padding-bottom:4px}h3{font-size:14px;margin:16px 0 6px}
.verdict{font-size:17px;font-weight:600;padding:12px 16px;border-radius:6px;margin:12px 0}
.ok{background:#e3f5e8;color:#14532d;border:1px solid #9bd3ad}
.bad{background:#fde8e8;color:#7f1d1d;border:1px solid #f0a3a3}
.warn{background:#fff6db;color:#6b4e00;border:1px solid #ecd48a}
.verdict .detail{font-size:13px;font-weight:400;margin-top:4px}
table{border-collapse:collapse;background:#fff;margin:6px 0 12px;width:100%;max-width:100%;
table-layout:auto}
th,td{border:1px solid #dde1e6;padding:4px 8px;text-align:left;vertical-align:top;
overflow-wrap:anywhere;min-width:3.5em}
th{overflow-wrap:normal}td.n{overflow-wrap:normal}.pass,.fail{white-space:nowrap}
li,p,h3,summary,.verdict{overflow-wrap:anywhere}
details{margin:4px 0}summary{cursor:pointer;font-weight:600;padding:2px 0}
th{background:#eef1f4;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.meta td:first-child{width:180px;color:#57606a}
.pass{color:#15803d;font-weight:600}.fail{color:#b91c1c;font-weight:600}.muted{color:#6b7280}
.bar{display:flex;align-items:center;gap:8px;margin:3px 0}
.bar .label{flex:0 0 46%;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.bar .track{flex:1;background:#eef1f4;border-radius:3px;height:14px}
.bar .fill{background:#4f7cc3;height:14px;border-radius:3px}
.bar .fill.red{background:#d9534f}.bar .num{flex:0 0 90px;text-align:right}
ul.problems li{color:#7f1d1d}
"""


def write_html(path: Path, data: dict[str, Any]) -> None:
    """Write report.html for a report.json dict (atomically)."""
    atomic_write(path, render_html(data))


def render_html(data: dict[str, Any]) -> str:
    """The page for a report.json dict (migrate's report, with verify's section if any)."""
    v = data.get("verify")
    out: list[str] = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>lite2pg report: {_e(data.get('source', ''))}</title>",
        f"<style>{_CSS}</style></head><body><main>",
    ]
    if v:
        out.append(_banner(data, v))
    else:
        out.append(
            '<div class="verdict warn">NOT VERIFIED: '
            f"{_e(data.get('verdict', ''))} (run lite2pg verify)</div>"
        )
    out.append(f"<h1>lite2pg migrate {_e(data.get('source', ''))}</h1>")
    out.append(_meta(data, v))
    out.append(_profile(data.get("profile")))
    if v and v.get("problems"):
        out.append("<h2>Problems</h2><ul class='problems'>")
        out.extend(f"<li>{_e(p)}</li>" for p in v["problems"])
        out.append("</ul>")
    out.append(_reconciliation(data, v))
    out.append(_ledger(data))
    if v:
        out.append(_catalog(v))
        out.append(_differences(v))
        out.append(_reject_reasons(v))
        out.append(_mappings(v))
        out.append(_foreign_keys(v))
        out.append(_distributions(v))
        out.append(_passwords(v))
        out.append(_evidence(v))
    out.append(_timings(data, v))
    if v:
        out.append(_spot_checks(v))
    notes = [f"behaviour change: {c}" for c in data.get("behaviour_changes") or []]
    notes += data.get("notes") or []
    for p in data.get("phases") or []:
        notes.extend(p.get("notes") or [])
    if notes or data.get("not_migrated"):
        out.append("<h2>Notes</h2><ul>")
        out.extend(f"<li>{_e(n)}</li>" for n in notes)
        out.extend(
            f"<li>not migrated: {_e(m.get('kind'))} {_e(m.get('name'))}: {_e(m.get('reason'))}</li>"
            for m in data.get("not_migrated") or []
        )
        out.append("</ul>")
    out.append("</main></body></html>\n")
    return "\n".join(s for s in out if s)


def _banner(data: dict[str, Any], v: dict[str, Any]) -> str:
    """The verdict in words that say what the run did: "VERIFIED, with 104 rows rejected
    and 9 views not migrated" (warn colour), a bare VERIFIED only when nothing was left
    behind; verify's own line below it."""
    if not v.get("ok"):
        return f'<div class="verdict bad">{_e(v.get("verdict", ""))}</div>'
    left = _left_behind(data)
    filtered = (data.get("totals") or {}).get("filtered") or 0
    said = left + ([f"{_count(filtered, 'row')} filtered out by the plan"] if filtered else [])
    head = "VERIFIED" + (f", with {_and(said)}" if said else "")
    detail = str(v.get("verdict", "")).removeprefix("VERIFIED: ")
    return (
        f'<div class="verdict {"warn" if left else "ok"}">{_e(head)}'
        f'<div class="detail">{_e(detail)}</div></div>'
    )


def _left_behind(data: dict[str, Any]) -> list[str]:
    """What the run did not bring over as it was: rejected rows, objects not migrated (by
    kind, in the order first seen), constraints it could not build."""
    out = []
    rejected = sum(int(t.get("rejected") or 0) for t in data.get("tables") or [])
    if rejected:
        out.append(f"{_count(rejected, 'row')} rejected")
    kinds: dict[str, int] = {}
    for m in data.get("not_migrated") or []:
        kind = str(m.get("kind") or "object")
        kinds[kind] = kinds.get(kind, 0) + 1
    if kinds:
        out.append(_and([_count(n, kind) for kind, n in kinds.items()]) + " not migrated")
    failed = sum(
        int(p.get("failed") or 0) for p in data.get("phases") or [] if p.get("name") != "views"
    )
    if failed:
        out.append(f"{_count(failed, 'key, index or constraint')} not built")
    return out


def _count(n: int, noun: str) -> str:
    """ "1 view", "9 views", "1,204 rows" ("index" -> "indexes")."""
    if n == 1:
        return f"1 {noun}"
    return f"{n:,} {noun}{'es' if noun.endswith(('x', 's', 'sh', 'ch')) else 's'}"


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _profile(profile: dict[str, Any] | None) -> str:
    """The ORM profile the run applied: its one-line summary, then its plan lines."""
    if not profile:
        return ""
    found = f" (detected by {_e(profile['found'])})" if profile.get("found") else ""
    revision = f"; migrations at {_e(profile['revision'])}" if profile.get("revision") else ""
    items = [f"<li>{_e(line)}</li>" for line in profile.get("lines") or []]
    items += [f"<li>note: {_e(note)}</li>" for note in profile.get("notes") or []]
    return f"<h2>ORM profile</h2><p>{_e(profile.get('summary', ''))}{found}{revision}</p>" + (
        f"<ul>{''.join(items)}</ul>" if items else ""
    )


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _n(value: object) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    return _e(value)


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: set[int]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _status(ok: object) -> str:
    if ok is None:
        return '<span class="muted">-</span>'
    return '<span class="pass">ok</span>' if ok else '<span class="fail">FAILED</span>'


def _meta(data: dict[str, Any], v: dict[str, Any] | None) -> str:
    rows = [
        ("source", data.get("source")),
        ("target", f"{data.get('target')} (schema {data.get('schema')}, {data.get('mode')})"),
        ("run directory", data.get("run_dir")),
        ("started", data.get("started_at")),
        ("migrate", data.get("verdict")),
        ("migrate time", f"{data.get('seconds', 0)} s"),
    ]
    if v:
        snap = v.get("snapshot") or {}
        rows += [
            ("snapshot SHA-256", f"{snap.get('sha256', '')} ({snap.get('check', '')})"),
            ("row digests", v.get("digest")),
            ("verify time", f"{v.get('seconds', 0)} s"),
            ("settings", ", ".join(f"{k}={w}" for k, w in (v.get("settings") or {}).items())),
        ]
    body = "".join(f"<tr><td>{_e(k)}</td><td class='mono'>{_e(w)}</td></tr>" for k, w in rows)
    return f"<table class='meta'>{body}</table>"


def _reconciliation(data: dict[str, Any], v: dict[str, Any] | None) -> str:
    out = ["<h2>Per table</h2>"]
    if not v:
        rows = [
            [
                _e(t.get("source")),
                _n(t.get("read")),
                _n(t.get("loaded")),
                _n(t.get("rejected")),
                _n(t.get("filtered")),
            ]
            for t in data.get("tables") or []
        ]
        out.append(_table(["table", "read", "loaded", "rejected", "filtered"], rows, {1, 2, 3, 4}))
        return "".join(out)
    rows = []
    for t in v.get("tables") or []:
        c, k, d = t["counts"], t["content"], t["digest"]
        rep = c.get("report") or {}
        name = t["source"] if t["source"] == t["target"] else f"{t['source']} -> {t['target']}"
        same = d["source"] == d["target"]
        digest = (
            f"<span class='mono'>{_e(d['source'][:16])}</span>"
            if same
            else f"<span class='mono fail'>{_e(d['source'][:16])} / {_e(d['target'][:16])}</span>"
        )
        rows.append(
            [
                _e(name),
                _n(c["source_rows"]),
                _n(c["filtered"]),
                _n(c["rejected"]),
                _n(c["expected_rows"]),
                _n(c["target_rows"]),
                _e(
                    f"{rep.get('read')} / {rep.get('loaded')} / {rep.get('rejected')} / "
                    f"{rep.get('filtered')}"
                ),
                _n(k["present"]),
                _n(k["missing"]),
                _n(k["extra"]),
                _n(k["changed"]),
                _e(
                    f"{k['fast_rows']:,} / {k['slow_rows']:,} (chunks "
                    f"{k.get('fast_chunks', 0):,} / {k.get('slow_chunks', 0):,})"
                    + (
                        f"; row by row: {k['fast_path_refusal']}"
                        if k.get("fast_path_refusal")
                        else ""
                    )
                ),
                digest,
                _status(t.get("ok")),
            ]
        )
    out.append(
        _table(
            [
                "table",
                "snapshot rows",
                "filtered",
                "rejected",
                "expected",
                "in PostgreSQL",
                "report.json read / loaded / rejected / filtered",
                "equal",
                "missing",
                "extra",
                "changed",
                "fast / slow rows",
                "row digest (source / target)",
                "",
            ],
            rows,
            set(range(1, 12)),
        )
    )
    return "".join(out)


def _differences(v: dict[str, Any]) -> str:
    rows = []
    for t in v.get("tables") or []:
        for d in t.get("differences") or []:
            key = ", ".join(f"{k}={w}" for k, w in (d.get("key") or {}).items())
            detail = "<br>".join(
                f"<b>{_e(c['column'])}</b>: <code>{_e(c['source'])}</code> &rarr; "
                f"<code>{_e(c['target'])}</code>"
                for c in d.get("columns") or []
            )
            if d.get("reason"):
                detail += ("<br>" if detail else "") + _e(d["reason"])
            rows.append([_e(t["source"]), _e(d["kind"]), f"<code>{_e(key)}</code>", detail])
    if not rows:
        return ""
    return "<h2>Differences (first of each table)</h2>" + _table(
        ["table", "kind", "key", "columns: expected &rarr; in PostgreSQL"], rows, set()
    ).replace("&amp;rarr;", "&rarr;")


def _bars(items: Sequence[tuple[str, float, str]], red: bool = False) -> str:
    top = max((n for _, n, _ in items), default=0) or 1
    out = []
    for label, n, shown in items:
        width = max(0.5, 100 * n / top)
        out.append(
            f'<div class="bar"><span class="label" title="{_e(label)}">{_e(label)}</span>'
            f'<span class="track"><span class="fill{" red" if red else ""}" '
            f'style="display:block;width:{width:.1f}%"></span></span>'
            f'<span class="num">{_e(shown)}</span></div>'
        )
    return "".join(out)


def _reject_reasons(v: dict[str, Any]) -> str:
    parts = []
    for t in v.get("tables") or []:
        reasons = t.get("reject_reasons") or {}
        if reasons:
            items = [(r, float(n), f"{n:,}") for r, n in reasons.items()]
            parts.append(f"<h3>{_e(t['source'])}</h3>{_bars(items, red=True)}")
    if not parts:
        return "<h2>Reject reasons</h2><p class='muted'>No row was rejected.</p>"
    return "<h2>Reject reasons</h2>" + "".join(parts)


def _ledger(data: dict[str, Any]) -> str:
    """What the plan drops and rewrites: each line as the terminal said it."""
    lines = data.get("ledger_lines") or []
    if not lines:
        return ""
    items = "".join(f"<li>{_e(line)}</li>" for line in lines)
    return f"<h2>What the plan drops and changes</h2><ul>{items}</ul>"


def _mappings(v: dict[str, Any]) -> str:
    parts = []
    for d in v.get("distributions") or []:
        if d.get("kind") != "map":
            continue
        rows = [[_e(m["before"]), _e(m["after"]), _n(m["rows"])] for m in d.get("mapping") or []]
        status = _status(d.get("ok"))
        parts.append(
            f"<h3>{_e(d['table'])}.{_e(d['column'])} {status}</h3>"
            + _table(["before (source)", "after (PostgreSQL)", "rows"], rows, {2})
        )
    if not parts:
        return ""
    return "<h2>Value mappings, before &rarr; after</h2>" + "".join(parts)


def _catalog(v: dict[str, Any]) -> str:
    section = v.get("catalog") or {}
    rows = []
    for c in section.get("tables") or []:
        sequences = "; ".join(
            f"{s['sequence']} ({s['column']}): next {s['next_value']}, needs {s['needed']}"
            for s in c.get("sequences") or []
        )
        rows.append(
            [
                _e(c["table"]),
                _e(c.get("scope")),
                "<br>".join(_e(d) for d in c.get("differences") or []) or "as built",
                _e(sequences or "none"),
                _status(c.get("ok")),
            ]
        )
    if not rows:
        return ""
    verdict = _status(section.get("ok"))
    return f"<h2>Catalog and sequences {verdict}</h2>" + _table(
        ["table", "checked", "differences", "sequences", ""], rows, set()
    )


def _foreign_keys(v: dict[str, Any]) -> str:
    rows = []
    for f in v.get("foreign_keys") or []:
        examples = "; ".join(
            ", ".join(f"{k}={w}" for k, w in ex.items()) for ex in f.get("examples") or []
        )
        allowed = " (kept by the plan)" if f.get("allowed") and f.get("orphans") else ""
        rows.append(
            [
                _e(f"{f['table']}({', '.join(f['columns'])})"),
                _e(f"{f['parent']}({', '.join(f['parent_columns'])})"),
                _e(f.get("constraint") or "(none)"),
                _e(f["method"]),
                _n(f["orphans"]) + _e(allowed),
                f"<code>{_e(examples)}</code>",
                _status(f.get("ok")),
            ]
        )
    if not rows:
        return ""
    return "<h2>Foreign keys</h2>" + _table(
        ["foreign key", "references", "constraint", "checked by", "orphans", "examples", ""],
        rows,
        {4},
    )


def _evidence(v: dict[str, Any]) -> str:
    e = v.get("evidence")
    if not isinstance(e, dict):
        return ""
    rows = [
        [_e(name), _e(state), _status(state == "unchanged")]
        for name, state in (e.get("files") or {}).items()
    ]
    parts = [
        "<h2>Evidence</h2>",
        f'<p class="{"ok" if e.get("ok") else "bad"}">{_e(e.get("verdict", ""))}</p>',
    ]
    if rows:
        parts.append(_table(["file", "since the run signed it", ""], rows, set()))
    lines = [f"<li>{_e(p)}</li>" for p in e.get("problems") or []]
    lines += [f"<li>{_e(n)}</li>" for n in e.get("notes") or []]
    if lines:
        parts.append("<ul>" + "".join(lines) + "</ul>")
    return "".join(parts)


def _distributions(v: dict[str, Any]) -> str:
    rows = []
    for d in v.get("distributions") or []:
        what = "rows per value" if d["kind"] == "map" else "rows per parent key"
        diffs = "; ".join(
            f"{x['value']}: {x['source']} vs {x['target']}" for x in d.get("differences") or []
        )
        if d.get("not_made"):
            diffs = f"not made: {d['not_made']}"
        same = d["digest"]["source"] == d["digest"]["target"]
        rows.append(
            [
                _e(f"{d['table']}.{d['column']}"),
                _e(what),
                _n(d["groups"]["source"]),
                _n(d["groups"]["target"]),
                f"<span class='mono'>{_e(d['digest']['source'][:16])}"
                + ("" if same else f" / {_e(d['digest']['target'][:16])}")
                + "</span>",
                _e(diffs),
                _status(d.get("ok")),
            ]
        )
    if not rows:
        return ""
    return "<h2>Application-level checks</h2>" + _table(
        [
            "column",
            "distribution",
            "groups (source)",
            "groups (target)",
            "digest",
            "differences",
            "",
        ],
        rows,
        {2, 3},
    )


def _passwords(v: dict[str, Any]) -> str:
    rows = []
    for t in v.get("tables") or []:
        for column, stats in (t.get("passwords") or {}).items():
            shown = ", ".join(f"{k}: {n:,}" for k, n in sorted(stats.items()))
            bad = stats.get("wrong", 0) or stats.get("sample failed", 0)
            rows.append([_e(f"{t['source']}.{column}"), _e(shown), _status(not bad)])
    if not rows:
        return ""
    return "<h2>Passwords</h2>" + _table(["column", "checked", ""], rows, set())


def _timings(data: dict[str, Any], v: dict[str, Any] | None) -> str:
    items: list[tuple[str, float, str]] = []
    for t in data.get("tables") or []:
        items.append((f"load {t.get('source')}", float(t.get("seconds") or 0), ""))
    for p in data.get("phases") or []:
        items.append((str(p.get("name")), float(p.get("seconds") or 0), ""))
    out = ["<h2>Timings</h2>"]
    stages = [(str(x.get("name")), float(x.get("seconds") or 0)) for x in data.get("stages") or []]
    if stages:  # one after the other: they add up to the run's wall time
        bars = [(f"stage: {name}", s, f"{s:.3f} s") for name, s in stages]
        out.append(f"<h3>wall time by stage ({_e(data.get('seconds'))} s in all)</h3>{_bars(bars)}")
    if items:
        items = [(label, s, f"{s:.3f} s") for label, s, _ in items]
        title = (
            "tables and phases (side by side)"
            if stages
            else f"migrate ({_e(data.get('seconds'))} s in all)"
        )
        out.append(f"<h3>{title}</h3>{_bars(items)}")
    if v:
        phases = [(f"verify: {k}", float(s), f"{float(s):.3f} s") for k, s in v["phases"].items()]
        out.append(f"<h3>verify ({_e(v.get('seconds'))} s in all)</h3>{_bars(phases)}")
    return "".join(out)


def _spot_checks(v: dict[str, Any]) -> str:
    parts = []
    for s in v.get("spot_checks") or []:
        key = ", ".join(f"{k}={w}" for k, w in (s.get("key") or {}).items())
        rows = [
            [
                _e(c["column"]),
                f"<code>{_e(c['source'])}</code>",
                f"<code>{_e(c['expected'])}</code>",
                f"<code>{_e(c['target'])}</code>",
                _status(c.get("ok")),
            ]
            for c in s.get("columns") or []
        ]
        # Collapsed: a row's values can run to pages; one that differs opens by itself.
        differs = s.get("outcome") == "missing in PostgreSQL" or any(
            c.get("ok") is False for c in s.get("columns") or []
        )
        parts.append(
            f"<details{' open' if differs else ''}><summary>{_e(s['table'])} "
            f"<code>{_e(key)}</code>: {_e(s['outcome'])}</summary>"
            + _table(["column", "source (raw)", "transform(source)", "PostgreSQL", ""], rows, set())
            + "</details>"
        )
    if not parts:
        return ""
    return f"<h2>Spot-checks ({len(parts)} seeded random rows)</h2>" + "".join(parts)
