"""lite2pg sync: keep PostgreSQL equal to transform(live SQLite) while the app writes.

After `prepare` (capture.py) and a migrate whose snapshot recorded the change sequence
number (capture.json in the run directory), each sync round:

1. takes the run's advisory lock in PostgreSQL and reads the last applied sequence number
   (kept in `lite2pg.sync_state`, in the same transaction as the changes it covers, so a
   crash never applies a round twice or loses one);
2. opens one read transaction on the live SQLite file, reads the next changes and re-reads
   the rows they name through the run's own pipeline (plan transforms, coercion, the
   password cache: an unchanged password keeps its hash, a changed one is hashed again);
3. upserts the rows that exist (by primary key, parents first), deletes the keys that no
   longer exist (or are now rejected or filtered out), then checks that every changed row
   in PostgreSQL equals what was written and that no deleted key remains;
4. moves sequences past the new ids, records the new sequence number, commits.

Tables without a primary key are reloaded whole when they change.

The package: this module is the public surface; _common holds the result and table
objects, _state the position and rejected keys kept in PostgreSQL, _write how a round's
rows reach PostgreSQL, _syncer the rounds themselves (triggers or snapshot diff).
"""

from __future__ import annotations

from lite2pg.errors import SyncError
from lite2pg.sync._common import ROUND_LIMIT, STATE_SCHEMA, Round, TableSync, reject_key, run_id
from lite2pg.sync._state import forget_sync_state, mark_cut_over
from lite2pg.sync._syncer import Syncer, sync

__all__ = [
    "ROUND_LIMIT",
    "STATE_SCHEMA",
    "Round",
    "SyncError",
    "Syncer",
    "TableSync",
    "forget_sync_state",
    "mark_cut_over",
    "reject_key",
    "run_id",
    "sync",
]
