"""``TelemetryQueueHandler`` and its listener: hostile input never raises into the application
and every body validates; the library's own logging never feeds back into telemetry."""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given

from composio_logtelemetry import (
    TelemetryHandler,
    TelemetryQueueHandler,
)
from conftest import FaultyEndpoint, closed_port
from hostile import HYPOTHESIS, exceptions, levels, log_and_count, other_extras, tagged_telemetry

# -- hostile input, through the queue ----------------------------------------------------------


@pytest.fixture
def queued(pipeline: Any) -> tuple[logging.Logger, TelemetryQueueHandler]:
    logger, queue_handler = pipeline()
    return logger, queue_handler


@HYPOTHESIS
@given(tagged=tagged_telemetry, extras=other_extras, exc=exceptions, level=levels)
def test_hostile_extras_never_raise_and_every_body_validates(
    endpoint: FaultyEndpoint,
    queued: tuple[logging.Logger, TelemetryQueueHandler],
    tagged: tuple[bool, Any],
    extras: dict[str, Any],
    exc: BaseException | None,
    level: int,
) -> None:
    logger, queue_handler = queued
    valid, telemetry = tagged
    moved = log_and_count(
        logger,
        queue_handler,
        endpoint,
        telemetry,
        extras,
        exc,
        level,
        flush=lambda: queue_handler.flush(10.0),
    )
    if valid:
        assert moved["invalid"] == 0


# -- no feedback loop --------------------------------------------------------------------------


@pytest.fixture
def root_at_debug() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    yield root
    root.setLevel(level)


LIBRARY_LOGGERS = (
    "urllib3",
    "urllib3.connectionpool",
    "requests",
    "charset_normalizer",
    "composio_logtelemetry",
    "composio_logtelemetry._delivery",
)


def test_root_at_debug_with_a_failing_endpoint_sends_only_application_events(
    endpoint: FaultyEndpoint, tmp_path: Any, root_at_debug: logging.Logger
) -> None:
    answers = iter([("reset",), ("status", 503, {}), ("reset",), ("status", 500, {})])
    lock = threading.Lock()

    def failing_at_first(kind: str) -> tuple[Any, ...]:
        with lock:
            return next(answers, ("ok",))

    endpoint.script = failing_at_first
    on_listener_thread: list[str] = []

    def before_send(payload: dict[str, Any]) -> dict[str, Any]:
        on_listener_thread.append(threading.current_thread().name)
        try:
            raise RuntimeError("logged on the listener thread")
        except RuntimeError:
            logging.getLogger("app.hook").exception(
                "hook", extra={"telemetry": {"functionName": "Hook.loop"}}
            )
        return payload

    handler = TelemetryHandler(
        endpoint=endpoint.base_url,
        spool_path=str(tmp_path / "spool.sqlite3"),
        retry_backoff=0.01,
        max_retries=10,
        before_send=before_send,
    )
    queue_handler = TelemetryQueueHandler(handlers=[handler])
    root_at_debug.addHandler(queue_handler)
    try:
        app = logging.getLogger("app")
        for number in range(5):
            app.info(
                "tick", extra={"telemetry": {"functionName": "App.tick", "props": {"n": number}}}
            )
        try:
            raise ValueError("the application failed")
        except ValueError:
            app.exception("failed", extra={"telemetry": {"functionName": "App.failed"}})
        for name in LIBRARY_LOGGERS:
            try:
                raise OSError(f"{name} trouble")
            except OSError:
                logging.getLogger(name).exception(
                    "trouble", extra={"telemetry": {"functionName": f"Library.{name}"}}
                )
        assert queue_handler.flush(10.0)
    finally:
        root_at_debug.removeHandler(queue_handler)
        queue_handler.shutdown(2.0)
    received = collections.Counter(event["functionName"] for _kind, event in endpoint.events)
    assert received == {"App.tick": 5, "App.failed": 1}
    assert handler.stats()["retried"] >= 1  # the endpoint did fail, and was retried
    assert set(on_listener_thread) == {"composio-telemetry-listener"}
    assert endpoint.violations == []


def test_a_dead_endpoint_does_not_feed_itself(tmp_path: Any, root_at_debug: logging.Logger) -> None:
    handler = TelemetryHandler(
        endpoint=f"http://127.0.0.1:{closed_port()}/v1",
        spool_path=str(tmp_path / "spool.sqlite3"),
        retry_backoff=0.01,
        max_retries=1,
    )
    queue_handler = TelemetryQueueHandler(handlers=[handler])
    root_at_debug.addHandler(queue_handler)
    try:
        app = logging.getLogger("app")
        for _ in range(3):
            app.info("tick", extra={"telemetry": {"functionName": "App.tick"}})
        try:
            raise ValueError("the application failed")
        except ValueError:
            app.exception("failed")
        assert not queue_handler.flush(5.0)  # undeliverable: spooled, reported as not flushed
        stats = handler.stats()
    finally:
        root_at_debug.removeHandler(queue_handler)
        queue_handler.shutdown(2.0)
    assert stats["failed"] == stats["spooled"] == 4  # the application's four events, no more
