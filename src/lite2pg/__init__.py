"""lite2pg: move a live application's SQLite data into PostgreSQL, proven row by row."""

from __future__ import annotations

from lite2pg.errors import (
    Lite2pgError,
    PlanError,
    SchemaError,
    SourceError,
    TargetError,
    TransformError,
)

__all__ = [
    "Lite2pgError",
    "PlanError",
    "SchemaError",
    "SourceError",
    "TargetError",
    "TransformError",
]
