"""End-to-end throughput: records logged -> events received by a loopback receiver (SPEC 7).

Both sides log the same records (``logger.info(..., extra={"telemetry": {...}})``) to the same
receiver, in a process of its own, that parses and counts what it gets (the library's own
``Receiver`` validates and stores each event in SQLite, which caps what a fast client can
show: its ceiling is printed too), and the clock runs from the first log call until the
receiver has counted the last event.

- ours: ``TelemetryQueueHandler`` -> ``TelemetryHandler`` with its defaults;
- baseline: the original SDK design, one ``requests.post`` per event from one worker thread
  behind a queue, a new connection each time (``requests.post`` without a session).

Targets: >= 60x the baseline's events/s against a receiver that answers at once, and >= 1000x
against one that waits 50 ms before each answer. The baseline logs fewer records (it is slow:
at 50 ms per request, 40 events take 2 s); rates, not times, are compared.

Run: ``python benchmarks/bench_throughput.py``
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import sys
import threading
import time
from typing import Any

import _common
import requests

import composio_logtelemetry as telemetry

TOOLS = ("Tools.execute", "Toolkits.list", "Triggers.subscribe", "Connections.get")
CASES = (
    # (receiver latency, records for ours, records for the baseline, target ratio, runs):
    # single runs vary by a fifth on a shared machine; the fast case can afford more of them.
    (0.0, 10_000, 300, 60.0, 15),
    (0.05, 10_000, 40, 1000.0, 5),
)
SOURCE = {"language": "python", "service": "sdk", "environment": "development", "version": "1.0"}


class OriginalSdkHandler(logging.Handler):
    """The original SDK's transport behind a logging handler: a queue, one worker thread,
    one ``requests.post`` per event, no connection reuse, a 2 s timeout."""

    def __init__(self, endpoint: str) -> None:
        super().__init__()
        self.url = f"{endpoint}/metrics/invocations"
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.worker = threading.Thread(target=self._post_forever, daemon=True)
        self.worker.start()

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "telemetry", None)
        if fields is None:
            return
        event = {
            "functionName": fields["functionName"],
            "durationMs": fields["durationMs"],
            "timestamp": record.created,
            "props": fields.get("props", {}),
            "source": SOURCE,
            "metadata": fields.get("metadata", {}),
        }
        self.events.put(event)

    def _post_forever(self) -> None:
        while (event := self.events.get()) is not None:
            with contextlib.suppress(requests.RequestException):
                requests.post(self.url, json=[event], timeout=2.0)

    def close(self) -> None:
        self.events.put(None)
        self.worker.join(5.0)
        super().close()


def ours_handler(endpoint: str) -> telemetry.TelemetryQueueHandler:
    return telemetry.TelemetryQueueHandler(
        handlers=[telemetry.TelemetryHandler(endpoint=endpoint, spool=False, source=SOURCE)]
    )


def log_records(logger: logging.Logger, count: int) -> None:
    info = logger.info
    for number in range(count):
        info(
            "%s done",
            TOOLS[number % 4],
            extra={
                "telemetry": {
                    "functionName": TOOLS[number % 4],
                    "durationMs": 1.0 + number % 97,
                    "props": {"call": number},
                    "metadata": {"provider": "openai"},
                }
            },
        )


def timed_run(receiver: _common.ReceiverProcess, handler: logging.Handler, count: int) -> float:
    """Events per second from the first log call to the last event stored by the receiver."""
    logger = logging.getLogger("bench.throughput")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    target = receiver.count() + count
    started = time.perf_counter()
    log_records(logger, count)
    if isinstance(handler, telemetry.TelemetryQueueHandler):
        handler.flush(30.0)  # sends the last partial batch now instead of after flush_interval
    received = receiver.wait_for(target, 120.0)
    elapsed = time.perf_counter() - started
    logger.removeHandler(handler)
    if isinstance(handler, telemetry.TelemetryQueueHandler):
        handler.shutdown(2.0)
    else:
        handler.close()
    if not received:
        missing = target - receiver.count()
        raise RuntimeError(f"the receiver is missing {missing} of {count} events")
    return count / elapsed


def receiver_ceiling(receiver: _common.ReceiverProcess, count: int) -> float:
    """Events/s the receiver takes from a client that does nothing but post ready batches of
    100 events over 4 keep-alive connections: the most any client can show against it."""
    event = {
        "functionName": TOOLS[0],
        "durationMs": 12.5,
        "timestamp": time.time(),
        "props": {"call": 1},
        "source": SOURCE,
        "metadata": {"provider": "openai"},
    }
    body = json.dumps([event] * 100).encode()
    url = f"{receiver.base_url}/metrics/invocations"
    target = receiver.count() + count

    def post_batches() -> None:
        with requests.Session() as session:
            for _ in range(count // 400):
                session.post(url, data=body, headers={"Content-Type": "application/json"})

    posters = [threading.Thread(target=post_batches) for _ in range(4)]
    started = time.perf_counter()
    for poster in posters:
        poster.start()
    for poster in posters:
        poster.join()
    receiver.wait_for(target, 60.0)
    return count / (time.perf_counter() - started)


def main() -> int:
    print(f"bench_throughput: Python {sys.version.split()[0]}, medians of interleaved runs")
    for latency, ours_count, baseline_count, target, runs in CASES:
        _common.heading(f"receiver latency {latency * 1000:.0f} ms per request, {runs} runs")
        ours_rates: list[float] = []
        baseline_rates: list[float] = []
        ceiling = None
        if latency == 0:
            with _common.ReceiverProcess() as library_receiver:
                ceiling = receiver_ceiling(library_receiver, ours_count)
        with _common.ReceiverProcess(latency=latency, counting=True) as receiver:
            connections_before = receiver.connections()
            for run in range(runs):
                sides = [("ours", ours_count), ("baseline", baseline_count)]
                if run % 2:
                    sides.reverse()
                for side, count in sides:
                    if side == "ours":
                        ours_rates.append(
                            timed_run(receiver, ours_handler(receiver.base_url), count)
                        )
                    else:
                        handler = OriginalSdkHandler(receiver.base_url)
                        baseline_rates.append(timed_run(receiver, handler, count))
            connections = receiver.connections() - connections_before
        ours_rate = _common.median(ours_rates)
        baseline_rate = _common.median(baseline_rates)
        ratio = ours_rate / baseline_rate
        print(
            f"  ours      {ours_count:>6} records: "
            + ", ".join(f"{rate:,.0f}" for rate in ours_rates)
            + f" events/s (median {ours_rate:,.0f})"
        )
        print(
            f"  baseline  {baseline_count:>6} records: "
            + ", ".join(f"{rate:,.1f}" for rate in baseline_rates)
            + f" events/s (median {baseline_rate:,.1f})"
        )
        print(f"  TCP connections accepted by the receiver, both sides: {connections}")
        if ceiling is not None:
            print(
                f"  the library's Receiver's ceiling (ready batches, 4 keep-alive connections): "
                f"{ceiling:,.0f} events/s, i.e. at most {ceiling / baseline_rate:.0f}x"
            )
        print(f"  ratio {ratio:.0f}x")
        _common.verdict(
            ratio >= target,
            f"throughput {ratio:.0f}x the one-POST-per-event baseline with "
            f"{latency * 1000:.0f} ms receiver latency (target >= {target:.0f}x)",
        )
    return _common.exit_code()


if __name__ == "__main__":
    code = main()
    print(f"bench_throughput: {'all PASS' if code == 0 else 'some FAIL'}")
    sys.exit(0)
