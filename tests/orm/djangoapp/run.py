"""Run the Django test project against one database: `python -m tests.orm.djangoapp.run`.

Settings are configured in code so each process can point at a different database and app
release. Steps run in order; what they find is written as JSON to --out:

    python -m tests.orm.djangoapp.run --db '{"ENGINE": ...}' --release 1 \\
        --out result.json migrate fill snapshot
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import uuid
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import django
from django.conf import settings

CENT = Decimal("0.01")
PASSWORDS = {"alice": "correct horse battery staple", "bob": "hunter2-but-longer"}


def sku(n: int) -> uuid.UUID:
    """The fixed UUID of product n (so a lookup can name it on both databases)."""
    return uuid.UUID(int=(0xA11CE << 100) + n)


def configure(db: dict[str, Any], release: int) -> None:
    settings.configure(
        SECRET_KEY="lite2pg-tests-only",
        USE_TZ=True,
        TIME_ZONE="UTC",
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "tests.orm.djangoapp.shop",
        ],
        DATABASES={"default": db},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        MIGRATION_MODULES={
            "shop": "tests.orm.djangoapp.shop."
            + ("release1_migrations" if release == 1 else "migrations")
        },
        SHOP_RELEASE=release,
    )
    django.setup()


def migrate() -> dict[str, Any]:
    from django.core.management import call_command

    out = io.StringIO()
    call_command("migrate", interactive=False, verbosity=1, stdout=out)
    return {"output": out.getvalue()}


def migrate_check() -> dict[str, Any]:
    """`migrate --check`: exit status 1 (SystemExit) when any migration is unapplied."""
    from django.core.management import call_command

    out = io.StringIO()
    try:
        call_command("migrate", check_unapplied=True, interactive=False, stdout=out)
    except SystemExit as stop:
        return {"clean": False, "status": stop.code, "output": out.getvalue()}
    return {"clean": True, "output": out.getvalue()}


def fill() -> dict[str, Any]:
    from django.contrib.auth.models import User

    from tests.orm.djangoapp.shop.models import Product, Tag

    User.objects.create_superuser("alice", "alice@example.com", PASSWORDS["alice"])
    User.objects.create_user("bob", "bob@example.com", PASSWORDS["bob"])
    User.objects.create_user("carol", "carol@example.com", None)  # unusable password
    tags = {name: Tag.objects.create(name=name) for name in ("red", "sale", "ünïcode")}
    utc = dt.UTC
    rows = [
        (
            "Lamp",
            "12.50",
            {"color": "red", "size": 10, "dims": {"w": 3, "h": 4}},
            dt.timedelta(days=365),
            True,
            dt.datetime(2024, 1, 2, 3, 4, 5, 678901, utc),
            "10.0.0.1",
            ["red", "sale"],
        ),
        (
            "Chair",
            "0.00",
            {"color": "blue", "size": 2, "tags": ["a", "b"]},
            dt.timedelta(days=30, hours=12, microseconds=1),
            False,
            dt.datetime(2023, 12, 31, 23, 59, 59, 999999, utc),
            "2001:db8::1",
            ["sale"],
        ),
        (
            "Desk",
            "99999999.99",
            {"color": "red", "size": 120, "note": "ünïcode ✓"},
            dt.timedelta(seconds=90),
            True,
            dt.datetime(2024, 6, 30, 12, 0, 0, 0, utc),
            None,
            ["red", "ünïcode"],
        ),
        (
            "Rug",
            "7.05",
            {},
            None,
            True,
            dt.datetime(2022, 2, 28, 0, 0, 0, 1, utc),
            "192.168.1.254",
            [],
        ),
        (
            "Vase",
            "0.01",
            {"color": None, "size": -1.5, "dims": {"w": 3}},
            dt.timedelta(days=-1, seconds=3600),
            False,
            dt.datetime(2024, 1, 2, 3, 4, 5, 0, utc),
            "::ffff:10.0.0.1",
            ["red"],
        ),
    ]
    for n, (name, price, attrs, warranty, in_stock, added, ip, tag_names) in enumerate(rows):
        p = Product.objects.create(
            sku=sku(n),
            name=name,
            price=Decimal(price),
            attributes=attrs,
            warranty=warranty,
            in_stock=in_stock,
            added_at=added,
            server_ip=ip,
        )
        p.tags.set([tags[t] for t in tag_names])
    return {"products": len(rows)}


def _ids(rows: Iterable[Any]) -> list[int]:
    return [r.pk for r in rows]


def _micro(d: dt.timedelta | None) -> int | None:
    return None if d is None else d // dt.timedelta(microseconds=1)


def snapshot() -> dict[str, Any]:
    """What the app's queries return: the same on SQLite and on PostgreSQL, or a bug."""
    from django.contrib.auth.models import User
    from django.db.models import DateTimeField, DurationField, ExpressionWrapper, F, Sum

    from tests.orm.djangoapp.shop.models import Product, Tag

    products = Product.objects.order_by("pk")
    ends = products.annotate(
        ends=ExpressionWrapper(F("added_at") + F("warranty"), output_field=DateTimeField()),
        longer=ExpressionWrapper(
            F("warranty") + dt.timedelta(hours=1), output_field=DurationField()
        ),
    )
    return {
        "products": [
            [
                p.pk,
                str(p.sku),
                p.name,
                str(p.price),
                p.attributes,
                _micro(p.warranty),
                p.in_stock,
                p.added_at.isoformat(),
                p.server_ip,
            ]
            for p in products
        ],
        "json_key": _ids(products.filter(attributes__color="red")),
        "json_key_null": _ids(products.filter(attributes__color=None)),
        "json_number_gte": _ids(products.filter(attributes__size__gte=10)),
        "json_nested": _ids(products.filter(attributes__dims__w=3)),
        "json_has_key": _ids(products.filter(attributes__has_key="tags")),
        "json_values": list(products.values_list("attributes__color", flat=True)),
        "uuid_get": Product.objects.get(sku=sku(2)).name,
        "uuid_in": _ids(products.filter(sku__in=[sku(0), sku(4), uuid.uuid4()])),
        "duration_gte": _ids(products.filter(warranty__gte=dt.timedelta(days=30))),
        "duration_lt_zero": _ids(products.filter(warranty__lt=dt.timedelta(0))),
        "duration_ends": [
            [p.pk, None if p.ends is None else p.ends.isoformat(), _micro(p.longer)] for p in ends
        ],
        "duration_sum": _micro(Product.objects.aggregate(s=Sum("warranty"))["s"]),
        "within_warranty": _ids(
            products.filter(added_at__gte=F("added_at") - F("warranty") + dt.timedelta(days=1))
        ),
        # SQLite sums the stored REALs (100000019.550000), PostgreSQL numerics: the app
        # reads both as the field's two places.
        "decimal_sum": str(Product.objects.aggregate(s=Sum("price"))["s"].quantize(CENT)),
        "decimal_gt": _ids(products.filter(price__gt=Decimal("10.00"))),
        "ip_exact": _ids(products.filter(server_ip="10.0.0.1")),
        "ipv6": _ids(products.filter(server_ip="2001:db8::1")),
        "bool": _ids(products.filter(in_stock=True)),
        "year": _ids(products.filter(added_at__year=2024)),
        "date": _ids(products.filter(added_at__date=dt.date(2024, 1, 2))),
        "m2m": {t.name: _ids(t.products.order_by("pk")) for t in Tag.objects.order_by("name")},
        "tagged_red_and_sale": _ids(products.filter(tags__name="red").filter(tags__name="sale")),
        "users": [
            [u.pk, u.username, u.is_superuser, u.has_usable_password(), u.date_joined.isoformat()]
            for u in User.objects.order_by("pk")
        ],
    }


def prove() -> dict[str, Any]:
    """What only the migrated database must show: logins work, new rows get fresh ids."""
    from django.contrib.auth import authenticate
    from django.contrib.auth.models import User

    from tests.orm.djangoapp.shop.models import Product, Tag

    def uid(user: Any) -> int | None:
        return None if user is None else int(user.pk)

    logins = {name: uid(authenticate(username=name, password=pw)) for name, pw in PASSWORDS.items()}
    old = {
        "product": max(p.pk for p in Product.objects.all()),
        "tag": max(t.pk for t in Tag.objects.all()),
        "user": max(u.pk for u in User.objects.all()),
        "through": max(r.pk for r in Product.tags.through.objects.all()),
    }
    tag = Tag.objects.create(name="new")
    product = Product.objects.create(
        sku=uuid.uuid4(),
        name="New",
        price=Decimal("1.00"),
        attributes={"color": "green"},
        warranty=dt.timedelta(days=1),
        added_at=dt.datetime.now(dt.UTC),
        server_ip="10.9.8.7",
    )
    product.tags.add(tag)
    user = User.objects.create_user("dave", "dave@example.com", "a new password!")
    new = {
        "product": product.pk,
        "tag": tag.pk,
        "user": user.pk,
        "through": Product.tags.through.objects.get(product=product, tag=tag).pk,
    }
    return {
        "logins": logins,
        "wrong_password": uid(authenticate(username="alice", password="wrong")),
        "passwordless": uid(authenticate(username="carol", password="")),
        "new_user_login": uid(authenticate(username="dave", password="a new password!")),
        "old_max_ids": old,
        "new_ids": new,
    }


STEPS: dict[str, Callable[[], dict[str, Any]]] = {
    "migrate": migrate,
    "migrate-check": migrate_check,
    "fill": fill,
    "snapshot": snapshot,
    "prove": prove,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True, help="Django DATABASES['default'] as JSON")
    parser.add_argument("--release", type=int, choices=(1, 2), default=1)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("steps", nargs="+", choices=sorted(STEPS))
    args = parser.parse_args()
    configure(json.loads(args.db), args.release)
    results = {step: STEPS[step]() for step in args.steps}
    args.out.write_text(json.dumps(results, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
