"""A local Composio-compatible telemetry receiver, for ``serve``, ``demo``, tests and benchmarks.

It speaks the same two endpoints as ``https://telemetry.composio.dev/v1`` but is stricter: every
body is checked against the wire schema, so a client bug shows up as a 400 naming the bad field
instead of vanishing. Events land in SQLite and can be watched at ``GET /`` (a live page) or read
as JSON from ``GET /v1/events``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import sqlite3
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from types import TracebackType
from typing import Any, Literal, NoReturn, TextIO, cast
from urllib.parse import parse_qs, urlsplit

from .validation import validate_body

__all__ = ["MAX_BODY_BYTES", "Receiver", "percentile", "serve"]

MAX_BODY_BYTES = 5 * 1024 * 1024
"""Bodies above this get 413: a well-behaved client batches far below it."""

EventKind = Literal["metric", "error"]

_POST_ROUTES: dict[str, EventKind] = {
    "/v1/metrics/invocations": "metric",
    "/v1/errors": "error",
}
_GET_ROUTES = ("/", "/v1/events")
_DEFAULT_EVENTS_LIMIT = 200
_MAX_EVENTS_LIMIT = 10_000
_IDLE_CONNECTION_TIMEOUT = 60.0
_INSERT_ROW = "INSERT INTO events (kind, received_at, event) VALUES (?, ?, ?)"
# A validated body's events become rows inside SQLite (JSON1), in C and without the GIL:
# re-encoding each event in Python took a third of the receiver's time under load. The event
# text is the sender's own.
_INSERT_ROWS_OF_ARRAY = (
    "INSERT INTO events (kind, received_at, event) SELECT ?, ?, value FROM json_each(?)"
)

_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    received_at REAL NOT NULL,
    event TEXT NOT NULL
);
"""


def percentile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100), None for no values.

    Nearest-rank always returns a value that was actually observed, which is what a reader of
    ``p95 = 412.3 ms`` expects.
    """
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[_nearest_rank(len(ordered), q) - 1]


def _nearest_rank(count: int, q: float) -> int:
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be between 0 and 100, not {q}")
    return max(1, math.ceil(q / 100 * count))


class _RequestError(Exception):
    """Ends a request with an HTTP error status and a JSON ``{"error": ...}`` body."""

    def __init__(self, status: HTTPStatus, message: str, *, allow: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.allow = allow


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The stdlib's backlog of 5 drops SYNs under a burst of one-connection-per-event clients,
    # which turns into one-second retransmit stalls that would be blamed on the client.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], receiver: Receiver) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.receiver = receiver
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self.closing = False
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket) -> bool:
        """Remember a connection to drop at stop; False if the receiver is already stopping."""
        with self.connections_lock:
            if self.closing:
                return False
            self.open_connections.add(connection)
            return True

    def forget(self, connection: socket.socket) -> None:
        with self.connections_lock:
            self.open_connections.discard(connection)

    def close_open_connections(self) -> None:
        """Keep-alive connections outlive ``shutdown()``; a stopped receiver must look down."""
        with self.connections_lock:
            self.closing = True
            connections = list(self.open_connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-request is routine, not worth a traceback on stderr."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = _IDLE_CONNECTION_TIMEOUT
    # Buffered so that headers and body leave in one segment; handle_one_request flushes.
    wbufsize = 64 * 1024
    server_version = "composio-logtelemetry-receiver"

    @property
    def receiver(self) -> Receiver:
        return cast(_Server, self.server).receiver

    def setup(self) -> None:
        super().setup()
        if not cast(_Server, self.server).track(self.connection):
            self.connection.shutdown(socket.SHUT_RDWR)
        self.receiver._connection_opened()

    def finish(self) -> None:
        cast(_Server, self.server).forget(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def handle_expect_100(self) -> bool:
        """Refuse a too large body before it is sent, and flush the "100 Continue" (buffered)."""
        try:
            length = self._content_length()
        except _RequestError as error:
            self._send_error(error)
            return False
        if length is not None and length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send_error(_too_large(length))
            return False
        accepted = super().handle_expect_100()
        self.wfile.flush()
        return accepted

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: ``serve`` prints one line per event instead of one per request."""

    def do_POST(self) -> None:
        self._respond(self._post)

    def do_GET(self) -> None:
        self._respond(self._get)

    def do_HEAD(self) -> None:
        self._respond(self._get, head=True)

    def do_PUT(self) -> None:
        self._respond(self._wrong_method)

    def do_PATCH(self) -> None:
        self._respond(self._wrong_method)

    def do_DELETE(self) -> None:
        self._respond(self._wrong_method)

    def do_OPTIONS(self) -> None:
        self._respond(self._wrong_method)

    def _respond(self, route: Callable[[str], tuple[bytes, str]], *, head: bool = False) -> None:
        """Every route answers through here, so every answer has a correct Content-Length."""
        try:
            body, content_type = route(urlsplit(self.path).path)
        except _RequestError as error:
            self._send_error(error, head=head)
            return
        self._send(HTTPStatus.OK, body, content_type, head=head)

    def _send_error(self, error: _RequestError, *, head: bool = False) -> None:
        body = _json_bytes({"error": error.message})
        self._send(error.status, body, "application/json", allow=error.allow, head=head)

    def _send(
        self,
        status: HTTPStatus,
        body: bytes,
        content_type: str,
        *,
        allow: str | None = None,
        head: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if allow is not None:
            self.send_header("Allow", allow)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _post(self, path: str) -> tuple[bytes, str]:
        kind = _POST_ROUTES.get(path)
        if kind is None:
            self._discard_body()
            self._raise_for_unrouted(path)
        raw_body = self._read_body()
        receiver = self.receiver
        if receiver.latency > 0:
            time.sleep(receiver.latency)
        text, events = _parse_events(kind, raw_body)
        receiver._store(kind, events, text)
        return _json_bytes({"accepted": len(events)}), "application/json"

    def _get(self, path: str) -> tuple[bytes, str]:
        self._discard_body()
        if path == "/":
            return _live_page(), "text/html; charset=utf-8"
        if path == "/v1/events":
            query = parse_qs(urlsplit(self.path).query)
            limit = _int_param(query, "limit", _DEFAULT_EVENTS_LIMIT, 0, _MAX_EVENTS_LIMIT)
            since = _int_param(query, "since", 0, 0, None)
            return _json_bytes(self.receiver._events_page(limit, since)), "application/json"
        self._raise_for_unrouted(path)

    def _wrong_method(self, path: str) -> tuple[bytes, str]:
        self._discard_body()
        self._raise_for_unrouted(path)

    def _raise_for_unrouted(self, path: str) -> NoReturn:
        if path in _POST_ROUTES:
            raise _RequestError(
                HTTPStatus.METHOD_NOT_ALLOWED, f"{path} accepts POST only", allow="POST"
            )
        if path in _GET_ROUTES:
            raise _RequestError(
                HTTPStatus.METHOD_NOT_ALLOWED, f"{path} accepts GET only", allow="GET, HEAD"
            )
        routes = ", ".join([*(f"POST {route}" for route in _POST_ROUTES), "GET /v1/events"])
        raise _RequestError(HTTPStatus.NOT_FOUND, f"no such endpoint {path}; try {routes}")

    def _content_length(self) -> int | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise _RequestError(
                HTTPStatus.LENGTH_REQUIRED, "chunked bodies are not supported; send Content-Length"
            )
        header = self.headers.get("Content-Length")
        if header is None:
            return None
        try:
            length = int(header)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            raise _RequestError(HTTPStatus.BAD_REQUEST, f"invalid Content-Length {header!r}")
        return length

    def _read_body(self) -> bytes:
        length = self._content_length()
        if length is None:
            self.close_connection = True
            raise _RequestError(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
        if length > MAX_BODY_BYTES:
            # Reading it would only waste time; closing is the one way to skip it on HTTP/1.1.
            self.close_connection = True
            raise _too_large(length)
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            raise _RequestError(HTTPStatus.BAD_REQUEST, "body ended before Content-Length")
        return body

    def _discard_body(self) -> None:
        """An unread body would be parsed as the next request on this keep-alive connection."""
        try:
            length = self._content_length()
        except _RequestError:
            return
        if not length:
            return
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            return
        self.rfile.read(length)


def _too_large(length: int) -> _RequestError:
    return _RequestError(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        f"body of {length} bytes exceeds the limit of {MAX_BODY_BYTES} bytes",
    )


def _parse_events(kind: EventKind, raw_body: bytes) -> tuple[str, list[dict[str, Any]]]:
    """The body as text, and its events once they match the wire schema."""
    try:
        text = raw_body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _RequestError(
            HTTPStatus.BAD_REQUEST, f"body is not UTF-8 (byte {error.start})"
        ) from None
    try:
        body = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as error:
        raise _RequestError(
            HTTPStatus.BAD_REQUEST,
            f"body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}",
        ) from None
    except ValueError as error:
        raise _RequestError(HTTPStatus.BAD_REQUEST, f"body is not valid JSON: {error}") from None
    except RecursionError:
        raise _RequestError(HTTPStatus.BAD_REQUEST, "body is nested too deeply") from None
    problem = validate_body(kind, body)
    if problem is not None:
        raise _RequestError(HTTPStatus.BAD_REQUEST, problem)
    return text, cast("list[dict[str, Any]]", body) if kind == "metric" else [body]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of the range of a double")
    return value


def _int_param(
    query: dict[str, list[str]], name: str, default: int, low: int, high: int | None
) -> int:
    values = query.get(name)
    if not values:
        return default
    try:
        value = int(values[-1])
    except ValueError:
        value = low - 1
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise _RequestError(
            HTTPStatus.BAD_REQUEST, f"query parameter {name} must be an integer {bounds}"
        )
    return value


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), allow_nan=False).encode("ascii")


_live_page_cache: list[bytes] = []


def _live_page() -> bytes:
    if not _live_page_cache:
        package = resources.files(__package__ or "composio_logtelemetry.devtools")
        page = package / "static" / "index.html"
        _live_page_cache.append(page.read_bytes())
    return _live_page_cache[0]


def _as_float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def _printable(text: str, limit: int = 200) -> str:
    """One terminal line: no newlines and no escape sequences from event data reach the console."""
    shown = "".join(char if char.isprintable() else f"\\x{ord(char):02x}" for char in text[:limit])
    return shown + ("…" if len(text) > limit else "")


def _format_echo_line(kind: EventKind, event: dict[str, Any], received_at: float) -> str:
    clock = time.strftime("%H:%M:%S", time.localtime(received_at))
    function_name = _printable(str(event.get("functionName", "")))
    duration = _as_float(event.get("durationMs"))
    duration_text = f"{duration:.2f}ms" if duration is not None else "-"
    if kind == "metric":
        return f"{clock} metric {function_name} {duration_text}"
    error = event.get("error", {})
    message = str(error.get("message", "")).strip().splitlines()
    detail = f": {_printable(message[0], 120)}" if message else ""
    return f"{clock} error  {function_name} {duration_text} {_printable(error['name'])}{detail}"


class Receiver:
    """A Composio-compatible receiver on a local port, storing what it accepts in SQLite.

    ``base_url`` is what a client uses as its endpoint. ``db_path=None`` keeps events in memory;
    a path makes them persist across runs. ``echo`` gets one line per event; ``latency`` seconds
    are waited before each POST reply, to benchmark clients against a slow endpoint.
    The socket is bound at construction, so ``port`` is known before ``start()``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        db_path: str | os.PathLike[str] | None = None,
        *,
        echo: TextIO | None = None,
        latency: float = 0.0,
    ) -> None:
        if latency < 0 or not math.isfinite(latency):
            raise ValueError(f"latency must be a finite number of seconds >= 0, not {latency}")
        self.latency = latency
        self._echo = echo
        self._echo_lock = threading.Lock()
        self._db = sqlite3.connect(
            db_path if db_path is not None else ":memory:",
            check_same_thread=False,
            isolation_level=None,
        )
        self._db_finalizer = weakref.finalize(self, self._db.close)
        if db_path is not None:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA_SQL)
        self._json_in_sqlite = _has_json_functions(self._db)
        # One lock guards the connection, the counters, the summary and the waiters of wait_for().
        self._changed = threading.Condition(threading.Lock())
        self._counts: dict[str, int] = dict.fromkeys(_POST_ROUTES.values(), 0)
        self._functions: dict[str, _FunctionStats] = {}
        for kind, event_json in self._db.execute("SELECT kind, event FROM events ORDER BY id"):
            self._count_event(kind, json.loads(event_json))
        self._requests_received = 0
        self._connections_accepted = 0
        self._thread: threading.Thread | None = None
        self._stopped = False
        try:
            self._server = _Server((host, port), self)
        except BaseException:
            self._db_finalizer()
            raise
        self._host = host

    def start(self) -> Receiver:
        """Serve in a daemon thread; returns self so that ``Receiver().start()`` reads well."""
        if self._stopped:
            raise RuntimeError("a stopped Receiver cannot be started again")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"composio-logtelemetry-receiver-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop open connections; stored events stay readable until ``close()``."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
        self._server.close_open_connections()

    def close(self) -> None:
        """Stop, then close the database (a file-backed one keeps its events on disk)."""
        self.stop()
        with self._changed:
            self._db_finalizer()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def host(self) -> str:
        """The host that clients should connect to (a wildcard address means loopback)."""
        return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self._host, self._host)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The live page."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def base_url(self) -> str:
        """The endpoint to configure a client with, like ``https://telemetry.composio.dev/v1``."""
        return self.url + "v1"

    @property
    def requests_received(self) -> int:
        """POSTs accepted (answered 200); rejected ones are not counted."""
        with self._changed:
            return self._requests_received

    @property
    def connections_accepted(self) -> int:
        """TCP connections accepted so far: tells whether clients reuse their connections."""
        with self._changed:
            return self._connections_accepted

    def count(self, kind: EventKind | None = None) -> int:
        """Events stored (of one kind, or all), including those of earlier runs on the same file."""
        with self._changed:
            return self._count_locked(kind)

    def wait_for(self, count: int, timeout: float, kind: EventKind | None = None) -> bool:
        """Block until at least ``count`` events are stored; False if ``timeout`` passes first."""
        with self._changed:
            return self._changed.wait_for(lambda: self._count_locked(kind) >= count, timeout)

    def events(self, kind: EventKind | None = None) -> list[dict[str, Any]]:
        """Stored events, oldest first, as ``{"id", "kind", "received_at", "event"}``."""
        query = "SELECT id, kind, received_at, event FROM events"
        parameters: tuple[str, ...] = ()
        if kind is not None:
            query += " WHERE kind = ?"
            parameters = (kind,)
        with self._changed:
            rows = self._db.execute(query + " ORDER BY id", parameters).fetchall()
        return [_event_dict(row) for row in rows]

    def _count_locked(self, kind: EventKind | None) -> int:
        if kind is None:
            return sum(self._counts.values())
        return self._counts[kind]

    def _connection_opened(self) -> None:
        with self._changed:
            self._connections_accepted += 1

    def _count_event(self, kind: str, event: dict[str, Any]) -> None:
        """Adds one event to the counters and the summary (call with the lock held)."""
        self._counts[kind] += 1
        name = event["functionName"]
        stats = self._functions.get(name)
        if stats is None:
            stats = self._functions[name] = _FunctionStats()
        stats.add(kind, event.get("durationMs"))

    def _store(self, kind: EventKind, events: Sequence[dict[str, Any]], text: str) -> None:
        """Stores the events of one body, ``text`` being that body as sent."""
        received_at = time.time()
        with self._changed:
            if not self._insert_in_sqlite(kind, received_at, text):
                self._insert_rows(kind, received_at, events)
            for event in events:
                self._count_event(kind, event)
            self._requests_received += 1
            self._changed.notify_all()
        if self._echo is not None:
            self._print_events(kind, events, received_at)

    def _insert_in_sqlite(self, kind: EventKind, received_at: float, text: str) -> bool:
        """Lets SQLite split the body into rows; False where it can't (call with the lock held).

        SQLite would decode a lone surrogate escape (``"\\ud800"``) into text that cannot be
        read back: such bodies take ``_insert_rows``, as does any body SQLite refuses.
        """
        if not self._json_in_sqlite or "\\ud" in text or "\\uD" in text:
            return False
        try:  # one statement is one transaction: no BEGIN and COMMIT to wait for the GIL after
            self._db.execute(
                _INSERT_ROWS_OF_ARRAY,
                (kind, received_at, text if kind == "metric" else f"[{text}]"),
            )
        except sqlite3.Error:
            return False
        return True

    def _insert_rows(
        self, kind: EventKind, received_at: float, events: Sequence[dict[str, Any]]
    ) -> None:
        rows = [(kind, received_at, json.dumps(event, separators=(",", ":"))) for event in events]
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(_INSERT_ROW, rows)

    def _print_events(
        self, kind: EventKind, events: Sequence[dict[str, Any]], received_at: float
    ) -> None:
        """Echo is a courtesy: a closed or broken stream turns it off, never fails a request."""
        lines = "".join(_format_echo_line(kind, event, received_at) + "\n" for event in events)
        with self._echo_lock:
            if self._echo is None:
                return
            try:
                self._echo.write(lines)
                self._echo.flush()
            except (OSError, ValueError):
                self._echo = None

    def _events_page(self, limit: int, since: int) -> dict[str, Any]:
        """The body of ``GET /v1/events``: newest events first, and a summary of all of them."""
        with self._changed:
            rows = self._db.execute(
                "SELECT id, kind, received_at, event FROM events WHERE id > ?"
                " ORDER BY id DESC LIMIT ?",
                (since, limit),
            ).fetchall()
            latest_id = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0]
            summary = self._summary_locked()
        return {
            "events": [_event_dict(row) for row in rows],
            "latest_id": latest_id,
            "summary": summary,
        }

    def _summary_locked(self) -> dict[str, dict[str, Any]]:
        return {name: self._functions[name].summary() for name in sorted(self._functions)}


class _FunctionStats:
    """What the summary shows of one functionName, kept up to date as events arrive.

    Durations are kept as a list that is sorted when a summary is read, so that a live page
    polling every second pays for the new values only (Timsort merges the sorted run and the
    new tail), and storing an event pays for no index. The price: some 32 bytes of memory per
    event, and a file database is read once at start (0.3 s per 100,000 events).
    """

    __slots__ = ("count", "durations", "errors", "sorted_count")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        self.durations: list[float] = []
        self.sorted_count = 0

    def add(self, kind: str, duration: object) -> None:
        self.count += 1
        if kind == "error":
            self.errors += 1
        value = _as_float(duration)
        if value is not None:
            self.durations.append(value)

    def summary(self) -> dict[str, Any]:
        durations = self.durations
        if self.sorted_count != len(durations):
            durations.sort()
            self.sorted_count = len(durations)
        p50 = p95 = None
        if durations:
            p50, p95 = (durations[_nearest_rank(len(durations), q) - 1] for q in (50, 95))
        return {"count": self.count, "errors": self.errors, "p50": p50, "p95": p95}


def _has_json_functions(db: sqlite3.Connection) -> bool:
    """SQLite has them built in since 3.38, and most builds of older versions include them."""
    try:
        db.execute("SELECT count(*) FROM json_each('[]')")
    except sqlite3.OperationalError:
        return False
    return True


def _event_dict(row: tuple[int, str, float, str]) -> dict[str, Any]:
    event_id, kind, received_at, event_json = row
    return {
        "id": event_id,
        "kind": kind,
        "received_at": received_at,
        "event": json.loads(event_json),
    }


def serve(host: str, port: int, db_path: str | None) -> int:
    """Run a receiver in the foreground until Ctrl-C, printing one line per event."""
    try:
        receiver = Receiver(host, port, db_path, echo=sys.stdout)
    except OSError as error:
        print(f"error: cannot listen on {host}:{port}: {error.strerror or error}", file=sys.stderr)
        return 1
    except sqlite3.Error as error:
        print(f"error: cannot use {db_path} as the event database: {error}", file=sys.stderr)
        return 1
    with receiver:
        storage = db_path if db_path is not None else "memory (lost at exit)"
        print(f"composio-logtelemetry receiver: endpoint {receiver.base_url}", flush=True)
        print(
            f"  live page {receiver.url}  events stored in {storage}  (Ctrl-C to stop)", flush=True
        )
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopped", flush=True)
    receiver.close()
    return 0
