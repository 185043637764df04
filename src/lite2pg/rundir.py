"""A run directory: what a run was asked to do (run.json), where it keeps its snapshot.

Every command over a run reads it through here; the stages and verify build on it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lite2pg import source
from lite2pg.artifacts import atomic_json
from lite2pg.coerce import CITEXT
from lite2pg.errors import UsageError
from lite2pg.exclude import excluded
from lite2pg.layout import Layout, select_tables
from lite2pg.load import BATCH_SIZE
from lite2pg.plan import Plan, names_mode, parse_plan

__all__ = [
    "RUNS_DIR",
    "RUN_FILE",
    "SNAPSHOT_NAME",
    "MigrateOptions",
    "new_run_dir",
    "new_run_id",
    "read_run_file",
    "write_run_file",
]

RUNS_DIR = Path(".lite2pg") / "runs"
SNAPSHOT_NAME = "source.snapshot.db"
RUN_FILE = "run.json"


@dataclass
class MigrateOptions:
    """Everything `migrate` can be told besides source and target."""

    schema: str = "public"
    data_only: bool = False
    truncate: bool = False
    drop: bool = False
    casts: dict[str, str] = field(default_factory=dict)  # "table.column" -> PostgreSQL type
    run_dir: Path | None = None
    batch_size: int = BATCH_SIZE
    tables: Sequence[str] | None = None  # only these source tables
    exclude: Sequence[str] = ()  # --exclude-table globs (exclude.py puts them in the plan)
    plan: Plan | None = None
    verify: bool = True  # prove the target equals transform(source) before returning
    # Write export/ and transformed/ CSVs with a manifest (the staged commands' artifacts)
    # instead of streaming straight through.
    keep_artifacts: bool = False
    # A run that fails before anything is published removes its data copies (snapshot,
    # export/, transformed/); this keeps them, to look into the failure.
    keep_failed: bool = False
    # The ORM profile: "auto" (detect), "none", or a name (profiles.PROFILE_CHOICES). Once
    # applied, `plan` holds it, `profile` is "none" and `applied_profile` says what it did.
    profile: str = "auto"
    applied_profile: dict[str, Any] | None = None
    names: str | None = None  # "fold" | "keep" (schema.pg_name); None: the plan's, else fold
    # The citext type on the target, for COLLATE NOCASE columns: None until a load looks
    # (then recorded in run.json), "" when the target cannot have it.
    citext: str | None = None
    # Names this run's snapshot: a new one each time a snapshot is taken, so that state
    # kept elsewhere for a run (sync's position) never carries over to another run made
    # in the same directory. None: a run.json from before ids (its path names it).
    run_id: str | None = None

    def layout(self, schema: source.SourceSchema) -> Layout:
        """The tables this run migrates and their shapes, as every process of it sees them."""
        layout = select_tables(
            schema,
            tuple(self.tables) if self.tables else None,
            self.plan,
            self.casts,
            names=self.names,
            citext=CITEXT.sql if self.citext is None else self.citext or None,
        )
        if not self.exclude:
            return layout
        gone = excluded((t.name for t in layout.skipped), self.exclude)
        return dataclasses.replace(layout, excluded=frozenset(gone))


def new_run_dir(base: Path = RUNS_DIR) -> Path:
    """A fresh run directory named by the UTC time."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    path = base / stamp
    # Run directories hold a copy of the source (and maybe plaintext): owner only.
    path.mkdir(parents=True, exist_ok=False, mode=0o700)
    return path


def new_run_id() -> str:
    """A fresh id for a run whose snapshot is being taken (`MigrateOptions.run_id`)."""
    return secrets.token_hex(8)


def write_run_file(run_dir: Path, source_path: Path, opts: MigrateOptions) -> None:
    """run.json: what this run was asked to do, so later commands (verify) can redo it."""
    data = {
        "version": 1,
        "source": str(source_path.resolve()),
        "snapshot": SNAPSHOT_NAME,
        "schema": opts.schema,
        "mode": "data-only" if opts.data_only else "create",
        "truncate": opts.truncate,
        "drop": opts.drop,
        "tables": list(opts.tables) if opts.tables else None,
        "exclude": list(opts.exclude),
        "casts": dict(opts.casts),
        "plan": None if opts.plan is None else {"origin": opts.plan.origin, "text": opts.plan.text},
        "batch_size": opts.batch_size,
        "profile": opts.profile,
        "applied_profile": opts.applied_profile,
        "names": names_mode(opts.names, opts.plan),
        "citext": opts.citext,
        "id": opts.run_id,
    }
    # The target this run loaded into (runtarget.py), kept while the run is the same run.
    with contextlib.suppress(OSError, ValueError, AttributeError):
        old = json.loads((run_dir / RUN_FILE).read_text())
        if old.get("id") == opts.run_id and old.get("target"):
            data["target"] = old["target"]
    atomic_json(run_dir / RUN_FILE, data)


def read_run_file(run_dir: Path) -> tuple[Path, MigrateOptions]:
    """The source path and options a run was made with (see `write_run_file`)."""
    path = run_dir / RUN_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(
            f"{run_dir} is not a lite2pg run directory (no {RUN_FILE})",
            "give the directory a migrate run wrote",
        ) from None
    except json.JSONDecodeError as e:
        raise UsageError(f"{path} is damaged: {e}", "run migrate again") from None
    plan_data = data.get("plan")
    plan = parse_plan(plan_data["text"], origin=plan_data["origin"]) if plan_data else None
    opts = MigrateOptions(
        schema=data["schema"],
        data_only=data["mode"] == "data-only",
        truncate=bool(data.get("truncate")),
        drop=bool(data.get("drop")),
        casts=dict(data.get("casts") or {}),
        run_dir=run_dir,
        batch_size=int(data.get("batch_size") or BATCH_SIZE),
        tables=data.get("tables"),
        exclude=tuple(data.get("exclude") or ()),
        plan=plan,
        # A run.json from before profiles: its plan is what the run used.
        profile=data.get("profile") or "none",
        applied_profile=data.get("applied_profile"),
        # Runs from before names folded and NOCASE was kept: as they were made.
        names=data.get("names", "keep"),
        citext=data.get("citext", ""),
        run_id=data.get("id"),
    )
    return Path(data["source"]), opts
