"""What every benchmark shares: interleaved timing, medians, verdicts and a receiver process.

Machines are shared and noisy, so a figure is only ever compared with a baseline measured in
the same run: the sides are interleaved sample by sample and the medians are compared.
"""

from __future__ import annotations

import logging
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

import composio_logtelemetry as telemetry

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)  # run from a checkout without installing the package

PARK_LIMIT = 120.0

Sampler = Callable[[int], int]
"""Runs ``iterations`` of one side and returns the nanoseconds they took."""

_verdicts: list[bool] = []


def interleaved_medians(
    sides: dict[str, Sampler], *, iterations: int, samples: int = 9, warmup: int = 1
) -> dict[str, float]:
    """Median nanoseconds per iteration of each side, its samples taken in turn (A B A B...)."""
    per_iteration: dict[str, list[float]] = {name: [] for name in sides}
    for round_number in range(warmup + samples):
        order = list(sides.items())
        if round_number % 2:
            order.reverse()  # neither side always runs right after the other
        for name, sampler in order:
            elapsed = sampler(iterations)
            if round_number >= warmup:
                per_iteration[name].append(elapsed / iterations)
    return {name: statistics.median(values) for name, values in per_iteration.items()}


def median(values: list[float]) -> float:
    return statistics.median(values)


def verdict(ok: bool, what: str) -> bool:
    """Prints one ``PASS``/``FAIL`` line; ``exit_code()`` remembers the failures."""
    _verdicts.append(ok)
    print(f"{'PASS' if ok else 'FAIL'}: {what}", flush=True)
    return ok


def exit_code() -> int:
    """0 when every verdict of this script passed (the scripts themselves always exit 0)."""
    return 0 if all(_verdicts) else 1


def heading(text: str) -> None:
    print(f"\n== {text}", flush=True)


def free_port() -> int:
    """A loopback port that nothing listens on: connections to it are refused at once."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def child_env() -> dict[str, str]:
    """The environment of a child Python: this checkout importable, telemetry not opted out."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO_ROOT, env.get("PYTHONPATH")]))
    for name in ("COMPOSIO_DISABLE_TELEMETRY", "TELEMETRY_DISABLED", "DO_NOT_TRACK"):
        env.pop(name, None)
    return env


_RECEIVER_SCRIPT = """
import sys
from composio_logtelemetry.devtools.receiver import Receiver

receiver = Receiver(latency=float(sys.argv[1])).start()
print(receiver.base_url, flush=True)
for line in sys.stdin:
    command, *args = line.split()
    if command == "wait":
        reached = receiver.wait_for(int(args[0]), float(args[1]))
        print(int(reached), receiver.count(), flush=True)
    elif command == "count":
        print(1, receiver.count(), flush=True)
    elif command == "connections":
        print(1, receiver.connections_accepted, flush=True)
receiver.stop()
"""


_COUNTING_SCRIPT = """
import json, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

latency = float(sys.argv[1])
changed = threading.Condition()
state = {"events": 0, "connections": 0}

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def setup(self):
        super().setup()
        with changed:
            state["connections"] += 1

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if latency:
            time.sleep(latency)
        with changed:
            state["events"] += len(body) if type(body) is list else 1
            changed.notify_all()
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
threading.Thread(target=server.serve_forever, daemon=True).start()
print(f"http://127.0.0.1:{server.server_address[1]}/v1", flush=True)
for line in sys.stdin:
    command, *args = line.split()
    with changed:
        if command == "wait":
            reached = changed.wait_for(lambda: state["events"] >= int(args[0]), float(args[1]))
            print(int(reached), state["events"], flush=True)
        elif command == "count":
            print(1, state["events"], flush=True)
        elif command == "connections":
            print(1, state["connections"], flush=True)
"""


class ReceiverProcess:
    """The library's ``Receiver`` in a process of its own.

    In the benchmark's process, its HTTP threads would take the GIL from the client being
    measured; in its own process it costs both sides the same and measures neither. With
    ``counting``, a receiver that only parses and counts what it gets: the library's own
    validates and stores every event in SQLite, and then caps what a fast client can show.
    """

    def __init__(self, latency: float = 0.0, *, counting: bool = False) -> None:
        self.latency = latency
        script = _COUNTING_SCRIPT if counting else _RECEIVER_SCRIPT
        self._process = subprocess.Popen(
            [sys.executable, "-c", script, str(latency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=child_env(),
        )
        assert self._process.stdout is not None
        self.base_url = self._process.stdout.readline().strip()
        if not self.base_url.startswith("http://"):
            self.close()
            raise RuntimeError("the receiver process did not start")

    def _ask(self, command: str) -> tuple[bool, int]:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(command + "\n")
        self._process.stdin.flush()
        reached, value = self._process.stdout.readline().split()
        return reached == "1", int(value)

    def count(self) -> int:
        """Events stored since the receiver started (all runs together)."""
        return self._ask("count")[1]

    def connections(self) -> int:
        """TCP connections accepted since the receiver started."""
        return self._ask("connections")[1]

    def wait_for(self, count: int, timeout: float) -> bool:
        """True as soon as ``count`` events in all are stored; False after ``timeout``."""
        return self._ask(f"wait {count} {timeout}")[0]

    def close(self) -> None:
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                self._process.wait(5.0)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def __enter__(self) -> ReceiverProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class ParkingHandler(telemetry.TelemetryHandler):
    """Parks the listener thread on its first record, so that nothing consumes the queue.

    It is a ``TelemetryHandler`` (that never sends), so the queue handler behaves as in an
    application whose listener runs only telemetry handlers. Parked, the listener sleeps on a
    lock and takes no GIL from the thread being measured. ``handle`` is overridden so that no
    handler lock is held while parked (``logging.shutdown`` takes it at exit), and the wait is
    bounded, so a benchmark that fails cannot hang.
    """

    def __init__(self) -> None:
        super().__init__(endpoint="http://127.0.0.1:9/v1", spool=False)
        self.parked = threading.Event()
        self.resume = threading.Event()

    def handle(self, record: logging.LogRecord) -> bool:
        self.parked.set()
        self.resume.wait(PARK_LIMIT)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)

    def emit_many(self, items: Sequence[Any]) -> None:  # what the listener calls
        self.parked.set()
        self.resume.wait(PARK_LIMIT)


def rss_bytes() -> int:
    """Resident set size of this process (Linux ``/proc``; 0 where it does not exist)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def monotonic() -> float:
    """``time.monotonic``: one clock for every process of the machine on Linux."""
    return time.monotonic()
