"""evidence.py: the record written again by a later command keeps the snapshot's hash from
the run; written for a survivor of the mutation run (tests/mutation). Oracle: hashlib."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from lite2pg.artifacts import MANIFEST_NAME
from lite2pg.evidence import EVIDENCE_NAME, write_evidence
from lite2pg.rundir import SNAPSHOT_NAME


def _pinned(run_dir: Path) -> dict[str, str]:
    files = json.loads((run_dir / EVIDENCE_NAME).read_text())["files"]
    assert isinstance(files, dict)
    return files


def test_a_record_written_again_keeps_the_runs_snapshot_hash_and_rehashes_the_rest(
    tmp_path: Path,
) -> None:
    (tmp_path / "run.json").write_text('{"schema": "app"}')
    (tmp_path / SNAPSHOT_NAME).write_bytes(b"the snapshot as the run took it")
    (tmp_path / MANIFEST_NAME).write_text("{}")
    write_evidence(tmp_path, "migrate")
    snapshot = hashlib.sha256(b"the snapshot as the run took it").hexdigest()
    assert _pinned(tmp_path)[SNAPSHOT_NAME] == snapshot

    # An edited snapshot must keep failing verify: the record does not take it in.
    (tmp_path / SNAPSHOT_NAME).write_bytes(b"a snapshot edited since")
    (tmp_path / "run.json").write_text('{"schema": "app2"}')
    write_evidence(tmp_path, "verify")
    pinned = _pinned(tmp_path)
    assert pinned[SNAPSHOT_NAME] == snapshot
    assert pinned["run.json"] == hashlib.sha256(b'{"schema": "app2"}').hexdigest()
