"""`check` and `migrate` count the same orphans, under each on_orphan policy: a parent
missing, rejected or filtered out leaves an orphan; a child rejected itself is none."""

from __future__ import annotations

import json
from pathlib import Path

from lite2pg.check import check
from lite2pg.plan import parse_plan
from lite2pg.run import MigrateOptions, migrate

from .conftest import MakeDb, PgSchema

PLAN = """
[tables.teams]
where = "id != 4"

[tables.posts.foreign_keys.user_id]
on_orphan = "null"

[tables.comments.foreign_keys.user_id]
on_orphan = "reject"
"""


def _db(make_db: MakeDb) -> Path:
    return make_db(
        "CREATE TABLE teams (id INTEGER PRIMARY KEY, founded DATE);"
        "CREATE TABLE users (id INTEGER PRIMARY KEY, team_id INTEGER REFERENCES teams(id),"
        " born DATE);"
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id));"
        "CREATE TABLE comments (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id));"
        # team 3 is rejected (its date), team 4 filtered out by the plan
        "INSERT INTO teams VALUES (1, '2020-01-01'), (3, 'soon'), (4, '2020-01-01');"
        # users 2, 3, 4 lose their team; user 5 is rejected itself; user 6 has none
        "INSERT INTO users VALUES (1, 1, '2000-01-01'), (2, 3, '2000-01-01'),"
        " (3, 4, '2000-01-01'), (4, 9, '2000-01-01'), (5, 9, 'never'), (6, NULL, NULL);"
        # 5 is a rejected user, 7 no user at all
        "INSERT INTO posts VALUES (1, 1), (2, 5), (3, 7), (4, NULL), (5, 2);"
        "INSERT INTO comments VALUES (1, 5), (2, 5), (3, 7), (4, 1), (5, 6);",
    )


def test_check_and_migrate_count_the_same_orphans(
    make_db: MakeDb, pg: PgSchema, tmp_path: Path
) -> None:
    db = _db(make_db)
    plan = parse_plan(PLAN)

    found = check(db, plan, profile="none")
    run_dir = tmp_path / "run"
    report = migrate(
        db, pg.target, MigrateOptions(schema=pg.schema, run_dir=run_dir, plan=plan, profile="none")
    )

    checked = {(o["table"], o["policy"]): o["rows"] for o in found.orphans}
    assert report.verify is not None
    nulled = pg.query("SELECT count(*) FROM posts WHERE user_id IS NULL")[0][0] - 1

    def rejected(table: str) -> list[dict[str, str]]:
        lines = (run_dir / "rejects" / f"{table}.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    comments = rejected("comments")
    migrated = {
        # No plan for users: the documented default, reject, applies to its FK too.
        ("users", "reject"): sum(u["category"] == "orphan" for u in rejected("users")),
        ("posts", "null"): nulled,
        ("comments", "reject"): sum(c["category"] == "orphan" for c in comments),
    }
    assert (
        checked
        == migrated
        == {
            ("users", "reject"): 3,
            ("posts", "null"): 3,  # user 2, rejected as an orphan itself, counts too
            ("comments", "reject"): 3,
        }
    )
