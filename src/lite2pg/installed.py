"""The objects lite2pg itself installs in a SQLite source: the change-capture table and the
capture and cutover-block triggers (capture.py). Discovery leaves out exactly these, by name
and shape; a user's own table or trigger that merely starts with `_lite2pg_` is the user's.
"""

from __future__ import annotations

import hashlib
import re

PREFIX = "_lite2pg_"
CHANGES_TABLE = "_lite2pg_changes"
KEY_COLUMNS = 8  # k1..k8: the most key columns a change row holds

_NOW = "((julianday('now') - 2440587.5) * 86400.0)"
CREATE_CHANGES = (
    f"CREATE TABLE IF NOT EXISTS {CHANGES_TABLE} ("
    "seq INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT NOT NULL, op TEXT NOT NULL, "
    + ", ".join(f"k{i}" for i in range(1, KEY_COLUMNS + 1))
    + f", at REAL NOT NULL DEFAULT {_NOW})"
)

# ins/upd/del log changes, rep<n><i|u> the rows an INSERT OR REPLACE deletes, block<i|u|d>
# refuse writes after an online cutover.
_TRIGGER = re.compile(r"_lite2pg_(?:ins|upd|del|rep[0-9]+[iu]|block[iud])_([0-9a-f]{12})")


def table_suffix(table: str) -> str:
    """The part of a trigger's name that says which table it is on."""
    return hashlib.sha256(table.encode()).hexdigest()[:12]


def trigger_name(kind: str, table: str) -> str:
    """The name of lite2pg's `kind` trigger on `table`."""
    return f"{PREFIX}{kind}_{table_suffix(table)}"


def _shape(sql: str) -> str:
    return " ".join(sql.replace("IF NOT EXISTS ", "").split())


def is_changes_table(name: str, sql: str | None) -> bool:
    """Whether a table is lite2pg's change log: its name and the SQL prepare created it with."""
    return name == CHANGES_TABLE and sql is not None and _shape(sql) == _shape(CREATE_CHANGES)


def is_installed_trigger(name: str, table: str) -> bool:
    """Whether a trigger is one lite2pg installs: a name of its pattern, for this table."""
    m = _TRIGGER.fullmatch(name)
    return m is not None and m.group(1) == table_suffix(table)
