"""A Prisma app's databases without Prisma: its migration SQL, and values as Prisma stores them.

Prisma's engines cannot be installed here, so the schema comes from the migration SQL a
public Prisma app ships for SQLite and for PostgreSQL (prisma_spliit/, see SOURCE.md),
and the rows are written the way Prisma's SQLite connector writes them: DateTime as
integer epoch milliseconds, Boolean as 0/1, Decimal as a REAL, Json as text, BigInt as an
integer, enums as text; `_prisma_migrations` as Prisma's schema engine keeps it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..conftest import PgSchema

FIXTURES = Path(__file__).parent / "prisma_spliit"
# The extra model (BigInt, Json) is one more migration in both histories.
RECEIPTS_MIGRATION = "20260301000000_add_receipts"
UTC = dt.UTC


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """What Prisma stores: the SHA-256 of migration.sql."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations(provider: str) -> list[Migration]:
    """The app's migration history for "sqlite" or "postgresql", in order."""
    root = FIXTURES / provider / "migrations"
    found = [Migration(d.name, (d / "migration.sql").read_text()) for d in sorted(root.iterdir())
             if (d / "migration.sql").is_file()]  # fmt: skip
    return [
        *found,
        Migration(RECEIPTS_MIGRATION, (FIXTURES / f"receipts.{provider}.sql").read_text()),
    ]


def _ms(at: dt.datetime) -> int:
    return int(at.timestamp() * 1000)


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=UTC)


class Text(str):
    """A DateTime a row holds as text: what SQLite's DEFAULT CURRENT_TIMESTAMP writes when
    a row was inserted by SQL that left the column out (a seed script, a migration)."""


def app_rows(expenses: int) -> dict[str, list[dict[str, Any]]]:
    """The app's data as the app means it (aware datetimes, dates, Decimals, bools, JSON)."""
    base = dt.datetime(2024, 1, 1, 8, 30, 0, 125000, tzinfo=UTC)
    groups = [
        {"id": f"grp{g}", "name": name, "information": info, "currency": cur,
         "currencyCode": code, "createdAt": base + dt.timedelta(days=g, milliseconds=7 * g)}
        for g, (name, info, cur, code) in enumerate([
            ("Trip ✈", "Summer\nholiday", "€", "EUR"),
            ("Flat", None, "$", "USD"),
            ("Club", "", "$", None),
        ])
    ]  # fmt: skip
    people = [
        {"id": f"p{g}{k}", "name": f"{name} {k}", "groupId": group["id"]}
        for g, group in enumerate(groups)
        for k, name in enumerate(["Ana", "Bo"])
    ]
    modes = ["EVENLY", "BY_SHARES", "BY_PERCENTAGE", "BY_AMOUNT"]
    rows: list[dict[str, Any]] = []
    paid_for: list[dict[str, Any]] = []
    for n in range(expenses):
        group = groups[n % len(groups)]
        members = [p for p in people if p["groupId"] == group["id"]]
        converted = n % 5 == 0
        rows.append({
            "id": f"exp{n:04d}", "expenseDate": (base + dt.timedelta(days=n)).date(),
            "title": f"Expense #{n}", "categoryId": n % 44, "amount": 100 * n + 99,
            "originalAmount": 90 * n if converted else None,
            "originalCurrency": "CHF" if converted else None,
            "conversionRate": Decimal("1.0856") + n if converted else None,
            "paidById": members[n % 2]["id"], "groupId": group["id"],
            "isReimbursement": n % 7 == 0, "splitMode": modes[n % 4],
            # Distinct to the millisecond: one group per value would be one line per row.
            "createdAt": base + dt.timedelta(hours=n, milliseconds=n),
            "notes": None if n % 3 else f"note {n}",
            "recurrenceRule": [None, "NONE", "MONTHLY"][n % 3],
            "recurringExpenseLinkId": None,
        })  # fmt: skip
        paid_for += [
            {"expenseId": f"exp{n:04d}", "participantId": p["id"], "shares": 1 + k}
            for k, p in enumerate(members)
        ]
    activities: list[dict[str, Any]] = [
        {"id": f"act{n}", "groupId": rows[n]["groupId"], "time": rows[n]["createdAt"],
         "activityType": "CREATE_EXPENSE", "participantId": rows[n]["paidById"],
         "expenseId": rows[n]["id"], "data": json.dumps({"title": rows[n]["title"]})}
        for n in range(0, expenses, 10)
    ]  # fmt: skip
    activities.append(
        {"id": "act-seed", "groupId": "grp0", "time": Text("2024-02-03 04:05:06"),
         "activityType": "UPDATE_GROUP", "participantId": None, "expenseId": None, "data": None}
    )  # fmt: skip
    return {
        "Group": groups,
        "Participant": people,
        "Expense": rows,
        "ExpensePaidFor": paid_for,
        "ExpenseDocument": [
            {
                "id": "doc0",
                "url": "https://example.com/r.png",
                "width": 640,
                "height": 480,
                "expenseId": "exp0001",
            },
            {
                "id": "doc1",
                "url": "https://example.com/s.png",
                "width": 1,
                "height": 1,
                "expenseId": None,
            },
        ],
        "RecurringExpenseLink": [
            {
                "id": "rec0",
                "groupId": "grp1",
                "currentFrameExpenseId": "exp0004",
                "nextExpenseCreatedAt": None,
                "nextExpenseDate": base + dt.timedelta(days=35),
            },
        ],
        "Activity": activities,
        "Receipt": [
            {
                "id": 9007199254740993,
                "payload": {"items": [{"sku": "ü", "qty": 2}], "ok": True},
                "total": Decimal("19.99"),
                "scannedAt": base,
                "verified": True,
            },
            {
                "id": -1,
                "payload": 42,
                "total": Decimal("0.1"),
                "scannedAt": base + dt.timedelta(milliseconds=1),
                "verified": False,
            },
            {
                "id": 2,
                "payload": [1, "two", None],
                "total": Decimal("1234567.5"),
                "scannedAt": base + dt.timedelta(days=400),
                "verified": False,
            },
        ],
    }


def prisma_value(value: Any, column: str) -> Any:
    """How Prisma's SQLite connector stores an app value."""
    if isinstance(value, Text) or value is None:
        return value if value is None else str(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dt.datetime):
        return _ms(value)
    if isinstance(value, dt.date):
        return _ms(_midnight(value))
    if isinstance(value, Decimal):
        return float(value)
    if column == "payload":  # Json
        return json.dumps(value)
    return value


def build_sqlite(path: Path, rows: dict[str, list[dict[str, Any]]], *, bookkeeping: bool) -> None:
    """The app's SQLite database: `prisma migrate deploy`, then the app's writes."""
    conn = sqlite3.connect(path)
    try:
        if bookkeeping:
            conn.executescript((FIXTURES / "prisma_migrations.sqlite.sql").read_text())
        for m in migrations("sqlite"):
            started = _ms(dt.datetime(2026, 2, 12, 9, 0, tzinfo=UTC))
            conn.executescript(m.sql)
            if bookkeeping:
                conn.execute(
                    'INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name,'
                    " logs, rolled_back_at, started_at, applied_steps_count)"
                    " VALUES (?, ?, ?, ?, NULL, NULL, ?, 1)",
                    (str(uuid.uuid4()), m.checksum, started + 15, m.name, started),
                )
        for table, table_rows in rows.items():
            for row in table_rows:
                columns = ", ".join(f'"{c}"' for c in row)
                marks = ", ".join("?" for _ in row)
                conn.execute(
                    f'INSERT INTO "{table}" ({columns}) VALUES ({marks})',
                    [prisma_value(v, c) for c, v in row.items()],
                )
        conn.commit()
    finally:
        conn.close()


def build_pg(pg: PgSchema) -> list[str]:
    """The app's PostgreSQL schema as `prisma migrate deploy` leaves it; returns the
    migration names `_prisma_migrations` holds."""
    pg.execute((FIXTURES / "prisma_migrations.postgresql.sql").read_text())
    names = []
    for m in migrations("postgresql"):
        pg.execute(m.sql)
        pg.query(
            'INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name,'
            " started_at, applied_steps_count) VALUES (%s, %s, now(), %s, now(), 1)",
            (str(uuid.uuid4()), m.checksum, m.name),
        )
        names.append(m.name)
    return names


def as_app_value(value: Any) -> Any:
    """A value read from PostgreSQL as the app reads it (naive TIMESTAMP(3) is UTC)."""
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    if isinstance(value, Decimal):
        return value.normalize()
    return value


def expected_app_value(value: Any) -> Any:
    if isinstance(value, Text):
        return dt.datetime.fromisoformat(str(value)).replace(tzinfo=UTC)
    if isinstance(value, Decimal):
        return value.normalize()
    return value
