"""Tests written for survivors of the mutation run over transforms/passwords.py
(tests/mutation): each pins a behaviour that a one-token change to the module let through."""

from __future__ import annotations

from pathlib import Path

import argon2

from lite2pg.transforms.passwords import CacheReader, PasswordHasher, PasswordPolicy

FAST_ARGON2 = PasswordPolicy(time_cost=1, memory_cost=64)


def test_verify_reads_a_cached_hash_only_for_its_plaintext_and_its_policy(tmp_path: Path) -> None:
    with PasswordHasher(FAST_ARGON2, run_dir=tmp_path, scope="users.password", workers=1) as h:
        [(_, result)] = list(h.hash_many([(7, "hunter2")]))
    made = result.unwrap()
    assert made is not None
    reader = CacheReader.open(tmp_path)
    assert reader is not None
    try:
        stored = reader.lookup("users.password", repr(7), "hunter2", FAST_ARGON2)
        assert stored == made
        assert argon2.PasswordHasher().verify(stored, "hunter2")  # argon2's own parser
        assert reader.lookup("users.password", repr(7), "hunter3", FAST_ARGON2) is None
        assert reader.lookup("users.password", repr(8), "hunter2", FAST_ARGON2) is None
        assert reader.lookup("users.pin", repr(7), "hunter2", FAST_ARGON2) is None
        costlier = PasswordPolicy(time_cost=2, memory_cost=64)
        assert reader.lookup("users.password", repr(7), "hunter2", costlier) is None
    finally:
        reader.close()
