"""SIGTERM (docker stop, Kubernetes, systemd, uvicorn's re-raise) drains telemetry first.

Each case runs a real interpreter that logs to a real loopback receiver and is stopped with a
real signal; the child says it is ready on a line of its stdout.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
import requests

from composio_logtelemetry._sigterm import ENVIRONMENT_VARIABLE
from composio_logtelemetry._spool import Spool
from composio_logtelemetry.devtools.receiver import Receiver
from conftest import FaultyEndpoint, closed_port

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGTERM is a signal on POSIX only")

READY_TIMEOUT = 30.0
EXIT_TIMEOUT = 30.0
EVENT_TIMEOUT = 10.0
LOADED_MACHINE_MARGIN = 1.5  # seconds: two cores shared by many test processes
RECORDS = 10

# A script that configures a pipeline with dictConfig, logs RECORDS telemetry records, says
# "ready" with SIGTERM's disposition, and keeps working until a signal ends it.
LOGGING_SETUP = """
import logging, logging.config, os, signal, sys, time
url, spool_path = sys.argv[1], sys.argv[2]
queue_options = {queue_options}
logging.config.dictConfig({{
    "version": 1,
    "handlers": {{
        "telemetry": {{
            "class": "composio_logtelemetry.TelemetryQueueHandler",
            "handlers": ["composio"],
            ".": queue_options,
        }},
        "composio": {{
            "class": "composio_logtelemetry.TelemetryHandler",
            "endpoint": url,
            "spool_path": spool_path,
            "retry_backoff": 0.05,
        }},
    }},
    "loggers": {{"app": {{"handlers": ["telemetry"], "level": "INFO"}}}},
}})
log = logging.getLogger("app")
"""

LOG_AND_WORK = """
for number in range({records}):
    step = {{"functionName": f"Step.{{number}}", "durationMs": 1.0}}
    log.info("step", extra={{"telemetry": step}})
print("ready", repr(signal.getsignal(signal.SIGTERM)), flush=True)
while True:
    time.sleep(0.05)
"""


def script(queue_options: dict[str, object], before: str = "", after: str = "") -> str:
    return (
        textwrap.dedent(before)
        + LOGGING_SETUP.format(queue_options=repr(queue_options))
        + textwrap.dedent(after)
        + LOG_AND_WORK.format(records=RECORDS)
    )


def _without_our_variable(environment: os._Environ[str]) -> dict[str, str]:
    return {name: value for name, value in environment.items() if name != ENVIRONMENT_VARIABLE}


class Child:
    """A Python child process whose first stdout line says it is ready."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, *args],
            env={**_without_our_variable(os.environ), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.signalled_at = 0.0
        self.ended_at = 0.0

    def wait_for_line(self, stream_name: str, marker: str) -> str:
        """Reads the stream line by line until ``marker`` shows, bounded by the child's life
        (a line never written means the child ended, which ends the read)."""
        stream: IO[str] = getattr(self.process, stream_name)
        seen = []
        for line in stream:
            seen.append(line)
            if marker in line:
                return str(line)
        self.process.wait(EXIT_TIMEOUT)
        pytest.fail(f"child never said {marker!r}:\n{''.join(seen)}{self.stderr()}")

    def stop(self, stop_signal: int) -> int:
        self.signalled_at = time.monotonic()
        self.process.send_signal(stop_signal)
        returncode = self.process.wait(EXIT_TIMEOUT)
        self.ended_at = time.monotonic()
        return returncode

    @property
    def exit_seconds(self) -> float:
        return self.ended_at - self.signalled_at

    def stderr(self) -> str:
        """What the child wrote on stderr; read once it has ended."""
        stream = self.process.stderr
        return "" if stream is None or stream.closed else stream.read()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(EXIT_TIMEOUT)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    yield started
    for child in started:
        child.kill()


def start(
    children: list[Child],
    code: str,
    receiver_url: str,
    spool_path: Path,
    env: dict[str, str] | None = None,
) -> tuple[Child, str]:
    """Starts ``code`` and waits (on a pipe, not a clock) for its "ready" line."""
    with_alarm = "import signal; signal.alarm(120)\n" + code  # a stuck child dies by itself
    child = Child(["-c", with_alarm, receiver_url, str(spool_path)], env)
    children.append(child)
    ready = child.wait_for_line("stdout", "ready")
    return child, ready


def wait_for_records(receiver: Receiver, child: Child) -> None:
    assert receiver.wait_for(RECORDS, EVENT_TIMEOUT), (
        f"{receiver.count()} of {RECORDS} arrived; child said:\n{child.stderr()}"
    )


def test_sigterm_drains_a_plain_script_then_ends_it_as_sigterm(
    receiver: Receiver, children: list[Child], tmp_path: Path
) -> None:
    child, ready = start(children, script({}), receiver.base_url, tmp_path / "spool.sqlite3")
    assert "_drain_then_terminate" in ready
    time.sleep(0.2)  # the scenario of the issue: the signal comes 0.2 s after the records
    assert child.stop(signal.SIGTERM) == -signal.SIGTERM
    wait_for_records(receiver, child)
    assert receiver.count() == RECORDS


@pytest.mark.parametrize("installed", ["before logging is configured", "after"])
def test_an_application_handler_stays_in_charge(
    receiver: Receiver, children: list[Child], tmp_path: Path, installed: str
) -> None:
    own_handler = """
    import signal, sys
    def stop(signum, frame):
        print("own handler ran", flush=True)
        sys.exit(3)
    signal.signal(signal.SIGTERM, stop)
    """
    code = (
        script({}, before=own_handler)
        if installed.startswith("before")
        else script({}, after=own_handler)
    )
    child, ready = start(children, code, receiver.base_url, tmp_path / "spool.sqlite3")
    assert "function stop" in ready
    assert child.stop(signal.SIGTERM) == 3
    assert child.wait_for_line("stdout", "own handler ran")
    wait_for_records(receiver, child)  # through the normal exit: atexit drained


@pytest.mark.parametrize(
    ("queue_options", "env"),
    [
        ({"handle_sigterm": False}, {}),
        ({}, {ENVIRONMENT_VARIABLE: "0"}),
        ({}, {ENVIRONMENT_VARIABLE: "off"}),
    ],
    ids=["option", "environment-0", "environment-off"],
)
def test_opting_out_leaves_sigterm_default(
    receiver: Receiver,
    children: list[Child],
    tmp_path: Path,
    queue_options: dict[str, object],
    env: dict[str, str],
) -> None:
    code = script(queue_options)
    child, ready = start(children, code, receiver.base_url, tmp_path / "spool.sqlite3", env)
    assert "Handlers.SIG_DFL" in ready
    assert child.stop(signal.SIGTERM) == -signal.SIGTERM
    assert child.exit_seconds < LOADED_MACHINE_MARGIN


def test_handle_sigterm_must_be_a_bool(children: list[Child], tmp_path: Path) -> None:
    child = Child(["-c", script({"handle_sigterm": "false"}), "http://127.0.0.1:9/v1", "x"])
    children.append(child)
    assert child.process.wait(EXIT_TIMEOUT) == 1
    assert "handle_sigterm must be true or false, got 'false'" in child.stderr()


def test_not_taken_outside_the_main_thread(children: list[Child], tmp_path: Path) -> None:
    code = """
import signal, threading
from composio_logtelemetry import TelemetryQueueHandler, TelemetryHandler
made = threading.Thread(target=TelemetryQueueHandler, kwargs={"handlers": [TelemetryHandler(endpoint="http://127.0.0.1:9/v1")]})
made.start(); made.join()
print("ready", repr(signal.getsignal(signal.SIGTERM)), flush=True)
"""
    child = Child(["-c", code])
    children.append(child)
    assert "Handlers.SIG_DFL" in child.wait_for_line("stdout", "ready")
    assert child.process.wait(EXIT_TIMEOUT) == 0


def test_sigint_still_drains_through_keyboard_interrupt(
    receiver: Receiver, children: list[Child], tmp_path: Path
) -> None:
    child, _ = start(children, script({}), receiver.base_url, tmp_path / "spool.sqlite3")
    assert child.stop(signal.SIGINT) == -signal.SIGINT
    wait_for_records(receiver, child)
    assert "KeyboardInterrupt" in child.stderr()


@pytest.mark.parametrize("down", ["closed port", "stalled endpoint"])
def test_a_down_endpoint_bounds_the_sigterm_exit_and_spools(
    children: list[Child], tmp_path: Path, endpoint: FaultyEndpoint, down: str
) -> None:
    shutdown_timeout = 1.0
    spool_path = tmp_path / "spool.sqlite3"
    if down == "closed port":
        down_url = f"http://127.0.0.1:{closed_port()}/v1"
    else:
        endpoint.script = lambda kind: ("stall",)
        down_url = endpoint.base_url
    child, _ = start(children, script({"shutdown_timeout": shutdown_timeout}), down_url, spool_path)
    assert child.stop(signal.SIGTERM) == -signal.SIGTERM
    print(f"{down}: SIGTERM exit took {child.exit_seconds:.2f} s")
    assert child.exit_seconds < shutdown_timeout + 0.5 + LOADED_MACHINE_MARGIN
    assert Spool(spool_path).stats()["events"] == RECORDS
    assert f"{RECORDS} saved to the spool" in child.stderr()


FASTAPI_APP = """
import logging, logging.config, sys
import uvicorn
from fastapi import FastAPI

url, records = sys.argv[1], int(sys.argv[2])
logging.config.dictConfig({
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {
        "telemetry": {
            "class": "composio_logtelemetry.TelemetryQueueHandler",
            "handlers": ["composio"],
        },
        "composio": {"class": "composio_logtelemetry.TelemetryHandler", "endpoint": url},
        "console": {"class": "logging.StreamHandler"},
    },
    "loggers": {"shop": {"handlers": ["telemetry"], "level": "INFO"}},
    "root": {"handlers": ["console"], "level": "INFO"},
})
logger = logging.getLogger("shop")
app = FastAPI()

@app.get("/work")
def work() -> dict[str, int]:
    for number in range(records):
        logger.info("done", extra={"telemetry": {"functionName": f"Work.{number}"}})
    return {"logged": records}

uvicorn.run(app, host="127.0.0.1", port=0, log_config=None)
"""


@pytest.mark.skipif(
    not os.environ.get("CI")
    and not all(importlib.util.find_spec(name) for name in ("fastapi", "uvicorn")),
    reason="fastapi or uvicorn not installed: pip install '.[samples]'",
)
def test_uvicorn_re_raises_sigterm_into_the_drain(
    receiver: Receiver, children: list[Child]
) -> None:
    """An app with no shutdown code: uvicorn restores the handler it found (ours, installed
    by dictConfig at import) and raises SIGTERM again after its graceful shutdown."""
    child = Child(["-c", FASTAPI_APP, receiver.base_url, str(RECORDS)])
    children.append(child)
    running = child.wait_for_line("stderr", "Uvicorn running on")
    address = running.split("running on ")[1].split()[0]
    answer = requests.get(f"{address}/work", timeout=10)
    assert answer.json() == {"logged": RECORDS}
    assert child.stop(signal.SIGTERM) == -signal.SIGTERM
    wait_for_records(receiver, child)
    assert sorted(event["event"]["functionName"] for event in receiver.events()) == sorted(
        f"Work.{number}" for number in range(RECORDS)
    )
