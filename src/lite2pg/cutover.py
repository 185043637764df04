"""Cutover: point the app at PostgreSQL by rewriting its database setting, then smoke-test it.

`switch_config` edits one value in place, as text, so every other byte of the file (comments,
order, quoting, line ends) stays as it was: a `.env` file's `DATABASE_URL=` line, or a key
of a TOML, YAML, JSON or INI file given as a dotted path (`database.url`; for INI
`section.option`). The file is replaced atomically (temp file in the same directory, fsync,
rename) after a byte-identical backup `<name>.lite2pg-backup-<UTC stamp>` with the same mode
was written; `restore` puts the backup back the same way. The edited text is parsed again
before it is written, so a value lite2pg cannot edit safely is refused, never half-written.

Passwords in URLs never reach anything a `ConfigChange` or `SmokeResult` prints or stores.
"""

from __future__ import annotations

import configparser
import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import signal
import stat
import subprocess
import tempfile
import time
import tomllib
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lite2pg.artifacts import atomic_write
from lite2pg.errors import Lite2pgError

__all__ = [
    "ConfigChange",
    "ConfigDuplicateKey",
    "ConfigError",
    "ConfigKeyNotFound",
    "ConfigNotFound",
    "ConfigUnparsable",
    "SmokeFailed",
    "SmokeResult",
    "config_kind",
    "redact_url",
    "restore",
    "run_smoke_command",
    "switch_config",
]

DEFAULT_ENV_KEY = "DATABASE_URL"
BACKUP_INFIX = ".lite2pg-backup-"
# What a smoke result keeps of the command's output: enough to see the failing test.
TAIL_LINES = 40
TAIL_BYTES = 16_384
# How many of a file's keys a "key not found" message lists before "...".
_KEYS_SHOWN = 20


# --- errors ------------------------------------------------------------------------------


class ConfigError(Lite2pgError):
    """The app's config file cannot be switched (or restored) as asked."""

    def __init__(self, path: Path | str, problem: str, hint: str) -> None:
        self.path = str(path)
        self.problem = problem
        self.hint = hint
        super().__init__(f"config {path}: {problem} (hint: {hint})")


class ConfigNotFound(ConfigError):
    """The config file does not exist."""


class ConfigKeyNotFound(ConfigError):
    """The key is not in the file; `keys` are the ones it has."""

    def __init__(self, path: Path | str, key: str, keys: list[str]) -> None:
        self.key = key
        self.keys = keys
        shown = ", ".join(keys[:_KEYS_SHOWN]) + (", ..." if len(keys) > _KEYS_SHOWN else "")
        super().__init__(
            path,
            f"no key {key}; it has: {shown or 'no keys at all'}",
            "pass the key that holds the database URL: for .env a variable name, "
            "else a dotted path like database.url",
        )


class ConfigDuplicateKey(ConfigError):
    """The key is set more than once, so which one the app reads is not clear."""

    def __init__(self, path: Path | str, key: str, lines: list[int]) -> None:
        self.key = key
        self.lines = lines
        super().__init__(
            path,
            f"key {key} appears {len(lines)} times (lines {', '.join(map(str, lines))})",
            "remove all but one, then run cutover again",
        )


class ConfigUnparsable(ConfigError):
    """The file is not valid in its format (or uses a form lite2pg cannot edit in place)."""


class SmokeFailed(Lite2pgError):
    """A smoke command failed; the message holds its exit code and redacted output tail."""

    def __init__(self, result: SmokeResult) -> None:
        self.result = result
        super().__init__(
            f"smoke command {result.command!r} {result.outcome} "
            "(hint: the app config was or will be restored; see the output tail)"
        )


# --- redaction ---------------------------------------------------------------------------

_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#\s]*", re.IGNORECASE)
_KEYWORD_PASSWORD = re.compile(r"(?<!\S)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def redact_url(value: str) -> str:
    """A URL (or libpq keyword string) with any password replaced by ***."""
    out: list[str] = []
    pos = 0
    for m in _SCHEME.finditer(value):
        if m.start() < pos:
            continue
        rest_start = m.end()
        # The userinfo ends at the last '@' of this URL (a password may hold '/', '?', '@').
        end = len(value)
        ws = re.search(r"\s", value[rest_start:])
        if ws:
            end = rest_start + ws.start()
        at = value.rfind("@", rest_start, end)
        if at == -1:
            continue
        colon = value.find(":", rest_start, at)
        if colon == -1:
            continue
        out.append(value[pos : colon + 1] + "***")
        pos = at
    out.append(value[pos:])
    redacted = "".join(out)
    redacted = _QUERY_PASSWORD.sub(r"\1***", redacted)
    return _KEYWORD_PASSWORD.sub(r"\1***", redacted)


def _passwords(values: Mapping[str, str]) -> list[str]:
    """The passwords in URL-like values, raw and percent-decoded, longest first."""
    found: set[str] = set()
    for v in values.values():
        for m in _SCHEME.finditer(v):
            try:
                parts = urllib.parse.urlsplit(v[m.start() :].split()[0])
                pw = parts.password
            except ValueError:
                pw = None
            if pw:
                found.update({pw, urllib.parse.unquote(pw)})
        for m in _KEYWORD_PASSWORD.finditer(v):
            found.add(m.group(2).strip("'"))
        for m in _QUERY_PASSWORD.finditer(v):
            pw = v[m.end(1) : m.end()]
            found.update({pw, urllib.parse.unquote(pw)})
    found.discard("")
    return sorted(found, key=len, reverse=True)


def _scrub(text: str, passwords: list[str]) -> str:
    for pw in passwords:
        text = text.replace(pw, "***")
    return redact_url(text)


# --- locating a value --------------------------------------------------------------------


@dataclass
class _Hit:
    """Where a key's value is written: text[start:end], how it is quoted, its line."""

    start: int
    end: int
    style: str
    line: int
    value: str | None = None
    problem: str | None = None  # why it cannot be edited in place, if it cannot


class _Found:
    """The hits for the wanted key, and every key the file has (for error messages)."""

    def __init__(self) -> None:
        self.hits: list[_Hit] = []
        self.keys: list[str] = []


def _lines(text: str) -> list[str]:
    """Lines split at \\n only (str.splitlines also splits at \\x85, \\u2028, ...)."""
    return re.findall(r"[^\n]*\n|[^\n]+\Z", text)


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def config_kind(path: Path) -> str:
    """The config format by file name: env, toml, yaml, json or ini."""
    name = path.name.lower()
    suffix = path.suffix.lower()
    kinds = {".toml": "toml", ".yaml": "yaml", ".yml": "yaml", ".json": "json"}
    if suffix in kinds:
        return kinds[suffix]
    if suffix in (".ini", ".cfg"):
        return "ini"
    if name == ".env" or name.startswith(".env.") or suffix == ".env":
        return "env"
    raise ConfigError(
        path,
        "cannot tell the file type from its name",
        "use a .env, .toml, .yaml/.yml, .json or .ini/.cfg file",
    )


# .env ------------------------------------------------------------------------------------

_ENV_ASSIGN = re.compile(r"[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_.-]*)[ \t]*=[ \t]*")
_DQ = re.compile(r'"((?:[^"\\]|\\[\s\S])*)"')
_SQ = re.compile(r"'([^']*)'")
_ENV_PLAIN_SAFE = re.compile(r"[!%-&(-\[\]-_a-~]+")  # printable ASCII but #'"$\` and space


def _rest_is_comment(text: str, pos: int) -> bool:
    eol = text.find("\n", pos)
    rest = text[pos : len(text) if eol == -1 else eol].strip()
    return not rest or rest.startswith("#")


def _locate_env(path: Path, text: str, key: str) -> _Found:
    found = _Found()
    pos = 0
    while pos < len(text):
        eol = text.find("\n", pos)
        eol = len(text) if eol == -1 else eol
        line = text[pos:eol].strip()
        if not line or line.startswith("#"):
            pos = eol + 1
            continue
        m = _ENV_ASSIGN.match(text, pos, eol)
        if not m:
            raise ConfigUnparsable(
                path, f"line {_line_of(text, pos)} is not KEY=VALUE", "fix or comment out the line"
            )
        name, vstart = m.group(1), m.end()
        found.keys.append(name)
        quote = text[vstart : vstart + 1]
        if quote in ("'", '"'):
            qm = (_DQ if quote == '"' else _SQ).match(text, vstart)
            if not qm:
                raise ConfigUnparsable(
                    path,
                    f"line {_line_of(text, vstart)}: {name} has no closing {quote}",
                    "close the quote",
                )
            vend = qm.end()
            raw = qm.group(1)
            value = re.sub(r"\\(.)", r"\1", raw) if quote == '"' else raw
            if not _rest_is_comment(text, vend):
                raise ConfigUnparsable(
                    path,
                    f"line {_line_of(text, vend)}: text after the closing quote of {name}",
                    "quote the whole value",
                )
            style = quote
            next_eol = text.find("\n", vend)
            pos = len(text) if next_eol == -1 else next_eol + 1
        else:
            comment = re.search(r"[ \t]#", text[vstart:eol])
            vend = vstart + comment.start() if comment else eol
            while vend > vstart and text[vend - 1] in " \t\r":
                vend -= 1
            value = text[vstart:vend]
            style = "plain"
            pos = eol + 1
        if name == key:
            found.hits.append(_Hit(vstart, vend, style, _line_of(text, vstart), value))
    return found


def _render_env(style: str, new: str) -> str:
    if style == "plain" and _ENV_PLAIN_SAFE.fullmatch(new):
        return new
    # Single quotes hold text as is (no escapes, no $ interpolation) when it has no ' or \.
    single_ok = "'" not in new and "\\" not in new
    if single_ok and (style == "'" or "$" in new):
        return f"'{new}'"
    return '"' + new.replace("\\", "\\\\").replace('"', '\\"') + '"'


# TOML ------------------------------------------------------------------------------------

_TOML_BARE = re.compile(r"[A-Za-z0-9_-]+")
_TOML_BASIC = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
_TOML_LITERAL = re.compile(r"'([^'\n]*)'")
_TOML_ML_BASIC = re.compile(r'"""(?:[^"\\]|\\[\s\S]|""?(?!"))*"{3,5}')
_TOML_ML_LITERAL = re.compile(r"'''[\s\S]*?'{3,5}")


class _ScanError(Exception):
    pass


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t":
        i += 1
    return i


def _next_line(text: str, i: int) -> int:
    eol = text.find("\n", i)
    return len(text) if eol == -1 else eol + 1


def _toml_key(text: str, i: int) -> tuple[list[str], int]:
    parts: list[str] = []
    while True:
        i = _skip_ws(text, i)
        for rx in (_TOML_BARE, _TOML_BASIC, _TOML_LITERAL):
            m = rx.match(text, i)
            if m:
                part = m.group(1) if m.groups() else m.group(0)
                parts.append(re.sub(r"\\(.)", r"\1", part) if rx is _TOML_BASIC else part)
                i = _skip_ws(text, m.end())
                break
        else:
            raise _ScanError(f"line {_line_of(text, i)}: expected a key")
        if text.startswith(".", i):
            i += 1
            continue
        return parts, i


def _toml_skip_value(text: str, i: int) -> tuple[int, str]:
    """End of the value at text[i] and its style: basic, literal, multiline or other."""
    for rx, style in (
        (_TOML_ML_BASIC, "multiline"),
        (_TOML_ML_LITERAL, "multiline"),
        (_TOML_BASIC, "basic"),
        (_TOML_LITERAL, "literal"),
    ):
        m = rx.match(text, i)
        if m:
            return m.end(), style
    if text[i : i + 1] in ("[", "{"):
        depth = 0
        while i < len(text):
            c = text[i]
            if c in "\"'":
                end, _ = _toml_skip_value(text, i)
                if end == i:
                    raise _ScanError(f"line {_line_of(text, i)}: unterminated string")
                i = end
                continue
            if c == "#":
                i = _next_line(text, i)
                continue
            depth += c in "[{"
            depth -= c in "]}"
            i += 1
            if depth == 0:
                return i, "other"
        raise _ScanError("unclosed array or inline table")
    eol = text.find("\n", i)
    eol = len(text) if eol == -1 else eol
    comment = text.find("#", i, eol)
    end = comment if comment != -1 else eol
    while end > i and text[end - 1] in " \t\r":
        end -= 1
    return (end, "other") if end > i else (i, "other")


def _toml_scan(text: str, target: tuple[str, ...]) -> list[_Hit]:
    hits: list[_Hit] = []
    table: tuple[str, ...] | None = ()
    i = 0
    while i < len(text):
        i = _skip_ws(text, i)
        if i >= len(text):
            break
        c = text[i]
        if c in "\r\n#":
            i = _next_line(text, i)
            continue
        if c == "[":
            array = text.startswith("[[", i)
            parts, i = _toml_key(text, i + (2 if array else 1))
            # Keys inside an array of tables are not reachable by a dotted path.
            table = None if array else tuple(parts)
            i = _next_line(text, i)
            continue
        parts, i = _toml_key(text, i)
        if not text.startswith("=", i):
            raise _ScanError(f"line {_line_of(text, i)}: expected '='")
        start = _skip_ws(text, i + 1)
        end, style = _toml_skip_value(text, start)
        if table is not None and (*table, *parts) == target:
            problem = None if style in ("basic", "literal") else "is not a one-line string"
            hits.append(_Hit(start, end, style, _line_of(text, start), problem=problem))
        i = _next_line(text, end)
    return hits


def _leaves(doc: Any, prefix: str = "") -> list[str]:
    if isinstance(doc, dict):
        return [k for key, v in doc.items() for k in _leaves(v, f"{prefix}{key}.")]
    return [prefix[:-1]] if prefix else []


def _lookup(doc: Any, parts: list[str] | tuple[str, ...]) -> tuple[bool, Any]:
    for p in parts:
        if not isinstance(doc, dict) or p not in doc:
            return False, None
        doc = doc[p]
    return True, doc


def _locate_toml(path: Path, text: str, key: str) -> _Found:
    target = tuple(key.split("."))
    found = _Found()
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        try:
            dupes = _toml_scan(text, target)
        except _ScanError:
            dupes = []
        if len(dupes) > 1:
            found.hits = dupes
            return found
        raise ConfigUnparsable(path, f"not valid TOML: {e}", "fix the file first") from None
    try:
        found.hits = _toml_scan(text, target)
    except _ScanError as e:
        raise ConfigUnparsable(path, f"cannot edit in place: {e}", "edit it by hand") from None
    found.keys = _leaves(doc)
    present, value = _lookup(doc, target)
    if present and not found.hits:
        raise ConfigUnparsable(
            path,
            f"{key} is set inside an inline table or array, which lite2pg does not edit",
            f'write it as a `{target[-1]} = "..."` line under [{".".join(target[:-1])}]',
        )
    for h in found.hits:
        h.value = value if isinstance(value, str) else None
    return found


def _render_toml(style: str, new: str) -> str:
    if style == "literal" and "'" not in new and not re.search(r"[\x00-\x08\x0a-\x1f\x7f]", new):
        return f"'{new}'"
    return json.dumps(new, ensure_ascii=False).replace("\x7f", "\\u007f")


# YAML ------------------------------------------------------------------------------------

_YAML_KEY = re.compile(
    r"""(?:"(?P<dq>(?:[^"\\]|\\.)*)"|'(?P<sq>(?:[^']|'')*)'|(?P<plain>[^\s#'"{}\[\],&*!|>%@`-][^#]*?))"""
    r"[ \t]*:(?=[ \t]|$)"
)
_YAML_DQ = re.compile(r'"(?:[^"\\]|\\.)*"')
_YAML_SQ = re.compile(r"'(?:[^']|'')*'")
_YAML_PLAIN_SAFE = re.compile(r"[A-Za-z][!-\"$-~]*")  # printable ASCII, no '#' or space
# What a single-quoted scalar may hold as is: printable, and no NEL, LS, PS or BOM.
_YAML_SQ_SAFE = re.compile(
    "[\t\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]*"
)
_UNSAFE_YAML = re.compile("[\x7f-\x9f\u2028\u2029\ufeff]")
_YAML_NOT_STRING = re.compile(
    r"(?:[-+.0-9][-+.0-9_:eExXoOa-fA-F]*|y|n|yes|no|true|false|on|off|null|~)", re.IGNORECASE
)


_YAML_ESCAPES = {
    "0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v", "f": "\f",
    "r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\", "N": "\x85",
    "_": "\xa0", "L": "\u2028", "P": "\u2029",
}  # fmt: skip
_YAML_ESCAPE = re.compile(r"\\(?:x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|(.))")


def _yaml_unescape(body: str) -> str:
    """The text of a one-line YAML double-quoted scalar (without its quotes)."""

    def one(m: re.Match[str]) -> str:
        code = m.group(1) or m.group(2) or m.group(3)
        if code:
            return chr(int(code, 16))
        return _YAML_ESCAPES.get(m.group(4), m.group(0))

    return _YAML_ESCAPE.sub(one, body)


def _locate_yaml(path: Path, text: str, key: str) -> _Found:
    """Block-style YAML mappings, scanned line by line by indentation."""
    target = key.split(".")
    found = _Found()
    # (indent, key, indent of its children once seen)
    stack: list[list[Any]] = []
    root_child: int | None = None
    skip_over: int | None = None  # lines indented deeper than this continue a value
    skip_kind = ""
    skip_hit: _Hit | None = None
    open_quote: tuple[str, int] | None = None  # an unclosed multi-line quote and its line
    pos = 0

    def bad(line_no: int, problem: str) -> ConfigUnparsable:
        return ConfigUnparsable(
            path,
            f"line {line_no}: {problem}",
            "fix the YAML; if it is valid, change the setting by hand",
        )

    for n, line in enumerate(_lines(text), 1):
        start, pos = pos, pos + len(line)
        body = line.rstrip("\r\n")
        stripped = body.lstrip(" ")
        indent = len(body) - len(stripped)
        if not stripped.strip() or stripped.startswith("#"):
            continue
        if skip_over is not None:
            if indent > skip_over:
                if skip_hit is not None and skip_hit.problem is None:
                    skip_hit.problem = "spans several lines"
                if skip_kind == "plain" and re.search(r":(?:[ \t]|$)", stripped.split(" #")[0]):
                    raise bad(n, "a mapping is not allowed here (bad indentation?)")
                if open_quote and re.search(r'(?<!\\)"' if open_quote[0] == '"' else "'", stripped):
                    open_quote = None
                continue
            if open_quote:
                raise bad(open_quote[1], f"no closing {open_quote[0]}")
            skip_over, skip_hit, skip_kind = None, None, ""
        if stripped.startswith("\t"):
            raise bad(n, "a tab in the indentation (YAML allows spaces only)")
        if indent == 0 and (stripped in ("---", "...") or stripped.startswith(("--- ", "%"))):
            stack.clear()
            root_child = None
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent_child = stack[-1][2] if stack else root_child
        if parent_child is None:
            if stack:
                stack[-1][2] = indent
            else:
                root_child = indent
        elif parent_child != indent:
            raise bad(n, f"bad indentation ({indent} spaces, expected {parent_child})")
        if stripped == "-" or stripped.startswith("- "):
            # A sequence item: what is inside is not reachable by a dotted path.
            skip_over, skip_kind = indent, "sequence"
            continue
        m = _YAML_KEY.match(stripped)
        if not m:
            raise bad(n, "not a `key: value` line (lite2pg edits block-style mappings only)")
        if m.group("dq") is not None:
            name = _yaml_unescape(m.group("dq"))
        elif m.group("sq") is not None:
            name = m.group("sq").replace("''", "'")
        else:
            name = m.group("plain").rstrip()
        full = [str(s[1]) for s in stack] + [name]
        after = stripped[m.end() :]
        v = after.lstrip(" \t")
        vstart = start + indent + m.end() + (len(after) - len(v))
        hit: _Hit | None = None
        is_target = full == target
        stack.append([indent, name, None])
        if not v or v.startswith("#"):
            if is_target:
                hit = _Hit(vstart, vstart, "none", n, problem="has no value on its line")
        elif v[0] in "|>":
            skip_over, skip_kind = indent, "block"
            hit = _Hit(vstart, vstart, "block", n, problem="is a block scalar (| or >)")
        elif v[0] in "\"'":
            qm = (_YAML_DQ if v[0] == '"' else _YAML_SQ).match(v)
            skip_over, skip_kind = indent, "quoted"
            if qm is None:
                open_quote = (v[0], n)
                hit = _Hit(vstart, vstart, "quoted", n, problem="spans several lines")
            else:
                rest = v[qm.end() :].strip()
                if rest and not rest.startswith("#"):
                    raise bad(n, "text after the closing quote")
                inner = qm.group(0)[1:-1]
                value = _yaml_unescape(inner) if v[0] == '"' else inner.replace("''", "'")
                hit = _Hit(vstart, vstart + qm.end(), v[0], n, value)
        elif v[0] in "[{":
            skip_over, skip_kind = indent, "flow"
            hit = _Hit(vstart, vstart, "flow", n, problem="is not a string")
        elif v[0] in "&!*":
            skip_over, skip_kind = indent, "tagged"
            hit = _Hit(vstart, vstart, "tagged", n, problem="uses an anchor, alias or tag")
            if re.fullmatch(r"[&!]\S*(?:[ \t]+#.*)?", v):
                skip_over = None  # `key: &anchor` opens a mapping
        else:
            comment = re.search(r"[ \t]#", v)
            value = (v[: comment.start()] if comment else v).rstrip()
            skip_over, skip_kind = indent, "plain"
            hit = _Hit(vstart, vstart + len(value), "plain", n, value)
        if hit is not None and hit.style != "none":
            found.keys.append(".".join(full))
        if is_target and hit is not None:
            found.hits.append(hit)
            skip_hit = hit if skip_over is not None else None
    if open_quote:
        raise bad(open_quote[1], f"no closing {open_quote[0]}")
    return found


def _render_yaml(style: str, new: str) -> str:
    if style == "'" and _YAML_SQ_SAFE.fullmatch(new):
        return "'" + new.replace("'", "''") + "'"
    if (
        style == "plain"
        and _YAML_PLAIN_SAFE.fullmatch(new)
        and not re.search(r":(?:\s|$)", new)
        and not _YAML_NOT_STRING.fullmatch(new)
    ):
        return new
    # A JSON string is a YAML double-quoted one; YAML 1.1 also breaks lines at NEL, LS, PS.
    return _UNSAFE_YAML.sub(
        lambda m: f"\\u{ord(m.group()):04x}", json.dumps(new, ensure_ascii=False)
    )


# JSON ------------------------------------------------------------------------------------

_JSON_WS = re.compile(r"[ \t\n\r]*")


def _locate_json(path: Path, text: str, key: str) -> _Found:
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigUnparsable(
            path, f"not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})", "fix it first"
        ) from None
    target = tuple(key.split("."))
    found = _Found()
    decoder = json.JSONDecoder()

    def ws(i: int) -> int:
        m = _JSON_WS.match(text, i)
        return m.end() if m else i

    def value(i: int, at: tuple[str, ...]) -> int:
        c = text[i]
        if c in "{[":
            close = "}" if c == "{" else "]"
            i = ws(i + 1)
            index = 0
            while text[i] != close:
                if c == "{":
                    name, i = decoder.raw_decode(text, i)
                    i = ws(ws(i) + 1)  # past ':'
                    child = (*at, str(name))
                else:
                    child = (*at, str(index))
                    index += 1
                start = i
                i = value(i, child)
                if child == target:
                    found.hits.append(_Hit(start, i, "json", _line_of(text, start)))
                i = ws(i)
                if text[i] == ",":
                    i = ws(i + 1)
            return i + 1
        _, end = decoder.raw_decode(text, i)
        found.keys.append(".".join(at))
        return end

    value(ws(0), ())
    for h in found.hits:
        obj, _ = decoder.raw_decode(text, h.start)
        if isinstance(obj, str):
            h.value = obj
        else:
            h.problem = "is not a string"
    return found


def _render_json(style: str, new: str) -> str:
    return json.dumps(new, ensure_ascii=False)


# INI -------------------------------------------------------------------------------------

_INI_SECTION = re.compile(r"\[(?P<name>.+)\]")
_INI_OPTION = re.compile(r"(?P<option>.*?)\s*[=:]\s*")


def _ini_scan(text: str, section: str, option: str) -> _Found:
    found = _Found()
    current: str | None = None
    in_value = False  # indented lines after an option continue its value
    target: _Hit | None = None
    pos = 0
    for n, line in enumerate(_lines(text), 1):
        start, pos = pos, pos + len(line)
        body = line.rstrip("\r\n")
        stripped = body.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if body[0] in " \t" and in_value:
            if target is not None:
                target.problem = "spans several lines"
            continue
        in_value, target = False, None
        sm = _INI_SECTION.fullmatch(stripped)
        if sm:
            current = sm.group("name")
            continue
        om = _INI_OPTION.match(body)
        if om is None or current is None:
            continue  # configparser accepted it; nothing of ours
        in_value = True
        name = om.group("option").strip().lower()
        found.keys.append(f"{current}.{name}")
        if current == section and name == option:
            raw = body[om.end() :].rstrip()
            vstart = start + om.end()
            quoted = len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\""
            style = raw[0] if quoted else "plain"
            target = _Hit(vstart, vstart + len(raw), style, n, raw[1:-1] if quoted else raw)
            found.hits.append(target)
    return found


def _locate_ini(path: Path, text: str, key: str) -> _Found:
    section, sep, option = key.rpartition(".")
    if not sep or not section or not option:
        raise ConfigError(
            path, f"key {key!r} is not section.option", "give the key as section.option"
        )
    option = option.lower()  # configparser's option names are case-insensitive
    parser = configparser.RawConfigParser(strict=True, interpolation=None)
    try:
        parser.read_string(text, source=str(path))
    except configparser.DuplicateOptionError as e:
        if e.section == section and e.option == option:
            return _ini_scan(text, section, option)  # the caller reports the duplicate
        raise ConfigUnparsable(path, f"not valid INI: {_one_line(e)}", "fix it first") from None
    except configparser.Error as e:
        raise ConfigUnparsable(path, f"not valid INI: {_one_line(e)}", "fix it first") from None
    found = _ini_scan(text, section, option)
    if len(found.hits) == 1 and found.hits[0].problem is None:
        # The value as configparser reads it, so the check after editing is configparser's.
        hit = found.hits[0]
        if section == parser.default_section:
            value = parser.defaults().get(option)
        else:
            value = parser.get(section, option, fallback=None)
        if value is not None and hit.style != "plain" and len(value) >= 2:
            value = value[1:-1]
        hit.value = value
    return found


def _render_ini(style: str, new: str) -> str:
    return f"{style}{new}{style}" if style in ("'", '"') else new


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())


_LOCATE: dict[str, Callable[[Path, str, str], _Found]] = {
    "env": _locate_env,
    "toml": _locate_toml,
    "yaml": _locate_yaml,
    "json": _locate_json,
    "ini": _locate_ini,
}
_RENDER: dict[str, Callable[[str, str], str]] = {
    "env": _render_env,
    "toml": _render_toml,
    "yaml": _render_yaml,
    "json": _render_json,
    "ini": _render_ini,
}


# --- switch and restore ------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigChange:
    """What `switch_config` did: the file, its backup, and the values (passwords redacted)."""

    path: Path
    backup: Path
    old_value_redacted: str
    new_value_redacted: str
    key: str = ""
    written_sha256: str = ""  # of the file as switch_config wrote it

    def as_dict(self) -> dict[str, str]:
        return {
            "path": str(self.path),
            "backup": str(self.backup),
            "old_value_redacted": self.old_value_redacted,
            "new_value_redacted": self.new_value_redacted,
            "key": self.key,
            "written_sha256": self.written_sha256,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, str]) -> ConfigChange:
        return cls(
            Path(data["path"]),
            Path(data["backup"]),
            data["old_value_redacted"],
            data["new_value_redacted"],
            data.get("key", ""),
            data.get("written_sha256", ""),
        )

    def __str__(self) -> str:
        return (
            f"{self.path}: {self.key} {self.old_value_redacted} -> {self.new_value_redacted} "
            f"(backup {self.backup.name})"
        )


def _read(path: Path) -> tuple[Path, bytes, str]:
    """The real file (symlinks followed: the link stays a link), its bytes and its text."""
    real = path.resolve()
    try:
        raw = real.read_bytes()
    except FileNotFoundError:
        raise ConfigNotFound(path, "no such file", "check the path given to --config") from None
    except IsADirectoryError:
        raise ConfigError(path, "is a directory", "give the config file itself") from None
    except PermissionError:
        raise ConfigError(path, "permission denied", "run as the user that owns it") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigUnparsable(
            path, f"not UTF-8 text (byte {e.start})", "save the file as UTF-8"
        ) from None
    return real, raw, text


def _locate(kind: str, path: Path, text: str, key: str) -> _Hit:
    found = _LOCATE[kind](path, text, key)
    if not found.hits:
        raise ConfigKeyNotFound(path, key, found.keys)
    if len(found.hits) > 1:
        raise ConfigDuplicateKey(path, key, [h.line for h in found.hits])
    hit = found.hits[0]
    if hit.problem or hit.value is None:
        raise ConfigUnparsable(
            path,
            f"{key} (line {hit.line}) {hit.problem or 'is not a string'}",
            "make it a one-line string value, or edit the file by hand",
        )
    return hit


def _backup_path(real: Path) -> Path:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    candidate = real.with_name(f"{real.name}{BACKUP_INFIX}{stamp}")
    n = 1
    while candidate.exists():
        n += 1
        candidate = real.with_name(f"{real.name}{BACKUP_INFIX}{stamp}-{n}")
    return candidate


def switch_config(path: Path, new_url: str, *, key: str | None = None) -> ConfigChange:
    """Set the app's database URL in `path` (a .env line, or a key of TOML/YAML/JSON/INI)."""
    if "\n" in new_url or "\r" in new_url:
        raise ConfigError(path, "the new URL contains a line break", "give a one-line URL")
    try:
        new_url.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(path, "the new URL is not valid Unicode text", "check the URL") from None
    kind = config_kind(path)
    if key is None:
        if kind != "env":
            raise ConfigError(
                path,
                f"which {kind.upper()} key holds the database URL?",
                "pass the key as a dotted path, e.g. database.url",
            )
        key = DEFAULT_ENV_KEY
    real, raw, text = _read(path)
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    body = text[len(bom) :]
    hit = _locate(kind, path, body, key)
    assert hit.value is not None
    new_body = body[: hit.start] + _RENDER[kind](hit.style, new_url) + body[hit.end :]
    # Read the edited text back the same way: refuse rather than write a broken config.
    try:
        check = _locate(kind, path, new_body, key)
    except ConfigError as e:
        raise ConfigUnparsable(
            path, f"editing {key} in place would break the file ({e.problem})", "edit it by hand"
        ) from None
    if check.value != new_url:
        raise ConfigUnparsable(
            path, f"{key} would not read back as the new URL", "edit the file by hand"
        )
    new_raw = (bom + new_body).encode("utf-8")
    info = real.stat()
    mode = stat.S_IMODE(info.st_mode)
    backup = _backup_path(real)
    atomic_write(backup, raw, mode=mode, exact_mode=True)
    os.utime(backup, ns=(info.st_atime_ns, info.st_mtime_ns))
    atomic_write(real, new_raw, mode=mode, exact_mode=True)
    return ConfigChange(
        path=real,
        backup=backup,
        old_value_redacted=redact_url(hit.value),
        new_value_redacted=redact_url(new_url),
        key=key,
        written_sha256=hashlib.sha256(new_raw).hexdigest(),
    )


def restore(change: ConfigChange, *, force: bool = False) -> None:
    """Put the backup back in place atomically (the backup file is kept).

    Refuses when the file changed since `switch_config` wrote it, unless `force`.
    """
    try:
        data = change.backup.read_bytes()
        mode = stat.S_IMODE(change.backup.stat().st_mode)
    except FileNotFoundError:
        raise ConfigError(
            change.path,
            f"the backup {change.backup} is gone",
            "restore the database setting by hand",
        ) from None
    if not force and change.written_sha256:
        try:
            current = hashlib.sha256(change.path.read_bytes()).hexdigest()
        except FileNotFoundError:
            current = change.written_sha256  # gone: putting the backup back is safe
        if current != change.written_sha256:
            raise ConfigError(
                change.path,
                "changed since cutover wrote it",
                f"compare it with {change.backup.name}, then restore with --force",
            )
    atomic_write(change.path, data, mode=mode, exact_mode=True)


# --- smoke checks ------------------------------------------------------------------------


@dataclass(frozen=True)
class SmokeResult:
    """How the app's own checks went against the new database (output redacted)."""

    command: str
    exit_code: int
    output_tail: str
    seconds: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    @property
    def outcome(self) -> str:
        if self.timed_out:
            return f"timed out after {self.seconds:.1f}s"
        if self.ok:
            return f"passed in {self.seconds:.1f}s"
        return f"failed with exit code {self.exit_code} after {self.seconds:.1f}s"

    def as_dict(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "exit_code": self.exit_code,
            "output_tail": self.output_tail,
            "seconds": round(self.seconds, 3),
            "timed_out": self.timed_out,
            "ok": self.ok,
        }

    def raise_on_failed(self) -> None:
        if not self.ok:
            raise SmokeFailed(self)

    def __str__(self) -> str:
        head = f"smoke `{self.command}` {self.outcome}"
        return f"{head}\n{self.output_tail}" if self.output_tail and not self.ok else head


def _tail(data: bytes) -> str:
    text = data.decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-TAIL_LINES:])


def run_smoke_command(command: str, *, env: dict[str, str], timeout: float) -> SmokeResult:
    """Run a shell command (the app's tests) with `env` added to the environment.

    Output (stdout and stderr) goes to a temporary file, so a chatty test suite costs no
    memory; its tail is kept with every password from `env`'s URLs replaced by ***.
    """
    passwords = _passwords(env)
    started = time.monotonic()
    timed_out = False
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            command,
            shell=True,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a timeout ends all of it
        )
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):  # it ended just now
                os.killpg(proc.pid, signal.SIGKILL)
            code = proc.wait()
        seconds = time.monotonic() - started
        size = out.seek(0, os.SEEK_END)
        out.seek(max(0, size - TAIL_BYTES))
        tail = _tail(out.read())
    return SmokeResult(
        command=_scrub(command, passwords),
        exit_code=code,
        output_tail=_scrub(tail, passwords),
        seconds=seconds,
        timed_out=timed_out,
    )
