"""A capture endpoint on 127.0.0.1 for the pytest plugin: keeps what it is sent, says what is wrong.

It answers like the Composio endpoint (and like the dev receiver, 400 for a body that does not
match the wire schema), but instead of storing events it keeps them in memory for the test,
and keeps the reason of every refused body so that the test can fail naming the field.
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, cast

from .validation import validate_body

__all__ = ["CaptureServer"]

EventKind = Literal["metric", "error"]

_ROUTES: dict[str, EventKind] = {"/v1/metrics/invocations": "metric", "/v1/errors": "error"}
_SHOWN_BODY_CHARS = 300


class CaptureServer:
    """Serves the two Composio endpoints under ``url`` from a daemon thread until ``stop()``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[tuple[EventKind, dict[str, Any]]] = []
        self._problems: list[str] = []
        self._server = _Server(("127.0.0.1", 0), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="composio-telemetry-capture",
            daemon=True,
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """The endpoint to give a TelemetryHandler (its paths are added by the handler)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def events(self) -> list[tuple[EventKind, dict[str, Any]]]:
        """Every event of every accepted body, in the order the bodies arrived."""
        with self._lock:
            return list(self._events)

    def problems(self) -> list[str]:
        """Why each refused body was refused, in the order they arrived."""
        with self._lock:
            return list(self._problems)

    def receive(self, path: str, raw_body: bytes) -> tuple[HTTPStatus, dict[str, Any]]:
        """The answer to one POST; valid events are kept, a refused body's reason too."""
        kind = _ROUTES.get(path)
        if kind is None:
            return HTTPStatus.NOT_FOUND, {"error": f"no such endpoint {path}"}
        problem, events = _check(kind, raw_body)
        with self._lock:
            if problem is None:
                self._events.extend((kind, event) for event in events)
            else:
                shown = raw_body[:_SHOWN_BODY_CHARS].decode("utf-8", "replace")
                self._problems.append(f"{problem}\n  in the {kind} body sent to {path}: {shown}")
        if problem is not None:
            return HTTPStatus.BAD_REQUEST, {"error": problem}
        return HTTPStatus.OK, {"accepted": len(events)}

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _check(kind: EventKind, raw_body: bytes) -> tuple[str | None, list[dict[str, Any]]]:
    """The body's problem (naming the field), or None and its events."""
    try:
        body = json.loads(raw_body.decode("utf-8"), parse_constant=_not_a_number)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        return f"body is not valid JSON: {error}", []
    problem = validate_body(kind, body)
    if problem is not None:
        return problem, []
    return None, cast("list[dict[str, Any]]", body) if kind == "metric" else [body]


def _not_a_number(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], capture: CaptureServer) -> None:
        self.capture = capture
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real endpoint: the pool is exercised
    disable_nagle_algorithm = True
    timeout = 30.0  # an idle keep-alive connection ends, even if a client forgets it

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the test output is the user's."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length)
        capture = cast(_Server, self.server).capture
        status, answer = capture.receive(self.path.partition("?")[0], raw_body)
        payload = json.dumps(answer).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
