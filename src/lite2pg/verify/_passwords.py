"""Password columns: what a row's column must hold, whether the stored value is that, and
a seeded reservoir sample of hashes verified again against their plaintext at the end."""

from __future__ import annotations

import collections
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lite2pg.transforms.passwords import PasswordPolicy, is_unusable, verify_password

# How each kind of expectation is counted in the report's "passwords" section.
_CHECKED_AS = {"unusable": "unusable", "hash": "cached hash", "plain": "verified by hashing"}


@dataclass
class _Password:
    """What a password column must hold for one row (never shown: no repr of values)."""

    kind: str  # "hash" (the run's cached hash), "plain" (check by hashing), "unusable"
    policy: PasswordPolicy
    hash: str | None = None
    plaintext: str | None = None

    def __repr__(self) -> str:
        return f"_Password({self.kind})"


def _password_matches(e: _Password, stored: Any) -> bool:
    """Whether the stored value is what `e` says the column must hold."""
    if e.kind == "unusable":
        return is_unusable(stored)
    if e.kind == "hash":
        return bool(stored == e.hash)
    return isinstance(stored, str) and verify_password(e.policy, e.plaintext or "", stored)


class _PasswordChecks:
    """Checks one job's password values, counting per column, and keeps a reservoir sample
    of (plaintext, stored hash) to verify again by hashing at the end."""

    def __init__(
        self,
        stats: dict[str, collections.Counter[str]],
        hashed: Sequence[tuple[int, str, PasswordPolicy]],
        sample: int,
        seed: str,
    ) -> None:
        self.stats = stats
        self.hashed = hashed
        self.sample = sample
        self.rng = random.Random(seed)
        self.samples: list[tuple[_Password, str]] = []
        self.seen = 0

    def check(self, column: str, e: _Password, stored: Any) -> bool:
        stats = self.stats.setdefault(column, collections.Counter())
        ok = _password_matches(e, stored)
        stats[_CHECKED_AS[e.kind]] += 1
        if not ok:
            stats["wrong"] += 1
        elif e.plaintext is not None and isinstance(stored, str) and self.sample > 0:
            self.seen += 1
            if len(self.samples) < self.sample:
                self.samples.append((e, stored))
            else:
                k = self.rng.randrange(self.seen)
                if k < self.sample:
                    self.samples[k] = (e, stored)
        return ok

    def verify_samples(self) -> None:
        for e, stored in self.samples:
            assert e.plaintext is not None
            ok = verify_password(e.policy, e.plaintext, stored)
            column = next((c for _p, c, pol in self.hashed if pol is e.policy), "password")
            stats = self.stats.setdefault(column, collections.Counter())
            stats["sampled"] += 1
            if not ok:
                stats["sample failed"] += 1
        self.samples.clear()
