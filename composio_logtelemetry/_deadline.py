"""A deadline for a whole HTTP request, which urllib3's timeouts cannot give.

urllib3 (and so ``requests``) bounds each socket operation: an endpoint that drips its reply,
one byte every 0.4 s, never trips a 1 s read timeout and holds a sender for as long as it
likes. Here one watchdog thread per process shuts down the socket of a request whose deadline
has passed, which ends whatever read or write is blocked on it; the connection classes below
tell the watchdog which socket a request runs on.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from . import _runtime


class Deadline:
    """One request's deadline; the connection it runs on is attached once it is known."""

    __slots__ = ("_connection", "_finished", "_lock", "at", "expired")

    def __init__(self, at: float) -> None:
        self.at = at
        self.expired = False
        self._connection: HTTPConnection | None = None
        self._finished = False
        self._lock = threading.Lock()

    def attach(self, connection: HTTPConnection) -> None:
        with self._lock:
            self._connection = connection
            if self.expired:  # passed while connecting: the socket exists only now
                _shut_down(connection)

    def expire(self) -> None:
        # Under the lock, so that a request that has just finished cannot have handed its
        # connection to the next request before the socket is shut down.
        with self._lock:
            if self._finished:
                return
            self.expired = True
            if self._connection is not None:
                _shut_down(self._connection)

    def finish(self) -> None:
        with self._lock:
            self._finished = True
        _current.deadline = None


def _shut_down(connection: HTTPConnection) -> None:
    sock = getattr(connection, "sock", None)
    if isinstance(sock, socket.socket):
        # socket.socket's own shutdown: SSLSocket.shutdown would also drop its TLS state
        # under the feet of the thread that is reading.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


_current = threading.local()


def _attach_current(connection: HTTPConnection) -> None:
    deadline: Deadline | None = getattr(_current, "deadline", None)
    if deadline is not None:
        deadline.attach(connection)


class _Watchdog:
    """Wakes at the earliest pending deadline; finished requests are skipped when it comes."""

    def __init__(self) -> None:
        self._pending: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._changed = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None

    def start(self, seconds: float) -> Deadline:
        deadline = Deadline(time.monotonic() + seconds)
        with self._changed:
            heapq.heappush(self._pending, (deadline.at, next(self._order), deadline))
            if self._thread is None:
                self._start_thread()
            elif self._pending[0][2] is deadline:
                self._changed.notify()
        _current.deadline = deadline
        return deadline

    def _start_thread(self) -> None:
        thread = threading.Thread(
            target=self._run, name="composio-telemetry-deadlines", daemon=True
        )
        try:
            thread.start()
        except RuntimeError:
            # At interpreter exit (3.12 refuses new threads): urllib3's per-operation timeouts
            # still hold, and the exit drain has a deadline of its own.
            return
        self._thread = thread
        _runtime.register_library_thread(thread)

    def _run(self) -> None:
        with self._changed:
            while True:
                if not self._pending:
                    self._changed.wait()
                    continue
                delay = self._pending[0][0] - time.monotonic()
                if delay > 0:
                    self._changed.wait(delay)
                    continue
                heapq.heappop(self._pending)[2].expire()


_watchdog = _Watchdog()
_watchdog_pid = _runtime.pid


def start(seconds: float) -> Deadline:
    """A deadline ``seconds`` from now for the request this thread is about to make.

    Call ``finish()`` on it once the reply is read, before the connection goes back to the pool.
    """
    global _watchdog, _watchdog_pid
    if _watchdog_pid != _runtime.pid:  # a forked child has the parent's heap but not its thread
        _watchdog, _watchdog_pid = _Watchdog(), _runtime.pid
    return _watchdog.start(seconds)


class _DeadlineHTTPConnection(HTTPConnection):
    """A connection that reports to the watchdog when it connects and when it sends; the
    HTTPS one is the same, by inheritance (its MRO puts HTTPSConnection after this)."""

    def connect(self) -> None:
        super().connect()
        _attach_current(self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach_current(self)
        super().request(*args, **kwargs)


class _DeadlineHTTPSConnection(_DeadlineHTTPConnection, HTTPSConnection):
    pass


class _DeadlineHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


POOL_CLASSES: dict[str, type[HTTPConnectionPool]] = {
    "http": _DeadlineHTTPConnectionPool,
    "https": _DeadlineHTTPSConnectionPool,
}
"""For a urllib3 ``PoolManager``'s ``pool_classes_by_scheme``: connections that report to
the watchdog."""
