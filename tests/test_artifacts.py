"""Artifacts: table CSVs round-trip every SQLite value exactly; the manifest notices changes;
secret files are 0600; the journal survives a reload."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sqlite3
import stat
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lite2pg.artifacts import (
    ArtifactChanged,
    ArtifactError,
    FileInfo,
    Journal,
    Manifest,
    decode_field,
    encode_value,
    read_manifest,
    read_table_csv,
    verify_file,
    write_manifest,
    write_table_csv,
)
from lite2pg.source import InvalidText


class Bad(bytes):
    """Bytes to store as TEXT that is not valid UTF-8 (CAST(? AS TEXT))."""


def _is_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


COLUMNS = ("a", "b c", 'd"e')
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
SPECIAL_TEXT = [
    "", "\\N", "\\", "\\s", "\\x00", '"', '""', ",", "a,b", "\r", "\n", "\r\n", "x\r\ny",
    "\x00", "a\x00b", "café", "日本語", "\U0001f600", "5", "-5", "05", "5.0", "1e+16", "inf",
    "-inf", "nan", "NULL", " 5", "=1+1", "+1", "@x", "-", "\t", "\u2028", "\ufeffbom",
]  # fmt: skip
SPECIAL_FLOATS = [0.0, -0.0, float("inf"), float("-inf"), 5.0, 5e-324, 1.7976931348623157e308]
VALUES = st.one_of(
    st.none(),
    INT64,
    st.sampled_from([0, 5, 2**63 - 1, -(2**63)]),
    st.floats(allow_nan=False),
    st.sampled_from(SPECIAL_FLOATS),
    st.text(),
    st.sampled_from(SPECIAL_TEXT),
    st.binary(),
    st.binary(min_size=1).filter(lambda b: not _is_utf8(b)).map(Bad),
    st.sampled_from([Bad(b"\xff"), Bad(b"ok\xc0\xafok"), Bad(b"\xed\xa0\x80")]),
)


def _key(v: object) -> tuple[str, object]:
    """Exact identity: the type, and floats by bits (so -0.0 != 0.0 and 5.0 != 5)."""
    return (type(v).__name__, v.hex() if isinstance(v, float) else v)


def _slow_text(raw: bytes) -> object:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return InvalidText(raw)


def make_table(path: Path, rows: list[tuple[Any, ...]]) -> list[tuple[object, ...]]:
    """A table of untyped columns (values stay as given); returns what sqlite3 reads back."""
    with closing(sqlite3.connect(path)) as conn:
        cols = ", ".join('"' + c.replace('"', '""') + '"' for c in COLUMNS)
        conn.execute(f"CREATE TABLE t ({cols})")
        for row in rows:
            marks = ", ".join("CAST(? AS TEXT)" if isinstance(v, Bad) else "?" for v in row)
            conn.execute(
                f"INSERT INTO t VALUES ({marks})",
                tuple(bytes(v) if isinstance(v, Bad) else v for v in row),
            )
        conn.commit()
        conn.text_factory = _slow_text
        return [tuple(r) for r in conn.execute("SELECT * FROM t")]


def export(db: Path, out: Path, **kw: Any) -> FileInfo:
    with closing(sqlite3.connect(db)) as conn:
        return write_table_csv(conn, "t", COLUMNS, out, **kw)


def read_all(path: Path) -> list[tuple[object, ...]]:
    return [row for batch in read_table_csv(path) for row in batch]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(st.tuples(VALUES, VALUES, VALUES), max_size=25))
@example(rows=[(None, "", "\\N"), (5, "5", 5.0), (-0.0, 0.0, 0), (b"", Bad(b"\xff"), "x")])
def test_csv_round_trips_every_storage_class_exactly(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[Any, ...]]
) -> None:
    d = tmp_path_factory.mktemp("rt")
    stored = make_table(d / "s.db", rows)
    info = export(d / "s.db", d / "t.csv", batch_size=4)
    back = read_all(d / "t.csv")
    assert [[_key(v) for v in r] for r in back] == [[_key(v) for v in r] for r in stored]
    assert info.rows == len(rows)
    assert info.size == (d / "t.csv").stat().st_size
    assert info.sha256 == hashlib.sha256((d / "t.csv").read_bytes()).hexdigest()


@given(st.one_of(VALUES.filter(lambda v: not isinstance(v, Bad)), st.text()))
def test_every_value_encodes_to_a_field_that_decodes_to_itself(v: object) -> None:
    assert _key(decode_field(encode_value(v))) == _key(v)


def test_file_is_plain_rfc4180_csv(tmp_path: Path) -> None:
    rows = [(1, "a,b", 'say "hi"'), (None, "", "two\r\nlines"), (2.5, b"\x00\xff", "\\x")]
    make_table(tmp_path / "s.db", rows)
    export(tmp_path / "s.db", tmp_path / "t.csv")
    raw = (tmp_path / "t.csv").read_bytes()
    assert raw.startswith(b'a,b c,"d""e"\r\n')
    assert raw.endswith(b"\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b"")  # only CRLF line ends (besides the value)
    with (tmp_path / "t.csv").open(newline="", encoding="utf-8") as f:
        records = list(csv.reader(f))
    assert records == [
        ["a", "b c", 'd"e'],
        ["1", "a,b", 'say "hi"'],
        ["", "\\s", "two\r\nlines"],
        ["2.5", "\\x00ff", "\\s\\x"],
    ]


def test_readable_values_are_written_as_themselves(tmp_path: Path) -> None:
    assert [encode_value(v) for v in (42, "alice", "01234", 1.5, None)] == [
        "42",
        "alice",
        "01234",
        "1.5",
        "",
    ]
    # Text a spreadsheet would run as a formula is escaped (CSV injection).
    assert encode_value("=HYPERLINK(1)") == "\\s=HYPERLINK(1)"


def test_invalid_utf8_text_made_by_cast_round_trips(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with closing(sqlite3.connect(db)) as conn:
        conn.execute('CREATE TABLE t (a, "b c", \'d"e\')')
        conn.execute("INSERT INTO t VALUES ('ok', CAST(x'ff' AS TEXT), x'ff')")
        conn.commit()
    export(db, tmp_path / "t.csv")
    [(ok, bad, blob)] = read_all(tmp_path / "t.csv")
    assert ok == "ok"
    assert isinstance(bad, InvalidText) and bad == b"\xff"
    assert type(blob) is bytes and blob == b"\xff"


def test_export_streams_in_batches_and_reads_back_in_batches(tmp_path: Path) -> None:
    rows = [(i, f"r{i}", None) for i in range(12_001)]
    make_table(tmp_path / "s.db", rows)
    info = export(tmp_path / "s.db", tmp_path / "t.csv", batch_size=1000)
    batches = list(read_table_csv(tmp_path / "t.csv"))
    assert info.rows == 12_001
    assert [len(b) for b in batches] == [5000, 5000, 2001]
    assert batches[2][-1] == (12_000, "r12000", None)


def test_export_leaves_no_partial_file_when_it_fails(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    make_table(db, [(i, i, i) for i in range(10)])
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TEMP VIEW v AS SELECT a, boom(a) AS b FROM t")

        def boom(x: int) -> int:
            if x == 7:
                raise RuntimeError("disk on fire")
            return x

        conn.create_function("boom", 1, boom)
        with pytest.raises(sqlite3.OperationalError):
            write_table_csv(conn, "v", ("a", "b"), tmp_path / "v.csv", batch_size=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.db"]


def test_unknown_table_or_column_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    make_table(db, [(1, 2, 3)])
    with closing(sqlite3.connect(db)) as conn:
        # SQLite alone would export the string 'nope' for an unknown "nope" column.
        with pytest.raises(ArtifactError, match=r"table t: no column nope \(hint: it has a, "):
            write_table_csv(conn, "t", ("a", "nope"), tmp_path / "t.csv")
        with pytest.raises(ArtifactError, match="table x: no such table"):
            write_table_csv(conn, "x", ("a",), tmp_path / "t.csv")


def test_export_keeps_the_callers_text_factory(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    make_table(db, [("text", None, None)])
    with closing(sqlite3.connect(db)) as conn:
        conn.text_factory = bytes
        write_table_csv(conn, "t", COLUMNS, tmp_path / "t.csv")
        assert conn.text_factory is bytes
    assert read_all(tmp_path / "t.csv") == [("text", None, None)]


def test_damaged_csv_gives_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_bytes(b"a,b\r\n1,\\q\r\n")
    with pytest.raises(ArtifactError, match=r"line 2: unknown escape \\q"):
        read_all(tmp_path / "t.csv")
    (tmp_path / "t.csv").write_bytes(b"a,b\r\n1\r\n")
    with pytest.raises(ArtifactError, match="1 fields, the header has 2"):
        read_all(tmp_path / "t.csv")


def test_secret_files_are_created_0600(tmp_path: Path) -> None:
    make_table(tmp_path / "s.db", [(1, "hunter2", None)])
    old = os.umask(0o022)
    try:
        secret = export(tmp_path / "s.db", tmp_path / "export" / "users.csv", secret=True)
        plain = export(tmp_path / "s.db", tmp_path / "export" / "posts.csv")
    finally:
        os.umask(old)
    assert stat.S_IMODE(secret.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(plain.path.stat().st_mode) == 0o644
    assert secret.secret and not plain.secret


def _run_with_manifest(tmp_path: Path) -> tuple[Path, Manifest]:
    run = tmp_path / "run"
    make_table(tmp_path / "s.db", [(1, "x", None), (2, "y", b"z")])
    m = Manifest()
    m.add(run, export(tmp_path / "s.db", run / "export" / "users.csv", secret=True))
    m.add(run, export(tmp_path / "s.db", run / "transformed" / "users.csv"))
    m.set_table("users", {"columns": [{"name": "a", "type": "bigint"}], "primary_key": ["a"]})
    write_manifest(run, m)
    return run, m


def test_manifest_round_trips_and_says_which_files_are_secret(tmp_path: Path) -> None:
    run, m = _run_with_manifest(tmp_path)
    back = read_manifest(run)
    assert back == m
    assert back.secret_files() == ["export/users.csv"]
    assert back.files["export/users.csv"].rows == 2
    data = json.loads((run / "manifest.json").read_text())
    assert data["tables"]["users"]["primary_key"] == ["a"]
    assert [p.name for p in run.iterdir() if p.name.endswith(".tmp")] == []
    verify_file(run, "export/users.csv")
    verify_file(run, "transformed/users.csv", manifest=back)


def test_manifest_detects_one_changed_byte(tmp_path: Path) -> None:
    run, _ = _run_with_manifest(tmp_path)
    path = run / "transformed" / "users.csv"
    data = bytearray(path.read_bytes())
    data[-3] ^= 1  # same size, one bit different
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactChanged) as e:
        verify_file(run, "transformed/users.csv")
    msg = str(e.value)
    assert msg.startswith("transformed/users.csv changed since it was written (sha256 ")
    assert msg.endswith("; re-run transform")
    assert len(msg) < 120 and "\n" not in msg


def test_manifest_detects_changed_size_and_missing_file(tmp_path: Path) -> None:
    run, _ = _run_with_manifest(tmp_path)
    with (run / "export" / "users.csv").open("ab") as f:
        f.write(b"3,,\r\n")
    with pytest.raises(ArtifactChanged, match=r"export/users.csv changed .*size .*re-run export"):
        verify_file(run, "export/users.csv")
    (run / "export" / "users.csv").unlink()
    with pytest.raises(ArtifactChanged, match=r"export/users\.csv is missing"):
        verify_file(run, "export/users.csv")
    with pytest.raises(ArtifactError, match=r"not listed in manifest\.json"):
        verify_file(run, "export/other.csv")


def test_missing_or_damaged_manifest_gives_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match=r"manifest\.json: no such file"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(ArtifactError, match=r"manifest\.json: damaged"):
        read_manifest(tmp_path)


def test_journal_survives_a_reload_and_summarises(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    j.set_stage("export", "done")
    j.set_stage("transform", "running")
    j.set_table("transform", "users", "done", rows=10)
    j.set_table("transform", "posts", "failed", reason="value too long for varchar(10)")
    j.set_table("transform", "tags", "running")

    again = Journal.load(tmp_path)
    assert again.as_dict() == j.as_dict()
    assert again.stage_state("export") == "done"
    assert again.stage_state("load") == "pending"
    assert again.table_state("transform", "posts") == "failed"
    assert again.tables("transform", "done") == ["users"]
    summary = again.summary()
    assert "posts: failed: value too long for varchar(10)" in summary
    assert "done: export\n" in summary
    assert "left: transform (2 of 3 tables), load, verify, cutover" in summary
    assert summary.endswith("failed: transform/posts")
    # A new Journal over the same directory continues it.
    Journal(tmp_path).set_stage("transform", "failed", reason="1 table failed")
    assert Journal.load(tmp_path).table_state("transform", "users") == "done"


def test_journal_refuses_unknown_states_and_reasonless_failures(tmp_path: Path) -> None:
    j = Journal(tmp_path)
    with pytest.raises(ValueError, match="unknown state"):
        j.set_stage("export", "finished")
    with pytest.raises(ValueError, match="needs a reason"):
        j.set_table("export", "users", "failed")
    assert not (tmp_path / "journal.json").exists()


def test_journal_load_of_a_missing_or_damaged_run_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no such run directory"):
        Journal.load(tmp_path / "nope")
    (tmp_path / "journal.json").write_text("[]")
    with pytest.raises(ArtifactError, match=r"journal\.json: damaged"):
        Journal.load(tmp_path)


def test_csv_module_reads_nul_and_long_fields(tmp_path: Path) -> None:
    big = "x" * 300_000  # above csv's default 128 KiB field limit
    make_table(tmp_path / "s.db", [(big, "\x00", b"\x00" * 100_000)])
    export(tmp_path / "s.db", tmp_path / "t.csv")
    assert read_all(tmp_path / "t.csv") == [(big, "\x00", b"\x00" * 100_000)]
    assert io.BytesIO((tmp_path / "t.csv").read_bytes()).read(5) == b"a,b c"
