"""Shared fixtures: a loopback HTTP endpoint that fails for real when told to."""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import struct
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource

import composio_logtelemetry
from composio_logtelemetry import _diagnostics
from composio_logtelemetry.devtools.receiver import Receiver

# Helper modules the tests import and whose asserts must say what failed.
pytest.register_assert_rewrite("hostile", "records")


def _schemas() -> dict[str, dict[str, Any]]:
    folder = resources.files("composio_logtelemetry") / "schemas"
    return {
        name: json.loads((folder / f"{name}.schema.json").read_text())
        for name in ("telemetry-event", "metrics-body", "error-body")
    }


SCHEMAS = _schemas()
REGISTRY = Registry().with_resources(
    (schema["$id"], Resource.from_contents(schema)) for schema in SCHEMAS.values()
)
VALIDATORS = {
    "metric": jsonschema.Draft202012Validator(SCHEMAS["metrics-body"], registry=REGISTRY),
    "error": jsonschema.Draft202012Validator(SCHEMAS["error-body"], registry=REGISTRY),
}

# Skips that stand on CI: the platform lacks the feature under test. Any other skip (a binary,
# a package, a network facility missing) fails when ``CI`` is set, since a skip passes a run.
PLATFORM_SKIPS = frozenset(
    {
        "dictConfig builds the listener on 3.12+",
        "the stdlib queue keys are 3.12+",
        "needs os.fork",
        "needs fork",
        "SIGTERM is a signal on POSIX only",
        "servers are stopped with signals",
        "POSIX file modes and fork",
    }
)


def _fail_skip_on_ci(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not os.environ.get("CI") or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)
    reason = reason.removeprefix("Skipped: ")
    if reason not in PLATFORM_SKIPS:
        report.outcome = "failed"
        report.longrepr = f"skipped on CI, where every real part must be present: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    _fail_skip_on_ci(outcome.get_result())  # type: ignore[attr-defined]


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    _fail_skip_on_ci(outcome.get_result())  # type: ignore[attr-defined]


# What the endpoint does with one request: ("ok",), ("status", code, headers), ("reset",),
# ("stall",), ("accept-then-reset",): the events are kept, then the reply is lost.
Action = tuple[Any, ...]


class FaultyEndpoint:
    """A Composio-compatible endpoint whose every answer a test can script.

    It validates every body with the real ``jsonschema`` against the packaged wire schemas
    and records schema violations, so any test doubles as a wire-format test.
    """

    def __init__(self) -> None:
        self.script: Callable[[str], Action] = lambda kind: ("ok",)
        self.max_body_bytes: int | None = None  # larger bodies get 413, as behind a proxy
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.raw_bodies: list[bytes] = []  # as they arrived, before any decoding
        self.batches: list[int] = []
        self.requests = 0
        self.user_agents: set[str] = set()
        self.queries: set[str] = set()
        self.violations: list[str] = []
        self.changed = threading.Condition()
        self.release_stalls = threading.Event()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                path, _, query = self.path.partition("?")
                kind = {"/v1/metrics/invocations": "metric", "/v1/errors": "error"}.get(path)
                with endpoint.changed:
                    endpoint.requests += 1
                    endpoint.user_agents.add(self.headers.get("User-Agent", ""))
                    endpoint.queries.add(query)
                if kind is None:
                    self._reply(404, b'{"error": "not found"}')
                    return
                if endpoint.max_body_bytes is not None and length > endpoint.max_body_bytes:
                    self._reply(413, b'{"error": "request entity too large"}')
                    return
                action = endpoint.script(kind)
                if action[0] == "accept-then-reset":
                    endpoint.accept(kind, body)  # the events arrived; the sender never learns it
                if action[0] in ("reset", "accept-then-reset"):
                    self._reset()
                    return
                if action[0] == "stall":
                    endpoint.release_stalls.wait(30)
                    self.close_connection = True
                    return
                if action[0] == "status":
                    self._reply(action[1], b'{"error": "scripted"}', action[2])
                    return
                endpoint.accept(kind, body)
                self._reply(200, b'{"ok": true}')

            def _reset(self) -> None:
                """A TCP reset instead of a reply (SO_LINGER 0), as a dying proxy does."""
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
                self.close_connection = True

            def _reply(
                self, status: int, body: bytes, headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def accept(self, kind: str, body: bytes) -> None:
        with self.changed:
            self.raw_bodies.append(body)
        try:
            payload = json.loads(body)
        except ValueError as exc:
            payload, problem = None, f"not JSON: {exc}"
        else:
            errors = sorted(VALIDATORS[kind].iter_errors(payload), key=str)
            problem = "; ".join(e.message for e in errors[:3]) if errors else ""
        with self.changed:
            if problem:
                self.violations.append(f"{kind}: {problem}")
            elif kind == "metric":
                self.events.extend(("metric", item) for item in payload)
                self.batches.append(len(payload))
            else:
                self.events.append(("error", payload))
            self.changed.notify_all()

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        with self.changed:
            return [event for event_kind, event in self.events if event_kind == kind]

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: len(self.events) >= count, timeout)

    def flaky(self, failure_rate: float, reset_rate: float, seed: int = 1) -> None:
        """Answers a share of requests with 500/503/429 and resets another share."""
        rng = random.Random(seed)
        lock = threading.Lock()

        def script(kind: str) -> Action:
            with lock:
                roll = rng.random()
            if roll < reset_rate:
                return ("reset",)
            if roll < reset_rate + failure_rate:
                status = rng.choice((500, 503, 429))
                return ("status", status, {"Retry-After": "0"} if status == 429 else {})
            return ("ok",)

        self.script = script

    def close(self) -> None:
        self.release_stalls.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[FaultyEndpoint]:
    server = FaultyEndpoint()
    yield server
    server.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """The project's own receiver, started on a free loopback port."""
    started = Receiver().start()
    try:
        yield started
    finally:
        started.close()


def closed_port() -> int:
    """A loopback port nobody listens on: connections are refused at once.

    Only for clients that must be refused. A server is never given this port (another
    process may take it before the server binds): servers bind port 0 and say their port.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")


@pytest.fixture(autouse=True)
def _isolated_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """No test reads the developer's opt-out, endpoint, proxy or CA variables (``requests``
    honours the last two kinds) or writes their cache.

    Each test also runs in its own empty directory, so a ``python -c`` or ``python -m``
    subprocess imports the installed package, not the checkout it was started from.
    """
    for name in (
        "COMPOSIO_DISABLE_TELEMETRY",
        "TELEMETRY_DISABLED",
        "DO_NOT_TRACK",
        "COMPOSIO_TELEMETRY_URL",
        "ENVIRONMENT",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "SSL_CERT_FILE",
        *PROXY_VARIABLES,
        *(name.lower() for name in PROXY_VARIABLES),
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))  # tmp_path stays the test's own
    _diagnostics._last_said.clear()  # each test sees its own once-a-minute warnings
    yield


@pytest.fixture
def pipeline(endpoint: FaultyEndpoint, tmp_path: Any) -> Iterator[Callable[..., Any]]:
    """Builds a queue pipeline on a fresh logger; shuts it down after the test."""
    made: list[tuple[logging.Logger, composio_logtelemetry.TelemetryQueueHandler]] = []

    def make(
        logger_name: str = "app", *, queue_options: dict[str, Any] | None = None, **options: Any
    ) -> tuple[logging.Logger, composio_logtelemetry.TelemetryQueueHandler]:
        options.setdefault("endpoint", endpoint.base_url)
        options.setdefault("spool_path", str(tmp_path / "spool.sqlite3"))
        options.setdefault("retry_backoff", 0.01)
        handler = composio_logtelemetry.TelemetryHandler(**options)
        queue_handler = composio_logtelemetry.TelemetryQueueHandler(
            handlers=[handler], **(queue_options or {})
        )
        logger = logging.getLogger(f"{logger_name}.{len(made)}.{id(queue_handler)}")
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        logger.addHandler(queue_handler)
        made.append((logger, queue_handler))
        return logger, queue_handler

    yield make
    for logger, queue_handler in made:
        logger.removeHandler(queue_handler)
        queue_handler.shutdown(2.0)


def run_python(code: str, env: dict[str, str] | None = None, timeout: float = 60.0) -> Any:
    """Runs ``code`` in a fresh interpreter, as an application that logs and simply exits."""
    import os
    import subprocess
    import time

    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    result.elapsed = time.monotonic() - started  # type: ignore[attr-defined]
    return result
