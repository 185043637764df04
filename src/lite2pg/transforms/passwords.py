"""The `hash_password` transform: plaintext passwords -> standard PHC / modular-crypt hashes.

Options (`hash_password = { ... }`, or `hash_password = true` for all defaults):

* `algorithm = "argon2id"` (default; argon2-cffi) at OWASP's minimum: `memory_cost = 19456`
  (KiB, i.e. 19 MiB), `time_cost = 2`, `parallelism = 1`; or `"bcrypt"` with `cost = 12`.
  Output such as `$argon2id$v=19$m=19456,t=2,p=1$...` or `$2b$12$...`, which argon2-cffi,
  passlib, libsodium, bcrypt, Spring Security, PHP's password_verify... all verify.
* A value that already is a well-formed hash (argon2, bcrypt, pbkdf2, scrypt, sha256-crypt,
  sha512-crypt, yescrypt, md5-crypt; see `is_hash`) is kept as it is, never hashed twice.
* `empty = "reject" | "null" | "unusable"` for NULL and '' (a password of spaces is a
  password and is hashed): reject the row (default), store NULL, or store an *unusable*
  value: "!" followed by 22 random URL-safe characters. No password verifies against it:
  it is not a hash at all, so verifiers refuse it (argon2-cffi raises InvalidHashError,
  bcrypt.checkpw raises ValueError), and the application must treat that as "no password
  set", i.e. a failed login that only a password reset can fix (the `!` convention of
  /etc/shadow locked accounts).
* `long = "reject" | "prehash"`, for bcrypt only, whose input stops at 72 bytes. Nothing is
  ever silently truncated: a longer password rejects the row (default), or with "prehash"
  is hashed as bcrypt(base64(sha256(utf8(password)))) - the approach of Dropbox and of
  passlib's bcrypt_sha256, without its HMAC key. Only passwords longer than 72 bytes are
  prehashed, so the application verifies with::

      candidate = password.encode("utf-8")
      if len(candidate) > 72:
          candidate = base64.b64encode(hashlib.sha256(candidate).digest())
      ok = bcrypt.checkpw(candidate, stored_hash.encode("ascii"))

  and must apply the same rule when it sets a new password.

Passwords are hashed as the UTF-8 bytes of the text exactly as stored (no trimming, no
Unicode normalisation). An INTEGER password is hashed as its decimal text; a REAL one is
rejected (its original text cannot be recovered). No reason, repr or log line ever holds
the value or any hash of it.

`PasswordHasher` hashes a stream of values across all cores, with an optional cache so a
repeated run only hashes the rows whose password changed.
"""

from __future__ import annotations

import base64
import collections
import concurrent.futures
import dataclasses
import functools
import hashlib
import hmac
import itertools
import multiprocessing
import os
import re
import secrets
import sqlite3
import stat
import types
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Generic, Literal, TypeVar

import argon2
import bcrypt

from lite2pg.errors import PlanError, TransformError
from lite2pg.reasons import Category
from lite2pg.transforms._common import Transform, kind, table
from lite2pg.workers import deferred_interrupts, ignore_interrupts

K = TypeVar("K")

BCRYPT_MAX_BYTES = 72

# Base64 alphabets: PHC strings use the standard one without padding; crypt(3) formats
# use "./0-9A-Za-z"; passlib's pbkdf2/scrypt use standard base64 with "+" written as ".".
_B64 = "[A-Za-z0-9+/]"
_CRYPT64 = "[A-Za-z0-9./]"
_ANY64 = "[A-Za-z0-9+/.]"
_SALT = r"[^$:\s]"
_HASH_FORMATS = [
    # argon2 (PHC): $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>; v= is absent in v1.0 hashes.
    rf"\$argon2(?:id|i|d)\$(?:v=[0-9]{{1,3}}\$)?m=[0-9]{{1,10}},t=[0-9]{{1,10}},p=[0-9]{{1,3}}"
    rf"(?:,keyid={_B64}+)?(?:,data={_B64}+)?\${_B64}{{11,}}\${_B64}{{6,}}",
    # bcrypt: $2b$<cost 04-31>$<22 salt chars><31 hash chars>
    rf"\$2[abxy]\$(?:0[4-9]|[12][0-9]|3[01])\${_CRYPT64}{{53}}",
    # pbkdf2, passlib ($pbkdf2-sha256$29000$...) and PHC ($pbkdf2-sha256$i=1000,l=32$...)
    rf"\$pbkdf2(?:-sha(?:1|256|512))?\$(?:[0-9]{{1,10}}|i=[0-9]{{1,10}}(?:,l=[0-9]{{1,4}})?)"
    rf"\${_ANY64}*\${_ANY64}{{27,}}",
    # scrypt, passlib / PHC: $scrypt$ln=16,r=8,p=1$<salt>$<hash>
    rf"\$scrypt\$(?:v=1\$)?ln=[0-9]{{1,2}},r=[0-9]{{1,4}},p=[0-9]{{1,4}}\${_ANY64}*\${_ANY64}{{27,}}",
    # sha256-crypt and sha512-crypt (glibc): $5$[rounds=N$]<salt>$<hash>
    rf"\$5\$(?:rounds=[0-9]{{1,9}}\$)?{_SALT}{{0,16}}\${_CRYPT64}{{43}}",
    rf"\$6\$(?:rounds=[0-9]{{1,9}}\$)?{_SALT}{{0,16}}\${_CRYPT64}{{86}}",
    # yescrypt (today's Linux /etc/shadow default): $y$<params>$<salt>$<hash>
    rf"\$y\${_CRYPT64}+\${_CRYPT64}*\${_CRYPT64}{{43}}",
    # md5-crypt: weak, but hashing it again would lock its user out; the app should rehash
    # such a password at the next successful login.
    rf"\$1\${_SALT}{{0,8}}\${_CRYPT64}{{22}}",
]
_HASH = re.compile("|".join(f"(?:{f})" for f in _HASH_FORMATS), re.ASCII)


def is_hash(value: str) -> bool:
    """Whether `value` is a well-formed password hash of a known scheme (not just its prefix)."""
    return value.startswith("$") and _HASH.fullmatch(value) is not None


def unusable() -> str:
    """A stored value no password verifies against: "!" and 22 random characters."""
    return "!" + secrets.token_urlsafe(16)


Algorithm = Literal["argon2id", "bcrypt"]
EmptyPolicy = Literal["reject", "null", "unusable"]
LongPolicy = Literal["reject", "prehash"]


@dataclasses.dataclass(frozen=True)
class PasswordPolicy:
    """How to hash: algorithm and cost, and what to do with empty and over-long values."""

    algorithm: Algorithm = "argon2id"
    time_cost: int = 2  # argon2: OWASP minimum with 19 MiB
    memory_cost: int = 19456  # argon2: KiB (19 MiB)
    parallelism: int = 1  # argon2 lanes; 1 because we already use every core for rows
    cost: int = 12  # bcrypt: log2 rounds
    empty: EmptyPolicy = "reject"
    long: LongPolicy = "reject"

    def fingerprint(self) -> str:
        """What identifies the hashes this policy makes (the cache drops others)."""
        if self.algorithm == "bcrypt":
            return f"bcrypt:{self.cost}:{self.long}"
        return f"argon2id:{self.memory_cost}:{self.time_cost}:{self.parallelism}"


def parse_policy(options: object, key: str) -> PasswordPolicy:
    """Read and check the options of `hash_password` (see the module docstring)."""
    opts = table(options, key)
    algorithm = opts.get_str("algorithm", "argon2id", ("argon2id", "bcrypt"))
    empty = opts.get_str("empty", "reject", ("reject", "null", "unusable"))
    long = opts.get_str("long", "reject", ("reject", "prehash"))
    if algorithm == "bcrypt":
        for name in ("time_cost", "memory_cost", "parallelism"):
            if opts.has(name):
                raise PlanError(opts.key_of(name), "is an argon2id option; bcrypt takes `cost`")
        cost = opts.get_int("cost", 12, minimum=4, maximum=31)
        assert cost is not None
        opts.finish()
        return PasswordPolicy(
            algorithm="bcrypt",
            cost=cost,
            empty=empty,  # type: ignore[arg-type]  # checked against the choices above
            long=long,  # type: ignore[arg-type]
        )
    if opts.has("cost"):
        raise PlanError(opts.key_of("cost"), "is a bcrypt option; argon2id takes time_cost")
    if opts.has("long"):
        raise PlanError(opts.key_of("long"), "only bcrypt has a length limit")
    time_cost = opts.get_int("time_cost", 2, minimum=1, maximum=100)
    parallelism = opts.get_int("parallelism", 1, minimum=1, maximum=64)
    assert time_cost is not None and parallelism is not None
    memory_cost = opts.get_int("memory_cost", 19456, minimum=8 * parallelism, maximum=2**22)
    assert memory_cost is not None
    opts.finish()
    return PasswordPolicy(
        time_cost=time_cost,
        memory_cost=memory_cost,
        parallelism=parallelism,
        empty=empty,  # type: ignore[arg-type]
    )


@functools.lru_cache(maxsize=8)
def _argon2(policy: PasswordPolicy) -> argon2.PasswordHasher:
    return argon2.PasswordHasher(
        time_cost=policy.time_cost,
        memory_cost=policy.memory_cost,
        parallelism=policy.parallelism,
        type=argon2.Type.ID,
    )


def hash_plaintext(policy: PasswordPolicy, plaintext: str) -> str:
    """Hash one password (already checked by `prepare`); CPU-bound by design."""
    if policy.algorithm == "argon2id":
        return _argon2(policy).hash(plaintext)
    data = plaintext.encode("utf-8")
    if len(data) > BCRYPT_MAX_BYTES:  # only reached with long = "prehash"
        data = base64.b64encode(hashlib.sha256(data).digest())
    salt = bcrypt.gensalt(rounds=policy.cost, prefix=b"2b")
    return bcrypt.hashpw(data, salt).decode("ascii")


@dataclasses.dataclass(frozen=True, repr=False)
class HashResult:
    """The outcome for one value; its repr never shows the hash.

    `source` says where `value` came from: "hashed" now, "cached" from an earlier run,
    "kept" (already a hash), "empty" (the empty policy), or "rejected" (see `error`).
    """

    value: str | None
    source: Literal["hashed", "cached", "kept", "empty", "rejected"]
    error: TransformError | None = None

    def unwrap(self) -> str | None:
        """The value to store, or raise the rejection."""
        if self.error is not None:
            raise self.error
        return self.value

    def __repr__(self) -> str:
        if self.error is not None:
            return f"HashResult(source='rejected', reason={self.error.reason!r})"
        shown = "None" if self.value is None else "<redacted>"
        return f"HashResult(source={self.source!r}, value={shown})"


def prepare(policy: PasswordPolicy, value: object) -> HashResult | str:
    """Settle every case that needs no hashing: a `HashResult`, or the plaintext to hash."""
    if value is None or value == "":
        if policy.empty == "reject":
            return _rejected('hash_password: empty password (set empty = "null" or "unusable")')
        return HashResult(unusable() if policy.empty == "unusable" else None, "empty")
    if isinstance(value, bool | float):
        return _rejected(f"hash_password: a {kind(value)} value cannot be a password")
    if isinstance(value, int):
        value = str(value)
    elif isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return _rejected("hash_password: a BLOB that is not UTF-8 text")
    if not isinstance(value, str):
        return _rejected(f"hash_password: a {kind(value)} value cannot be a password")
    if is_hash(value):
        return HashResult(value, "kept")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return _rejected("hash_password: text that is not valid Unicode")
    if policy.algorithm == "bcrypt" and size > BCRYPT_MAX_BYTES and policy.long == "reject":
        return _rejected(
            f"hash_password: longer than bcrypt's {BCRYPT_MAX_BYTES} bytes "
            '(set long = "prehash", or use argon2id)'
        )
    return value


def _rejected(reason: str) -> HashResult:
    return HashResult(None, "rejected", TransformError(reason, Category.PASSWORD))


def hash_password(policy: PasswordPolicy, value: object) -> str | None:
    """Hash one value in this process, or raise `TransformError` (a reason without the value)."""
    prepared = prepare(policy, value)
    if isinstance(prepared, HashResult):
        return prepared.unwrap()
    return hash_plaintext(policy, prepared)


def compile_hash_password(options: object, key: str, secret: bool) -> Transform:
    """`hash_password = { algorithm, empty, long, cost, time_cost, ... }` for one value."""
    policy = parse_policy(options, key)
    return functools.partial(hash_password, policy)


def _hash_chunk(policy: PasswordPolicy, plaintexts: list[str]) -> list[tuple[bool, str]]:
    """Worker side: hash each; a failure is reported by exception class only (no text)."""
    results: list[tuple[bool, str]] = []
    for plaintext in plaintexts:
        try:
            results.append((True, hash_plaintext(policy, plaintext)))
        except Exception as exc:  # the message might quote its input; keep only the class
            results.append((False, type(exc).__name__))
    return results


def _warm_up() -> int:
    return os.getpid()


@dataclasses.dataclass
class HashStats:
    """How many values each way went."""

    hashed: int = 0
    cached: int = 0
    kept: int = 0
    empty: int = 0
    rejected: int = 0

    def count(self, result: HashResult) -> None:
        setattr(self, result.source, getattr(self, result.source) + 1)


@dataclasses.dataclass
class _Batch(Generic[K]):
    keys: list[K]
    results: list[HashResult | None]
    todo: list[int]  # indexes of results still to hash
    macs: list[bytes]  # cache MACs of the todo entries
    future: concurrent.futures.Future[list[tuple[bool, str]]] | None = None


CACHE_FILE = "password_cache.sqlite3"
KEY_FILE = "password_cache.key"
KEY_BYTES = 32  # HMAC-SHA256 key: as long as the hash


def _open_private(path: Path) -> int | None:
    """Create `path` with mode 0600 from the start (no window with wider permissions)."""
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise PermissionError(
                f"{path} is accessible to other users (mode {mode:o}); chmod 600 it or delete it"
            ) from None
        return None


class _Cache:
    """(scope, row key) -> hash, valid while HMAC(run secret, plaintext) and policy match.

    Neither the plaintext nor an unkeyed hash of it is stored: without the key file, the
    MAC does not help to guess passwords.
    """

    def __init__(self, run_dir: Path) -> None:
        run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        key_path = run_dir / KEY_FILE
        fd = _open_private(key_path)
        if fd is not None:
            with os.fdopen(fd, "wb") as file:
                file.write(secrets.token_bytes(KEY_BYTES))
        self.secret = key_path.read_bytes()
        if len(self.secret) != KEY_BYTES:
            raise ValueError(f"{key_path} is not a lite2pg cache key; delete it to start afresh")
        db_path = run_dir / CACHE_FILE
        fd = _open_private(db_path)
        if fd is not None:
            os.close(fd)  # SQLite fills the empty file; its journals copy this file's mode
        self.db = sqlite3.connect(db_path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS password_hash (scope TEXT, row_key TEXT, mac BLOB, "
            "policy TEXT, hash TEXT, PRIMARY KEY (scope, row_key))"
        )

    def mac(self, plaintext: str) -> bytes:
        return hmac.new(self.secret, plaintext.encode("utf-8"), hashlib.sha256).digest()

    def get(self, scope: str, row_key: str, mac: bytes, policy: str) -> str | None:
        row = self.db.execute(
            "SELECT mac, policy, hash FROM password_hash WHERE scope = ? AND row_key = ?",
            (scope, row_key),
        ).fetchone()
        if row is None or row[1] != policy or not hmac.compare_digest(row[0], mac):
            return None
        return str(row[2])

    def put(self, entries: list[tuple[str, str, bytes, str, str]]) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT OR REPLACE INTO password_hash VALUES (?, ?, ?, ?, ?)", entries
            )

    def close(self) -> None:
        self.db.close()


# Values per task: small, so the pool's tail (workers idle while the last tasks finish)
# stays short; one task is still ~100 ms of argon2id against ~0.1 ms of pickling.
DEFAULT_CHUNK = 4
# Tasks queued per worker: enough that a worker never waits for the next one.
TASKS_PER_WORKER = 4


class PasswordHasher:
    """Hash a stream of (row key, value) pairs on all cores, in order, holding few rows.

    Use as a context manager. `run_dir` enables the cache (files created with mode 0600);
    `scope` (e.g. "users.password") separates columns sharing it. Row keys must have a
    stable repr (int, str, tuples of those): the cache is keyed by it.
    """

    def __init__(
        self,
        policy: PasswordPolicy | None = None,
        *,
        run_dir: str | os.PathLike[str] | None = None,
        scope: str = "",
        workers: int | None = None,
        chunk_size: int = DEFAULT_CHUNK,
        max_in_flight: int | None = None,
    ) -> None:
        self.policy = policy or PasswordPolicy()
        self.scope = scope
        self.workers = workers or os.cpu_count() or 1
        self.chunk_size = chunk_size
        self.max_in_flight = max_in_flight or TASKS_PER_WORKER * self.workers
        self.stats = HashStats()
        self._cache = _Cache(Path(run_dir)) if run_dir is not None else None
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def start(self) -> None:
        """Start the worker processes now, rather than at the first value to hash."""
        if self._pool is not None or self.workers == 1:
            return
        # forkserver: workers fork from a clean single-threaded server, so threads of ours
        # (progress bars, a database driver) cannot leave locks held in a child.
        self._pool = concurrent.futures.ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=ignore_interrupts,
        )
        with deferred_interrupts():  # every worker process starts here
            warm = [self._pool.submit(_warm_up) for _ in range(self.workers)]
        for future in warm:
            future.result()

    def hash_many(self, items: Iterable[tuple[K, object]]) -> Iterator[tuple[K, HashResult]]:
        """Yield (key, result) for each (key, value), in the input's order."""
        window: collections.deque[_Batch[K]] = collections.deque()
        iterator = iter(items)
        while chunk := list(itertools.islice(iterator, self.chunk_size)):
            window.append(self._submit(chunk))
            while len(window) > self.max_in_flight:
                yield from self._collect(window.popleft())
        while window:
            yield from self._collect(window.popleft())

    def _settle(self, value: object) -> HashResult | str:
        prepared = prepare(self.policy, value)
        if isinstance(prepared, HashResult):
            self.stats.count(prepared)
        return prepared

    def _submit(self, chunk: list[tuple[K, object]]) -> _Batch[K]:
        batch: _Batch[K] = _Batch([key for key, _ in chunk], [], [], [])
        plaintexts: list[str] = []
        fingerprint = self.policy.fingerprint()
        for i, (key, value) in enumerate(chunk):
            prepared = self._settle(value)
            if isinstance(prepared, HashResult):
                batch.results.append(prepared)
                continue
            if self._cache is not None:
                mac = self._cache.mac(prepared)
                cached = self._cache.get(self.scope, repr(key), mac, fingerprint)
                if cached is not None:
                    result = HashResult(cached, "cached")
                    self.stats.count(result)
                    batch.results.append(result)
                    continue
                batch.macs.append(mac)
            batch.results.append(None)
            batch.todo.append(i)
            plaintexts.append(prepared)
        if plaintexts:
            if self.workers == 1:
                done: concurrent.futures.Future[list[tuple[bool, str]]] = (
                    concurrent.futures.Future()
                )
                done.set_result(_hash_chunk(self.policy, plaintexts))
                batch.future = done
            else:
                self.start()
                assert self._pool is not None
                batch.future = self._pool.submit(_hash_chunk, self.policy, plaintexts)
        return batch

    def _collect(self, batch: _Batch[K]) -> Iterator[tuple[K, HashResult]]:
        if batch.future is not None:
            outcomes = batch.future.result()
            entries = []
            fingerprint = self.policy.fingerprint()
            for n, (index, (ok, text)) in enumerate(zip(batch.todo, outcomes, strict=True)):
                if ok:
                    result = HashResult(text, "hashed")
                    if self._cache is not None:
                        row_key = repr(batch.keys[index])
                        entries.append((self.scope, row_key, batch.macs[n], fingerprint, text))
                else:
                    result = _rejected(f"hash_password: hashing failed ({text})")
                self.stats.count(result)
                batch.results[index] = result
            if self._cache is not None and entries:
                self._cache.put(entries)
        for key, settled in zip(batch.keys, batch.results, strict=True):
            assert settled is not None
            yield key, settled

    def close(self) -> None:
        """Stop the workers and close the cache."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    def __enter__(self) -> PasswordHasher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        cache = "on" if self._cache is not None else "off"
        return (
            f"PasswordHasher(policy={self.policy.fingerprint()!r}, workers={self.workers}, "
            f"cache={cache}, stats={self.stats})"
        )


# --- checking what a run stored (lite2pg verify) ------------------------------------------

_UNUSABLE = re.compile(r"![A-Za-z0-9_-]{22}", re.ASCII)


def is_unusable(value: object) -> bool:
    """Whether `value` looks like what `unusable()` makes ("!" and 22 URL-safe characters)."""
    return isinstance(value, str) and _UNUSABLE.fullmatch(value) is not None


def verify_password(policy: PasswordPolicy, plaintext: str, stored: str) -> bool:
    """Whether `stored` is a hash of `plaintext` as `policy` makes them (bcrypt "prehash"
    included); False for anything that is not such a hash. Never raises with the values."""
    try:
        if policy.algorithm == "argon2id":
            return bool(argon2.PasswordHasher().verify(stored, plaintext))
        data = plaintext.encode("utf-8")
        if len(data) > BCRYPT_MAX_BYTES and policy.long == "prehash":
            data = base64.b64encode(hashlib.sha256(data).digest())
        return bool(bcrypt.checkpw(data, stored.encode("ascii")))
    except Exception:  # mismatch, malformed hash, non-ASCII text: not a hash of it
        return False


class CacheReader:
    """A read-only view of a run's password cache: the hash the run stored for a row, if the
    row's plaintext is still the one it hashed. Creates and changes no file."""

    def __init__(self, secret: bytes, db: sqlite3.Connection) -> None:
        self._secret = secret
        self._db = db

    @classmethod
    def open(cls, run_dir: Path) -> CacheReader | None:
        """The cache of `run_dir`, or None when the run has none (no column was hashed)."""
        key_path = run_dir / KEY_FILE
        db_path = run_dir / CACHE_FILE
        if not key_path.is_file() or not db_path.is_file():
            return None
        secret = key_path.read_bytes()
        if len(secret) != KEY_BYTES:
            return None
        db = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            db.execute("SELECT 1 FROM password_hash LIMIT 1").fetchall()
        except sqlite3.Error:
            db.close()
            return None
        return cls(secret, db)

    def lookup(
        self, scope: str, row_key: str, plaintext: str, policy: PasswordPolicy
    ) -> str | None:
        """The stored hash of (scope, row key), when it was made from `plaintext` by `policy`."""
        row = self._db.execute(
            "SELECT mac, policy, hash FROM password_hash WHERE scope = ? AND row_key = ?",
            (scope, row_key),
        ).fetchone()
        if row is None or row[1] != policy.fingerprint():
            return None
        mac = hmac.new(self._secret, plaintext.encode("utf-8"), hashlib.sha256).digest()
        return str(row[2]) if hmac.compare_digest(row[0], mac) else None

    def close(self) -> None:
        self._db.close()
