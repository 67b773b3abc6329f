"""Cost of a log call on the application thread (SPEC section 7, first two targets).

- a telemetry record through ``TelemetryQueueHandler`` vs the stdlib ``QueueHandler`` on the same
  queue type (``queue.SimpleQueue``): target <= 1.0x;
- a record without telemetry through ``TelemetryQueueHandler`` vs a ``NullHandler``: <= 1.1x;
- ``push_event`` of an event built by ``create_event``: <= 1 us.

Only the calling thread is measured: nothing consumes either queue while a sample runs. The
telemetry listener is parked on its first record by a handler that blocks (it then sleeps on a
lock and takes no GIL), the stdlib queue has no consumer at all, and both queues are emptied
between samples. Samples of the two sides are interleaved; the medians are compared.

Run: ``python benchmarks/bench_emit.py``
"""

from __future__ import annotations

import logging
import logging.handlers
import queue
import sys
import threading
import time
from typing import Any

import _common

import composio_logtelemetry as telemetry

ITERATIONS = 20_000
SAMPLES = 9
TELEMETRY_EXTRA = {"telemetry": {"functionName": "Tools.execute", "durationMs": 12.5}}


def drain(records: Any) -> None:
    try:
        while True:
            records.get_nowait()
    except queue.Empty:
        pass


def bench_logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"bench.emit.{name}")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def log_call_sampler(
    logger: logging.Logger, records: Any, message: str, extra: dict[str, Any] | None
) -> _common.Sampler:
    def sample(iterations: int) -> int:
        info = logger.info
        started = time.perf_counter_ns()
        for _ in range(iterations):
            info(message, extra=extra)
        elapsed = time.perf_counter_ns() - started
        if records is not None:
            drain(records)
        return elapsed

    return sample


def handle_sampler(
    handler: logging.Handler, record: logging.LogRecord, records: Any
) -> _common.Sampler:
    def sample(iterations: int) -> int:
        handle = handler.handle
        started = time.perf_counter_ns()
        for _ in range(iterations):
            handle(record)
        elapsed = time.perf_counter_ns() - started
        drain(records)
        return elapsed

    return sample


def parked_queue_handler() -> tuple[telemetry.TelemetryQueueHandler, _common.ParkingHandler]:
    parking = _common.ParkingHandler()
    handler = telemetry.TelemetryQueueHandler(handlers=[parking], maxsize=10**7)
    starter = logging.getLogger("bench.emit.start")
    starter.propagate = False
    starter.addHandler(handler)
    starter.warning("park the listener", extra=TELEMETRY_EXTRA)
    starter.removeHandler(handler)
    if not parking.parked.wait(5.0):
        raise RuntimeError("the telemetry listener did not start")
    return handler, parking


def compare(ours: tuple[str, _common.Sampler], baseline: tuple[str, _common.Sampler]) -> float:
    """Interleaved medians of both sides, printed, and the ratio ours / baseline."""
    medians = _common.interleaved_medians(
        {"ours": ours[1], "baseline": baseline[1]}, iterations=ITERATIONS, samples=SAMPLES
    )
    ratio = medians["ours"] / medians["baseline"]
    print(f"  {ours[0]:<34}{medians['ours']:9.0f} ns/call")
    print(f"  {baseline[0]:<34}{medians['baseline']:9.0f} ns/call")
    print(f"  ratio {ratio:.2f}x")
    return ratio


def main() -> int:
    print(
        f"bench_emit: Python {sys.version.split()[0]}, {ITERATIONS} calls per sample, "
        f"median of {SAMPLES} interleaved samples"
    )
    ours, parking = parked_queue_handler()
    ours_records = ours.queue
    stdlib_records: queue.SimpleQueue[Any] = queue.SimpleQueue()
    stdlib = logging.handlers.QueueHandler(stdlib_records)
    ours_logger = bench_logger("ours", ours)
    stdlib_logger = bench_logger("stdlib", stdlib)
    null_logger = bench_logger("null", logging.NullHandler())

    _common.heading("telemetry record: logger.info(..., extra={'telemetry': ...})")
    ratio = compare(
        (
            "TelemetryQueueHandler",
            log_call_sampler(ours_logger, ours_records, "tool done", TELEMETRY_EXTRA),
        ),
        (
            "stdlib QueueHandler",
            log_call_sampler(stdlib_logger, stdlib_records, "tool done", TELEMETRY_EXTRA),
        ),
    )
    _common.verdict(
        ratio <= 1.0, f"telemetry log call {ratio:.2f}x the stdlib QueueHandler (target <= 1.0x)"
    )

    _common.heading("telemetry record: handler.handle(record) alone")
    record = ours_logger.makeRecord(
        ours_logger.name, logging.INFO, __file__, 1, "tool done", None, None,
        extra=TELEMETRY_EXTRA,
    )  # fmt: skip
    ratio = compare(
        ("TelemetryQueueHandler.handle", handle_sampler(ours, record, ours_records)),
        ("QueueHandler.handle", handle_sampler(stdlib, record, stdlib_records)),
    )
    _common.verdict(
        ratio <= 1.0, f"telemetry handle() {ratio:.2f}x the stdlib QueueHandler (target <= 1.0x)"
    )

    _common.heading("record without telemetry: logger.info('plain %s', value)")

    def plain_sampler(logger: logging.Logger) -> _common.Sampler:
        def sample(iterations: int) -> int:
            info = logger.info
            started = time.perf_counter_ns()
            for number in range(iterations):
                info("plain %s", number)
            return time.perf_counter_ns() - started

        return sample

    ratio = compare(
        ("TelemetryQueueHandler", plain_sampler(ours_logger)),
        ("NullHandler", plain_sampler(null_logger)),
    )
    _common.verdict(
        ratio <= 1.1, f"non-telemetry log call {ratio:.2f}x a NullHandler (target <= 1.1x)"
    )
    if ours_records.qsize():
        _common.verdict(False, "a record without telemetry was queued")

    ours_logger.removeHandler(ours)
    drain(ours_records)
    parking.resume.set()
    ours.shutdown(1.0)

    push_event_figures()
    return _common.exit_code()


def push_event_figures() -> None:
    _common.heading("push_event(create_event(...)) on the calling thread")
    parked = threading.Event()
    release = threading.Event()

    def park_listener(payload: dict[str, Any]) -> dict[str, Any] | None:
        parked.set()
        release.wait(_common.PARK_LIMIT)
        return None  # filtered: nothing is sent anywhere

    endpoint = f"http://127.0.0.1:{_common.free_port()}/v1"
    handler = telemetry.setup(
        endpoint=endpoint, before_send=park_listener, spool=False, maxsize=10**7
    )
    event = telemetry.create_event("metric", functionName="Tools.execute", durationMs=12.5)
    telemetry.push_event(event)
    if not parked.wait(5.0):
        raise RuntimeError("the default pipeline's listener did not start")
    events = handler.queue
    reference: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def push_sampler(iterations: int) -> int:
        push_event = telemetry.push_event
        started = time.perf_counter_ns()
        for _ in range(iterations):
            push_event(event)
        elapsed = time.perf_counter_ns() - started
        drain(events)
        return elapsed

    def put_sampler(iterations: int) -> int:
        put = reference.put
        started = time.perf_counter_ns()
        for _ in range(iterations):
            put(event)
        elapsed = time.perf_counter_ns() - started
        drain(reference)
        return elapsed

    medians = _common.interleaved_medians(
        {"push_event": push_sampler, "put": put_sampler},
        iterations=ITERATIONS * 5,
        samples=SAMPLES,
    )
    print(f"  {'push_event(event)':<34}{medians['push_event']:9.0f} ns/call")
    print(f"  {'SimpleQueue.put(event) (reference)':<34}{medians['put']:9.0f} ns/call")
    drain(events)
    release.set()
    telemetry.shutdown(1.0)
    _common.verdict(
        medians["push_event"] <= 1000.0,
        f"push_event {medians['push_event']:.0f} ns on the calling thread (target <= 1000 ns)",
    )


if __name__ == "__main__":
    code = main()
    print(f"bench_emit: {'all PASS' if code == 0 else 'some FAIL'}")
    sys.exit(0)
