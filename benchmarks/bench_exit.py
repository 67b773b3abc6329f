"""Exit: what the end of a program costs once it has logged telemetry (SPEC section 7).

Each case is a child ``python -c`` that configures a ``TelemetryQueueHandler``, logs 10,000
telemetry records in a burst and simply ends: the library's exit drain does the rest. The child
prints the time of its last log call (``time.monotonic``, one clock for every process); the
parent notes when the child has exited. That difference is the exit cost.

- healthy receiver (the library's ``Receiver``, in its own process): all 10,000 events
  delivered, and exit in under 1 s;
- receiver down, ``shutdown_timeout=2.0``: exit within 2.5 s, both when the port refuses
  connections and when it accepts them but never answers (a hung endpoint). What was not sent
  must be in the spool (checked through the summary line the library prints on stderr).

Run: ``python benchmarks/bench_exit.py``
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time

import _common

RUNS = 3
EVENTS = 10_000
SHUTDOWN_TIMEOUT = 2.0
HEALTHY_LIMIT = 1.0
MARGIN = 0.5

CHILD = """
import logging, sys, time
from composio_logtelemetry import TelemetryHandler, TelemetryQueueHandler

endpoint, spool_path, shutdown_timeout, events = sys.argv[1:5]
handler = TelemetryQueueHandler(
    handlers=[TelemetryHandler(endpoint=endpoint, spool_path=spool_path)],
    shutdown_timeout=float(shutdown_timeout),
)
logger = logging.getLogger("app")
logger.addHandler(handler)
logger.setLevel(logging.INFO)
logger.propagate = False
for number in range(int(events)):
    logger.info("call %d", number, extra={"telemetry": {
        "functionName": "Tools.execute", "durationMs": 1.5, "props": {"call": number}}})
print(time.monotonic(), flush=True)
"""


def run_child(endpoint: str, spool_dir: str, name: str) -> tuple[float, float, str]:
    """(seconds from the last log call to exit, whole child seconds, stderr)."""
    spool_path = os.path.join(spool_dir, f"{name}.sqlite3")
    started = _common.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, endpoint, spool_path, str(SHUTDOWN_TIMEOUT), str(EVENTS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_common.child_env(),
    )
    stdout, stderr = child.communicate(timeout=60)
    exited = _common.monotonic()
    if child.returncode != 0 or not stdout.strip():
        raise RuntimeError(f"the child failed ({child.returncode}): {stderr.strip()[-500:]}")
    last_log_call = float(stdout.split()[-1])
    return exited - last_log_call, exited - started, stderr


def spooled_count(stderr: str) -> int:
    found = re.search(r"(\d+) saved to the spool", stderr)
    return int(found.group(1)) if found else 0


def healthy(spool_dir: str) -> None:
    _common.heading(f"{EVENTS} events, healthy receiver")
    exits: list[float] = []
    delivered_all = True
    with _common.ReceiverProcess() as receiver:
        for run in range(RUNS):
            before = receiver.count()
            exit_cost, whole, stderr = run_child(receiver.base_url, spool_dir, f"healthy-{run}")
            received = receiver.count() - before
            delivered_all &= received == EVENTS
            exits.append(exit_cost)
            print(
                f"  run {run + 1}: exit {exit_cost:.3f} s after the last log call "
                f"(child {whole:.2f} s in all), {received} events received"
                + (f"; stderr: {stderr.strip()}" if stderr.strip() else "")
            )
    exit_cost = _common.median(exits)
    _common.verdict(
        delivered_all and exit_cost < HEALTHY_LIMIT,
        f"{EVENTS} queued events delivered at exit in {exit_cost:.3f} s "
        f"(median; all delivered: {delivered_all}; target < {HEALTHY_LIMIT:.1f} s)",
    )


def down(spool_dir: str, label: str, endpoint: str) -> None:
    _common.heading(
        f"{EVENTS} events, receiver down ({label}), shutdown_timeout={SHUTDOWN_TIMEOUT}"
    )
    exits: list[float] = []
    accounted = True
    for run in range(RUNS):
        exit_cost, whole, stderr = run_child(endpoint, spool_dir, f"{label.split()[0]}-{run}")
        spooled = spooled_count(stderr)
        accounted &= spooled == EVENTS
        exits.append(exit_cost)
        summary = stderr.strip().splitlines()[-1] if stderr.strip() else "(nothing on stderr)"
        print(
            f"  run {run + 1}: exit {exit_cost:.3f} s after the last log call "
            f"(child {whole:.2f} s in all); {summary}"
        )
    worst = max(exits)
    limit = SHUTDOWN_TIMEOUT + MARGIN
    _common.verdict(
        worst <= limit,
        f"exit with the receiver down ({label}) in {worst:.3f} s at worst "
        f"(target <= shutdown_timeout + {MARGIN} = {limit:.1f} s)",
    )
    _common.verdict(accounted, f"every undelivered event spooled ({label})")


def main() -> int:
    print(f"bench_exit: Python {sys.version.split()[0]}, {RUNS} child processes per case")
    with tempfile.TemporaryDirectory(prefix="bench-exit-") as spool_dir:
        healthy(spool_dir)
        down(spool_dir, "connection refused", f"http://127.0.0.1:{_common.free_port()}/v1")
        with socket.socket() as hung:
            hung.bind(("127.0.0.1", 0))
            hung.listen(1024)  # the kernel completes the handshakes; nobody ever answers
            port = hung.getsockname()[1]
            down(spool_dir, "accepts, never answers", f"http://127.0.0.1:{port}/v1")
    return _common.exit_code()


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(
        f"bench_exit: {'all PASS' if code == 0 else 'some FAIL'} "
        f"({time.perf_counter() - started:.0f} s)"
    )
    sys.exit(0)
