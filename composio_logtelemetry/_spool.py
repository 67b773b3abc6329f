"""The offline spool: an SQLite file of encoded events that could not be delivered.

Events wait here until this process, or the next one, can deliver them. Several processes of one
machine (web workers) may share a file: a row is handed out by ``claim`` under a random token and a
lease, so that no two live claims hold the same row and a crashed process's rows come back after
the lease. Rows leave the file only when their claim is settled as delivered, when they outlive the
ttl, or when the size bound evicts them (oldest first).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pathlib
import secrets
import sqlite3
import sys
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from . import _runtime

__all__ = ["KINDS", "Claim", "Spool", "default_spool_path"]

KINDS = ("metric", "error")

_SCHEMA_VERSION = 1
_BUSY_TIMEOUT_S = 5.0
_EVICTION_CHUNK = 512

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    size INTEGER NOT NULL,
    created REAL NOT NULL,
    claim_token TEXT,
    claimed_at REAL
);
CREATE INDEX IF NOT EXISTS events_by_kind ON events (kind, id);
CREATE INDEX IF NOT EXISTS events_by_created ON events (created);
CREATE TABLE IF NOT EXISTS totals (
    singleton INTEGER PRIMARY KEY CHECK (singleton = 0),
    events INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
INSERT OR IGNORE INTO totals (singleton, events, bytes) VALUES (0, 0, 0);
CREATE TRIGGER IF NOT EXISTS events_added AFTER INSERT ON events BEGIN
    UPDATE totals SET events = events + 1, bytes = bytes + NEW.size WHERE singleton = 0;
END;
CREATE TRIGGER IF NOT EXISTS events_removed AFTER DELETE ON events BEGIN
    UPDATE totals SET events = events - 1, bytes = bytes - OLD.size WHERE singleton = 0;
END;
"""

# A connection inherited through fork() is never closed in the child: closing it could checkpoint
# and delete the WAL file that the parent still writes to. Keeping a reference stops the garbage
# collector from closing it behind our back.
_abandoned_connections: list[sqlite3.Connection] = []
_live_spools: weakref.WeakSet[Spool] = weakref.WeakSet()


@dataclass(frozen=True)
class Claim:
    """Rows taken out of the spool by one ``Spool.claim``, to be passed back to ``Spool.settle``.

    ``token`` identifies the claim in the file, so that settling a claim whose lease ran out (and
    whose rows another process took over) touches nothing. A hand-built claim without a token
    settles its ids whoever holds them.
    """

    kind: str
    ids: tuple[int, ...]
    bodies: tuple[str, ...]
    token: str = field(default="", repr=False, kw_only=True)


def default_spool_path(endpoint: str) -> pathlib.Path:
    """The spool file for ``endpoint`` in the user cache dir.

    One file per endpoint (named by a hash of it), so that events spooled for one endpoint are never
    replayed to another.
    """
    digest = hashlib.sha256(endpoint.encode("utf-8")).hexdigest()[:12]
    return _user_cache_dir() / "composio-logtelemetry" / f"spool-{digest}.sqlite3"


def _user_cache_dir() -> pathlib.Path:
    home = pathlib.Path.home()
    if sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA")
        return pathlib.Path(local) if local else home / "AppData" / "Local"
    if sys.platform == "darwin":
        return home / "Library" / "Caches"
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says a relative value is invalid and must be ignored.
    return pathlib.Path(xdg) if xdg and os.path.isabs(xdg) else home / ".cache"


class Spool:
    """An SQLite file of undelivered events, shared safely by the processes of one machine.

    ``max_bytes`` bounds the total size of the stored bodies (UTF-8), not the file, which also holds
    row overhead and indexes. The object is thread-safe (one connection behind a lock) and
    fork-safe (a child opens its own connection on first use).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_bytes: int = 50 * 2**20,
        ttl: float = 7 * 86400.0,
        lease: float = 60.0,
    ) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, not {max_bytes!r}")
        if not ttl > 0:
            raise ValueError(f"ttl must be > 0 seconds, not {ttl!r}")
        if not lease > 0:
            raise ValueError(f"lease must be > 0 seconds, not {lease!r}")
        self.path = pathlib.Path(os.path.expanduser(os.fspath(path)))
        self.max_bytes = max_bytes
        self.ttl = ttl
        self.lease = lease
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._connection_pid = 0
        self._expired = 0
        _live_spools.add(self)

    def __repr__(self) -> str:
        return f"<Spool {str(self.path)!r}>"

    def exists(self) -> bool:
        """Whether the file exists; never creates it."""
        return self.path.exists()

    def add(self, kind: str, bodies: Sequence[str]) -> int:
        """Stores ``bodies`` in one transaction, then evicts the oldest rows beyond ``max_bytes``.

        Returns how many rows were evicted; rows of this call count too, so an add larger than
        ``max_bytes`` loses its own oldest bodies. The file and its folder are created here.
        """
        _check_kind(kind)
        if isinstance(bodies, str):
            raise TypeError("bodies must be a sequence of str, not one str")
        if not bodies:
            return 0
        now = time.time()
        rows = [(kind, body, len(body.encode("utf-8")), now) for body in bodies]
        with self._lock:
            connection = self._open(create=True)
            assert connection is not None
            with _immediate(connection):
                expired = self._expire(connection, now)
                connection.executemany(
                    "INSERT INTO events (kind, body, size, created) VALUES (?, ?, ?, ?)", rows
                )
                evicted = self._evict(connection)
            self._expired += expired
            return evicted

    def claim(self, limit: int, kind: str | None = None) -> Claim | None:
        """Takes up to ``limit`` of the oldest claimable rows, all of one kind.

        A row is claimable when unclaimed or when its claim is older than ``lease`` (its process
        died or hung). Without ``kind``, the kind is that of the oldest claimable row, so that
        replay keeps the original order. Returns None when nothing is claimable or there is no file.
        """
        if limit < 1:
            raise ValueError(f"limit must be >= 1, not {limit!r}")
        if kind is not None:
            _check_kind(kind)
        with self._lock:
            connection = self._open(create=False)
            if connection is None:
                return None
            now = time.time()
            token = secrets.token_hex(16)
            with _immediate(connection):
                expired = self._expire(connection, now)
                rows = self._take(connection, now, token, limit, kind)
            self._expired += expired
        if not rows:
            return None
        return Claim(
            str(rows[0][1]),
            tuple(int(row_id) for row_id, _, _ in rows),
            tuple(str(body) for _, _, body in rows),
            token=token,
        )

    def settle(self, claim: Claim, delivered: bool) -> None:
        """Deletes the claimed rows if ``delivered``, otherwise releases them for a later claim.

        Rows that another claim took over after this one's lease ran out are left alone.
        """
        if not claim.ids:
            return
        params: list[tuple[object, ...]]
        if claim.token:
            condition, params = "id = ? AND claim_token = ?", [(i, claim.token) for i in claim.ids]
        else:
            condition, params = "id = ?", [(i,) for i in claim.ids]
        if delivered:
            statement = f"DELETE FROM events WHERE {condition}"
        else:
            statement = f"UPDATE events SET claim_token = NULL, claimed_at = NULL WHERE {condition}"
        with self._lock:
            connection = self._open(create=False)
            if connection is None:
                return
            with _immediate(connection):
                connection.executemany(statement, params)

    def expired_count_and_reset(self) -> int:
        """Rows this object deleted for outliving ``ttl`` since the last call."""
        with self._lock:
            expired, self._expired = self._expired, 0
            return expired

    def stats(self) -> dict[str, object]:
        """What the file holds, for ``spool stats`` and diagnostics; a missing file is empty."""
        result: dict[str, object] = {
            "path": str(self.path),
            "exists": False,
            "events": 0,
            "bytes": 0,
            "by_kind": {},
            "oldest_age_s": None,
            "claimed": 0,
            "max_bytes": self.max_bytes,
        }
        with self._lock:
            connection = self._open(create=False)
            if connection is None:
                return result
            now = time.time()
            connection.execute("BEGIN")  # one snapshot for all the figures
            try:
                events, size = connection.execute(
                    "SELECT events, bytes FROM totals WHERE singleton = 0"
                ).fetchone()
                by_kind = connection.execute(
                    "SELECT kind, COUNT(*) FROM events GROUP BY kind ORDER BY kind"
                ).fetchall()
                (oldest,) = connection.execute("SELECT MIN(created) FROM events").fetchone()
                (claimed,) = connection.execute(
                    "SELECT COUNT(*) FROM events WHERE claimed_at >= ?", (now - self.lease,)
                ).fetchone()
            finally:
                if connection.in_transaction:
                    connection.execute("COMMIT")
        result.update(
            exists=True,
            events=int(events),
            bytes=int(size),
            by_kind={str(k): int(n) for k, n in by_kind},
            oldest_age_s=None if oldest is None else round(max(0.0, now - float(oldest)), 1),
            claimed=int(claimed),
        )
        return result

    def clear(self) -> int:
        """Deletes every row, claimed or not; returns how many. A missing file stays missing."""
        with self._lock:
            connection = self._open(create=False)
            if connection is None:
                return 0
            with _immediate(connection):
                return connection.execute("DELETE FROM events").rowcount

    def close(self) -> None:
        """Closes the connection; a later call opens a new one."""
        with self._lock:
            self._close_locked()

    # -- internals ----------------------------------------------------------------------------

    def _open(self, *, create: bool) -> sqlite3.Connection | None:
        """The connection of this process (the lock is held); None if there is no file to read."""
        if self._connection is not None and self._connection_pid != _runtime.pid:
            self._abandon_inherited()
        if self._connection is not None and create and not self.path.exists():
            self._close_locked()  # removed under us: new events must not go to a deleted file
        if self._connection is not None:
            return self._connection
        if create:
            self._create_file()
        elif not self.path.exists():
            return None
        # mode=rw: sqlite never creates the file itself, so it is always ours, with mode 0600.
        uri = pathlib.Path(os.path.abspath(self.path)).as_uri() + "?mode=rw"
        try:
            connection = sqlite3.connect(
                uri,
                uri=True,
                timeout=_BUSY_TIMEOUT_S,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.OperationalError:
            if not create and not self.path.exists():
                return None  # removed since we looked
            raise
        try:
            _prepare(connection)
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        self._connection_pid = _runtime.pid
        return connection

    def _create_file(self) -> None:
        folder = self.path.parent
        if not folder.is_dir():
            os.makedirs(folder, mode=0o700, exist_ok=True)
        flags = os.O_CREAT | os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)
        os.close(os.open(self.path, flags, 0o600))

    def _close_locked(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._connection_pid == _runtime.pid:
            connection.close()
        else:
            _abandoned_connections.append(connection)

    def _abandon_inherited(self) -> None:
        if self._connection is not None:
            _abandoned_connections.append(self._connection)
        self._connection = None

    def _expire(self, connection: sqlite3.Connection, now: float) -> int:
        """Deletes rows older than ``ttl``, except those a live claim is delivering."""
        deleted = connection.execute(
            "DELETE FROM events WHERE created < ? AND (claimed_at IS NULL OR claimed_at < ?)",
            (now - self.ttl, now - self.lease),
        ).rowcount
        return max(deleted, 0)

    def _take(
        self, connection: sqlite3.Connection, now: float, token: str, limit: int, kind: str | None
    ) -> list[tuple[int, str, str]]:
        """Marks the oldest claimable rows of one kind as held by ``token``; returns them."""
        stale = now - self.lease
        if kind is None:
            oldest = connection.execute(
                "SELECT kind FROM events WHERE claimed_at IS NULL OR claimed_at < ?"
                " ORDER BY id LIMIT 1",
                (stale,),
            ).fetchone()
            if oldest is None:
                return []
            kind = str(oldest[0])
        rows: list[tuple[int, str, str]] = connection.execute(
            "SELECT id, kind, body FROM events"
            " WHERE kind = ? AND (claimed_at IS NULL OR claimed_at < ?)"
            " ORDER BY id LIMIT ?",
            (kind, stale, limit),
        ).fetchall()
        connection.executemany(
            "UPDATE events SET claim_token = ?, claimed_at = ? WHERE id = ?",
            [(token, now, row_id) for row_id, _, _ in rows],
        )
        return rows

    def _evict(self, connection: sqlite3.Connection) -> int:
        """Deletes the oldest rows until the bodies fit in ``max_bytes``; returns how many."""
        (total,) = connection.execute("SELECT bytes FROM totals WHERE singleton = 0").fetchone()
        excess = int(total) - self.max_bytes
        if excess <= 0:
            return 0
        freed, evicted, last_id = 0, 0, 0
        while freed < excess:
            chunk = connection.execute(
                "SELECT id, size FROM events WHERE id > ? ORDER BY id LIMIT ?",
                (last_id, _EVICTION_CHUNK),
            ).fetchall()
            if not chunk:
                break
            for row_id, size in chunk:
                freed += int(size)
                evicted += 1
                last_id = int(row_id)
                if freed >= excess:
                    break
        connection.execute("DELETE FROM events WHERE id <= ?", (last_id,))
        return evicted

    def _before_fork(self) -> None:
        # Close while idle, so that the child inherits no SQLite state for this file at all.
        if self._lock.acquire(blocking=False):
            try:
                self._close_locked()
            except sqlite3.Error:
                pass
            finally:
                self._lock.release()

    def _after_fork_in_child(self) -> None:
        # The lock may have been held by a parent thread that does not exist in the child.
        self._lock = threading.Lock()
        if self._connection is not None:
            self._abandon_inherited()


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")


def _prepare(connection: sqlite3.Connection) -> None:
    """Sets the per-connection pragmas and creates the schema once per file."""
    connection.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
    _switch_to_wal(connection)
    connection.execute("PRAGMA synchronous = NORMAL")
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    if version == _SCHEMA_VERSION:
        return
    with _immediate(connection):
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        if version == 0:
            for statement in _split_script(_SCHEMA):
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        elif version != _SCHEMA_VERSION:
            raise sqlite3.DatabaseError(f"unsupported spool schema version {version}")


def _switch_to_wal(connection: sqlite3.Connection) -> None:
    """Sets WAL mode, retrying: SQLite answers "locked" at once, without waiting for the busy
    timeout, when processes race to switch a new file."""
    deadline = time.monotonic() + _BUSY_TIMEOUT_S
    pause = 0.001
    while True:
        try:
            (mode,) = connection.execute("PRAGMA journal_mode = WAL").fetchone()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
            continue
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot switch the spool to WAL mode (got {mode!r})")
        return


def _split_script(script: str) -> Iterator[str]:
    """Statements of ``script``; executescript would commit our transaction first."""
    pending = ""
    for line in script.strip().splitlines():
        pending += line + "\n"
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""


@contextlib.contextmanager
def _immediate(connection: sqlite3.Connection) -> Iterator[None]:
    """A write transaction, taken at once so that concurrent claims are serialised."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                connection.execute("ROLLBACK")
        raise


def _before_fork() -> None:
    for spool in list(_live_spools):
        spool._before_fork()


def _after_fork_in_child() -> None:
    for spool in list(_live_spools):
        spool._after_fork_in_child()


_runtime.at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
