"""cutover_intent.py without a server: an intent whose config someone else changed is not
finished either way; written for a survivor of the mutation run (tests/mutation)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from lite2pg import cutover_intent
from lite2pg.errors import SyncError


def test_an_intent_whose_config_someone_else_changed_is_left_to_a_person(tmp_path: Path) -> None:
    source = tmp_path / "app.db"
    with closing(sqlite3.connect(source)) as db:
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY)")
    config = tmp_path / ".env"
    config.write_text("DATABASE_URL=sqlite:///app.db\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    target = "postgresql://app:s3cret-pw@db.internal/app"
    cutover_intent.begin(run_dir, config, None, source, ["notes"], target)
    config.write_text("DATABASE_URL=postgresql://someone@else/db\n")

    with pytest.raises(SyncError) as caught:
        cutover_intent.recover(run_dir)
    message = str(caught.value)
    assert "changed by someone else" in message
    assert f"then remove {run_dir / cutover_intent.INTENT_FILE})" in message
    assert "s3cret-pw" not in message
    assert config.read_text() == "DATABASE_URL=postgresql://someone@else/db\n"
    assert cutover_intent.unfinished(run_dir) is not None
