"""What leaves the pipeline by policy, each counted: sampling, the per-name error rate limit,
and ``before_send`` changing, dropping or breaking an event."""

from __future__ import annotations

import collections
import json
import logging
import math
from collections.abc import Iterator
from typing import Any

import pytest

from composio_logtelemetry import TelemetryHandler, TelemetryQueueHandler
from composio_logtelemetry._policy import ERRORS_PER_NAME_PER_MINUTE
from conftest import FaultyEndpoint

# -- sampling and rate limiting ----------------------------------------------------------------


def _log_metrics(logger: logging.Logger, name: str, count: int) -> None:
    for number in range(count):
        logger.info("m", extra={"telemetry": {"functionName": name, "props": {"n": number}}})


def _log_errors(logger: logging.Logger, exc_type: type[Exception], count: int) -> None:
    for number in range(count):
        try:
            raise exc_type(f"failure {number}")
        except exc_type:
            logger.exception("failed")


def test_sample_rate_zero_drops_metrics_but_keeps_errors(
    endpoint: FaultyEndpoint, pipeline: Any
) -> None:
    logger, handler = pipeline(sample_rate=0.0)
    _log_metrics(logger, "Sampled", 50)
    _log_errors(logger, TimeoutError, 3)
    assert handler.flush(5.0)
    assert endpoint.of_kind("metric") == []
    assert len(endpoint.of_kind("error")) == 3
    assert handler.stats()["sampled_out"] == 50


def test_errors_are_sampled_only_when_asked(endpoint: FaultyEndpoint, pipeline: Any) -> None:
    logger, handler = pipeline(sample_rate=0.0, sample_errors=True)
    _log_errors(logger, TimeoutError, 3)
    assert handler.flush(5.0)
    assert endpoint.of_kind("error") == []
    assert handler.stats()["sampled_out"] == 3


def test_per_function_sample_rates_override_the_default(
    endpoint: FaultyEndpoint, pipeline: Any
) -> None:
    logger, handler = pipeline(sample_rate=1.0, sample_rates={"Hot.path": 0.0, "Cold.path": 1.0})
    _log_metrics(logger, "Hot.path", 40)
    _log_metrics(logger, "Cold.path", 10)
    _log_metrics(logger, "Other", 10)
    assert handler.flush(5.0)
    received = collections.Counter(event["functionName"] for event in endpoint.of_kind("metric"))
    assert received == {"Cold.path": 10, "Other": 10}
    assert handler.stats()["sampled_out"] == 40


def test_a_fractional_sample_rate_keeps_about_that_share(
    endpoint: FaultyEndpoint, pipeline: Any
) -> None:
    logger, handler = pipeline(sample_rate=0.25)
    _log_metrics(logger, "Quarter", 800)
    assert handler.flush(10.0)
    stats = handler.stats()
    assert stats["sent"] + stats["sampled_out"] == 800
    assert 120 < stats["sent"] < 280  # mean 200, standard deviation ~12
    assert len(endpoint.of_kind("metric")) == stats["sent"]


@pytest.mark.parametrize("rate", [-0.1, 1.5, math.nan, "0.5", True, None])
def test_sample_rates_out_of_range_are_refused(rate: Any) -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        TelemetryHandler(sample_rate=rate)
    with pytest.raises(ValueError, match="Hot"):
        TelemetryHandler(sample_rates={"Hot": rate})


def test_an_exception_storm_is_rate_limited_per_type(
    endpoint: FaultyEndpoint, pipeline: Any
) -> None:
    assert ERRORS_PER_NAME_PER_MINUTE < 100
    logger, handler = pipeline()
    _log_errors(logger, TimeoutError, 100)
    _log_errors(logger, KeyError, 2)
    _log_metrics(logger, "During.storm", 20)
    assert handler.flush(10.0)
    received = collections.Counter(event["error"]["name"] for event in endpoint.of_kind("error"))
    assert received == {"TimeoutError": ERRORS_PER_NAME_PER_MINUTE, "KeyError": 2}
    assert len(endpoint.of_kind("metric")) == 20
    assert handler.stats()["rate_limited"] == 100 - ERRORS_PER_NAME_PER_MINUTE


# -- before_send -------------------------------------------------------------------------------


def test_before_send_can_change_drop_or_break(
    endpoint: FaultyEndpoint, pipeline: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    seen: list[dict[str, Any]] = []

    def before_send(payload: dict[str, Any]) -> dict[str, Any] | None:
        seen.append(json.loads(json.dumps(payload)))
        name = payload["functionName"]
        if name == "Drop.me":
            return None
        if name == "Break.me":
            raise RuntimeError("before_send bug")
        if name == "Spoil.me":
            return {**payload, "colour": "red"}
        payload["functionName"] = f"Renamed.{name}"
        payload["props"] = {**payload.get("props", {}), "region": "eu", "api_key": "sk-late"}
        return payload

    logger, handler = pipeline(before_send=before_send)
    for name in ("Keep.me", "Drop.me", "Break.me", "Spoil.me"):
        logger.info("x", extra={"telemetry": {"functionName": name, "props": {"token": "t0k"}}})
    assert handler.flush(5.0)
    assert seen[0]["props"] == {"token": "[REDACTED]"}  # before_send sees redacted data
    [event] = endpoint.events
    assert event[1]["functionName"] == "Renamed.Keep.me"
    assert event[1]["props"] == {"token": "[REDACTED]", "region": "eu", "api_key": "[REDACTED]"}
    stats = handler.stats()
    assert (stats["sent"], stats["filtered"], stats["invalid"]) == (1, 1, 2)
    err = capfd.readouterr().err
    assert "before_send" in err
    assert "Traceback" not in err
    assert endpoint.violations == []


# -- the rate limit starts over each minute ------------------------------------------------

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
