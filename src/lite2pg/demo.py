"""A legacy helpdesk SQLite database to try lite2pg on: clean, or with years of mess in it."""

from __future__ import annotations

import bisect
import itertools
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from random import Random
from typing import Generic, TypeVar

from lite2pg.errors import SourceError

__all__ = [
    "CANONICAL_PRIORITIES",
    "CANONICAL_ROLES",
    "CANONICAL_STATUSES",
    "SCHEMA",
    "HelpdeskCounts",
    "make_legacy_helpdesk",
]

CANONICAL_ROLES: tuple[str, ...] = ("admin", "agent", "customer")
CANONICAL_STATUSES: tuple[str, ...] = ("open", "in_progress", "pending", "resolved", "closed")
CANONICAL_PRIORITIES: tuple[str, ...] = ("low", "medium", "high", "urgent")

_TABLES_DDL = """\
CREATE TABLE users (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  username TEXT NOT NULL UNIQUE,
  email TEXT,
  password TEXT,            -- legacy PLAINTEXT password
  role TEXT,
  is_active BOOLEAN,
  created_at DATETIME
);
CREATE TABLE tickets (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  title TEXT NOT NULL,
  description TEXT,
  status TEXT,
  priority TEXT,
  created_by INTEGER REFERENCES users(id),
  assigned_to INTEGER REFERENCES users(id),
  created_at DATETIME,
  updated_at DATETIME
);
CREATE TABLE audit_logs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  action TEXT NOT NULL,
  user_id INTEGER REFERENCES users(id),
  ticket_id INTEGER REFERENCES tickets(id),
  timestamp DATETIME,
  details TEXT
);
"""
_INDEXES_DDL = """\
CREATE INDEX idx_tickets_status ON tickets(status);
CREATE INDEX idx_tickets_created_by ON tickets(created_by);
CREATE INDEX idx_audit_logs_ticket ON audit_logs(ticket_id);
CREATE INDEX idx_audit_logs_user ON audit_logs(user_id);
"""
#: The legacy schema, exactly as the generated file holds it.
SCHEMA = _TABLES_DDL + _INDEXES_DDL

# Rows per executemany call: large enough that the per-call cost vanishes, small enough
# that a chunk of wide ticket rows stays a few MB.
_CHUNK_ROWS = 5_000

# All timestamps fall in [2015-01-01, 2025-12-31] UTC.
_START = 1_420_070_400  # 2015-01-01 00:00:00Z
_END = 1_767_225_599  # 2025-12-31 23:59:59Z
_DAY = 86_400

# Real hashes of known plaintexts, made once at low cost (argon2-cffi time_cost=1,
# memory_cost=1024; bcrypt rounds=4) so that building a database never hashes anything.
_ARGON2_HASHES = (
    # "hunter2"
    "$argon2id$v=19$m=1024,t=1,p=1$7GE6mkU00l7XNoB/ikHczA$jjjOIvZjazQwV03Csp/M+vmnLzYS/RNPOtCx332JAzU",
    # "letmein2016"
    "$argon2id$v=19$m=1024,t=1,p=1$9Q7PeVaqc82WVS9B11JVGA$RnP+L5fER53jVzTRtQtD/8LD9qwNLZiQ+ImO2//WzSA",
)
_BCRYPT_HASHES = (
    # "password1"
    "$2b$04$w.AbYKwTJ0weOiNKBjQZ3eJXr9n1otLYVRUy.xkr0eJqWuKf1FkJS",
    # "Summer2017!"
    "$2b$04$uCYu5qK23wcHDzFIsemkRe7jJ4P9gipmIr2IAj.fiMsRTonC19IYu",
)
# bcrypt only looks at the first 72 bytes: a hashing transform must notice these.
_LONG_PASSWORDS = (
    "Ünïcödé-pässwörd-dér-wäy-zü-läng-ïst-für-bcrypt-ünd-nöch-längér-wïrd-ïmmér",
    "mot-de-passe-très-très-long-écrit-à-Zürich-au-café-près-de-la-gare-🙂🙂🙂",
)
_COMMON_PASSWORDS = ("password1", "123456", "qwerty", "Summer2017!", "letmein", "changeme")
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

_FIRST_NAMES = (
    "james", "mary", "robert", "patricia", "john", "jennifer", "michael", "linda", "david",
    "elizabeth", "william", "barbara", "richard", "susan", "joseph", "jessica", "thomas", "sarah",
    "charles", "karen", "chris", "nancy", "daniel", "lisa", "matthew", "betty", "anthony",
    "sandra", "mark", "ashley", "paul", "emily", "steven", "donna", "andrew", "michelle", "joshua",
    "carol", "kevin", "amanda", "brian", "melissa", "george", "deborah", "timothy", "stephanie",
    "ronald", "rebecca", "jason", "laura", "francois", "chloe", "jurgen", "anke", "sofia", "mateo",
    "lucia", "yuki", "hiroshi", "priya", "arjun", "olga", "ivan", "fatima"
)  # fmt: skip
_LAST_NAMES = (
    "smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis", "rodriguez",
    "martinez", "hernandez", "lopez", "gonzalez", "wilson", "anderson", "thomas", "taylor",
    "moore", "jackson", "martin", "lee", "perez", "thompson", "white", "harris", "sanchez",
    "clark", "ramirez", "lewis", "robinson", "walker", "young", "allen", "king", "wright", "scott",
    "torres", "nguyen", "hill", "flores", "green", "adams", "nelson", "baker", "hall", "rivera",
    "campbell", "mitchell", "carter", "muller", "schmidt", "schneider", "fischer", "weber",
    "dubois", "laurent", "bernard", "rossi", "russo", "tanaka", "sato"
)  # fmt: skip
_DOMAINS = ("example.com", "mail.example.org", "corp.example.net", "example.co.uk")

_THINGS = (
    "login page", "password reset", "invoice PDF", "export to CSV", "mobile app", "dashboard",
    "search", "email notifications", "VPN", "printer on floor 3", "SSO", "report builder",
    "billing page", "user profile", "API token", "file upload", "calendar sync", "Wi-Fi",
)  # fmt: skip
_TITLE_TEMPLATES = (
    "{} not working", "Cannot use {}", "Error 500 on {}", "{} is very slow", "Question about {}",
    "{} broken since the update", "Request: access to {}", "{} shows wrong data",
    "Urgent: {} down", "Feature request for {}", "{} keeps timing out", "Problem with {}",
)  # fmt: skip
_WHO = (
    "The customer", "A user in accounting", "Our sales team", "The reporter", "Someone at HQ",
    "The branch manager", "A new hire", "The client", "The night shift",
)  # fmt: skip
_SYMPTOMS = (
    "gets a blank page", "sees an error 500", "is logged out every few minutes",
    "cannot save changes", "gets a timeout after 30 seconds", "sees yesterday's numbers",
    "receives every e-mail twice", "cannot open the attachment", "sees the spinner forever",
)  # fmt: skip
_CONTEXTS = (
    "since the last update", "only in Firefox", "when using the mobile app",
    "on the first attempt only", "every Monday morning", "after the password reset",
    "when the file is larger than 10 MB", "behind the office VPN", "in the afternoon",
)  # fmt: skip
_FOLLOW_UPS = (
    "We tried clearing the cache and restarting the browser, without success.",
    "It works for other accounts.",
    "Please check the server logs for this account.",
    "This blocks the month-end closing.",
    "Screenshot attached.",
    "Could you call back before 5 pm?",
    "Same problem as last week, which was closed too early.",
    "No error message is shown.",
    "Restarting the app fixes it for an hour or so.",
)
# Hand-written sentences give the text the characters CSV and encodings trip over.
_SPECIAL_SENTENCES = (
    'The user wrote: "it\'s broken again, please fix ASAP".',
    "Meeting room in the Zürich office, near the café, has no signal.",
    "Steps to reproduce:\n1. open the app\n2. click Save\n3. nothing happens",
    "Customer from São Paulo says the naïve retry loop hangs; see attached log.",
    "Line one of the pasted e-mail,\r\nline two, with Windows line endings.",
    "Price shows 12,50 € instead of 12.50 €, and the total is wrong.",
    "Grüße aus München — the export still uses ; as separator.",
    "Thanks! 🙂 Works now, but 'Remember me' is still unchecked.",
    "Path is C:\\Users\\admin\\Documents\\report.xlsx, if that helps.",
)

_T = TypeVar("_T")
_Row = tuple[object, ...]


@dataclass(frozen=True)
class HelpdeskCounts:
    """How many rows `make_legacy_helpdesk` wrote to each table."""

    users: int
    tickets: int
    audit_logs: int

    def as_dict(self) -> dict[str, int]:
        """The counts keyed by table name."""
        return asdict(self)

    def __str__(self) -> str:
        return f"users={self.users} tickets={self.tickets} audit_logs={self.audit_logs}"


class _Picker(Generic[_T]):
    """Weighted choice through a lookup table: one `random()` per pick.

    `Random.choices` costs a list and a bisect per call; with millions of picks per build
    the table is several times faster. 10,000 slots resolve weights down to 0.01%.
    """

    _SLOTS = 10_000

    def __init__(self, weighted: Sequence[tuple[_T, float]]) -> None:
        cumulative = list(itertools.accumulate(weight for _, weight in weighted))
        total = cumulative[-1]
        self._table = tuple(
            weighted[bisect.bisect_right(cumulative, (slot + 0.5) * total / self._SLOTS)][0]
            for slot in range(self._SLOTS)
        )

    def __call__(self, rng: Random) -> _T:
        return self._table[int(rng.random() * self._SLOTS)]


_CLEAN_ROLE = _Picker([("admin", 3), ("agent", 17), ("customer", 80)])
_MESSY_ROLE = _Picker[str | None](
    [
        ("admin", 2.5), ("Admin", 1), ("ADMIN", 0.5), (" administrator", 0.5),
        ("agent", 12), ("Agent", 2), ("support", 2), ("staff", 1), ("user", 4),
        ("customer", 68), ("Customer ", 4), (None, 2.5),
    ]
)  # fmt: skip
_CLEAN_ACTIVE = _Picker([(1, 88), (0, 12)])
_MESSY_ACTIVE = _Picker[int | str | None](
    [(1, 72), (0, 9), ("yes", 5), ("no", 2), ("true", 4), ("false", 1), ("Y", 4), (None, 3)]
)
_CLEAN_STATUS = _Picker(
    [("open", 15), ("in_progress", 10), ("pending", 8), ("resolved", 25), ("closed", 42)]
)
_MESSY_STATUS = _Picker(
    [
        ("open", 12), ("Open", 2), ("OPEN", 1), (" open ", 1), ("new", 2),
        ("in progress", 4), ("In-Progress", 2), ("in_progress", 4), ("wip", 1),
        ("pending", 5), ("waiting", 2), ("on hold", 1),
        ("resolved", 18), ("fixed", 2), ("closed", 33), ("Closed", 5), ("done", 4.5),
        ("???", 0.2), ("reopened?", 0.2), ("TBD", 0.1),
    ]
)  # fmt: skip
_CLEAN_PRIORITY = _Picker([("low", 30), ("medium", 40), ("high", 22), ("urgent", 8)])
_MESSY_PRIORITY = _Picker[str | None](
    [
        ("low", 24), ("medium", 35), ("high", 17), ("urgent", 5), ("LOW", 2), ("Med", 3),
        ("1", 3), ("2", 3), ("3", 2), ("4", 1), (None, 5),
    ]
)  # fmt: skip
_PASSWORD_KIND = _Picker(
    [
        ("random", 80), ("common", 8), ("argon2", 3), ("bcrypt", 3), ("empty", 2),
        ("null", 2), ("long", 0.5),
    ]
)  # fmt: skip
# Most values are the app's own format; the rest are what imports, other clients and
# hand-run scripts wrote into the same column over the years.
_DATE_KIND = _Picker(
    [
        ("sql", 74), ("iso_z", 6), ("iso_offset", 4), ("sql_micro", 5), ("epoch_s", 5),
        ("epoch_ms", 4), ("epoch_real", 1), ("empty", 0.8), ("garbage", 0.2),
    ]
)  # fmt: skip
_GARBAGE_DATES = ("not a date", "N/A", "0000-00-00 00:00:00", "31/02/2019", "yesterday")
_OFFSETS = (("+02:00", 7_200), ("+01:00", 3_600), ("-05:00", -18_000), ("+05:30", 19_800))
_ACTION = _Picker(
    [
        ("ticket.created", 12), ("ticket.status_changed", 22), ("ticket.assigned", 10),
        ("ticket.priority_changed", 4), ("comment.added", 30),
        ("user.login", 17), ("user.logout", 4), ("user.password_changed", 1),
    ]
)  # fmt: skip


def make_legacy_helpdesk(
    path: Path,
    *,
    users: int = 200,
    tickets: int = 2_000,
    audit_logs: int = 8_000,
    seed: int = 1,
    messy: bool = True,
) -> HelpdeskCounts:
    """Write a new helpdesk SQLite database at `path`; the same seed gives the same content.

    `messy=False` gives values that all fit their declared types and valid foreign keys;
    `messy=True` mixes in the spellings, date formats, hashes and orphans of a legacy app.
    """
    if min(users, tickets, audit_logs) < 0:
        raise ValueError("row counts must be >= 0")
    if path.exists():
        raise SourceError(str(path), "already exists", "choose another path or delete it")
    rng = Random(seed)
    # About 1% of accounts were deleted over the years, leaving holes in the ids that
    # old tickets and audit rows still point at.
    n_deleted = max(1, users // 100) if messy and users >= 10 else 0
    max_user_id = users + n_deleted
    deleted = frozenset(rng.sample(range(1, max_user_id + 1), n_deleted))
    sentences = _sentence_pool(rng)

    # The file holds plaintext passwords: owner-only from the first byte.
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        # Nothing to protect while building: a crash leaves a file we delete anyway.
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN")
        for statement in _statements(_TABLES_DDL):
            conn.execute(statement)
        _insert(
            conn,
            "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?)",
            _users(rng, users, max_user_id, deleted, messy),
        )
        _insert(
            conn,
            "INSERT INTO tickets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            _tickets(rng, tickets, max_user_id, deleted, sentences, messy),
        )
        _insert(
            conn,
            "INSERT INTO audit_logs VALUES (?, ?, ?, ?, ?, ?)",
            _audit_logs(rng, audit_logs, tickets, max_user_id, deleted, messy),
        )
        # Indexes built once over the loaded rows sort once instead of splitting pages
        # on every random insert: several times faster on the bench-size database.
        for statement in _statements(_INDEXES_DDL):
            conn.execute(statement)
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode=DELETE")
    except BaseException:
        conn.close()
        path.unlink(missing_ok=True)
        raise
    conn.close()
    return HelpdeskCounts(users=users, tickets=tickets, audit_logs=audit_logs)


def _statements(script: str) -> Iterator[str]:
    """Split a DDL script of `;`-terminated statements (no `;` inside them)."""
    return (s.strip() for s in script.split(";") if s.strip())


def _insert(conn: sqlite3.Connection, sql: str, rows: Iterable[_Row]) -> None:
    iterator = iter(rows)
    while chunk := list(itertools.islice(iterator, _CHUNK_ROWS)):
        conn.executemany(sql, chunk)


def _sentence_pool(rng: Random) -> tuple[str, ...]:
    """A few hundred sentences, so a description costs a few picks and joins."""
    pool = [
        f"{rng.choice(_WHO)} {rng.choice(_SYMPTOMS)} on the {rng.choice(_THINGS)}"
        f" {rng.choice(_CONTEXTS)}."
        for _ in range(300)
    ]
    pool.extend(_FOLLOW_UPS * 10)
    # One sentence in ~20 is a special one, so many descriptions hold at least one.
    pool.extend(_SPECIAL_SENTENCES * 2)
    return tuple(pool)


def _sql_time(t: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def _messy_time(rng: Random, t: int) -> str | int | float:
    kind = _DATE_KIND(rng)
    if kind == "sql":
        return _sql_time(t)
    if kind == "iso_z":
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    if kind == "iso_offset":
        suffix, shift = _OFFSETS[int(rng.random() * len(_OFFSETS))]
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t + shift)) + suffix
    if kind == "sql_micro":
        return f"{_sql_time(t)}.{int(rng.random() * 1_000_000):06d}"
    if kind == "epoch_s":
        return t
    if kind == "epoch_ms":
        return t * 1000 + int(rng.random() * 1000)
    if kind == "epoch_real":
        return t + round(rng.random(), 3)
    if kind == "empty":
        return ""
    return _GARBAGE_DATES[int(rng.random() * len(_GARBAGE_DATES))]


def _time_formatter(messy: bool) -> Callable[[Random, int], str | int | float]:
    return _messy_time if messy else (lambda _rng, t: _sql_time(t))


def _pick_user(rng: Random, max_user_id: int, deleted: frozenset[int]) -> int | None:
    """A user id that exists, or None when there are no users."""
    if max_user_id == len(deleted):
        return None
    while True:
        user_id = 1 + int(rng.random() * max_user_id)
        if user_id not in deleted:
            return user_id


def _users(
    rng: Random, n: int, max_user_id: int, deleted: frozenset[int], messy: bool
) -> Iterator[_Row]:
    fmt = _time_formatter(messy)
    # Sign-ups that differ from an existing username only in case: the old app compared
    # usernames case-sensitively. Placed mid-table, like accounts made years apart.
    case_twins = {n // 3: "alice", 2 * n // 3: "Alice", n // 2: "bob.smith", n - 1: "Bob.Smith"}
    forced = case_twins if messy and n >= 8 else {}
    # A couple of over-long passwords and each hash kind, whatever the mix below draws.
    special = (*_LONG_PASSWORDS, _ARGON2_HASHES[0], _BCRYPT_HASHES[0])
    forced_passwords = (
        {(k + 1) * n // (len(special) + 1): pw for k, pw in enumerate(special)}
        if messy and n >= 8
        else {}
    )
    seen: set[str] = set(forced.values())
    step = (_END - _START - 400 * _DAY) / max(n, 1)
    index = 0
    for user_id in range(1, max_user_id + 1):
        if user_id in deleted:
            continue
        first = _FIRST_NAMES[int(rng.random() * len(_FIRST_NAMES))]
        last = _LAST_NAMES[int(rng.random() * len(_LAST_NAMES))]
        username = forced.get(index) or f"{first}.{last}"
        if username in seen and index not in forced:
            username = f"{first}.{last}{user_id}"
        seen.add(username)
        email: str | None = f"{username.lower()}@{_DOMAINS[user_id % len(_DOMAINS)]}"
        if rng.random() < 0.03:
            email = None
        password = forced_passwords.get(index) or _password(rng, messy)
        if messy:
            role: str | None = _MESSY_ROLE(rng)
            active: int | str | None = _MESSY_ACTIVE(rng)
        else:
            role = _CLEAN_ROLE(rng)
            active = _CLEAN_ACTIVE(rng)
        created = _START + int((index + rng.random()) * step)
        yield (user_id, username, email, password, role, active, fmt(rng, created))
        index += 1


def _password(rng: Random, messy: bool) -> str | None:
    kind = _PASSWORD_KIND(rng) if messy else "random"
    if kind == "random":
        return "".join(rng.choices(_ALNUM, k=8 + int(rng.random() * 9)))
    if kind == "common":
        return _COMMON_PASSWORDS[int(rng.random() * len(_COMMON_PASSWORDS))]
    if kind == "argon2":
        return _ARGON2_HASHES[int(rng.random() * len(_ARGON2_HASHES))]
    if kind == "bcrypt":
        return _BCRYPT_HASHES[int(rng.random() * len(_BCRYPT_HASHES))]
    if kind == "empty":
        return ""
    if kind == "long":
        return _LONG_PASSWORDS[int(rng.random() * len(_LONG_PASSWORDS))]
    return None


def _description(rng: Random, sentences: Sequence[str]) -> str | None:
    if rng.random() < 0.08:
        return None
    # Skewed towards short texts, as people write them: 50..400 chars, mean ~150.
    target = 50 + int(350 * rng.random() ** 2.5)
    parts: list[str] = []
    length = -1
    while length < target:
        sentence = sentences[int(rng.random() * len(sentences))]
        parts.append(sentence)
        length += len(sentence) + 1
    text = " ".join(parts)
    if len(text) > target:
        # Cut at a word boundary, as the old UI's length limit did.
        cut = text.rfind(" ", 50, target + 1)
        text = text[: cut if cut > 0 else target]
    return text


def _tickets(
    rng: Random,
    n: int,
    max_user_id: int,
    deleted: frozenset[int],
    sentences: Sequence[str],
    messy: bool,
) -> Iterator[_Row]:
    fmt = _time_formatter(messy)
    status_of = _MESSY_STATUS if messy else _CLEAN_STATUS
    priority_of = _MESSY_PRIORITY if messy else _CLEAN_PRIORITY
    deleted_ids = sorted(deleted)
    step = _ticket_step(n)
    for ticket_id in range(1, n + 1):
        template = _TITLE_TEMPLATES[int(rng.random() * len(_TITLE_TEMPLATES))]
        title = template.format(_THINGS[int(rng.random() * len(_THINGS))])
        created_by = _pick_user(rng, max_user_id, deleted)
        if deleted_ids and rng.random() < 0.01:
            created_by = deleted_ids[int(rng.random() * len(deleted_ids))]
        assigned_to = _pick_user(rng, max_user_id, deleted) if rng.random() < 0.75 else None
        # Ids grow with time, as in the real app; audit rows rely on it (_ticket_base).
        created = _ticket_base(ticket_id, step) + int(rng.random() * step)
        updated = min(_END, created + int(rng.random() * rng.random() * 90 * _DAY))
        yield (
            ticket_id,
            title,
            _description(rng, sentences),
            status_of(rng),
            priority_of(rng),
            created_by,
            assigned_to,
            fmt(rng, created),
            fmt(rng, updated),
        )


def _ticket_step(n: int) -> float:
    """Seconds between consecutive tickets, leaving room for 90 days of updates."""
    return (_END - _START - 100 * _DAY) / max(n, 1)


def _ticket_base(ticket_id: int, step: float) -> int:
    return _START + int((ticket_id - 1) * step)


def _audit_logs(
    rng: Random,
    n: int,
    n_tickets: int,
    max_user_id: int,
    deleted: frozenset[int],
    messy: bool,
) -> Iterator[_Row]:
    fmt = _time_formatter(messy)
    step = _ticket_step(n_tickets)
    for log_id in range(1, n + 1):
        action = _ACTION(rng)
        if n_tickets == 0 and not action.startswith("user."):
            action = "user.login"
        user_id = _pick_user(rng, max_user_id, deleted)
        ticket_id: int | None = None
        if action.startswith("user."):
            at = _START + int(rng.random() * (_END - _START))
        else:
            ticket_id = 1 + int(rng.random() * n_tickets)
            # Always after the ticket was created, within the following 60 days.
            at = min(_END, _ticket_base(ticket_id, step) + int(step + rng.random() * 60 * _DAY))
        if messy and rng.random() < 0.01:
            # An orphan: the user or the ticket was deleted without cleaning the log.
            if ticket_id is not None and rng.random() < 0.5:
                ticket_id = n_tickets + 1 + int(rng.random() * 1000)
            else:
                user_id = max_user_id + 1 + int(rng.random() * 100)
        yield (log_id, action, user_id, ticket_id, fmt(rng, at), _details(rng, action, messy))


def _details(rng: Random, action: str, messy: bool) -> str | None:
    roll = rng.random()
    if roll < 0.1:
        return None
    if messy and roll > 0.985:
        # Older app versions logged free text here.
        return "changed by admin via console" if roll > 0.995 else "status open -> closed"
    if action == "ticket.status_changed":
        a = CANONICAL_STATUSES[int(rng.random() * 5)]
        b = CANONICAL_STATUSES[int(rng.random() * 5)]
        return f'{{"from": "{a}", "to": "{b}"}}'
    if action == "ticket.priority_changed":
        a = CANONICAL_PRIORITIES[int(rng.random() * 4)]
        b = CANONICAL_PRIORITIES[int(rng.random() * 4)]
        return f'{{"from": "{a}", "to": "{b}"}}'
    if action == "ticket.assigned":
        return f'{{"assignee": {1 + int(rng.random() * 500)}, "by": "rule"}}'
    if action == "comment.added":
        return f'{{"comment_id": {int(rng.random() * 10_000_000)}, "chars": {int(roll * 900)}}}'
    if action == "ticket.created":
        return f'{{"channel": "{("email", "web", "phone")[int(rng.random() * 3)]}"}}'
    if action == "user.login":
        ip = f"10.{int(rng.random() * 256)}.{int(rng.random() * 256)}.{int(rng.random() * 256)}"
        return f'{{"ip": "{ip}", "agent": "Mozilla/5.0"}}'
    return None
