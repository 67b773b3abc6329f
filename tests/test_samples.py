"""The samples, run for real: scripts and servers in subprocesses, events into a ``Receiver``.

Each test starts a sample the way its docstring tells a user to, points it at a receiver on
127.0.0.1 with ``COMPOSIO_TELEMETRY_URL``, and checks what arrived: the metric and error
events, their ``functionName``, the error's name, and a stack that names the raising function.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from composio_logtelemetry.devtools.receiver import Receiver

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SCRIPT_TIMEOUT = 30.0
START_TIMEOUT = 20.0
EVENT_TIMEOUT = 10.0
STOP_TIMEOUT = 15.0
REQUEST_TIMEOUT = 5.0
OPT_OUT_VARIABLES = ("COMPOSIO_DISABLE_TELEMETRY", "TELEMETRY_DISABLED", "DO_NOT_TRACK")
DIAGNOSTIC_PREFIX = "composio-logtelemetry:"


def requires(*modules: str) -> pytest.MarkDecorator:
    """Skips a framework's test, saying why, when its package can't be imported."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    return pytest.mark.skipif(
        bool(missing),
        reason=f"{', '.join(missing)} not installed: pip install '.[samples]'",
    )


posix_only = pytest.mark.skipif(os.name != "posix", reason="servers are stopped with signals")


@pytest.fixture
def sample_env(receiver: Receiver, tmp_path: Path) -> dict[str, str]:
    """The environment of a sample: our receiver, and every file it writes under tmp_path."""
    env = {name: value for name, value in os.environ.items() if name not in OPT_OUT_VARIABLES}
    env.update(
        COMPOSIO_TELEMETRY_URL=receiver.base_url,
        XDG_CACHE_HOME=str(tmp_path / "cache"),  # the offline spool, if anything is spooled
        XDG_RUNTIME_DIR=str(tmp_path),  # gunicorn's control socket
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",  # nothing written into samples/
    )
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def closed_endpoint() -> str:
    """A loopback endpoint nobody listens on, so a misrouted event can't reach the internet."""
    return f"http://127.0.0.1:{free_port()}/v1"


def run_script(script: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, str(script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert DIAGNOSTIC_PREFIX not in output, output
    return result


class Server:
    """A sample server in a subprocess (its own session), its output in a file."""

    def __init__(self, command: list[str], env: dict[str, str], port: int, log: Path) -> None:
        self.port = port
        self.log = log
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                command,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_until_listening(self) -> None:
        """Polls the port (a bare TCP connect, so no request is logged), bounded."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"server exited with {self.process.returncode}:\n{self.output()}")
            with socket.socket() as sock:
                sock.settimeout(0.5)
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        pytest.fail(f"server not listening after {START_TIMEOUT} s:\n{self.output()}")

    def stop(self, stop_signal: signal.Signals) -> int:
        """Stops it as a user would (Ctrl-C or SIGTERM) and waits for a graceful exit."""
        if self.process.poll() is None:
            self.process.send_signal(stop_signal)
        try:
            return self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"server did not exit within {STOP_TIMEOUT} s:\n{self.output()}")

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)  # the server and its workers
            self.process.wait(STOP_TIMEOUT)


@contextlib.contextmanager
def serving(command: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[Server]:
    server = Server(command, env, port, log)
    try:
        server.wait_until_listening()
        yield server
    finally:
        server.kill()


def get(url: str) -> requests.Response:
    return requests.get(url, timeout=REQUEST_TIMEOUT)


def events_of(receiver: Receiver, kind: str, function_name: str) -> list[dict[str, Any]]:
    return [
        item["event"]
        for item in receiver.events(kind)  # type: ignore[arg-type]
        if item["event"]["functionName"] == function_name
    ]


def wait_for_events(receiver: Receiver, metrics: int, errors: int, output: str = "") -> None:
    """Waits, bounded, until the receiver holds at least this many events of each kind."""
    arrived = receiver.wait_for(metrics, EVENT_TIMEOUT, kind="metric") and receiver.wait_for(
        errors, EVENT_TIMEOUT, kind="error"
    )
    assert arrived, (
        f"expected {metrics} metrics and {errors} errors, got {receiver.count('metric')} and "
        f"{receiver.count('error')}: {receiver.events()}\n{output}"
    )


def assert_error(event: dict[str, Any], name: str, message: str, raised_in: str) -> None:
    error = event["error"]
    assert error["name"] == name
    assert error["message"] == message
    assert f", in {raised_in}\n" in error["stack"], error["stack"]
    assert error["stack"].rstrip().endswith(f"{name}: {message}"), error["stack"]


def assert_counts(receiver: Receiver, metrics: int, errors: int) -> None:
    assert (receiver.count("metric"), receiver.count("error")) == (metrics, errors), (
        receiver.events()
    )


def test_plain_script(receiver: Receiver, sample_env: dict[str, str]) -> None:
    run_script(SAMPLES / "plain_script.py", sample_env)

    # The script exited: everything it logged was delivered on the way out, nothing else.
    assert_counts(receiver, metrics=3, errors=1)
    fetches = events_of(receiver, "metric", "Rows.fetch")
    assert {event["props"]["table"] for event in fetches} == {"users", "orders", "invoices"}
    for event in fetches:
        assert event["durationMs"] > 0
        assert event["source"]["version"] == "1.0.0"
        assert event["metadata"] == {"provider": "samples"}
    [failure] = events_of(receiver, "error", "Reports.parse")
    assert_error(failure, "ValueError", "report 'q3' has no rows", raised_in="parse_report")


@pytest.mark.parametrize("endpoint_from", ["environment", "argument"])
def test_sdk_compat(receiver: Receiver, sample_env: dict[str, str], endpoint_from: str) -> None:
    args: list[str] = []
    if endpoint_from == "argument":
        args = ["--endpoint", receiver.base_url]
        sample_env["COMPOSIO_TELEMETRY_URL"] = closed_endpoint()
    result = run_script(SAMPLES / "sdk_compat.py", sample_env, *args)

    assert "flush: all events delivered" in result.stdout
    assert_counts(receiver, metrics=2, errors=1)
    [execute] = events_of(receiver, "metric", "Tools.execute")
    assert execute["durationMs"] >= 10
    assert execute["metadata"] == {"provider": "openai"}
    assert execute["source"] == {
        "environment": "development",
        "language": "python",
        "service": "sdk",
        "version": "1.0.0",
    }
    assert events_of(receiver, "metric", "Toolkits.list")
    [failure] = events_of(receiver, "error", "Tools.execute")
    assert "durationMs" in failure
    assert_error(
        failure, "ToolVersionRequiredError", "Toolkit version not specified.", "_check_version"
    )


@posix_only
@requires("django")
def test_django_app(receiver: Receiver, sample_env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    command = [
        sys.executable,
        str(SAMPLES / "django_app" / "app.py"),
        "runserver",
        f"127.0.0.1:{port}",
        "--noreload",
    ]
    with serving(command, sample_env, port, tmp_path / "django.log") as server:
        for _ in range(2):
            assert get(server.url("/orders/")).status_code == 200
        assert get(server.url("/reports/")).status_code == 500
        wait_for_events(receiver, metrics=2, errors=1, output=server.output())

        # Logged just before Ctrl-C: delivered on the way out.
        assert get(server.url("/orders/")).status_code == 200
        assert server.stop(signal.SIGINT) == 0, server.output()
        assert DIAGNOSTIC_PREFIX not in server.output(), server.output()

    assert_counts(receiver, metrics=3, errors=1)
    assert len(events_of(receiver, "metric", "orders.place")) == 3
    [failure] = events_of(receiver, "error", "reports.export")
    assert failure["props"] == {"method": "GET", "path": "/reports/", "status": 500}
    assert_error(failure, "ReportError", "the reports database is read-only", "render_report")


@posix_only
@requires("fastapi", "uvicorn")
def test_fastapi_app(receiver: Receiver, sample_env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, str(SAMPLES / "fastapi_app.py"), "--port", str(port)]
    with serving(command, sample_env, port, tmp_path / "uvicorn.log") as server:
        for item in ("widget", "gadget"):
            assert get(server.url(f"/quotes/{item}")).json()["item"] == item
        assert get(server.url("/payments")).status_code == 500
        wait_for_events(receiver, metrics=2, errors=1, output=server.output())

        # Logged just before SIGTERM: delivered by the app's lifespan shutdown; uvicorn then
        # re-raises SIGTERM into the library's handler, which ends the process as SIGTERM.
        assert get(server.url("/quotes/gizmo")).status_code == 200
        assert server.stop(signal.SIGTERM) == -signal.SIGTERM, server.output()
        assert "Exception in ASGI application" in server.output()
        assert DIAGNOSTIC_PREFIX not in server.output(), server.output()

    # uvicorn logged the exception too, but only timed's error event was sent.
    assert_counts(receiver, metrics=3, errors=1)
    for quote in events_of(receiver, "metric", "Quotes.get"):
        assert quote["durationMs"] >= 5
        assert quote["props"] == {"route": "/quotes/{item}"}
    [failure] = events_of(receiver, "error", "Payments.charge")
    assert failure["metadata"] == {"provider": "stripe"}
    assert_error(failure, "PaymentDeclinedError", "card ending 4242 was declined", "charge_card")


@posix_only
@requires("flask")
def test_flask_app(receiver: Receiver, sample_env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, str(SAMPLES / "flask_app.py"), "--port", str(port)]
    with serving(command, sample_env, port, tmp_path / "flask.log") as server:
        assert get(server.url("/search?q=shoes")).status_code == 200
        assert get(server.url("/invoices/7")).status_code == 500
        wait_for_events(receiver, metrics=1, errors=1, output=server.output())

        # Logged just before Ctrl-C: delivered on the way out.
        assert get(server.url("/search?q=hats")).status_code == 200
        assert server.stop(signal.SIGINT) == 0, server.output()
        assert DIAGNOSTIC_PREFIX not in server.output(), server.output()

    assert_counts(receiver, metrics=2, errors=1)
    assert sorted(e["props"]["hits"] for e in events_of(receiver, "metric", "Search.run")) == [
        12,
        15,
    ]
    [failure] = events_of(receiver, "error", "invoice")
    assert failure["props"] == {"method": "GET", "path": "/invoices/7"}
    assert_error(failure, "InvoiceMissingError", "invoice 7 is not in the ledger", "load_invoice")


@posix_only
@requires("gunicorn")
def test_gunicorn_app_preload_two_workers(
    receiver: Receiver, sample_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers=2",
        "--preload",
        f"--bind=127.0.0.1:{port}",
        f"--chdir={SAMPLES}",
        "--graceful-timeout=10",
        "gunicorn_app:app",
    ]
    with serving(command, sample_env, port, tmp_path / "gunicorn.log") as server:
        master_pid = server.process.pid
        served_by: list[int] = []
        deadline = time.monotonic() + START_TIMEOUT
        # Concurrent requests on sync workers that each take 50 ms: both workers get some.
        with ThreadPoolExecutor(max_workers=4) as pool:
            while len(set(served_by)) < 2 and time.monotonic() < deadline:
                responses = list(pool.map(get, [server.url("/")] * 4))
                assert all(response.status_code == 200 for response in responses)
                served_by.extend(response.json()["pid"] for response in responses)
        worker_pids = set(served_by)
        assert len(worker_pids) == 2, f"all requests served by {worker_pids}\n{server.output()}"
        assert master_pid not in worker_pids
        assert get(server.url("/fail")).status_code == 500

        # While the server runs: every request's event, and the master's startup events.
        wait_for_events(receiver, metrics=len(served_by) + 3, errors=1, output=server.output())
        handled = events_of(receiver, "metric", "App.handle")
        assert sorted(event["props"]["pid"] for event in handled) == sorted(served_by)
        startup = events_of(receiver, "metric", "Master.startup")
        assert [event["props"] for event in startup] == [
            {"step": step, "pid": master_pid} for step in ("config", "routes", "cache")
        ]

        # Logged just before SIGTERM: the worker delivers it as it exits.
        served_by.append(get(server.url("/")).json()["pid"])
        assert server.stop(signal.SIGTERM) == 0, server.output()
        assert DIAGNOSTIC_PREFIX not in server.output(), server.output()

    # After a graceful stop: each event exactly once; the forked workers did not resend the
    # master's events.
    assert_counts(receiver, metrics=len(served_by) + 3, errors=1)
    assert len(events_of(receiver, "metric", "Master.startup")) == 3
    [failure] = events_of(receiver, "error", "App.handle")
    assert failure["props"]["pid"] in worker_pids
    assert_error(
        failure, "ConnectionResetError", "the upstream closed the connection", "call_upstream"
    )
