"""PostgreSQL's own types that SQLite apps keep as text, numbers or blobs: jsonb and json,
uuid, interval, inet and cidr.

For each: an exact parser (the value it proves, or `NotExact` with the reason), the text
lite2pg hands to PostgreSQL, and the canonical text verify computes on both sides (in SQL
for PostgreSQL, `PG_CANON`; here for the source), which is injective: two values with the
same canonical text are the same PostgreSQL value.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import sqlite3
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any


class NotExact(ValueError):
    """The value does not convert to the type without loss; `str()` is the reason."""


# -- json and jsonb ----------------------------------------------------------------------


def _probe_json() -> tuple[bool, int | None]:
    """Whether this SQLite has json_valid() (built in from 3.38, unless left out), and what
    its json_valid(NULL) gives: 0 in older versions, NULL in newer ones."""
    conn = sqlite3.connect(":memory:")
    try:
        value = conn.execute("SELECT json_valid(NULL)").fetchone()[0]
    except sqlite3.OperationalError:
        return False, 0
    finally:
        conn.close()
    return True, None if value is None else int(value)


# json_valid(X) takes RFC 8259 JSON only (no JSON5), as PostgreSQL does.
SQLITE_HAS_JSON, JSON_VALID_OF_NULL = _probe_json()

# PostgreSQL numeric (which jsonb numbers are): at most 131072 digits before the point and
# 16383 after it; beyond that, jsonb refuses the document ("value overflows numeric format").
_NUMERIC_MAX_ADJUSTED = 131071
_NUMERIC_MAX_SCALE = 16383


def jsonb_suspect_sql(c: str) -> str:
    """SQLite SQL: true for JSON text whose escapes jsonb may refuse (\\u0000, a surrogate
    half): only those need Python to know whether jsonb takes them."""
    return f"({c} LIKE '%\\u0000%' OR {c} GLOB '*\\u[dD][89abcdefABCDEF]*')"


def _number(text: str) -> Decimal:
    d = Decimal(text)
    exp = d.as_tuple().exponent
    assert isinstance(exp, int)
    if (d and d.adjusted() > _NUMERIC_MAX_ADJUSTED) or -exp > _NUMERIC_MAX_SCALE:
        raise NotExact(f"the number {text[:20]}... is beyond what jsonb (numeric) holds")
    return d


def _constant(name: str) -> Any:
    raise NotExact(f"{name} is not JSON (PostgreSQL accepts no NaN or Infinity)")


def _last_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return dict(pairs)  # json keeps its text; parsed, the last of duplicate keys counts


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise NotExact(
                f"has the key {key[:40]!r} twice, and jsonb keeps only the last value "
                "(cast the column to json to keep the text as written)"
            )
        obj[key] = value
    return obj


def parse_json(text: str, *, binary: bool) -> Any:
    """The JSON value of `text` as PostgreSQL reads it (numbers as Decimal; for jsonb,
    `binary`, no key twice, since jsonb would drop all but the last): `NotExact` when
    PostgreSQL would refuse it or lose part of it."""
    try:
        value = json.loads(
            text,
            parse_int=_number if binary else Decimal,
            parse_float=_number if binary else Decimal,
            parse_constant=_constant,
            object_pairs_hook=_unique_keys if binary else _last_wins,
        )
    except NotExact:
        raise
    except RecursionError:
        raise NotExact("JSON nested too deeply") from None
    except json.JSONDecodeError as e:
        raise NotExact(f"not valid JSON ({e.msg} at character {e.pos})") from None
    if binary and "\\u" in text:
        _check_jsonb_strings(value)
    return value


def _check_jsonb_strings(value: Any) -> None:
    """jsonb decodes escapes: \\u0000 and lone surrogates have no place in its text."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            texts = [v]
        elif isinstance(v, dict):
            texts = list(v)
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
            continue
        else:
            continue
        for s in texts:
            if "\x00" in s:
                raise NotExact("holds \\u0000, which jsonb cannot store (json can)")
            try:
                s.encode("utf-8")
            except UnicodeEncodeError:
                raise NotExact("holds a lone surrogate escape (\\ud800-\\udfff)") from None


def numeric_text(d: Decimal) -> str:
    """A number as PostgreSQL's numeric prints it: no exponent, the written scale, no sign
    on zero."""
    exp = d.as_tuple().exponent
    assert isinstance(exp, int)
    if not d:
        return "0" if exp >= 0 else "0." + "0" * -exp
    return format(d, "f")


def jsonb_text(value: Any) -> str:
    """PostgreSQL's `jsonb::text` of a parsed JSON value: keys by byte length then bytes,
    ', ' and ': ' between items."""
    parts: list[str] = []
    _jsonb_out(value, parts)
    return "".join(parts)


def _jsonb_out(v: Any, out: list[str]) -> None:
    if v is None:
        out.append("null")
    elif v is True:
        out.append("true")
    elif v is False:
        out.append("false")
    elif isinstance(v, Decimal):
        out.append(numeric_text(v))
    elif isinstance(v, str):
        out.append(json.dumps(v, ensure_ascii=False))  # escapes exactly as escape_json()
    elif isinstance(v, list):
        out.append("[")
        for i, item in enumerate(v):
            if i:
                out.append(", ")
            _jsonb_out(item, out)
        out.append("]")
    else:
        assert isinstance(v, dict)
        out.append("{")
        for i, key in enumerate(sorted(v, key=_jsonb_key_order)):
            if i:
                out.append(", ")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(": ")
            _jsonb_out(v[key], out)
        out.append("}")


def _jsonb_key_order(key: str) -> tuple[int, bytes]:
    raw = key.encode("utf-8")
    return len(raw), raw


# -- uuid ----------------------------------------------------------------------------------

_HEX = "[0-9a-fA-F]"
_UUID = re.compile(
    rf"(\{{)?(?:({_HEX}{{8}})-({_HEX}{{4}})-({_HEX}{{4}})-({_HEX}{{4}})-({_HEX}{{12}})"
    rf"|({_HEX}{{32}}))(?(1)\}})",
    re.ASCII,
)


def uuid_text_sql(c: str) -> str:
    """SQLite SQL: true when column `c` holds uuid text of a form `parse_uuid` reads."""
    h = "[0-9a-fA-F]"
    dashed = "-".join(h * n for n in (8, 4, 4, 4, 12))
    forms = [dashed, h * 32, "{" + dashed + "}", "{" + h * 32 + "}"]
    lengths = " OR ".join(f"{c} GLOB '{f}'" for f in forms)
    return f"(typeof({c})='text' AND length({c}) IN (32, 34, 36, 38) AND ({lengths}))"


def parse_uuid(value: Any) -> uuid.UUID:
    """A uuid from its text (8-4-4-4-12 or 32 hex digits, any case, optionally in braces)
    or from a 16-byte blob."""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, bytes):
        if len(value) == 16:
            return uuid.UUID(bytes=bytes(value))
        raise NotExact(f"a {len(value)}-byte blob is no uuid (a uuid blob has 16 bytes)")
    if isinstance(value, str):
        m = _UUID.fullmatch(value)
        if m is None:
            raise NotExact("not a uuid (8-4-4-4-12 or 32 hex digits)")
        return uuid.UUID(hex="".join(g for g in m.groups()[1:] if g))
    raise NotExact("a number is no uuid")


# -- interval ------------------------------------------------------------------------------

_INT32 = 2**31 - 1
_INT64 = 2**63 - 1
_US_PER = {"seconds": 1_000_000, "milliseconds": 1000, "microseconds": 1}

# The unit a number needs, named in every reason that refuses a bare number.
UNIT_HINT = (
    'say what the numbers count with a plan transform: interval = { unit = "microseconds" '
    '| "milliseconds" | "seconds" | "days" } (Django\'s DurationField: microseconds)'
)


@dataclass(frozen=True)
class Interval:
    """A PostgreSQL interval as it stores one: months, days and microseconds, each kept
    apart (a month is not 30 days, nor a day 24 hours, across DST)."""

    months: int = 0
    days: int = 0
    micros: int = 0

    def checked(self) -> Interval:
        if abs(self.months) > _INT32 or abs(self.days) > _INT32:
            raise NotExact("months or days beyond PostgreSQL's interval range")
        if abs(self.micros) > _INT64:
            raise NotExact("beyond PostgreSQL's interval range")
        return self

    def pg_text(self) -> str:
        """Input text PostgreSQL reads as exactly this interval."""
        sign = "-" if self.micros < 0 else ""
        seconds, us = divmod(abs(self.micros), 1_000_000)
        minutes, s = divmod(seconds, 60)
        h, m = divmod(minutes, 60)
        return f"{self.months} mons {self.days} days {sign}{h}:{m:02d}:{s:02d}.{us:06d}"

    def canonical(self) -> str:
        """The text verify compares (`PG_CANON`, and accepted back by `parse_interval`)."""
        return f"{self.months} mons {self.days} days {self.micros} microseconds"


_ISO_DURATION = re.compile(
    r"(?P<neg>-)?P(?!$)(?:(?P<Y>[+-]?\d+)Y)?(?:(?P<M>[+-]?\d+)M)?(?:(?P<W>[+-]?\d+)W)?"
    r"(?:(?P<D>[+-]?\d+)D)?"
    r"(?:T(?=[+-]?\d)(?:(?P<h>[+-]?\d+)H)?(?:(?P<m>[+-]?\d+)M)?"
    r"(?:(?P<s>[+-]?\d+)(?:[.,](?P<f>\d+))?S)?)?",
    re.ASCII,
)
_UNIT_WORDS = {
    "year": ("months", 12), "years": ("months", 12), "mon": ("months", 1),
    "mons": ("months", 1), "month": ("months", 1), "months": ("months", 1),
    "week": ("days", 7), "weeks": ("days", 7), "day": ("days", 1), "days": ("days", 1),
    "hour": ("micros", 3_600_000_000), "hours": ("micros", 3_600_000_000),
    "min": ("micros", 60_000_000), "mins": ("micros", 60_000_000),
    "minute": ("micros", 60_000_000), "minutes": ("micros", 60_000_000),
    "sec": ("micros", 1_000_000), "secs": ("micros", 1_000_000),
    "second": ("micros", 1_000_000), "seconds": ("micros", 1_000_000),
    "millisecond": ("micros", 1000), "milliseconds": ("micros", 1000),
    "microsecond": ("micros", 1), "microseconds": ("micros", 1),
}  # fmt: skip
_WORD_PART = re.compile(r"\s*([+-]?\d+)(?:\.(\d+))?\s*([A-Za-z]+)\s*,?", re.ASCII)
_TIME_PART = re.compile(r"\s*([+-])?(\d+):(\d\d)(?::(\d\d)(?:\.(\d+))?)?\s*", re.ASCII)
_BARE_NUMBER = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*", re.ASCII)
_DATETIME = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d", re.ASCII)


def is_number_text(text: str) -> bool:
    """Whether text is only a decimal number ('5', '-1.5', '2e3')."""
    return _BARE_NUMBER.fullmatch(text) is not None


def _fraction_micros(digits: str | None) -> int:
    if not digits:
        return 0
    if digits[6:].strip("0"):
        raise NotExact("finer than a microsecond, which PostgreSQL would round")
    return int(digits[:6].ljust(6, "0"))


def parse_interval(value: Any) -> Interval:
    """An interval from ISO-8601 duration text ('P1DT2H', 'PT0.5S'), PostgreSQL's text
    ('1 year 2 mons 3 days 04:05:06.5', '-00:00:01') or Python's ('1 day, 2:03:04'), or
    an `Interval`/`timedelta`; a number has no unit and is refused (`UNIT_HINT`)."""
    if isinstance(value, Interval):
        return value.checked()
    if isinstance(value, dt.timedelta):
        return Interval(micros=_timedelta_micros(value)).checked()
    if isinstance(value, bool | int | float | Decimal):
        raise NotExact(f"a number has no unit, and PostgreSQL would guess seconds; {UNIT_HINT}")
    if not isinstance(value, str):
        raise NotExact("not interval text")
    text = value.strip()
    if _BARE_NUMBER.fullmatch(text):
        raise NotExact(f"a number has no unit, and PostgreSQL would guess seconds; {UNIT_HINT}")
    if _DATETIME.match(text):
        raise NotExact(
            "a date and time, not a duration; if it is an offset from 1970-01-01 "
            "(SQLAlchemy's Interval), say so with a plan transform: "
            "interval = { epoch_offset = true }"
        )
    m = _ISO_DURATION.fullmatch(text)
    if m is not None:
        return _iso_interval(m)
    return _word_interval(text)


def _iso_interval(m: re.Match[str]) -> Interval:
    def n(key: str) -> int:
        return int(m.group(key) or 0)

    months = n("Y") * 12 + n("M")
    days = n("W") * 7 + n("D")
    seconds = n("s")
    frac = _fraction_micros(m.group("f"))
    micros = (n("h") * 3600 + n("m") * 60 + seconds) * 1_000_000
    micros += -frac if m.group("s") and m.group("s").startswith("-") else frac
    sign = -1 if m.group("neg") else 1
    return Interval(sign * months, sign * days, sign * micros).checked()


def _word_interval(text: str) -> Interval:
    fields = {"months": 0, "days": 0, "micros": 0}
    pos = 0
    seen: set[tuple[str, int]] = set()
    while pos < len(text):
        word = _WORD_PART.match(text, pos)
        if word is None or word.group(3).lower() not in _UNIT_WORDS:
            break
        unit = word.group(3).lower()
        field_name, scale = _UNIT_WORDS[unit]
        if (field_name, scale) in seen:
            raise NotExact(f"{unit!r} given twice")
        seen.add((field_name, scale))
        whole, frac = word.group(1), word.group(2)
        if frac and field_name != "micros":
            raise NotExact(
                f"a fraction of {unit} is not exact in an interval (PostgreSQL spreads it "
                "over smaller units)"
            )
        amount = Decimal(f"{whole}.{frac}" if frac else whole) * scale
        if amount != amount.to_integral_value():
            raise NotExact("finer than a microsecond, which PostgreSQL would round")
        fields[field_name] += int(amount)
        pos = word.end()
    if pos < len(text):
        time = _TIME_PART.fullmatch(text, pos)
        if time is None:
            raise NotExact(_NOT_INTERVAL)
        fields["micros"] += _clock_micros(time)
    elif not seen:
        raise NotExact(_NOT_INTERVAL)
    return Interval(fields["months"], fields["days"], fields["micros"]).checked()


_NOT_INTERVAL = "not an interval lite2pg can read exactly (e.g. 'P1DT2H', '1 day 02:00:00')"


def _clock_micros(m: re.Match[str]) -> int:
    sign, h, mi, s, f = m.groups()
    if int(mi) > 59 or (s is not None and int(s) > 59):
        raise NotExact("minutes or seconds past 59 in the time of an interval")
    micros = ((int(h) * 60 + int(mi)) * 60 + int(s or 0)) * 1_000_000 + _fraction_micros(f)
    return -micros if sign == "-" else micros


def _timedelta_micros(td: dt.timedelta) -> int:
    return (td.days * 86_400 + td.seconds) * 1_000_000 + td.microseconds


def interval_from_number(value: Any, unit: str) -> Interval:
    """A count of `unit` (microseconds, milliseconds, seconds: the time of day part; days:
    the days part) as an interval; only whole microseconds are exact."""
    if isinstance(value, bool):
        raise NotExact("a boolean is no duration")
    if isinstance(value, str):
        text = value.strip()
        if not _BARE_NUMBER.fullmatch(text):
            raise NotExact(f"not a number of {unit}")
        number = Decimal(text)
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise NotExact("not a finite number")
        number = Decimal(repr(value))
    elif isinstance(value, Decimal):
        number = value
    else:
        raise NotExact(f"not a number of {unit}")
    if unit == "days":
        if number != number.to_integral_value():
            raise NotExact("a fraction of a day is not exact in an interval's days")
        return Interval(days=int(number)).checked()
    micros = number * _US_PER[unit]
    if micros and micros.adjusted() > 25:
        raise NotExact("beyond PostgreSQL's interval range")
    if micros != micros.to_integral_value():
        raise NotExact("finer than a microsecond, which PostgreSQL would round")
    return Interval(micros=int(micros)).checked()


EPOCH = dt.datetime(1970, 1, 1)


def interval_from_epoch_offset(value: Any) -> Interval:
    """SQLAlchemy's Interval on SQLite: a DATETIME that is 1970-01-01 plus the duration."""
    if isinstance(value, dt.datetime):
        stamp = value
    elif isinstance(value, str):
        try:
            stamp = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise NotExact("not a date and time (1970-01-01 plus the duration)") from None
        frac = re.search(r"\.(\d+)$", value.strip())
        if frac:
            _fraction_micros(frac.group(1))
    else:
        raise NotExact("not a date and time (1970-01-01 plus the duration)")
    if stamp.tzinfo is not None:
        raise NotExact("an offset from 1970-01-01 has no time zone")
    return Interval(micros=_timedelta_micros(stamp - EPOCH)).checked()


# -- inet and cidr ---------------------------------------------------------------------------

_PREFIX = re.compile(r"[0-9]{1,3}", re.ASCII)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def parse_inet(value: Any, *, cidr: bool) -> IPInterface | IPNetwork:
    """An address with its prefix length (inet) or a network without host bits (cidr)."""
    if not isinstance(value, str):
        raise NotExact("not an address (text such as '192.0.2.1' or '2001:db8::/32')")
    text = value
    address, slash, prefix = text.partition("/")
    if text != text.strip() or "%" in text or (slash and not _PREFIX.fullmatch(prefix)):
        raise NotExact("not an address (text such as '192.0.2.1' or '2001:db8::/32')")
    try:
        if cidr:
            return ipaddress.ip_network(text, strict=True)
        ipaddress.ip_address(address)
        return ipaddress.ip_interface(text)
    except ValueError as e:
        why = "has host bits set" if "host bits" in str(e) else "not a valid address"
        raise NotExact(why) from None


def inet_text(value: IPInterface | IPNetwork) -> str:
    """PostgreSQL's `inet::text`/`cidr::text`: the address as PostgreSQL prints it, '/', the
    prefix length."""
    if isinstance(value, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        addr, bits = value.ip, value.network.prefixlen
    else:
        addr, bits = value.network_address, value.prefixlen
    if isinstance(addr, ipaddress.IPv4Address):
        return f"{addr}/{bits}"
    return f"{_ipv6_text(addr.packed)}/{bits}"


def _ipv6_text(packed: bytes) -> str:
    """IPv6 as PostgreSQL's inet_net_ntop_ipv6 prints it: the first longest run (2 or more)
    of zero words as '::', an embedded IPv4 address in dotted form after ::, ::ffff:."""
    words = [int.from_bytes(packed[i : i + 2], "big") for i in range(0, 16, 2)]
    best_base, best_len = -1, 0
    cur_base, cur_len = -1, 0
    for i, w in enumerate([*words, 1]):
        if w == 0 and i < 8:
            if cur_base == -1:
                cur_base, cur_len = i, 1
            else:
                cur_len += 1
        elif cur_base != -1:
            if best_base == -1 or cur_len > best_len:
                best_base, best_len = cur_base, cur_len
            cur_base = -1
    if best_len < 2:
        best_base = -1
    out: list[str] = []
    for i in range(8):
        if best_base != -1 and best_base <= i < best_base + best_len:
            if i == best_base:
                out.append(":")
            continue
        if i:
            out.append(":")
        # An IPv4 address embedded after ::, or after ::ffff:, prints dotted.
        if i == 6 and best_base == 0 and (best_len == 6 or (best_len == 5 and words[5] == 0xFFFF)):
            out.append(".".join(str(b) for b in packed[12:]))
            break
        out.append(f"{words[i]:x}")
    if best_base != -1 and best_base + best_len == 8:
        out.append(":")
    return "".join(out)
