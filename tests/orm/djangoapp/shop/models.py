"""Models whose SQLite storage differs from their PostgreSQL storage.

JSONField (text + JSON_VALID check vs jsonb), UUIDField (32 hex chars vs uuid),
DurationField (bigint microseconds vs interval), DecimalField (NUMERIC affinity vs
numeric(p,s)), GenericIPAddressField (char(39) vs inet), BooleanField (0/1 vs boolean),
an aware DateTimeField (naive UTC text vs timestamptz), a ManyToMany, and a named check and
unique constraint that release 2 of the app drops by name.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

# Release 2 of the app drops both named constraints (migration 0002).
_RELEASE: int = getattr(settings, "SHOP_RELEASE", 2)


class Tag(models.Model):
    name = models.CharField(max_length=40, unique=True)


class Product(models.Model):
    sku = models.UUIDField(unique=True)
    name = models.CharField(max_length=100)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    attributes = models.JSONField(default=dict)
    warranty = models.DurationField(null=True)
    in_stock = models.BooleanField(default=True)
    added_at = models.DateTimeField()
    server_ip = models.GenericIPAddressField(null=True)
    tags = models.ManyToManyField(Tag, related_name="products")

    class Meta:
        constraints = (
            [
                models.CheckConstraint(
                    condition=models.Q(price__gte=0), name="shop_product_price_not_negative"
                ),
                models.UniqueConstraint(fields=["name", "added_at"], name="shop_product_once"),
            ]
            if _RELEASE < 2
            else []
        )
