"""Tests written for survivors of the mutation run over transforms/passwords.py
(tests/mutation): each pins a behaviour that a one-token change to the module let through."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import argon2
import bcrypt
import pytest

from lite2pg.errors import PlanError
from lite2pg.transforms.passwords import (
    CacheReader,
    PasswordHasher,
    PasswordPolicy,
    hash_password,
    parse_policy,
    verify_password,
)

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


@pytest.mark.parametrize(
    ("memory_cost", "parallelism"), [(32, 4), (31, 4), (8, 1), (7, 1), (64, 8)]
)
def test_argon2_options_are_refused_exactly_when_argon2_itself_refuses_them(
    memory_cost: int, parallelism: int
) -> None:
    options = {"memory_cost": memory_cost, "parallelism": parallelism, "time_cost": 1}
    try:
        argon2.PasswordHasher(time_cost=1, memory_cost=memory_cost, parallelism=parallelism).hash(
            "x"
        )
        theirs = True
    except argon2.exceptions.HashingError:
        theirs = False
    try:
        parse_policy(options, "tables.users.columns.password.hash_password")
        ours = True
    except PlanError:
        ours = False
    assert ours is theirs


def test_one_worker_hashes_in_this_process_and_starts_no_other() -> None:
    with PasswordHasher(FAST_ARGON2, workers=1) as hasher:
        hasher.start()
        [(_, result)] = list(hasher.hash_many([(1, "hunter2")]))
        assert multiprocessing.active_children() == []
    stored = result.unwrap()
    assert stored is not None and argon2.PasswordHasher().verify(stored, "hunter2")


def test_a_prehashed_long_bcrypt_password_logs_in_with_every_byte_and_only_with_it() -> None:
    policy = PasswordPolicy(algorithm="bcrypt", cost=4, long="prehash")
    long = "correct horse battery staple " * 4  # 116 bytes, past bcrypt's 72
    stored = hash_password(policy, long)
    assert isinstance(stored, str) and bcrypt.checkpw(b"x", stored.encode()) is False
    assert verify_password(policy, long, stored)
    assert not verify_password(policy, long[:-1] + "!", stored)  # same first 72 bytes
    short = hash_password(policy, "hunter2")
    assert isinstance(short, str) and bcrypt.checkpw(b"hunter2", short.encode())
    assert verify_password(policy, "hunter2", short)


def test_an_argon2id_hash_verifies_with_its_password_and_not_another() -> None:
    stored = argon2.PasswordHasher(time_cost=1, memory_cost=64).hash("hunter2")
    assert verify_password(FAST_ARGON2, "hunter2", stored)
    assert not verify_password(FAST_ARGON2, "hunter3", stored)
    assert not verify_password(FAST_ARGON2, "hunter2", "not a hash")


def test_the_hasher_uses_every_core_unless_told_otherwise() -> None:
    with PasswordHasher(FAST_ARGON2) as hasher:
        assert hasher.workers == (os.cpu_count() or 1)
    with PasswordHasher(FAST_ARGON2, workers=3) as hasher:
        assert hasher.workers == 3
