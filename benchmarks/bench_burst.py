"""Bursts: one producer in a tight loop, with default settings, loses nothing (issue 16).

Batch jobs log as fast as they can. The queue's bound (10,000) is right; the pipeline behind it
must keep up with any one producer, so that a burst never finds the queue full.

- log calls: one thread logs 50,000 telemetry records in a tight loop through
  ``TelemetryQueueHandler`` -> ``TelemetryHandler`` with their defaults (maxsize 10,000,
  batch_size 100, flush_interval 1.0), then flushes. Targets: 0 dropped for a full queue, all
  delivered, RSS growth <= 32 MiB (peak RSS during the burst against RSS before it; the pipeline
  has sent one event first, so that importing ``requests`` is not counted).
- push_event: 20,000 ``create_event`` + ``push_event`` (how the Composio SDK emits), then
  ``flush()``. Targets: 0 dropped, all delivered.

Each run is a fresh interpreter (its own queue, counters and RSS); the receiver is the library's
``Receiver`` in a process of its own, so that it takes no GIL from the producer. Every run must
meet the targets; medians are printed alongside.

Run: ``python benchmarks/bench_burst.py``
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any

import _common

RUNS = 3
RECORDS = 50_000
PUSHED = 20_000
RSS_GROWTH_LIMIT = 32 * 2**20
FLUSH_TIMEOUT = 120.0
CHILD_TIMEOUT = FLUSH_TIMEOUT + 120.0
ARRIVAL_TIMEOUT = 30.0  # after flush() says all is sent, for the receiver to store the last

CHILD = """
import json, logging, os, resource, sys, time
import composio_logtelemetry as telemetry

path, endpoint, spool_path, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
flush_timeout = float(sys.argv[5])

def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

if path == "log":
    telemetry_handler = telemetry.TelemetryHandler(endpoint=endpoint, spool_path=spool_path)
    handler = telemetry.TelemetryQueueHandler(handlers=[telemetry_handler])
    logger = logging.getLogger("app")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.info("warm-up", extra={"telemetry": {"functionName": "Warm.up"}})
    handler.flush(flush_timeout)
    before = rss()
    started = time.perf_counter()
    for number in range(count):
        logger.info("%s done", "Tools.execute", extra={"telemetry": {
            "functionName": "Tools.execute", "durationMs": 12.5, "props": {"call": number}}})
else:
    handler = telemetry.setup(endpoint=endpoint, spool_path=spool_path)
    telemetry.push_event(telemetry.create_event("metric", functionName="Warm.up"))
    telemetry.flush(flush_timeout)
    before = rss()
    started = time.perf_counter()
    for number in range(count):
        telemetry.push_event(telemetry.create_event(
            "metric", functionName="Tools.execute", durationMs=12.5, props={"call": number}))
produced = time.perf_counter()
flushed = handler.flush(flush_timeout)
done = time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
print(json.dumps({
    "produce_s": produced - started, "flush_s": done - produced, "flushed": flushed,
    "rss_growth": max(peak, rss()) - before, "stats": handler.stats(),
}), flush=True)
"""


def one_run(receiver: _common.ReceiverProcess, path: str, count: int) -> dict[str, Any]:
    """One burst in a fresh interpreter; ``arrived`` counts what the receiver stored of it."""
    stored_before = receiver.count()
    with tempfile.TemporaryDirectory(prefix="bench-burst-") as spool_dir:
        child = subprocess.run(
            [sys.executable, "-c", CHILD, path, receiver.base_url,
             os.path.join(spool_dir, "spool.sqlite3"), str(count), str(FLUSH_TIMEOUT)],
            capture_output=True,
            text=True,
            env=_common.child_env(),
            timeout=CHILD_TIMEOUT,
        )  # fmt: skip
    if child.returncode != 0 or not child.stdout.strip():
        raise RuntimeError(f"the {path} burst failed: {child.stderr.strip()[-800:]}")
    report: dict[str, Any] = json.loads(child.stdout.splitlines()[-1])
    stats = report["stats"]
    sent = stats["sent"] - 1  # the warm-up event
    receiver.wait_for(stored_before + 1 + sent, ARRIVAL_TIMEOUT)
    report["arrived"] = receiver.count() - stored_before - 1
    report["dropped"] = stats["dropped_queue_full"]
    report["lost"] = count - report["arrived"]
    return report


def show(path: str, count: int, runs: list[dict[str, Any]]) -> None:
    for number, run in enumerate(runs, 1):
        stats = run["stats"]
        others = ", ".join(
            f"{key}={value}"
            for key, value in stats.items()
            if value and key not in ("sent", "dropped_queue_full")
        )
        print(
            f"  run {number}: arrived {run['arrived']:>6}/{count}, dropped (queue full) "
            f"{run['dropped']:>6}, produced in {run['produce_s']:.2f} s "
            f"({count / run['produce_s']:,.0f}/s), flush {run['flush_s']:.2f} s "
            f"(flushed={run['flushed']}), RSS +{run['rss_growth'] / 2**20:.1f} MiB"
            + (f", {others}" if others else "")
        )
    arrived = _common.median([run["arrived"] for run in runs])
    dropped = _common.median([run["dropped"] for run in runs])
    print(f"  median: arrived {arrived:.0f}/{count}, dropped {dropped:.0f}")


def bursts(receiver: _common.ReceiverProcess, path: str, what: str, count: int) -> None:
    _common.heading(f"{what}: {count:,} in a tight loop, default settings, {RUNS} runs")
    runs = [one_run(receiver, path, count) for _ in range(RUNS)]
    show(path, count, runs)
    worst_dropped = max(run["dropped"] for run in runs)
    worst_arrived = min(run["arrived"] for run in runs)
    _common.verdict(
        worst_dropped == 0,
        f"{what}: at most {worst_dropped} of {count} dropped for a full queue in any run "
        "(target 0)",
    )
    _common.verdict(
        worst_arrived == count,
        f"{what}: at least {worst_arrived} of {count} delivered in every run (target all)",
    )
    if path == "log":
        growth = max(run["rss_growth"] for run in runs)
        _common.verdict(
            growth <= RSS_GROWTH_LIMIT,
            f"{what}: RSS grew at most {growth / 2**20:.1f} MiB during the burst "
            f"(target <= {RSS_GROWTH_LIMIT / 2**20:.0f} MiB)",
        )


def main() -> int:
    with _common.ReceiverProcess() as receiver:
        bursts(receiver, "log", "log calls", RECORDS)
        bursts(receiver, "push", "create_event + push_event", PUSHED)
    return _common.exit_code()


if __name__ == "__main__":
    sys.exit(main())
