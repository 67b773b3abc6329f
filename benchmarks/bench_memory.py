"""Memory: bytes per queued event, and RSS while the endpoint is down (SPEC section 7).

- Bytes per queued event (``tracemalloc``): the listener is parked on its first record, then
  N records are logged (each with its own telemetry dict, as an application builds it) and
  N events are pushed with ``enqueue_event`` (the ``push_event`` path); the memory still
  allocated afterwards, divided by N, is what one waiting event costs. Target <= 1 KiB.
- RSS with the endpoint down: a child process logs at a steady rate for a while into a
  pipeline whose endpoint refuses connections (spool on, in a temporary file), and samples its
  own RSS. After a warm-up the RSS must stay flat: it may grow by at most 4 MiB over the second
  half of the run, while the number of records logged doubles.

Run: ``python benchmarks/bench_memory.py``
"""

from __future__ import annotations

import gc
import json
import logging
import os
import subprocess
import sys
import tempfile
import tracemalloc
from collections.abc import Callable

import _common

import composio_logtelemetry as telemetry

QUEUED = 5_000
ROUNDS = 3
KIB = 1024
RSS_SECONDS = 12.0
RSS_RATE = 2_000  # records per second
RSS_GROWTH_LIMIT = 4 * 2**20


def app_telemetry(number: int) -> dict[str, object]:
    """The telemetry an application attaches to one record (built anew for each call)."""
    return {
        "functionName": "Tools.execute",
        "durationMs": 12.5,
        "props": {"call": number},
        "metadata": {"provider": "openai"},
    }


def drain(handler: telemetry.TelemetryQueueHandler) -> None:
    records = handler.queue
    while records.qsize():
        records.get_nowait()


def queued_bytes(handler: telemetry.TelemetryQueueHandler, fill: Callable[[], None]) -> float:
    """Bytes still allocated per queued item after ``fill()`` queued ``QUEUED`` of them."""
    drain(handler)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    fill()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    queued = handler.queue.qsize()
    if queued != QUEUED:
        raise RuntimeError(f"expected {QUEUED} queued items, found {queued}")
    drain(handler)
    return (after - before) / QUEUED


def per_event_bytes() -> None:
    _common.heading(f"bytes per queued event (tracemalloc, {QUEUED} queued, {ROUNDS} rounds)")
    parking = _common.ParkingHandler()
    handler = telemetry.TelemetryQueueHandler(handlers=[parking], maxsize=10 * QUEUED)
    logger = logging.getLogger("bench.memory")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.info("park", extra={"telemetry": {"functionName": "park"}})
    if not parking.parked.wait(5.0):
        raise RuntimeError("the telemetry listener did not start")

    def log_records() -> None:
        for number in range(QUEUED):
            logger.info("%s done", "Tools.execute", extra={"telemetry": app_telemetry(number)})

    def telemetry_alone() -> None:
        kept = [app_telemetry(number) for number in range(QUEUED)]
        for item in kept:
            handler.queue.put_nowait(item)

    def push_events() -> None:
        for number in range(QUEUED):
            handler.enqueue_event(
                telemetry.create_event(
                    "metric",
                    functionName="Tools.execute",
                    durationMs=12.5,
                    props={"call": number},
                    metadata={"provider": "openai"},
                )
            )

    figures: dict[str, list[float]] = {"log record": [], "push_event": [], "telemetry dict": []}
    for _ in range(ROUNDS):
        figures["log record"].append(queued_bytes(handler, log_records))
        figures["push_event"].append(queued_bytes(handler, push_events))
        figures["telemetry dict"].append(queued_bytes(handler, telemetry_alone))
    logger.removeHandler(handler)
    parking.resume.set()
    handler.shutdown(1.0)
    medians = {path: _common.median(values) for path, values in figures.items()}
    for path, values in figures.items():
        print(
            f"  {path:<16}"
            + ", ".join(f"{value:.0f}" for value in values)
            + f" bytes per queued item (median {medians[path]:.0f})"
        )
    print(
        f"  of a queued log record, {medians['telemetry dict']:.0f} bytes are the telemetry "
        "dict the application built; the LogRecord and its attributes make the rest"
    )
    for path in ("log record", "push_event"):
        _common.verdict(
            medians[path] <= KIB,
            f"{medians[path]:.0f} bytes per queued event ({path}) (target <= {KIB} bytes)",
        )


RSS_CHILD = """
import json, logging, sys, time
from composio_logtelemetry import TelemetryHandler, TelemetryQueueHandler

endpoint, spool_path = sys.argv[1:3]
seconds, rate = float(sys.argv[3]), int(sys.argv[4])
telemetry_handler = TelemetryHandler(endpoint=endpoint, spool_path=spool_path)
handler = TelemetryQueueHandler(handlers=[telemetry_handler], shutdown_timeout=1.0)
logger = logging.getLogger("app")
logger.addHandler(handler)
logger.setLevel(logging.INFO)
logger.propagate = False

def rss():
    with open("/proc/self/statm") as statm:
        import os
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

started = time.monotonic()
logged = 0
samples = []
tick = 0.05
while (elapsed := time.monotonic() - started) < seconds:
    due = int(elapsed * rate) + int(tick * rate)
    while logged < due:
        logger.info("call", extra={"telemetry": {"functionName": "Tools.execute",
                    "durationMs": 3.0, "props": {"call": logged, "user": "x" * 64}}})
        logged += 1
    if not samples or elapsed - samples[-1][0] >= 0.5:
        samples.append((elapsed, logged, rss(), handler.queue.qsize()))
    time.sleep(tick)
samples.append((time.monotonic() - started, logged, rss(), handler.queue.qsize()))
print(json.dumps({"samples": samples, "stats": handler.stats()}), flush=True)
"""


def rss_endpoint_down() -> None:
    _common.heading(f"RSS with the endpoint down ({RSS_RATE} records/s for {RSS_SECONDS:.0f} s)")
    endpoint = f"http://127.0.0.1:{_common.free_port()}/v1"
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as spool_dir:
        child = subprocess.run(
            [sys.executable, "-c", RSS_CHILD, endpoint, os.path.join(spool_dir, "spool.sqlite3"),
             str(RSS_SECONDS), str(RSS_RATE)],
            capture_output=True,
            text=True,
            env=_common.child_env(),
            timeout=RSS_SECONDS + 30,
        )  # fmt: skip
    if child.returncode != 0:
        raise RuntimeError(f"the RSS child failed: {child.stderr.strip()[-500:]}")
    report = json.loads(child.stdout.splitlines()[-1])
    samples = report["samples"]
    for elapsed, logged, rss, waiting in [*samples[:: max(1, len(samples) // 8)], samples[-1]]:
        print(
            f"  t={elapsed:5.1f} s  logged {logged:>6}  queued {waiting:>5}  "
            f"RSS {rss / 2**20:6.1f} MiB"
        )
    stats = report["stats"]
    print("  stats: " + ", ".join(f"{key}={value}" for key, value in stats.items() if value))
    middle = min(samples, key=lambda sample: abs(sample[0] - samples[-1][0] / 2))
    growth = max(sample[2] for sample in samples) - middle[2]
    _common.verdict(
        growth <= RSS_GROWTH_LIMIT,
        f"RSS grew {growth / 2**20:.2f} MiB over the second half with the endpoint down "
        f"(records logged {middle[1]} -> {samples[-1][1]}; target <= "
        f"{RSS_GROWTH_LIMIT / 2**20:.0f} MiB)",
    )


def main() -> int:
    print(f"bench_memory: Python {sys.version.split()[0]}")
    per_event_bytes()
    rss_endpoint_down()
    return _common.exit_code()


if __name__ == "__main__":
    code = main()
    print(f"bench_memory: {'all PASS' if code == 0 else 'some FAIL'}")
    sys.exit(0)
