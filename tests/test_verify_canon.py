"""verify/_canon.py: how verify shows and canonicalises values; tests written for survivors
of the mutation run (tests/mutation), each against a hand-written value."""

from __future__ import annotations

from lite2pg.verify._canon import _show


def test_a_blob_is_shown_by_its_first_24_bytes_and_marked_cut_only_when_longer() -> None:
    assert _show(bytes(range(24))) == "\\x" + bytes(range(24)).hex() + " (24 bytes)"
    assert _show(bytes(range(25))) == "\\x" + bytes(range(24)).hex() + "... (25 bytes)"
    assert _show(b"") == "\\x (0 bytes)"


def test_text_is_shown_whole_up_to_the_limit_and_cut_past_it() -> None:
    assert _show("a" * 58) == "'" + "a" * 58 + "'"  # 60 characters with its quotes
    assert _show("a" * 59) == "'" + "a" * 55 + "...'"
    assert _show(None) == "NULL"
    assert _show("hunter2", secret=True) == "<redacted>"
