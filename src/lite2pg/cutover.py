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
import functools
import hashlib
import io
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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.items
from configupdater import ConfigUpdater, Option, Section
from ruamel.yaml import YAML
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, ScalarNode
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

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
    "current_value",
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
# Each format is read by its own well-kept parser; lite2pg only finds the key's value in
# what the parser reports and writes the new one there, so every other byte stays.


@dataclass
class _Hit:
    """One place the wanted key is set: its line, the value as the format's parser reads
    it (None when it is no string), why it cannot be switched (if so), and `write`, which
    gives the whole text with a new value there."""

    line: int
    value: str | None = None
    problem: str | None = None
    write: Callable[[str], str] | None = None
    data_path: tuple[str, ...] = ()  # where the value sits in `_load`'s data, if not the key


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


def _splice(text: str, start: int, end: int, render: Callable[[str], str]) -> Callable[[str], str]:
    return lambda new: text[:start] + render(new) + text[end:]


def _one_line(e: Exception | str) -> str:
    return " ".join(str(e).split())


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
# A small editor of our own: python-dotenv's set_key rewrites the whole line (it drops
# `export` and the line's comment, always single-quotes, turns CRLF into LF and silently
# sets every copy of a duplicated key), and .env has no grammar beyond these few rules.

_ENV_ASSIGN = re.compile(r"[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_.-]*)[ \t]*=[ \t]*")
_DQ = re.compile(r'"((?:[^"\\]|\\[\s\S])*)"')
_SQ = re.compile(r"'([^']*)'")
_ENV_PLAIN_SAFE = re.compile(r"[!%-&(-\[\]-_a-~]+")  # printable ASCII but #'"$\` and space


def _rest_is_comment(text: str, pos: int) -> bool:
    eol = text.find("\n", pos)
    rest = text[pos : len(text) if eol == -1 else eol].strip()
    return not rest or rest.startswith("#")


def _env_assignments(path: Path, text: str) -> Iterator[tuple[str, int, int, str, str]]:
    """Each KEY=VALUE: the name, where its value is written, its quoting and its text."""
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
        yield name, vstart, vend, style, value


def _locate_env(path: Path, text: str, key: str) -> _Found:
    found = _Found()
    for name, start, end, style, value in _env_assignments(path, text):
        found.keys.append(name)
        if name == key:
            write = _splice(text, start, end, functools.partial(_render_env, style))
            found.hits.append(_Hit(_line_of(text, start), value, write=write, data_path=(name,)))
    return found


def _render_env(style: str, new: str) -> str:
    if style == "plain" and _ENV_PLAIN_SAFE.fullmatch(new):
        return new
    # Single quotes hold text as is (no escapes, no $ interpolation) when it has no ' or \.
    single_ok = "'" not in new and "\\" not in new
    if single_ok and (style == "'" or "$" in new):
        return f"'{new}'"
    return '"' + new.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _load_env(text: str) -> Any:
    return {name: value for name, *_, value in _env_assignments(Path(), text)}


# TOML: tomlkit keeps every byte it is not asked to change; tomllib is the check. -------


def _leaves(doc: Any, prefix: str = "") -> list[str]:
    if isinstance(doc, dict):
        return [k for key, v in doc.items() for k in _leaves(v, f"{prefix}{key}.")]
    return [prefix[:-1]] if prefix else []


def _has(doc: Any, parts: Sequence[str]) -> bool:
    for p in parts:
        if not isinstance(doc, dict) or p not in doc:
            return False
        doc = doc[p]
    return True


def _toml_lines(text: str, parts: Sequence[str]) -> list[int]:
    """The lines that set the key: each line read by tomllib under the table header above
    it (a value over several lines is not found this way; the line is then 0)."""
    header = ""
    found: list[int] = []
    for n, line in enumerate(_lines(text), 1):
        try:
            data = tomllib.loads(line)
        except tomllib.TOMLDecodeError:
            data = None
        if line.lstrip().startswith("[") and data is not None:
            header = line
            continue
        with contextlib.suppress(tomllib.TOMLDecodeError):
            if _has(tomllib.loads(f"{header}\n{line}"), parts):
                found.append(n)
    return found


def _locate_toml(path: Path, text: str, key: str) -> _Found:
    parts = key.split(".")
    found = _Found()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        lines = _toml_lines(text, parts)
        if len(lines) > 1:
            found.hits = [_Hit(n) for n in lines]
            return found
        raise ConfigUnparsable(path, f"not valid TOML: {e}", "fix the file first") from None
    found.keys = _leaves(data)
    if not _has(data, parts):
        return found
    doc = tomlkit.parse(text)
    parent: Any = doc
    for p in parts[:-1]:
        parent = parent[p]
    item = parent[parts[-1]]
    hit = _Hit(next(iter(_toml_lines(text, parts)), 0))
    found.hits.append(hit)
    one_line = (tomlkit.items.StringType.SLB, tomlkit.items.StringType.SLL)
    if not isinstance(item, tomlkit.items.String) or item.type not in one_line:
        hit.problem = "is not a one-line string"
        return found
    hit.value = str(item)
    literal = item.type == tomlkit.items.StringType.SLL

    def write(new: str) -> str:
        fits = literal and "'" not in new and not re.search(r"[\x00-\x08\x0a-\x1f\x7f]", new)
        kind = tomlkit.items.StringType.SLL if fits else tomlkit.items.StringType.SLB
        parent[parts[-1]] = tomlkit.items.String.from_raw(new, kind)
        return tomlkit.dumps(doc)

    hit.write = write
    return found


def _load_toml(text: str) -> Any:
    return tomllib.loads(text)


# YAML: ruamel.yaml's round-trip composer gives each value's exact place and style. ------
# The edit is made there in the text rather than by dumping the whole document: ruamel
# re-indents sequences, moves comments and folds long lines of keys nobody asked it to touch.

_YAML_STR = "tag:yaml.org,2002:str"
_YAML_PROPERTIES = re.compile(r"(?:[&!]\S*\s+)*")  # an anchor and/or a tag before a value
_YAML_BREAKS = re.compile("[\r\n\x85\u2028\u2029]")


def _yaml_error(path: Path, e: YAMLError) -> ConfigUnparsable:
    if isinstance(e, MarkedYAMLError) and e.problem_mark is not None:
        where = f"line {e.problem_mark.line + 1}: "
        # A duplicate key's message quotes both values: one may hold a password.
        problem = "a key is set twice" if isinstance(e, DuplicateKeyError) else e.problem
        context = ""
        if e.context and e.context_mark is not None and not isinstance(e, DuplicateKeyError):
            context = f" ({e.context} at line {e.context_mark.line + 1})"
        message = f"{where}not valid YAML: {problem}{context}"
    else:
        message = f"not valid YAML: {_one_line(e)}"
    return ConfigUnparsable(path, message, "fix the YAML first")


def _locate_yaml(path: Path, text: str, key: str) -> _Found:
    target = tuple(key.split("."))
    found = _Found()
    try:
        docs = list(YAML().compose_all(text))
    except YAMLError as e:
        raise _yaml_error(path, e) from None
    several = len(docs) > 1

    def walk(node: Any, at: tuple[str, ...], doc: int) -> None:
        for k, v in node.value:
            if not isinstance(k, ScalarNode):
                continue
            here = (*at, str(k.value))
            alias = v.start_mark.index < k.end_mark.index  # the value is written elsewhere
            if isinstance(v, MappingNode) and not alias and here != target:
                walk(v, here, doc)
                continue
            if k.value != "<<":
                found.keys.append(".".join(here))
            if here == target:
                # Inside {...} a plain scalar may not hold `,` or `}`: quote it there.
                hit = _yaml_hit(text, k, v, alias, '"' if node.flow_style else None)
                if several:
                    hit.data_path = (str(doc), *target)
                found.hits.append(hit)

    for n, root in enumerate(docs):
        if isinstance(root, MappingNode):
            walk(root, (), n)
    if not found.hits:
        # Set through an anchor or a merge (`<<: *defaults`): switching it here would
        # switch every place that shares it.
        for data in _load_yaml_docs(path, text):
            if _has(data, target):
                raise ConfigUnparsable(
                    path,
                    f"{key} is not written out in the file: it comes from an anchor or a "
                    "merge (<<)",
                    f"add `{target[-1]}:` under {'.'.join(target[:-1]) or 'the top'} "
                    "and switch that, or edit the file by hand",
                )
    return found


def _yaml_hit(text: str, k: Any, v: Any, alias: bool, style: str | None) -> _Hit:
    hit = _Hit(k.start_mark.line + 1)
    if alias:
        hit.problem = f"is an alias of the value at line {v.start_mark.line + 1}"
    elif not isinstance(v, ScalarNode) or v.tag != _YAML_STR:
        hit.problem = "is not a string"
    elif v.style in ("|", ">"):
        hit.problem = "is a block scalar (| or >)"
    else:
        m = _YAML_PROPERTIES.match(text, v.start_mark.index)
        start = m.end() if m else v.start_mark.index
        end = v.end_mark.index
        if _YAML_BREAKS.search(text, start, end):
            hit.problem = "spans several lines"
        else:
            hit.value = str(v.value)
            hit.write = _splice(text, start, end, functools.partial(_render_yaml, style or v.style))
    return hit


def _render_yaml(style: str | None, new: str) -> str:
    """`new` as a one-line YAML scalar, in the old one's quoting where that holds it."""
    styles: list[type[str]] = [DoubleQuotedScalarString]
    if style == "'":
        styles.insert(0, SingleQuotedScalarString)
    elif style is None:
        styles.insert(0, str)
    for cls in styles:
        out = io.StringIO()
        emitter = YAML()
        emitter.width = 1 << 30  # never fold the line
        emitter.dump([cls(new)], out)
        scalar = out.getvalue()[2:].removesuffix("\n")  # "- <scalar>\n"
        if cls is str and scalar[:1] in ("'", '"'):
            continue  # it needs quotes: the double ones, which hold anything
        # A YAML 1.1 reader (PyYAML) must read it the same: `on` is true there.
        if not _YAML_BREAKS.search(scalar) and _yaml11(scalar) == new:
            return scalar
    raise AssertionError("a double-quoted YAML scalar holds any one-line text")


def _yaml11(scalar: str) -> Any:
    return YAML(typ="safe", pure=True).load(f"%YAML 1.1\n---\n- {scalar}\n")[0]


def _load_yaml_docs(path: Path, text: str) -> list[Any]:
    try:
        return list(YAML(typ="safe", pure=True).load_all(text))
    except YAMLError as e:
        raise _yaml_error(path, e) from None


def _load_yaml(text: str) -> Any:
    docs = _load_yaml_docs(Path(), text)
    return docs[0] if len(docs) == 1 else {str(n): d for n, d in enumerate(docs)}


# JSON: a targeted edit of the one string token. Dumping the parsed document again would
# re-lay every line (a compact [1, 2] opened up, "\u00e9" written as "é", key spacing), and
# the json module gives no positions, so its raw_decode walks the text to find the value.

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
                    obj, _ = decoder.raw_decode(text, start)
                    hit = _Hit(_line_of(text, start))
                    if isinstance(obj, str):
                        hit.value = obj
                        hit.write = _splice(text, start, i, _render_json)
                    else:
                        hit.problem = "is not a string"
                    found.hits.append(hit)
                i = ws(i)
                if text[i] == ",":
                    i = ws(i + 1)
            return i + 1
        _, end = decoder.raw_decode(text, i)
        found.keys.append(".".join(at))
        return end

    value(ws(0), ())
    return found


def _render_json(new: str) -> str:
    return json.dumps(new, ensure_ascii=False)


def _load_json(text: str) -> Any:
    data = json.loads(text)
    # Paths of a JSON array's items are their indexes, as in the dotted key.
    return _json_lists_as_dicts(data)


def _json_lists_as_dicts(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _json_lists_as_dicts(v) for k, v in data.items()}
    if isinstance(data, list):
        return {str(n): _json_lists_as_dicts(v) for n, v in enumerate(data)}
    return data


# INI: configupdater reads it with configparser's own rules and keeps each option's lines.
# Its `option.value = ...` writes the line anew (`key = value`, LF), so the value is
# replaced inside the option's own line instead; configparser is the check.


def _ini_error(path: Path, e: configparser.Error) -> ConfigUnparsable:
    if isinstance(e, configparser.ParsingError) and not isinstance(
        e, configparser.MissingSectionHeaderError
    ):
        # Its message quotes the lines, which may hold a password: give their numbers.
        lines = [str(n) for n, _ in e.errors]
        what = f"line {lines[0]} is" if len(lines) == 1 else f"lines {', '.join(lines)} are"
        return ConfigUnparsable(path, f"not valid INI: {what} not `option = value`", "fix it first")
    return ConfigUnparsable(path, f"not valid INI: {_one_line(e)}", "fix it first")


def _ini_parse(path: Path, text: str, *, strict: bool) -> ConfigUpdater:
    updater = ConfigUpdater(strict=strict)
    try:
        updater.read_string(text, source=str(path))
    except configparser.Error as e:
        raise _ini_error(path, e) from None
    return updater


def _locate_ini(path: Path, text: str, key: str) -> _Found:
    section, sep, option = key.rpartition(".")
    if not sep or not section or not option:
        raise ConfigError(
            path, f"key {key!r} is not section.option", "give the key as section.option"
        )
    option = option.lower()  # configparser's option names are case-insensitive
    found = _Found()
    lines = _lines(text)
    line = 1
    for block in _ini_parse(path, text, strict=False).iter_blocks():
        first = line
        line += len(block.lines)
        if not isinstance(block, Section):
            continue
        line = first + 1
        for item in block.iter_blocks():
            here = line
            line += len(item.lines)
            if not isinstance(item, Option):
                continue
            found.keys.append(f"{block.name}.{item.key}")
            if block.name != section or item.key != option:
                continue
            hit = _Hit(here)
            found.hits.append(hit)
            raw = item.value
            if len(item.lines) > 1 or raw is None:
                hit.problem = "spans several lines" if raw else "has no value"
                continue
            quoted = len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\""
            hit.value = raw[1:-1] if quoted else raw
            start = sum(map(len, lines[: here - 1]))
            end = start + len(lines[here - 1].rstrip("\r\n").rstrip())
            if text[end - len(raw) : end] != raw:
                hit.problem = "is not where configparser reads it"
                continue
            quote = raw[0] if quoted else ""
            hit.write = _splice(text, end - len(raw), end, functools.partial(_quoted, quote))
    if len(found.hits) < 2:
        _ini_parse(path, text, strict=True)  # any other fault, as configparser puts it
    return found


def _quoted(quote: str, new: str) -> str:
    return f"{quote}{new}{quote}"


def _load_ini(text: str) -> Any:
    parser = configparser.RawConfigParser(strict=True, interpolation=None)
    parser.read_string(text)
    sections = {s: dict(parser.items(s, raw=True)) for s in parser.sections()}
    return {parser.default_section: dict(parser.defaults()), **sections}


_LOCATE: dict[str, Callable[[Path, str, str], _Found]] = {
    "env": _locate_env,
    "toml": _locate_toml,
    "yaml": _locate_yaml,
    "json": _locate_json,
    "ini": _locate_ini,
}
# The file's whole content as its format's parser reads it: after an edit only the key may
# differ (an anchor, a merge or [DEFAULT] could carry a change further).
_LOAD: dict[str, Callable[[str], Any]] = {
    "env": _load_env,
    "toml": _load_toml,
    "yaml": _load_yaml,
    "json": _load_json,
    "ini": _load_ini,
}


def _differences(old: Any, new: Any, at: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The paths where two parsed documents differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[tuple[str, ...]] = []
        for k in [*old, *(k for k in new if k not in old)]:
            here = (*at, str(k))
            if k in old and k in new:
                out += _differences(old[k], new[k], here)
            else:
                out.append(here)
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [
            d
            for n, (a, b) in enumerate(zip(old, new, strict=True))
            for d in _differences(a, b, (*at, str(n)))
        ]
    same = type(old) is type(new) and (old == new or (old != old and new != new))  # NaN
    return [] if same else [at]


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
    if hit.problem or hit.value is None or hit.write is None:
        raise ConfigUnparsable(
            path,
            f"{key} (line {hit.line}) {hit.problem or 'is not a string'}",
            "make it a one-line string value, or edit the file by hand",
        )
    return hit


def _data_path(kind: str, key: str) -> tuple[str, ...]:
    if kind == "ini":
        section, _, option = key.rpartition(".")
        return (section, option.lower())
    return tuple(key.split("."))


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
    assert hit.value is not None and hit.write is not None
    new_body = hit.write(new_url)
    # Read the edited text back with the format's parser: refuse rather than write a
    # broken config, or one where anything but this one value reads differently.
    try:
        check = _locate(kind, path, new_body, key)
        changed = _differences(_LOAD[kind](body), _LOAD[kind](new_body))
    except (ConfigError, ValueError, configparser.Error) as e:
        problem = e.problem if isinstance(e, ConfigError) else _one_line(e)
        raise ConfigUnparsable(
            path, f"editing {key} in place would break the file ({problem})", "edit it by hand"
        ) from None
    if check.value != new_url:
        raise ConfigUnparsable(
            path, f"{key} would not read back as the new URL", "edit the file by hand"
        )
    where = hit.data_path or _data_path(kind, key)
    also = [".".join(p) for p in changed if p != where]
    if also:
        shown = ", ".join(also[:_KEYS_SHOWN]) + (", ..." if len(also) > _KEYS_SHOWN else "")
        raise ConfigUnparsable(
            path,
            f"switching {key} would also change {shown} (they share it through an anchor, a merge "
            "or [DEFAULT])",
            "switch the key where the app reads it, or edit the file by hand",
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


def current_value(path: Path, key: str | None = None) -> str:
    """The database setting `path` holds now (the value `switch_config` would replace)."""
    kind = config_kind(path)
    _, _, text = _read(path)
    body = text[1:] if text.startswith("\ufeff") else text
    value = _locate(kind, path, body, key or DEFAULT_ENV_KEY).value
    assert value is not None
    return value


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
