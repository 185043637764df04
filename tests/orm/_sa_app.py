"""A small SQLAlchemy app with an Alembic environment: models, one revision, its queries.

The Alembic environment (env.py and one revision) is written into a directory the test
gives (tmp_path), as `alembic init` would lay it out; env.py runs on the connection the
caller passes in `Config.attributes["connection"]` (Alembic's cookbook pattern for
running migrations programmatically).
"""

from __future__ import annotations

import datetime as dt
import enum
import io
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    JSON,
    DateTime,
    Engine,
    Enum,
    ForeignKey,
    Interval,
    Numeric,
    String,
    Uuid,
    func,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

HEAD = "0001_initial"
CENT = Decimal("0.01")


class Base(DeclarativeBase):
    pass


class Status(enum.Enum):
    draft = "draft"
    active = "active"
    retired = "retired"


class Account(Base):
    __tablename__ = "account"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    invoices: Mapped[list[Invoice]] = relationship(back_populates="account")


class Invoice(Base):
    __tablename__ = "invoice"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id"))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    term: Mapped[dt.timedelta | None] = mapped_column(Interval)
    status: Mapped[Status] = mapped_column(Enum(Status, name="invoice_status"))
    amount: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    issued_at: Mapped[dt.datetime] = mapped_column(DateTime)
    account: Mapped[Account] = relationship(back_populates="invoices")


ENV_PY = """\
from alembic import context

context.configure(connection=context.config.attributes["connection"])
with context.begin_transaction():
    context.run_migrations()
"""

REVISION = f'''\
"""initial"""

import sqlalchemy as sa
from alembic import op

revision = "{HEAD}"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "account",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(80), nullable=False, unique=True),
    )
    op.create_table(
        "invoice",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("public_id", sa.Uuid(), nullable=False, unique=True),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("account.id"), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("term", sa.Interval(), nullable=True),
        sa.Column(
            "status",
            sa.Enum("draft", "active", "retired", name="invoice_status"),
            nullable=False,
        ),
        sa.Column("amount", sa.Numeric(10, 2), nullable=False),
        sa.Column("issued_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("invoice")
    op.drop_table("account")
    sa.Enum(name="invoice_status").drop(op.get_bind(), checkfirst=True)
'''


def write_alembic_env(directory: Path) -> Path:
    """Lay out an Alembic script directory with env.py and the app's one revision."""
    (directory / "versions").mkdir(parents=True)
    (directory / "env.py").write_text(ENV_PY)
    (directory / "versions" / f"{HEAD}.py").write_text(REVISION)
    return directory


def _config(script_dir: Path, engine: Engine, out: io.StringIO | None = None) -> Config:
    cfg = Config(stdout=out or io.StringIO())
    cfg.set_main_option("script_location", str(script_dir))
    return cfg


def alembic_upgrade(script_dir: Path, engine: Engine) -> None:
    with engine.begin() as conn:
        cfg = _config(script_dir, engine)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def alembic_current(script_dir: Path, engine: Engine) -> str:
    """What `alembic current` prints."""
    out = io.StringIO()
    with engine.begin() as conn:
        cfg = _config(script_dir, engine, out)
        cfg.attributes["connection"] = conn
        command.current(cfg)
    return out.getvalue().strip()


def public_id(n: int) -> uuid.UUID:
    return uuid.UUID(int=(0xB111 << 100) + n)


def fill(engine: Engine) -> None:
    with Session(engine) as session, session.begin():
        acme, initech = Account(name="ACME"), Account(name="Initech ünïcode")
        rows = [
            (acme, {"customer": "ACME", "lines": 3, "total": 12.5, "po": None},
             dt.timedelta(days=30), Status.active, "12.50", dt.datetime(2024, 1, 2, 3, 4, 5, 6)),
            (acme, {"customer": "ACME", "lines": 1, "tags": ["rush"]},
             dt.timedelta(days=365, microseconds=1), Status.draft, "0.00",
             dt.datetime(2023, 12, 31, 23, 59, 59, 999999)),
            (initech, {"customer": "Initech", "lines": 12, "note": "ünïcode ✓"},
             None, Status.retired, "99999999.99", dt.datetime(2024, 6, 30, 12, 0)),
            (initech, {}, dt.timedelta(seconds=-90), Status.active, "7.05",
             dt.datetime(2022, 2, 28, 0, 0, 0, 1)),
        ]  # fmt: skip
        for n, (account, details, term, status, amount, issued) in enumerate(rows):
            session.add(
                Invoice(
                    public_id=public_id(n), account=account, details=details, term=term,
                    status=status, amount=Decimal(amount), issued_at=issued,
                )
            )  # fmt: skip


def _micro(d: dt.timedelta | None) -> int | None:
    return None if d is None else d // dt.timedelta(microseconds=1)


def snapshot(engine: Engine) -> dict[str, Any]:
    """What the app's queries return: the same on SQLite and PostgreSQL, or a bug."""
    with Session(engine) as s:

        def ids(*where: Any) -> list[int]:
            return list(s.scalars(select(Invoice.id).where(*where).order_by(Invoice.id)))

        invoices = s.scalars(select(Invoice).order_by(Invoice.id)).all()
        total = s.scalar(select(func.sum(Invoice.amount)))
        return {
            "invoices": [
                [
                    i.id,
                    str(i.public_id),
                    i.account.name,
                    i.details,
                    _micro(i.term),
                    i.status.value,
                    str(i.amount),
                    i.issued_at.isoformat(),
                ]
                for i in invoices
            ],
            "json_key": ids(Invoice.details["customer"].as_string() == "ACME"),
            "json_number": ids(Invoice.details["lines"].as_integer() >= 3),
            "json_float": ids(Invoice.details["total"].as_float() > 10),
            "uuid_eq": ids(Invoice.public_id == public_id(2)),
            "uuid_in": ids(Invoice.public_id.in_([public_id(0), public_id(3), uuid.uuid4()])),
            "interval_gte": ids(Invoice.term >= dt.timedelta(days=30)),
            "interval_negative": ids(Invoice.term < dt.timedelta(0)),
            "interval_null": ids(Invoice.term.is_(None)),
            "enum_eq": ids(Invoice.status == Status.active),
            "enum_in": ids(Invoice.status.in_([Status.draft, Status.retired])),
            "numeric_gt": ids(Invoice.amount > Decimal("10.00")),
            "numeric_sum": None if total is None else str(Decimal(total).quantize(CENT)),
            "datetime_gte": ids(Invoice.issued_at >= dt.datetime(2024, 1, 1)),
            "per_account": [
                [name, n]
                for name, n in s.execute(
                    select(Account.name, func.count(Invoice.id))
                    .join(Invoice)
                    .group_by(Account.name)
                    .order_by(Account.name)
                )
            ],
        }


def add_invoice(engine: Engine) -> tuple[int, int]:
    """Insert a new invoice through the ORM; return (the largest old id, the new id)."""
    with Session(engine) as session, session.begin():
        old = session.scalar(select(func.max(Invoice.id)))
        account = session.scalars(select(Account).where(Account.name == "ACME")).one()
        invoice = Invoice(
            public_id=uuid.uuid4(), account=account, details={"customer": "ACME"},
            term=dt.timedelta(hours=1), status=Status.draft, amount=Decimal("1.00"),
            issued_at=dt.datetime(2025, 1, 1),
        )  # fmt: skip
        session.add(invoice)
        session.flush()
        return int(old or 0), invoice.id
