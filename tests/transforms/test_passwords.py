from __future__ import annotations

import base64
import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import argon2
import bcrypt
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from lite2pg.errors import PlanError, TransformError
from lite2pg.transforms import compile_chain
from lite2pg.transforms.passwords import (
    CACHE_FILE,
    KEY_FILE,
    HashResult,
    PasswordHasher,
    PasswordPolicy,
    hash_password,
    is_hash,
    parse_policy,
)

# Cheap parameters: the format and the verification are what these tests are about.
FAST_ARGON2 = PasswordPolicy(time_cost=1, memory_cost=64)
FAST_BCRYPT = PasswordPolicy(algorithm="bcrypt", cost=4)

SECRET = "S3cret-hunter2-plaintext"


def verify_argon2(hashed: str, password: str) -> bool:
    try:
        return argon2.PasswordHasher().verify(hashed, password)
    except argon2.exceptions.VerifyMismatchError:
        return False


def must_hash(policy: PasswordPolicy, value: object) -> str:
    result = hash_password(policy, value)
    assert isinstance(result, str)
    return result


def reason(policy: PasswordPolicy, value: object) -> str:
    with pytest.raises(TransformError) as caught:
        hash_password(policy, value)
    return caught.value.reason


def ab64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=").replace("+", ".")


# --- hashing ---------------------------------------------------------------------------


def test_default_policy_is_argon2id_at_owasp_minimum_and_verifies() -> None:
    hashed = must_hash(PasswordPolicy(), SECRET)
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert verify_argon2(hashed, SECRET)
    assert not verify_argon2(hashed, SECRET + "x")


def test_argon2_parameters_come_from_the_options() -> None:
    hashed = must_hash(FAST_ARGON2, "pw")
    assert hashed.startswith("$argon2id$v=19$m=64,t=1,p=1$")
    assert verify_argon2(hashed, "pw")


def test_bcrypt_hashes_verify_with_the_bcrypt_library() -> None:
    hashed = must_hash(FAST_BCRYPT, "pässword")
    assert hashed.startswith("$2b$04$")
    assert bcrypt.checkpw("pässword".encode(), hashed.encode())


def test_bcrypt_rejects_passwords_over_72_bytes_by_default() -> None:
    long = "é" * 37  # 74 bytes
    assert reason(FAST_BCRYPT, long) == (
        'hash_password: longer than bcrypt\'s 72 bytes (set long = "prehash", or use argon2id)'
    )
    assert bcrypt.checkpw(b"x" * 72, must_hash(FAST_BCRYPT, "x" * 72).encode())


def test_bcrypt_prehash_follows_the_documented_verification_rule() -> None:
    policy = PasswordPolicy(algorithm="bcrypt", cost=4, long="prehash")
    long = "correct horse battery staple " * 4
    hashed = must_hash(policy, long).encode()

    def app_verify(password: str) -> bool:  # as in the passwords.py docstring
        candidate = password.encode("utf-8")
        if len(candidate) > 72:
            candidate = base64.b64encode(hashlib.sha256(candidate).digest())
        return bcrypt.checkpw(candidate, hashed)

    assert app_verify(long)
    assert not app_verify(long[:72])  # never silently truncated
    assert not app_verify(long + "!")
    short = must_hash(policy, "short").encode()
    assert bcrypt.checkpw(b"short", short)  # short ones are plain bcrypt


def test_argon2_has_no_length_limit() -> None:
    long = "x" * 1000
    assert verify_argon2(must_hash(FAST_ARGON2, long), long)


def test_an_integer_password_is_hashed_as_its_text_and_a_real_is_rejected() -> None:
    assert verify_argon2(must_hash(FAST_ARGON2, 1234), "1234")
    assert reason(FAST_ARGON2, 12.5) == "hash_password: a REAL value cannot be a password"
    assert verify_argon2(must_hash(FAST_ARGON2, b"pw"), "pw")


# --- values that already are hashes ----------------------------------------------------

EXISTING = [
    argon2.PasswordHasher(time_cost=1, memory_cost=64).hash("pw"),
    argon2.PasswordHasher(time_cost=1, memory_cost=64, type=argon2.Type.I).hash("pw"),
    bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode(),
    bcrypt.hashpw(b"pw", bcrypt.gensalt(4, prefix=b"2a")).decode(),
    "$2y$10$" + bcrypt.hashpw(b"pw", bcrypt.gensalt(10)).decode()[7:],
    "$6$saltsalt$8iYtNHxjWRl.NF6oNZ5tF.iKFlQREaXBLlSmZKP6dy9l5z3vsooWNW0/GZ6Nej73/TFug6pIPSqbJoCT6dfnj.",
    "$5$saltsalt$OIdfjX.u4Y3SJ4I2bX8w5BMf1VAUhHABNUirScDzZi3",
    "$5$rounds=10000$saltsalt$OIdfjX.u4Y3SJ4I2bX8w5BMf1VAUhHABNUirScDzZi3",
    "$1$saltsalt$ZliGyAN3DciDHEkDboonh/",
    "$pbkdf2-sha256$29000$"
    + ab64(b"0123456789abcdef")
    + "$"
    + ab64(hashlib.pbkdf2_hmac("sha256", b"pw", b"0123456789abcdef", 29000)),
    "$scrypt$ln=4,r=8,p=1$"
    + ab64(b"0123456789abcdef")
    + "$"
    + ab64(hashlib.scrypt(b"pw", salt=b"0123456789abcdef", n=16, r=8, p=1)),
]


# Ids name the scheme, never the salt: they must be the same in every process that
# collects them (pytest-xdist's workers compare their lists).
@pytest.mark.parametrize(
    "existing", EXISTING, ids=[f"{i}-{h.split('$')[1]}" for i, h in enumerate(EXISTING)]
)
def test_existing_hashes_are_kept_not_hashed_twice(existing: str) -> None:
    assert is_hash(existing)
    assert hash_password(FAST_ARGON2, existing) == existing
    assert hash_password(FAST_BCRYPT, existing) == existing


@pytest.mark.parametrize(
    "lookalike",
    [
        "$argon2id$",
        "$argon2id$v=19$m=19456,t=2,p=1$short$hash",
        "$2b$12$tooShort",
        "$2b$03$" + "a" * 53,  # cost below bcrypt's minimum
        "$2b$12$" + "a" * 52 + "!",
        "$6$salt$" + "a" * 85,
        "$1$saltsalt$ZliGyAN3DciDHEkDboonh/ trailing",
        "$pbkdf2-sha256$abc$salt$" + "a" * 43,
        "$unknown$salt$" + "a" * 43,
    ],
)
def test_lookalike_hashes_are_plaintext_and_get_hashed(lookalike: str) -> None:
    assert not is_hash(lookalike)
    hashed = must_hash(FAST_ARGON2, lookalike)
    assert hashed != lookalike
    assert verify_argon2(hashed, lookalike)


@given(st.one_of(st.text(), st.sampled_from(EXISTING).map(lambda h: h[:-1])))
@example(EXISTING[0])
@example(EXISTING[2])
def test_a_text_is_taken_for_a_hash_only_when_its_schemes_own_library_reads_it(
    text: str,
) -> None:
    """The oracle is each scheme's library, not the patterns under test: whatever is_hash
    takes for an argon2 or bcrypt hash, argon2-cffi and bcrypt parse; a hash of a
    fixed-length scheme (bcrypt, the crypt family) cut short is never taken for one."""
    taken = is_hash(text)
    assert taken is (taken and text.startswith("$"))
    if taken and text.startswith("$argon2"):
        argon2.extract_parameters(text)  # raises InvalidHashError on a malformed hash
    if taken and text.startswith("$2"):
        bcrypt.checkpw(b"not the password", text.replace("$2y$", "$2b$").encode())
    fixed = ("$2", "$1$", "$5$", "$6$")
    if any(text == h[:-1] for h in EXISTING if h.startswith(fixed)):
        assert not taken


# --- empty values ----------------------------------------------------------------------


@pytest.mark.parametrize("empty", [None, ""])
def test_empty_passwords_are_rejected_by_default(empty: object) -> None:
    assert reason(FAST_ARGON2, empty) == (
        'hash_password: empty password (set empty = "null" or "unusable")'
    )


def test_empty_passwords_can_become_null() -> None:
    policy = PasswordPolicy(time_cost=1, memory_cost=64, empty="null")
    assert hash_password(policy, "") is None
    assert hash_password(policy, None) is None


def test_unusable_values_match_no_password_and_differ_per_row() -> None:
    policy = PasswordPolicy(time_cost=1, memory_cost=64, empty="unusable")
    first, second = must_hash(policy, ""), must_hash(policy, None)
    assert first.startswith("!") and len(first) == 23 and first != second
    assert not is_hash(first)
    with pytest.raises(argon2.exceptions.InvalidHashError):
        argon2.PasswordHasher().verify(first, "")
    with pytest.raises(ValueError):
        bcrypt.checkpw(b"", first.encode())


def test_a_password_of_spaces_is_hashed_not_treated_as_empty() -> None:
    assert verify_argon2(must_hash(FAST_ARGON2, "   "), "   ")


# --- options ---------------------------------------------------------------------------


def test_hash_password_options_are_checked() -> None:
    assert parse_policy(True, "k") == PasswordPolicy()
    assert parse_policy({"algorithm": "bcrypt"}, "k").cost == 12
    with pytest.raises(PlanError, match="did you mean 'argon2id'"):
        parse_policy({"algorithm": "argon2"}, "k")
    with pytest.raises(PlanError, match="bcrypt takes `cost`"):
        parse_policy({"algorithm": "bcrypt", "time_cost": 3}, "k")
    with pytest.raises(PlanError, match="only bcrypt has a length limit"):
        parse_policy({"long": "prehash"}, "k")
    with pytest.raises(PlanError, match="at least 4"):
        parse_policy({"algorithm": "bcrypt", "cost": 3}, "k")
    with pytest.raises(PlanError, match="did you mean 'unusable'"):
        parse_policy({"empty": "unusabel"}, "k")


# --- secrets stay secret ---------------------------------------------------------------


def leaks(text: str, plaintext: str = SECRET) -> bool:
    digest = hashlib.sha256(plaintext.encode()).digest()
    return any(
        needle in text
        for needle in (plaintext, digest.hex(), base64.b64encode(digest).decode()[:20])
    )


def test_reasons_never_contain_the_password() -> None:
    chain = compile_chain([{"map": {"values": {"a": "b"}}}, "hash_password"])
    with pytest.raises(TransformError) as caught:
        chain(SECRET)
    assert not leaks(str(caught.value)) and not leaks(repr(caught.value))
    long = SECRET * 5
    with pytest.raises(TransformError) as caught:
        hash_password(FAST_BCRYPT, long)
    assert not leaks(str(caught.value), long) and "72 bytes" in str(caught.value)


def test_reprs_of_the_hasher_and_its_results_are_redacted(tmp_path: Path) -> None:
    with PasswordHasher(FAST_ARGON2, run_dir=tmp_path, workers=1) as hasher:
        [(_, result)] = list(hasher.hash_many([(1, SECRET)]))
        assert result.value is not None
        for text in (repr(result), repr(hasher), str(hasher), repr(hasher.stats)):
            assert not leaks(text) and result.value not in text
        assert repr(result) == "HashResult(source='hashed', value=<redacted>)"
    rejected = HashResult(None, "rejected", TransformError("hash_password: x"))
    assert repr(rejected) == "HashResult(source='rejected', reason='hash_password: x')"


# --- the streaming hasher --------------------------------------------------------------


def mixed_rows(n: int) -> list[tuple[int, object]]:
    rows: list[tuple[int, object]] = []
    for i in range(n):
        value: object = f"password-{i}"
        if i % 7 == 3:
            value = ""
        elif i % 11 == 5:
            value = EXISTING[0]
        rows.append((i, value))
    return rows


def test_hash_many_uses_worker_processes_and_keeps_the_input_order() -> None:
    policy = PasswordPolicy(time_cost=1, memory_cost=64, empty="unusable")
    rows = mixed_rows(40)
    with PasswordHasher(policy, workers=2, chunk_size=3) as hasher:
        results = list(hasher.hash_many(iter(rows)))
        assert hasher._pool is not None  # the work went to worker processes
    assert [key for key, _ in results] == [key for key, _ in rows]
    for (_, value), (_, result) in zip(rows, results, strict=True):
        stored = result.unwrap()
        assert stored is not None
        if value == "":
            assert result.source == "empty" and stored.startswith("!")
        elif value == EXISTING[0]:
            assert result.source == "kept" and stored == value
        else:
            assert result.source == "hashed" and verify_argon2(stored, str(value))
    assert hasher.stats.hashed + hasher.stats.empty + hasher.stats.kept == 40


def test_hash_many_reports_rejections_in_place_without_stopping() -> None:
    rows: list[tuple[str, object]] = [("a", "pw"), ("b", ""), ("c", "pw2")]
    with PasswordHasher(FAST_ARGON2, workers=1) as hasher:
        results = dict(hasher.hash_many(rows))
    assert results["b"].source == "rejected"
    with pytest.raises(TransformError, match="empty password"):
        results["b"].unwrap()
    assert verify_argon2(str(results["c"].value), "pw2")
    assert hasher.stats.rejected == 1


def test_hash_many_reads_its_input_lazily_with_a_bounded_window() -> None:
    pulled = 0

    def rows() -> Iterator[tuple[int, str]]:
        nonlocal pulled
        for i in range(1000):
            pulled += 1
            yield i, f"pw{i}"

    with PasswordHasher(FAST_ARGON2, workers=2, chunk_size=2, max_in_flight=3) as hasher:
        stream = hasher.hash_many(rows())
        first = next(stream)
        assert first[0] == 0
        assert pulled <= (3 + 1) * 2
        del stream


# --- the cache -------------------------------------------------------------------------


def test_a_repeated_run_hashes_only_changed_passwords(tmp_path: Path) -> None:
    rows = [(i, f"password-{i}") for i in range(12)]
    with PasswordHasher(FAST_ARGON2, run_dir=tmp_path, scope="users.password", workers=1) as h:
        first = dict(h.hash_many(rows))
    assert h.stats.hashed == 12

    with PasswordHasher(FAST_ARGON2, run_dir=tmp_path, scope="users.password", workers=1) as h:
        second = dict(h.hash_many(rows))
    assert h.stats.hashed == 0 and h.stats.cached == 12
    assert {k: r.value for k, r in second.items()} == {k: r.value for k, r in first.items()}

    rows[4] = (4, "a new password")
    with PasswordHasher(FAST_ARGON2, run_dir=tmp_path, scope="users.password", workers=1) as h:
        third = dict(h.hash_many(rows))
    assert (h.stats.hashed, h.stats.cached) == (1, 11)
    assert verify_argon2(str(third[4].value), "a new password")


def test_the_cache_is_per_scope_and_per_policy(tmp_path: Path) -> None:
    rows = [(1, "pw")]
    with PasswordHasher(FAST_ARGON2, run_dir=tmp_path, scope="a", workers=1) as h:
        list(h.hash_many(rows))
    with PasswordHasher(FAST_ARGON2, run_dir=tmp_path, scope="b", workers=1) as h:
        list(h.hash_many(rows))
    assert h.stats.hashed == 1
    stronger = PasswordPolicy(time_cost=2, memory_cost=64)
    with PasswordHasher(stronger, run_dir=tmp_path, scope="a", workers=1) as h:
        [(_, result)] = list(h.hash_many(rows))
    assert h.stats.hashed == 1 and "t=2" in str(result.value)


def test_cache_files_are_private_from_creation_and_hold_no_plaintext(tmp_path: Path) -> None:
    old_umask = os.umask(0)  # even a permissive umask must not widen the files
    try:
        with PasswordHasher(FAST_ARGON2, run_dir=tmp_path / "run", workers=1) as hasher:
            list(hasher.hash_many([(1, SECRET)]))
    finally:
        os.umask(old_umask)
    run = tmp_path / "run"
    assert stat.S_IMODE((run / KEY_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE((run / CACHE_FILE).stat().st_mode) == 0o600
    for path in run.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert not leaks(path.read_bytes().decode("latin-1")), path


def test_a_cache_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    key = tmp_path / KEY_FILE
    key.write_bytes(os.urandom(32))
    key.chmod(0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        PasswordHasher(FAST_ARGON2, run_dir=tmp_path)


def test_a_damaged_cache_key_is_refused(tmp_path: Path) -> None:
    key = tmp_path / KEY_FILE
    key.write_bytes(b"short")
    key.chmod(0o600)
    with pytest.raises(ValueError, match="not a lite2pg cache key"):
        PasswordHasher(FAST_ARGON2, run_dir=tmp_path)
