"""PostgreSQL's own types (jsonb, json, uuid, interval, inet, cidr): exact converters that
reject what they cannot prove, the canonical texts verify computes on both sides checked
against a real PostgreSQL, inference when lite2pg creates the table, CHECK translation,
and verify catching a tampered value of each type."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import sqlite3
import uuid
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lite2pg import native, source
from lite2pg.check import check
from lite2pg.coerce import Family, converter, ok_predicate, parse_pg_type
from lite2pg.errors import PlanError, SchemaError, TransformError
from lite2pg.layout import parse_casts
from lite2pg.plan import parse_plan
from lite2pg.run import MigrateOptions, migrate
from lite2pg.schema import translate_check
from lite2pg.transforms import compile_chain
from lite2pg.verify import VerifyReport, verify
from lite2pg.verify._canon import INTERVAL_CANON

from .conftest import MakeDb, PgSchema

# -- converters: what each type takes exactly, and what it refuses with a reason -----------


def convert(type_sql: str, value: Any) -> Any:
    return converter(parse_pg_type(type_sql))(value)


def refusal(type_sql: str, value: Any) -> str:
    with pytest.raises(TransformError) as e:
        convert(type_sql, value)
    return e.value.reason


@pytest.mark.parametrize("type_sql", ["jsonb", "json", "uuid", "interval", "inet", "cidr"])
def test_each_native_type_is_a_family_of_its_own_and_never_left_to_postgresql(
    type_sql: str,
) -> None:
    pg = parse_pg_type(type_sql)
    assert pg.family is not Family.OTHER and pg.sql == type_sql


def test_jsonb_takes_json_text_and_numbers_and_refuses_what_postgresql_would() -> None:
    assert convert("jsonb", '{"a": [1, 2.50, null, true]}') == '{"a": [1, 2.50, null, true]}'
    assert convert("jsonb", 5) == "5"  # NUMERIC affinity stores the JSON text '5' as 5
    assert convert("jsonb", 1.5) == "1.5"
    assert convert("jsonb", '"\\ud83d\\ude00"') == '"\\ud83d\\ude00"'  # a surrogate pair
    assert "not valid JSON" in refusal("jsonb", "{'a': 1}")
    assert "not valid JSON" in refusal("jsonb", "")
    assert "NaN is not JSON" in refusal("jsonb", "NaN")
    assert "Infinity is not JSON" in refusal("jsonb", "[Infinity]")
    assert "\\u0000" in refusal("jsonb", '{"a": "x\\u0000y"}')
    assert "lone surrogate" in refusal("jsonb", '["\\udc00"]')
    assert "beyond what jsonb" in refusal("jsonb", "1e131072")
    assert "blob is not JSON" in refusal("jsonb", b"{}")
    assert "not JSON" in refusal("jsonb", float("inf"))
    # jsonb keeps one value per key: a second one would be lost without a word.
    assert "key 'a' twice" in refusal("jsonb", '[{"b": 0}, {"a": 1, "a": 2}]')
    assert "cast the column to json" in refusal("jsonb", '{"a": 1, "a": 1}')
    # json keeps its text: \u0000, lone surrogates and keys given twice, numbers any size.
    assert convert("json", '{"a": 1, "a": 2}') == '{"a": 1, "a": 2}'
    assert convert("json", '{"a": "\\u0000"}') == '{"a": "\\u0000"}'
    assert convert("json", "1e131072") == "1e131072"
    assert "NaN is not JSON" in refusal("json", "NaN")


@pytest.mark.parametrize(
    "value",
    [
        "12345678-9abc-def0-1234-56789abcdef0",
        "123456789abcdef0123456789abcdef0",  # Django, SQLAlchemy's Uuid on SQLite
        "{12345678-9ABC-DEF0-1234-56789ABCDEF0}",
        "{123456789ABCDEF0123456789ABCDEF0}",
        bytes.fromhex("123456789abcdef0123456789abcdef0"),  # a 16-byte blob
    ],
)
def test_uuid_takes_its_text_forms_and_16_byte_blobs(value: str | bytes) -> None:
    assert convert("uuid", value) == "12345678-9abc-def0-1234-56789abcdef0"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("12345678-9abc-def0-1234-56789abcdef", "not a uuid"),
        ("12345678-9abcdef0-1234-56789abcdef0", "not a uuid"),  # PostgreSQL takes this
        ("urn:uuid:12345678-9abc-def0-1234-56789abcdef0", "not a uuid"),
        ("{123456789abcdef0123456789abcdef0", "not a uuid"),
        ("g23456789abcdef0123456789abcdef0", "not a uuid"),
        (b"\x00" * 15, "15-byte blob"),
        (12345, "a number is no uuid"),
    ],
)
def test_uuid_refuses_every_other_form(value: Any, why: str) -> None:
    assert why in refusal("uuid", value)


@pytest.mark.parametrize(
    ("text", "months", "days", "micros"),
    [
        ("P1Y2M3W4DT5H6M7.5S", 14, 25, 18_367_500_000),
        ("PT0.000001S", 0, 0, 1),
        ("-P1DT1H", 0, -1, -3_600_000_000),
        ("1 year 2 mons 3 days 04:05:06.5", 14, 3, 14_706_500_000),
        ("-1 years -3 mons +5 days -01:30:05.5", -15, 5, -5_405_500_000),
        ("1 day, 2:03:04", 0, 1, 7_384_000_000),  # Python's str(timedelta)
        ("-1 day, 23:59:59", 0, -1, 86_399_000_000),
        ("0:00:00.000005", 0, 0, 5),
        ("1.5 hours", 0, 0, 5_400_000_000),
        ("2 weeks", 0, 14, 0),
        ("3 mons 4 days 5 microseconds", 3, 4, 5),  # verify's own canonical text
    ],
)
def test_interval_reads_iso_postgresql_and_python_text_exactly(
    text: str, months: int, days: int, micros: int
) -> None:
    assert native.parse_interval(text) == native.Interval(months, days, micros)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (5_000_000, 'interval = { unit = "microseconds"'),  # Django's DurationField
        (1.5, "a number has no unit"),
        ("42", "PostgreSQL would guess seconds"),
        ("1970-01-01 00:00:05.000000", "epoch_offset = true"),  # SQLAlchemy's Interval
        ("1.5 days", "a fraction of days"),
        ("0.5 months", "a fraction of months"),
        ("PT0.0000001S", "finer than a microsecond"),
        ("1 day 1 day", "given twice"),
        ("1:60:00", "past 59"),
        ("soon", "not an interval"),
        ("P", "not an interval"),
        (b"\x01", "not interval text"),
    ],
)
def test_interval_refuses_numbers_without_a_unit_and_text_it_cannot_prove(
    value: Any, why: str
) -> None:
    assert why in refusal("interval", value)


def test_interval_with_a_precision_refuses_what_it_would_round() -> None:
    assert convert("interval(3)", "PT1.5S") == "0 mons 0 days 0:00:01.500000"
    assert "rounded to 3 fractional digits" in refusal("interval(3)", "PT1.0005S")


@pytest.mark.parametrize(
    ("type_sql", "value", "expected"),
    [
        ("inet", "192.0.2.1", "192.0.2.1/32"),
        ("inet", "192.0.2.1/24", "192.0.2.1/24"),  # inet keeps the host bits
        ("inet", "2001:DB8::1", "2001:db8::1/128"),
        ("inet", "::ffff:1.2.3.4", "::ffff:1.2.3.4/128"),  # as PostgreSQL prints it
        ("inet", "::FFFF:102:304", "::ffff:1.2.3.4/128"),
        ("cidr", "10.0.0.0/8", "10.0.0.0/8"),
        ("cidr", "2001:db8::/32", "2001:db8::/32"),
    ],
)
def test_inet_and_cidr_take_addresses_with_their_prefix(
    type_sql: str, value: str, expected: str
) -> None:
    assert convert(type_sql, value) == expected


@pytest.mark.parametrize(
    ("type_sql", "value", "why"),
    [
        ("inet", "192.0.2.256", "not a valid address"),
        ("inet", "010.0.0.1", "not a valid address"),
        ("inet", "192.0.2.1/33", "not a valid address"),
        ("inet", "192.0.2.1/255.255.255.0", "not an address"),
        ("inet", "fe80::1%eth0", "not an address"),
        ("inet", " 192.0.2.1", "not an address"),
        ("inet", 3232235521, "not an address"),
        ("cidr", "10.0.0.1/8", "host bits set"),
    ],
)
def test_inet_and_cidr_refuse_the_rest(type_sql: str, value: Any, why: str) -> None:
    assert why in refusal(type_sql, value)


def test_text_that_is_not_utf8_is_refused_even_when_it_has_16_bytes() -> None:
    bad = source.InvalidText(b"\xff" * 16)
    assert "not valid UTF-8" in refusal("uuid", bad)
    assert "not valid UTF-8" in refusal("jsonb", bad)


def test_a_secret_column_of_a_native_type_never_shows_its_value() -> None:
    conv = converter(parse_pg_type("uuid"), secret=True)
    with pytest.raises(TransformError) as e:
        conv("s3cret-token")
    assert "s3cret" not in e.value.reason


# -- the interval transform ----------------------------------------------------------------


def test_interval_transform_reads_counts_of_a_unit_and_epoch_offsets() -> None:
    micros = compile_chain([{"interval": {"unit": "microseconds"}}])
    assert micros(90_000_000_001) == native.Interval(micros=90_000_000_001)
    assert micros(-5) == native.Interval(micros=-5)
    assert micros("P1D") == native.Interval(days=1)  # text that is an interval passes
    assert micros(None) is None
    millis = compile_chain([{"interval": {"unit": "milliseconds"}}])
    assert millis(1.5) == native.Interval(micros=1500)
    assert compile_chain([{"interval": {"unit": "days"}}])(3) == native.Interval(days=3)
    with pytest.raises(TransformError, match="finer than a microsecond"):
        compile_chain([{"interval": {"unit": "seconds"}}])(0.0000001)
    with pytest.raises(TransformError, match="fraction of a day"):
        compile_chain([{"interval": {"unit": "days"}}])(1.5)
    offset = compile_chain([{"interval": {"epoch_offset": True}}])
    assert offset("1970-01-01 00:00:05.000000") == native.Interval(micros=5_000_000)
    assert offset("1970-01-02 01:00:00") == native.Interval(micros=90_000_000_000)
    assert offset("1969-12-31 23:59:55.500000") == native.Interval(micros=-4_500_000)
    with pytest.raises(TransformError, match="1970-01-01 plus the duration"):
        offset(5)
    with pytest.raises(TransformError, match="no time zone"):
        offset("1970-01-01 00:00:05+02:00")


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({}, "exactly one of"),
        ({"unit": "seconds", "epoch_offset": True}, "exactly one of"),
        ({"unit": "second"}, "did you mean 'seconds'"),
        ({"units": "seconds"}, "unknown key 'units'"),
    ],
)
def test_interval_transform_options_are_checked(options: dict[str, Any], problem: str) -> None:
    with pytest.raises(PlanError, match=problem):
        compile_chain([{"interval": options}])


# -- the canonical texts, against a real PostgreSQL ------------------------------------------

_json_scalars = st.none() | st.booleans() | st.text(max_size=8)
_json_numbers = st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
    lambda d: abs(d.adjusted()) < 40
) | st.integers(min_value=-(10**30), max_value=10**30)


def _json_text(value: Any) -> str:
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(_json_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}:{_json_text(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


_json_docs = st.recursive(
    _json_scalars | _json_numbers,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(doc=_json_docs, pretty=st.booleans())
def test_jsonb_canonical_text_is_what_postgresql_prints(
    pg_dsn: str, doc: Any, pretty: bool
) -> None:
    text = _json_text(doc)
    if pretty:
        text = json.dumps(json.loads(text), indent=2, ensure_ascii=True)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        try:
            row = conn.execute("SELECT %s::text::jsonb::text", (text,)).fetchone()
        except psycopg.DataError:  # \u0000 in a key or string: jsonb refuses, so must we
            with pytest.raises(native.NotExact):
                native.parse_json(text, binary=True)
            return
    assert row is not None
    assert native.jsonb_text(native.parse_json(text, binary=True)) == row[0]


def test_jsonb_canonical_text_orders_keys_as_postgresql(pg_dsn: str) -> None:
    text = '{"bb":1, "a":3, "\\u00e9":4, "c":"\\u001f\\u007f\\b\\"", "n":[-0, 1E+2, 1.50e-3]}'
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        row = conn.execute("SELECT %s::text::jsonb::text", (text,)).fetchone()
    assert row is not None
    assert native.jsonb_text(native.parse_json(text, binary=True)) == row[0]


_ipv6 = st.lists(st.sampled_from([0, 0, 0, 1, 0xFFFF, 0x1F, 0xABCD]), min_size=8, max_size=8).map(
    lambda words: ipaddress.IPv6Address(b"".join(w.to_bytes(2, "big") for w in words))
)
_ipv4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)


@settings(max_examples=80, deadline=None)
@given(addr=_ipv6 | _ipv4, prefix=st.integers(0, 128), cidr=st.booleans())
def test_inet_canonical_text_is_what_postgresql_prints(
    pg_dsn: str, addr: ipaddress.IPv4Address | ipaddress.IPv6Address, prefix: int, cidr: bool
) -> None:
    bits = prefix % (addr.max_prefixlen + 1)
    text = f"{addr}/{bits}"
    if cidr:
        text = str(ipaddress.ip_network(text, strict=False))
    pg_type = "cidr" if cidr else "inet"
    loaded = convert(pg_type, text)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        row = conn.execute(f"SELECT %s::text::{pg_type}::text", (loaded,)).fetchone()
    assert row is not None
    assert native.inet_text(native.parse_inet(text, cidr=cidr)) == row[0]


def test_inet_canonical_text_prints_embedded_ipv4_and_zero_runs_as_postgresql(
    pg_dsn: str,
) -> None:
    addrs = ["::", "::1", "::2", "::1.2.3.4", "::ffff:1.2.3.4", "1:0:0:1:0:0:0:1", "1::1:0:0:1:1"]
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        for a in addrs:
            row = conn.execute("SELECT %s::text::inet::text", (a,)).fetchone()
            assert row is not None
            assert native.inet_text(native.parse_inet(a, cidr=False)) == row[0], a


_int32 = st.integers(-(2**31) + 1, 2**31 - 1)


@settings(max_examples=60, deadline=None)
@given(months=_int32, days=_int32, micros=st.integers(-(2**62), 2**62))
def test_interval_loads_exactly_and_its_canonical_text_is_what_postgresql_computes(
    pg_dsn: str, months: int, days: int, micros: int
) -> None:
    interval = native.Interval(months, days, micros)
    loaded = convert("interval", interval)
    query = f"SELECT {INTERVAL_CANON.format('%s::text::interval')}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        row = conn.execute(query.replace("%s::text", "%(v)s::text"), {"v": loaded}).fetchone()
    assert row is not None
    assert row[0] == interval.canonical()
    assert native.parse_interval(row[0]) == interval  # the canonical text reads back
    assert native.parse_interval(loaded) == interval  # and so does the text loaded


@settings(max_examples=30, deadline=None)
@given(value=st.uuids())
def test_uuid_canonical_text_is_what_postgresql_computes(pg_dsn: str, value: uuid.UUID) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT replace(%s::text::uuid::text, '-', '')", (value.hex.upper(),)
        ).fetchone()
    assert row is not None and row[0] == native.parse_uuid(value.hex.upper()).hex


def test_the_sqlite_predicates_pass_only_what_postgresql_reads_as_the_converter_does() -> None:
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.execute("CREATE TABLE t (v)")
        values: list[Any] = [
            '{"a": 1}', "[1,", "NaN", '"\\u0000"', "5", 5, b"{}", '"\\u00e9"', '"\\ud83d\\ude00"',
            "12345678-9abc-def0-1234-56789abcdef0", "123456789ABCDEF0123456789ABCDEF0",
            "{123456789abcdef0123456789abcdef0}", "12345678-9abcdef0-1234-56789abcdef0",
            bytes(16), None,
        ]  # fmt: skip
        conn.executemany("INSERT INTO t VALUES (?)", [(v,) for v in values])
        for type_sql in ("jsonb", "json", "uuid"):
            pred = ok_predicate(parse_pg_type(type_sql), "v")
            passed = [v for (v,) in conn.execute(f"SELECT v FROM t WHERE {pred}")]
            for v in passed:
                # What passes goes to PostgreSQL as it is: the converter must agree.
                assert v is None or convert(type_sql, v) is not None
            if type_sql == "uuid":
                assert len(passed) == 4  # the three good texts, and NULL
            if type_sql == "jsonb":
                # \u00e9 goes as it is; a surrogate pair goes through Python to be sure.
                assert passed == ['{"a": 1}', "5", '"\\u00e9"', None]


# -- --cast and CHECK translation ----------------------------------------------------------


def test_cast_accepts_the_native_types_and_names_them_in_its_hint() -> None:
    table = source.Table(
        "t", (source.Column("c", "TEXT", False, None, 0),), (), None, False, False, False,
        (), (), (), "", None,
    )  # fmt: skip
    for type_sql in ("jsonb", "json", "uuid", "interval", "inet", "cidr"):
        assert parse_casts({"t.c": type_sql}, [table])["t"]["c"].sql == type_sql
    with pytest.raises(SchemaError) as e:
        parse_casts({"t.c": "tsvector"}, [table])
    assert "jsonb, json, uuid, interval, inet or cidr" in str(e.value)


# SQLite's json_valid(NULL) is 0 in older versions (a CHECK of it alone refuses NULL), NULL
# in newer ones.
NULL_PASSES = "" if native.JSON_VALID_OF_NULL == 0 else " OR NULL"


@pytest.mark.parametrize(
    ("expr", "jsonb", "built", "why"),
    [
        ('(JSON_VALID("data") OR "data" IS NULL)', {"data"}, None, "redundant"),
        ("json_valid(data)", {"data"}, f"(data IS NOT NULL{NULL_PASSES})", "dropped"),
        ("json_valid([data]) AND length(data) < 100", {"data"},
         f"([data] IS NOT NULL{NULL_PASSES}) AND length(data) < 100",
         "json_valid() of 'data' dropped"),
        ("json_valid(d) = 1 OR d = '1'", {"d"}, f"(d IS NOT NULL{NULL_PASSES}) OR d = '1'",
         "dropped"),
        ("NOT xjson_valid(d)", {"d"}, None, "xjson_valid()"),
        ('(JSON_VALID("data") OR "data" IS NULL)', set(), None, "JSON_VALID()"),
        ("'json_valid(x)' <> x", {"x"}, "'json_valid(x)' <> x", ""),
        ("typeof(n) = 'integer'", set(), None, "typeof()"),
        ("length(name) BETWEEN 1 AND 20", set(), "length(name) BETWEEN 1 AND 20", ""),
        ("status IN ('a', 'b') AND NOT (x < 0)", set(), "status IN ('a', 'b') AND NOT (x < 0)", ""),
        ("CAST(n AS INTEGER) > 0", set(), "CAST(n AS INTEGER) > 0", ""),
        ("'json_valid(x)' <> name", set(), "'json_valid(x)' <> name", ""),
    ],
)  # fmt: skip
def test_checks_are_translated_dropped_when_redundant_or_refused_with_the_function(
    expr: str, jsonb: set[str], built: str | None, why: str
) -> None:
    out, reason = translate_check(expr, jsonb)
    assert out == built
    assert why in reason


# -- end to end: create mode, --cast, verify -----------------------------------------------


def _opts(pg: PgSchema, tmp_path: Path, **kw: Any) -> MigrateOptions:
    return MigrateOptions(schema=pg.schema, run_dir=tmp_path / "run", **kw)


def _types(pg: PgSchema, table: str) -> dict[str, str]:
    return dict(
        pg.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %s",
            (table,),
        )
    )


DJANGO_DDL = (
    'CREATE TABLE "shop_item" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, '
    '"data" text NOT NULL CHECK ((JSON_VALID("data") OR "data" IS NULL)), '
    '"extra" text NULL CHECK ((JSON_VALID("extra") OR "extra" IS NULL)), '
    '"token" char(32) NOT NULL UNIQUE, "n" integer NOT NULL CHECK ("n" >= 0));'
)


def test_a_django_jsonfield_check_gives_jsonb_and_the_run_exits_0_verified(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        DJANGO_DDL,
        (
            "INSERT INTO shop_item (data, extra, token, n) VALUES (?, ?, ?, ?)",
            [
                ('{"b": 1, "a": [1.50, "\\ud83d\\ude00"]}', None, uuid.uuid4().hex, 1),
                ('{"a": 2}', '"x"', uuid.uuid4().hex, 2),
                ("[]", "null", uuid.uuid4().hex, 0),
            ],
        ),
    )
    report = migrate(db, pg.target, _opts(pg, tmp_path))

    assert report.exit_code() == 0, report.as_dict()
    assert report.verify is not None and report.verify["ok"]
    assert _types(pg, "shop_item") == {
        "id": "bigint", "data": "jsonb", "extra": "jsonb", "token": "text", "n": "bigint",
    }  # fmt: skip
    # The app's JSON lookups work.
    assert pg.query("SELECT id FROM shop_item WHERE data -> 'a' @> '[1.5]'") == [(1,)]
    assert pg.query("SELECT data ->> 'a' FROM shop_item WHERE id = 2") == [("2",)]
    # The json_valid CHECKs are redundant and said so; the other CHECK is built.
    assert any("not built: redundant: column 'data' holds JSON only" in n for n in report.notes)
    assert any("made jsonb" in n for n in report.notes)
    checks = pg.query(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'c' "
        "AND conrelid = 'shop_item'::regclass"
    )
    assert checks == [("CHECK ((n >= 0))",)]
    assert not report.behaviour_changes


def test_a_json_column_with_text_that_is_not_json_stays_text_with_a_note(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, doc JSON, plain TEXT, "
        "  esc TEXT CHECK (json_valid(esc)), CHECK (plain <> 'json_valid(plain)'));"
        "PRAGMA ignore_check_constraints = 1;"
        "INSERT INTO t VALUES (1, '{\"a\": 1}', '{\"a\": 1}', '\"\\u0000\"'),"
        " (2, 'not json', '[1]', '1'), (3, '[1e131072]', '[]', '1e5');"
    )
    report = migrate(db, pg.target, _opts(pg, tmp_path))

    assert report.exit_code() == 0, report.as_dict()
    # Not every value is JSON; a plain TEXT column is never made jsonb (the app reads its
    # text back, which jsonb would rewrite); \u0000 is JSON that jsonb cannot hold.
    assert _types(pg, "t") == {"id": "bigint", "doc": "text", "plain": "text", "esc": "text"}
    assert any("column 'doc' is meant for JSON but 1 value(s)" in n for n in report.notes)
    assert any("lite2pg check --cast t.doc=jsonb lists them" in n for n in report.notes)
    assert any("column 'esc' is meant for JSON but 1 value(s)" in n for n in report.notes)
    # Its json_valid CHECK cannot be built on text: the app sees the change, the run goes on.
    assert any("json_valid" in c and "not kept" in c for c in report.behaviour_changes)


def test_declared_uuid_and_json_columns_are_typed_by_the_values_they_hold(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    ids = [uuid.uuid4() for _ in range(3)]
    db = make_db(
        "CREATE TABLE t (id UUID PRIMARY KEY, other GUID, raw UNIQUEIDENTIFIER, doc JSONB);",
        (
            "INSERT INTO t VALUES (?, ?, ?, ?)",
            [
                (str(ids[0]), ids[1].hex.upper(), ids[2].bytes, "5"),
                (ids[1].hex, "{" + str(ids[2]) + "}", b"\x01" * 15, '{"k": [true]}'),
                ("{" + ids[2].hex + "}", None, None, None),
            ],
        ),
    )
    report = migrate(db, pg.target, _opts(pg, tmp_path))

    assert report.exit_code() == 0, report.as_dict()
    assert _types(pg, "t") == {"id": "uuid", "other": "uuid", "raw": "bytea", "doc": "jsonb"}
    assert pg.query("SELECT id FROM t ORDER BY id") == sorted((i,) for i in ids)
    assert pg.query("SELECT doc FROM t WHERE id = %s", (ids[0],)) == [(5,)]
    assert any(
        "column 'raw' is declared UNIQUEIDENTIFIER but 1 value(s)" in n for n in report.notes
    )


CAST_ROWS = [
    # (id, jsonb, json, uuid, interval, inet, cidr): row 1 good, the others one bad each
    (1, '{"a": 1}', '{ "b" :2 }', "123456789abcdef0123456789abcdef0", "P1DT2H", "10.0.0.1/8",
     "10.0.0.0/8"),
    (2, "{bad", "[]", None, None, None, None),
    (3, "[]", "NaN", None, None, None, None),
    (4, None, None, "not-a-uuid", None, None, None),
    (5, None, None, None, 5000000, None, None),
    (6, None, None, None, None, "10.0.0.300", None),
    (7, None, None, None, None, None, "10.0.0.1/8"),
    (8, "1.50", "null", bytes(16), "-1 day, 23:59:59", "::ffff:1.2.3.4", "2001:db8::/32"),
]  # fmt: skip
CASTS = {
    "t.j": "jsonb", "t.js": "json", "t.u": "uuid", "t.iv": "interval", "t.ip": "inet",
    "t.net": "cidr",
}  # fmt: skip


def test_cast_loads_each_native_type_exactly_and_rejects_bad_values_with_reasons(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, j TEXT, js TEXT, u TEXT, iv, ip TEXT, net TEXT);",
        ("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)", CAST_ROWS),
    )
    report = migrate(db, pg.target, _opts(pg, tmp_path, casts=CASTS))

    assert report.rows_loaded == 2 and report.rows_rejected == 6
    assert report.verify is not None and report.verify["ok"], report.verify
    assert _types(pg, "t") == {
        "id": "bigint", "j": "jsonb", "js": "json", "u": "uuid", "iv": "interval",
        "ip": "inet", "net": "cidr",
    }  # fmt: skip
    rows = pg.query("SELECT id, j::text, js::text, u::text, iv::text, ip::text, net::text FROM t")
    assert sorted(rows) == [
        (1, '{"a": 1}', '{ "b" :2 }', "12345678-9abc-def0-1234-56789abcdef0", "1 day 02:00:00",
         "10.0.0.1/8", "10.0.0.0/8"),
        (8, "1.50", "null", "00000000-0000-0000-0000-000000000000", "-1 days +23:59:59",
         "::ffff:1.2.3.4/128", "2001:db8::/32"),
    ]  # fmt: skip
    reasons = {
        json.loads(line)["key"]["id"]: json.loads(line)["reason"]
        for line in (tmp_path / "run" / "rejects" / "t.jsonl").read_text().splitlines()
    }
    assert "not valid JSON" in reasons[2]
    assert "NaN is not JSON" in reasons[3]
    assert "not a uuid" in reasons[4]
    assert 'interval = { unit = "microseconds"' in reasons[5]
    assert "not a valid address" in reasons[6]
    assert "host bits set" in reasons[7]


# -- verify: a tampered value of each type is caught ---------------------------------------

TAMPER_DDL = (
    "CREATE TABLE t (id INTEGER PRIMARY KEY, j TEXT CHECK (json_valid(j)), js TEXT, "
    "  u UUID, iv TEXT, ip TEXT, net TEXT);"
)
TAMPER_ROWS = [
    (i, f'{{"n": {i}, "list": [1, 2]}}', f'{{"n":{i}}}', uuid.uuid5(uuid.NAMESPACE_DNS, str(i)).hex,
     f"P{i}D", f"10.0.{i}.1/24", f"10.{i}.0.0/16")
    for i in range(1, 6)
]  # fmt: skip
TAMPER_CASTS = {"t.js": "json", "t.iv": "interval", "t.ip": "inet", "t.net": "cidr"}


def _tampered(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, update: str, key_ddl: str = ""
) -> VerifyReport:
    ddl = TAMPER_DDL.replace("id INTEGER PRIMARY KEY", key_ddl) if key_ddl else TAMPER_DDL
    db = make_db(ddl, ("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?)", TAMPER_ROWS))
    run_dir = tmp_path / "run"
    report = migrate(db, pg.target, _opts(pg, tmp_path, casts=TAMPER_CASTS, verify=False))
    assert report.exit_code() == 0, report.as_dict()
    clean = verify(run_dir, pg.target)
    assert clean.ok, clean.problems
    pg.execute(update)
    return verify(run_dir, pg.target)


@pytest.mark.parametrize(
    ("column", "update"),
    [
        ("j", """UPDATE t SET j = '{"n": 3, "list": [1.0, 2]}' WHERE id = 3"""),  # 1 -> 1.0
        ("j", """UPDATE t SET j = '{"n": 3, "list": [2, 1]}' WHERE id = 3"""),
        ("js", """UPDATE t SET js = '{"n": 3}' WHERE id = 3"""),  # a space json keeps
        ("u", f"UPDATE t SET u = '{uuid.uuid5(uuid.NAMESPACE_DNS, '4')}' WHERE id = 3"),
        ("iv", "UPDATE t SET iv = '72:00:00' WHERE id = 3"),  # = '3 days' in PostgreSQL
        ("ip", "UPDATE t SET ip = '10.0.3.1/25' WHERE id = 3"),
        ("net", "UPDATE t SET net = '10.3.0.0/17' WHERE id = 3"),
    ],
)
def test_verify_catches_a_tampered_value_of_each_type(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path, column: str, update: str
) -> None:
    report = _tampered(make_db, pg, tmp_path, update)

    assert not report.ok
    [t] = report.tables
    [diff] = [d for d in t.differences if d["kind"] == "changed"]
    assert diff["key"] == {"id": "3"} or diff["key"] == {"id": 3}
    assert [c["column"] for c in diff["columns"]] == [column]


def test_verify_takes_the_fast_path_for_json_uuid_and_inet_and_catches_tampering_there(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, j JSON, u UUID, ip TEXT);",
        (
            "INSERT INTO t VALUES (?, ?, ?, ?)",
            [(i, f'{{"a": {i}}}', uuid.UUID(int=i).hex, f"10.0.0.{i}/32") for i in range(1, 50)],
        ),
    )
    run_dir = tmp_path / "run"
    report = migrate(db, pg.target, _opts(pg, tmp_path, casts={"t.ip": "inet"}, verify=False))
    assert report.exit_code() == 0, report.as_dict()
    clean = verify(run_dir, pg.target)
    assert clean.ok and clean.tables[0].fast_rows == 49, clean.tables[0]

    pg.execute("UPDATE t SET u = '00000000-0000-0000-0000-0000000000ff' WHERE id = 7")
    tampered = verify(run_dir, pg.target)
    assert not tampered.ok
    assert tampered.tables[0].changed == 1


def test_verify_catches_a_tampered_uuid_key_without_the_fast_path(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    key = uuid.uuid5(uuid.NAMESPACE_DNS, "3")
    update = f"""UPDATE t SET j = '{{"n": 30, "list": [1, 2]}}' WHERE u = '{key}'"""
    report = _tampered(make_db, pg, tmp_path, update, key_ddl="id INTEGER")
    assert not report.ok


# -- the interval transform and data-only loads into an app's own schema ------------------


def test_django_durations_load_as_intervals_with_a_unit_and_are_refused_without_one(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    micros = [90_000_000_001, -5, 0, None]
    db = make_db(
        'CREATE TABLE "shop_job" ("id" integer NOT NULL PRIMARY KEY, "took" bigint NULL);',
        ("INSERT INTO shop_job VALUES (?, ?)", list(enumerate(micros, 1))),
    )
    # The schema Django's migrate makes on PostgreSQL: a DurationField is an interval.
    pg.execute("CREATE TABLE shop_job (id integer PRIMARY KEY, took interval NULL)")

    bare = migrate(db, pg.target, _opts(pg, tmp_path / "bare", data_only=True, verify=False))
    assert bare.rows_loaded == 1 and bare.rows_rejected == 3  # only NULL: 0 has no unit either
    reasons = (tmp_path / "bare" / "run" / "rejects" / "shop_job.jsonl").read_text()
    assert 'interval = { unit = \\"microseconds\\"' in reasons

    plan = parse_plan(
        '[tables.shop_job.columns.took]\ntransforms = [{ interval = { unit = "microseconds" } }]\n'
    )
    report = migrate(db, pg.target, _opts(pg, tmp_path, data_only=True, truncate=True, plan=plan))
    assert report.exit_code() == 0, report.as_dict()
    assert report.verify is not None and report.verify["ok"]
    got = pg.query("SELECT id, took FROM shop_job ORDER BY id")
    assert got == [
        (1, dt.timedelta(microseconds=90_000_000_001)),
        (2, dt.timedelta(microseconds=-5)),
        (3, dt.timedelta(0)),
        (4, None),
    ]


def test_sqlalchemy_intervals_stored_as_epoch_offsets_load_in_create_mode(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE job (id INTEGER PRIMARY KEY, took DATETIME);"
        "INSERT INTO job VALUES (1, '1970-01-01 00:00:05.000000'),"
        " (2, '1969-12-31 23:59:59.500000'), (3, '1970-01-03 00:00:00.000000'), (4, NULL);"
    )
    plan = parse_plan(
        "[tables.job.columns.took]\ntransforms = [{ interval = { epoch_offset = true } }]\n"
    )
    report = migrate(db, pg.target, _opts(pg, tmp_path, plan=plan))

    assert report.exit_code() == 0, report.as_dict()
    assert report.verify is not None and report.verify["ok"]
    assert _types(pg, "job")["took"] == "interval"
    assert pg.query("SELECT took FROM job ORDER BY id") == [
        (dt.timedelta(seconds=5),),
        (dt.timedelta(seconds=-0.5),),
        (dt.timedelta(days=2),),
        (None,),
    ]


def test_sync_writes_native_types_through_the_same_converters(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    from lite2pg import capture
    from lite2pg.sync import sync

    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, doc JSON, u UUID, ip TEXT);"
        "INSERT INTO t VALUES (1, '{\"a\": 1}', '123456789abcdef0123456789abcdef0', '10.0.0.1');"
    )
    capture.prepare(db)
    # Sync keeps its position in PostgreSQL by run directory: one of its own per session.
    run_dir = tmp_path / f"run-{uuid.uuid4().hex[:8]}"
    opts = MigrateOptions(schema=pg.schema, run_dir=run_dir, casts={"t.ip": "inet"}, verify=False)
    assert migrate(db, pg.target, opts).exit_code() == 0
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(
            "INSERT INTO t VALUES (2, '{\"b\": [1.50]}', '{ABCDEF01-2345-6789-ABCD-EF0123456789}',"
            " '::ffff:1.2.3.4/96')"
        )
        conn.execute("INSERT INTO t VALUES (3, '{\"bad', 'nope', '300.0.0.1')")
        conn.execute("UPDATE t SET doc = '[true]' WHERE id = 1")

    total = sync(run_dir, pg.target)

    assert total.rejected == 1
    assert pg.query("SELECT id, doc::text, u::text, ip::text FROM t ORDER BY id") == [
        (1, "[true]", "12345678-9abc-def0-1234-56789abcdef0", "10.0.0.1/32"),
        (2, '{"b": [1.50]}', "abcdef01-2345-6789-abcd-ef0123456789", "::ffff:1.2.3.4/96"),
    ]


def test_check_suggests_jsonb_and_uuid_for_text_columns_but_a_run_keeps_them_text(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, doc TEXT, token char(32), word TEXT);",
        (
            "INSERT INTO t VALUES (?, ?, ?, ?)",
            [(1, '{"a": 1}', uuid.uuid4().hex, "[1]"), (2, "[ ]", uuid.uuid4().hex, "plain")],
        ),
    )
    found = check(db)
    assert len(found.suggestions) == 2
    assert (
        "t.doc holds a JSON object or array in every row: --cast t.doc=jsonb"
        in (found.suggestions[0])
    )
    assert "t.token holds a uuid in every row: --cast t.token=uuid" in found.suggestions[1]

    report = migrate(db, pg.target, _opts(pg, tmp_path))
    assert _types(pg, "t") == {"id": "bigint", "doc": "text", "token": "text", "word": "text"}
    assert report.exit_code() == 0


def test_data_only_into_an_apps_schema_with_native_types_loads_and_verifies(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    # As Django's migrate makes them: UUIDField char(32) / uuid, JSONField text / jsonb,
    # GenericIPAddressField char(39) / inet.
    db = make_db(
        'CREATE TABLE "app_device" ("id" char(32) NOT NULL PRIMARY KEY, '
        '"conf" text NOT NULL CHECK ((JSON_VALID("conf") OR "conf" IS NULL)), '
        '"ip" char(39) NULL);',
        (
            "INSERT INTO app_device VALUES (?, ?, ?)",
            [
                (
                    uuid.uuid5(uuid.NAMESPACE_DNS, "a").hex,
                    '{"z": 1, "a": {"k": [1, 2.0]}}',
                    "2001:DB8::7",
                ),
                (uuid.uuid5(uuid.NAMESPACE_DNS, "b").hex, '{"a": 1, "a": "last"}', None),
                (uuid.uuid5(uuid.NAMESPACE_DNS, "c").hex, "[1e200000]", "192.0.2.1"),
            ],
        ),
    )
    pg.execute("CREATE TABLE app_device (id uuid PRIMARY KEY, conf jsonb NOT NULL, ip inet)")

    report = migrate(db, pg.target, _opts(pg, tmp_path, data_only=True))

    assert report.rows_loaded == 1 and report.rows_rejected == 2
    assert report.verify is not None and report.verify["ok"], report.verify
    reasons = (tmp_path / "run" / "rejects" / "app_device.jsonl").read_text()
    assert "beyond what jsonb (numeric) holds" in reasons
    assert "has the key 'a' twice, and jsonb keeps only the last value" in reasons
    key = uuid.uuid5(uuid.NAMESPACE_DNS, "a")
    assert pg.query(
        "SELECT conf -> 'a' ->> 'k', host(ip) FROM app_device WHERE id = %s", (key,)
    ) == [("[1, 2.0]", "2001:db8::7")]


def test_a_plan_cast_makes_a_django_uuidfield_uuid(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    ids = [uuid.uuid4() for _ in range(3)]
    db = make_db(
        'CREATE TABLE "app_thing" ("id" char(32) NOT NULL PRIMARY KEY, "n" integer NULL);',
        ("INSERT INTO app_thing VALUES (?, ?)", [(u.hex, i) for i, u in enumerate(ids)]),
    )
    plan = parse_plan('[tables.app_thing]\ncast = { id = "uuid" }\n')
    report = migrate(db, pg.target, _opts(pg, tmp_path, plan=plan))

    assert report.exit_code() == 0, report.as_dict()
    assert report.verify is not None and report.verify["ok"]
    assert _types(pg, "app_thing")["id"] == "uuid"
    assert pg.query("SELECT n FROM app_thing WHERE id = %s", (ids[2],)) == [(2,)]


def test_a_check_with_json_valid_inside_is_built_with_it_translated(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = make_db(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, meta JSON,"
        " CONSTRAINT meta_set CHECK ((json_valid(meta) = 1 AND meta <> '{}') OR meta IS NULL));"
        "INSERT INTO t VALUES (1, '{\"a\": 1}'), (2, NULL);"
    )
    report = migrate(db, pg.target, _opts(pg, tmp_path))

    assert report.exit_code() == 0, report.as_dict()
    assert any("json_valid() of 'meta' dropped" in n for n in report.notes)
    assert pg.query(
        "SELECT conname FROM pg_constraint WHERE contype = 'c' AND conrelid = 't'::regclass"
    ) == [("meta_set",)]
    with pytest.raises(psycopg.errors.CheckViolation):
        pg.execute("INSERT INTO t VALUES (3, '{}')")
    pg.execute("INSERT INTO t VALUES (4, NULL)")  # NULL passes, as in SQLite


def _iso(interval: native.Interval) -> str:
    sign = "-" if interval.micros < 0 else ""
    seconds, micros = divmod(abs(interval.micros), 1_000_000)
    return f"P{interval.months}M{interval.days}DT{sign}{seconds}.{micros:06d}S"


_json_values = (
    _json_docs.map(_json_text)
    | st.sampled_from(["{", "NaN", '"\\u0000"', '["\\udc00"]', "[1e131072]", "", " [] ", "5"])
    | st.integers(-(2**63), 2**63 - 1)
)
_uuid_values = st.uuids().flatmap(
    lambda u: st.sampled_from(
        [str(u), u.hex, u.hex.upper(), "{" + str(u) + "}", u.bytes, str(u)[:-1], u.bytes[:15]]
    )
)
_interval_values = st.builds(
    native.Interval,
    st.integers(-10_000, 10_000),
    st.integers(-100_000, 100_000),
    st.integers(-(2**50), 2**50),
).flatmap(
    lambda i: st.sampled_from([i.pg_text(), i.canonical(), _iso(i), str(i.micros), "1.5 days"])
)
_inet_values = (_ipv4 | _ipv6).flatmap(
    lambda a: st.sampled_from([str(a), f"{a}/{a.max_prefixlen // 2}", f"{a}x", str(int(a))])
)


@settings(max_examples=20, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            _json_values | st.none(), _uuid_values | st.none(), _interval_values | st.none(),
            _inet_values | st.none(),
        ),
        min_size=1,
        max_size=12,
    )
)  # fmt: skip
def test_random_values_load_exactly_or_are_rejected_and_verify_agrees(
    tmp_path_factory: pytest.TempPathFactory, pg_dsn: str, rows: list[tuple[Any, ...]]
) -> None:
    tmp = tmp_path_factory.mktemp("random")
    db = tmp / "r.db"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, j TEXT, u TEXT, iv TEXT, ip TEXT)")
        conn.executemany(
            "INSERT INTO t VALUES (?, ?, ?, ?, ?)", [(i, *r) for i, r in enumerate(rows)]
        )
    casts = {"t.j": "jsonb", "t.u": "uuid", "t.iv": "interval", "t.ip": "inet"}
    expected: dict[int, tuple[Any, ...] | None] = {}
    with closing(sqlite3.connect(db)) as conn:
        for i, *stored in conn.execute("SELECT * FROM t"):
            try:
                expected[i] = tuple(
                    None if v is None else convert(casts[f"t.{c}"], v)
                    for c, v in zip(("j", "u", "iv", "ip"), stored, strict=True)
                )
            except TransformError:
                expected[i] = None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_dsn, autocommit=True) as pgc:
        pgc.execute(f'CREATE SCHEMA "{schema}"')
    try:
        report = migrate(
            db,
            PgSchema(pg_dsn, schema).target,
            MigrateOptions(schema=schema, run_dir=tmp / "run", casts=casts),
        )
        assert report.verify is not None and report.verify["ok"], report.verify
        loaded = {
            r[0]: r[1:]
            for r in PgSchema(pg_dsn, schema).query(
                "SELECT id, j::text, u::text, iv::text, ip::text FROM t"
            )
        }
        assert set(loaded) == {i for i, e in expected.items() if e is not None}
        assert report.rows_rejected == sum(e is None for e in expected.values())
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as pgc:
            pgc.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.mark.parametrize(
    "text",
    [
        "-92233720368547758.08",  # -2**63 cents, money's least
        "-92233720368547758.09",
        "92233720368547758.07",  # 2**63 - 1 cents, money's most
        "92233720368547758.08",
    ],
)
def test_money_takes_its_int64_of_cents_to_the_last_cent_as_postgresql_does(
    pg_dsn: str, text: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("SET lc_monetary = 'C'")
        try:
            row = conn.execute("SELECT %s::money::numeric", (text,)).fetchone()
            theirs = None if row is None else row[0]
        except psycopg.errors.NumericValueOutOfRange:
            theirs = None
    try:
        ours = converter(parse_pg_type("money"))(text)
    except TransformError:
        ours = None
    assert ours == theirs


@pytest.mark.parametrize(
    "text",
    [
        "2000-01-01 00:30:00.5+01:00",  # 1999-12-31 23:30:00.5 in UTC: before 2000
        "1999-12-31 23:30:00.5-01:00",  # 2000-01-01 00:30:00.5 in UTC: after 2000
        "1999-12-31 23:59:59.5+00:00",
        "2000-01-01 00:00:00.5Z",
    ],
)
def test_a_tie_with_an_offset_rounds_as_postgresql_rounds_it_on_its_side_of_2000(
    pg_dsn: str, text: str
) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        row = conn.execute("SELECT %s::timestamptz(0)", (text,)).fetchone()
    assert row is not None
    ours = converter(parse_pg_type("timestamptz(0)"), rounding=True)(text)
    assert dt.datetime.fromisoformat(ours) == row[0]


@pytest.mark.parametrize(
    ("type_sql", "text"),
    [("macaddr", "08:00:2b:01:02:03"), ("point", "(1.5,-2)"), ("tsvector", "a fat cat")],
)
def test_a_type_postgresql_parses_itself_gets_the_text_as_it_is_and_never_a_nul(
    pg_dsn: str, type_sql: str, text: str
) -> None:
    conv = converter(parse_pg_type(type_sql))
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        # PostgreSQL takes the text the load hands it, and can hold no NUL in any text.
        conn.execute(f"SELECT %s::{type_sql}", (conv(text),))
        with pytest.raises(psycopg.DataError):
            conn.execute(f"SELECT %s::{type_sql}", (text + "\x00",))
    assert conv(text) == text
    with pytest.raises(TransformError, match="contains a NUL character"):
        conv(text + "\x00")


@pytest.mark.parametrize("text", ["10:00:00", "00:00", "23:59:59.999999", "12:34:56.5", "07:08"])
def test_a_time_of_day_lands_as_postgresql_reads_the_same_text(pg_dsn: str, text: str) -> None:
    ours = converter(parse_pg_type("time"))(text)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        row = conn.execute("SELECT %s::time = %s::time", (ours, text)).fetchone()
    assert row == (True,), (text, ours)


def test_sqlite_passes_a_whole_number_to_money_unconverted_exactly_when_money_holds_it(
    pg_dsn: str,
) -> None:
    pred = ok_predicate(parse_pg_type("money"), "v")
    edges = [-92233720368547758, -92233720368547759, 92233720368547758, 92233720368547759]
    with closing(sqlite3.connect(":memory:")) as db, psycopg.connect(pg_dsn) as conn:
        conn.execute("SET lc_monetary = 'C'")
        for v in [*edges, -5, 0, 7]:
            [(passes,)] = db.execute(f"SELECT {pred} FROM (SELECT ? AS v)", (v,)).fetchall()
            try:
                with conn.transaction():
                    conn.execute("SELECT %s::numeric::money", (v,))
                holds = True
            except psycopg.errors.NumericValueOutOfRange:
                holds = False
            assert bool(passes) is holds, v
