"""The error rate limit starts over each minute: a storm is capped, not silenced for good."""

from __future__ import annotations

import collections
import logging
from collections.abc import Iterator

import pytest

from composio_logtelemetry import TelemetryHandler, TelemetryQueueHandler
from composio_logtelemetry._policy import ERRORS_PER_NAME_PER_MINUTE
from conftest import FaultyEndpoint

Pipeline = tuple[logging.Logger, TelemetryHandler, TelemetryQueueHandler]


@pytest.fixture
def limited(endpoint: FaultyEndpoint) -> Iterator[Pipeline]:
    """A pipeline whose TelemetryHandler the test holds, to reach its rate-limit window."""
    handler = TelemetryHandler(endpoint=endpoint.base_url, spool=False)
    queue_handler = TelemetryQueueHandler(handlers=[handler])
    logger = logging.getLogger(f"rate_limit.{id(queue_handler)}")
    logger.propagate = False
    logger.addHandler(queue_handler)
    yield logger, handler, queue_handler
    logger.removeHandler(queue_handler)
    queue_handler.shutdown(2.0)


def _log_timeouts(logger: logging.Logger, count: int) -> None:
    for _ in range(count):
        try:
            raise TimeoutError("upstream slow")
        except TimeoutError:
            logger.exception("call failed")


def test_a_new_minute_lets_the_error_through_again_and_limits_it_again(
    endpoint: FaultyEndpoint, limited: Pipeline
) -> None:
    logger, handler, queue_handler = limited
    _log_timeouts(logger, ERRORS_PER_NAME_PER_MINUTE + 5)
    assert queue_handler.flush(10.0)
    assert queue_handler.stats()["rate_limited"] == 5

    # A minute has passed: the window is moved back by 60 s instead of sleeping through it
    # (the listener is idle after the flush, so nothing else touches the window now).
    window = handler.policy._error_window
    started, seen = window["TimeoutError"]
    window["TimeoutError"] = (started - 60.0, seen)
    _log_timeouts(logger, ERRORS_PER_NAME_PER_MINUTE + 7)
    assert queue_handler.flush(10.0)

    received = collections.Counter(event["error"]["name"] for event in endpoint.of_kind("error"))
    assert received == {"TimeoutError": 2 * ERRORS_PER_NAME_PER_MINUTE}  # a full minute each
    assert queue_handler.stats()["rate_limited"] == 5 + 7
