"""Release 1's first migration is the app's first migration (the same module)."""

from __future__ import annotations

import importlib

Migration = importlib.import_module("tests.orm.djangoapp.shop.migrations.0001_initial").Migration
