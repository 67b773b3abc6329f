"""The ``composio_telemetry`` fixture, used as a user would: pytest runs a test file of theirs.

Each test writes a small application that configures logging with dictConfig when it is
imported, pointed at its "real" endpoint: a socket on 127.0.0.1 that only counts connections
(so anything that reached it would be seen), then runs a test file of the user's in a pytest
subprocess, where the plugin comes from the package's ``pytest11`` entry point.
"""

from __future__ import annotations

import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from composio_logtelemetry.devtools.capture import CaptureServer

pytest_plugins = ["pytester"]

APP = """
import logging
import logging.config
import os

REAL_ENDPOINT = os.environ["APP_TELEMETRY_ENDPOINT"]

logging.config.dictConfig({
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {
        "telemetry": {
            "class": "composio_logtelemetry.TelemetryQueueHandler",
            "handlers": ["composio"],
        },
        "composio": {
            "class": "composio_logtelemetry.TelemetryHandler",
            "endpoint": REAL_ENDPOINT,
            "max_retries": 0,
        },
    },
    "loggers": {"app": {"handlers": ["telemetry"], "level": "INFO"}},
})

log = logging.getLogger("app")


def run_tool(tool):
    log.info("ran %s", tool, extra={"telemetry": {
        "functionName": "Tools.execute", "durationMs": 12.5, "props": {"tool": tool},
    }})


def fail_tool():
    try:
        raise ValueError("bad input")
    except ValueError:
        log.exception("failed", extra={"telemetry": {"functionName": "Tools.execute"}})
"""


class CountingEndpoint:
    """A port that accepts connections, counts them and hangs up: an endpoint that fails
    (TLS never completes) and shows whether anything tried to reach it."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._listener.getsockname()[1]}/v1"

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self._listener.close()
        self._thread.join(5)


@pytest.fixture
def real_endpoint() -> Iterator[CountingEndpoint]:
    endpoint = CountingEndpoint()
    yield endpoint
    endpoint.close()


@pytest.fixture
def app(
    pytester: pytest.Pytester, real_endpoint: CountingEndpoint, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The application module, its endpoint and spool directory set through the environment."""
    monkeypatch.setenv("APP_TELEMETRY_ENDPOINT", real_endpoint.url)
    monkeypatch.setenv("COMPOSIO_TELEMETRY_URL", real_endpoint.url)  # the default pipeline's
    monkeypatch.setenv("XDG_CACHE_HOME", str(pytester.path / "cache"))
    for name in ("COMPOSIO_DISABLE_TELEMETRY", "TELEMETRY_DISABLED", "DO_NOT_TRACK"):
        monkeypatch.delenv(name, raising=False)
    return pytester.makepyfile(telemetry_app=APP)


def spooled_events(pytester: pytest.Pytester) -> int:
    """Events in every spool file the run left in the user's cache directory."""
    total = 0
    for path in (pytester.path / "cache").rglob("spool-*.sqlite3"):
        with sqlite3.connect(path) as db:
            total += db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    return total


def run(pytester: pytest.Pytester, test_source: str) -> pytest.RunResult:
    pytester.makepyfile(test_user=test_source)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", timeout=120)


def test_captures_log_records_push_event_and_timed(
    pytester: pytest.Pytester, app: Path, real_endpoint: CountingEndpoint
) -> None:
    result = run(
        pytester,
        """
import logging

import pytest

from composio_logtelemetry import TelemetryHandler, create_event, push_event, timed
from telemetry_app import REAL_ENDPOINT, fail_tool, run_tool


def test_a_tool_call_sends_a_metric(composio_telemetry):
    run_tool("github")
    [metric] = composio_telemetry.metrics("Tools.execute")
    assert metric["durationMs"] == 12.5
    assert metric["props"] == {"tool": "github"}
    assert metric["source"]["language"] == "python"
    assert composio_telemetry.errors() == []


def test_a_failure_sends_an_error(composio_telemetry):
    fail_tool()
    [error] = composio_telemetry.errors("Tools.execute")
    assert error["error"]["name"] == "ValueError"
    assert error["error"]["message"] == "bad input"
    assert "Traceback" in error["error"]["stack"]


def test_the_default_pipeline_and_timed(composio_telemetry):
    push_event(create_event("metric", function_name="Sdk.call", duration_ms=3.0))
    with timed("Agent.run"):
        pass
    with pytest.raises(KeyError), timed("Agent.run"):
        raise KeyError("missing")
    assert [m["durationMs"] for m in composio_telemetry.metrics("Sdk.call")] == [3.0]
    assert len(composio_telemetry.metrics("Agent.run")) == 1
    assert [e["error"]["name"] for e in composio_telemetry.errors("Agent.run")] == ["KeyError"]


def test_a_handler_made_during_the_test_is_captured_too(composio_telemetry):
    direct = TelemetryHandler(endpoint=REAL_ENDPOINT)
    logger = logging.getLogger("made.now")
    logger.addHandler(direct)
    try:
        logger.warning("x", extra={"telemetry": {"functionName": "Now.run", "durationMs": 1.0}})
    finally:
        logger.removeHandler(direct)
        direct.close()
    assert len(composio_telemetry.metrics("Now.run")) == 1
""",
    )
    result.assert_outcomes(passed=4)
    assert real_endpoint.connections == 0
    assert spooled_events(pytester) == 0


def test_a_missing_event_fails_the_test(pytester: pytest.Pytester, app: Path) -> None:
    result = run(
        pytester,
        """
from telemetry_app import run_tool


def test_expects_an_error(composio_telemetry):
    run_tool("github")
    assert len(composio_telemetry.errors("Tools.execute")) == 1
""",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*assert 0 == 1*"])


def test_an_invalid_body_fails_the_test_naming_the_field(
    pytester: pytest.Pytester, app: Path, real_endpoint: CountingEndpoint
) -> None:
    """The library cannot put an invalid body on the wire (what a formatter hook returns is
    checked again), so these tests post one themselves, as a client that skips the checks
    would: from the test's point of view that is what an invalid body looks like."""
    result = run(
        pytester,
        """
import requests

from composio_logtelemetry import TelemetryHandler


def post_a_negative_duration():
    url = TelemetryHandler._capture_endpoint + "/metrics/invocations"
    requests.post(url, json=[{"functionName": "Tools.execute", "durationMs": -1}], timeout=5)


def test_asks_for_the_metrics(composio_telemetry):
    post_a_negative_duration()
    composio_telemetry.metrics()


def test_never_asks(composio_telemetry):
    post_a_negative_duration()
""",
    )
    # The first fails in the call; the second passes its call and the fixture's end reports
    # the body (an error at teardown).
    result.assert_outcomes(failed=1, passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*does not match the wire schema*",
            "*data?0?.durationMs must be bigger than or equal to 0",
        ],
        consecutive=False,
    )
    assert real_endpoint.connections == 0


def test_afterwards_pipelines_send_to_their_own_endpoint_again(
    pytester: pytest.Pytester, app: Path, real_endpoint: CountingEndpoint
) -> None:
    result = run(
        pytester,
        """
import logging

from composio_logtelemetry import api, create_event, flush, push_event, setup
from telemetry_app import REAL_ENDPOINT, run_tool


def test_with_the_fixture(composio_telemetry):
    run_tool("github")
    setup(max_retries=0)  # the default pipeline, made during the test
    push_event(create_event("metric", function_name="Sdk.call"))
    assert len(composio_telemetry.metrics()) == 2


def test_without_it():
    handlers = [logging.getLogger("app").handlers[0], api._default_handler]
    for queue_handler in handlers:
        [telemetry_handler] = queue_handler.listener.telemetry_handlers
        assert telemetry_handler.endpoint == REAL_ENDPOINT
    run_tool("github")
    push_event(create_event("metric", function_name="Sdk.call"))
    assert not handlers[0].flush(10.0)  # the real endpoint fails: not delivered
    assert not flush(10.0)
    assert handlers[0].stats()["spooled"] == 1
    assert api._default_handler.stats()["spooled"] == 1
""",
    )
    result.assert_outcomes(passed=2)
    assert real_endpoint.connections >= 2  # both pipelines tried their own endpoint
    assert spooled_events(pytester) == 2  # where their failures belong: their own spool


def test_the_capture_checks_raw_bodies_as_the_endpoint_would() -> None:
    server = CaptureServer()
    try:
        with requests.Session() as session:
            valid = session.post(
                f"{server.url}/metrics/invocations",
                data=b'[{"functionName": "Tools.execute", "durationMs": 1.5}]',
            )
            unknown_key = session.post(
                f"{server.url}/errors",
                data=b'{"functionName": "f", "error": {"name": "E"}, "oops": 1}',
            )
            not_json = session.post(f"{server.url}/errors", data=b'{"durationMs": NaN}')
    finally:
        server.stop()
    assert valid.status_code == 200
    assert server.events() == [("metric", {"functionName": "Tools.execute", "durationMs": 1.5})]
    assert (unknown_key.status_code, not_json.status_code) == (400, 400)
    first, second = server.problems()
    assert "data.oops is not allowed" in first
    assert "NaN is not a JSON number" in second


def test_the_plugin_module_imports_nothing_of_its_own(pytester: pytest.Pytester) -> None:
    """pytest loads it in every session of every user: beyond the package and pytest, it costs
    one module (the capture server and the validator wait for a test that asks)."""
    result = pytester.run(
        pytester._getpytestargs()[0],
        "-c",
        "import sys, pytest, composio_logtelemetry; before = set(sys.modules); "
        "import composio_logtelemetry.pytest_plugin; print(sorted(set(sys.modules) - before))",
    )
    assert result.ret == 0
    assert result.stdout.lines[-1] == "['composio_logtelemetry.pytest_plugin']"
