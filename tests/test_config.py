"""Configuration mistakes are refused where they are made, naming the option."""

from __future__ import annotations

import logging
import logging.config
from typing import Any

import pytest

from composio_logtelemetry import TelemetryHandler, TelemetryQueueHandler


def _configure(composio: dict[str, Any], dot: dict[str, Any] | None = None) -> None:
    telemetry: dict[str, Any] = {
        "class": "composio_logtelemetry.TelemetryQueueHandler",
        "handlers": ["composio"],
    }
    if dot is not None:
        telemetry["."] = dot
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "telemetry": telemetry,
                "composio": {
                    "class": "composio_logtelemetry.TelemetryHandler",
                    "endpoint": "http://127.0.0.1:9/v1",
                    "spool": False,
                    **composio,
                },
            },
            "loggers": {"config.test": {"handlers": ["telemetry"], "level": "INFO"}},
        }
    )


def _reason(error: BaseException) -> str:
    """dictConfig wraps our error in its own: the whole chain, as a traceback shows it."""
    reasons = []
    while error is not None:
        reasons.append(str(error))
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return " <- ".join(reasons)


@pytest.fixture(autouse=True)
def _reset_logging() -> Any:
    yield
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("enabled", "false", "enabled must be true or false, got 'false'"),
        ("redact", "no", "redact must be true or false"),
        ("spool", 0, "spool must be true or false"),
        ("timeout", "2", "timeout must be a positive number of seconds, got '2'"),
        ("flush_interval", float("inf"), "flush_interval must be a positive number"),
        ("batch_size", 2.5, "batch_size must be an integer >= 1, got 2.5"),
        ("spool_max_bytes", 0.5, "spool_max_bytes must be an integer >= 1"),
        ("retry_backoff", -1, "retry_backoff must be a number >= 0 of seconds"),
        ("sample_rates", [0.5], "sample_rates must be a dict of functionName to rate"),
    ],
)
def test_a_wrong_handler_option_is_refused_by_name(option: str, value: Any, says: str) -> None:
    with pytest.raises((ValueError, TypeError)) as refused:
        _configure({option: value})
    assert says in _reason(refused.value)


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("maxsize", "10", "maxsize must be an integer >= 1, got '10'"),
        ("shutdown_timeout", -1, "shutdown_timeout must be a number >= 0 of seconds"),
        ("respect_handler_level", "yes", "respect_handler_level must be true or false"),
    ],
)
def test_a_wrong_queue_handler_option_is_refused_by_name(
    option: str, value: Any, says: str
) -> None:
    with pytest.raises((ValueError, TypeError)) as refused:
        _configure({}, {option: value})
    assert says in _reason(refused.value)


def test_a_queue_that_is_not_a_queue_is_refused() -> None:
    """What 3.10 and 3.11's dictConfig pass for the 3.12+ 'queue' key: a dict."""
    with pytest.raises(TypeError, match="queue must be a queue object, got dict"):
        TelemetryQueueHandler({"maxsize": 5}, handlers=[])


def test_options_given_right_are_kept() -> None:
    handler = TelemetryHandler(
        endpoint="http://127.0.0.1:9/v1", timeout=1, batch_size=50, enabled=False
    )
    assert (handler.timeout, handler.batch_size, handler.enabled) == (1.0, 50, False)
    queue_handler = TelemetryQueueHandler(handlers=[handler], maxsize=5, shutdown_timeout=0)
    assert (queue_handler.maxsize, queue_handler.shutdown_timeout) == (5, 0.0)


def test_a_handler_name_that_does_not_exist_is_said_with_the_way_out(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """3.10 and 3.11's dictConfig accept it (names are looked up on the first record)."""
    queue_handler = TelemetryQueueHandler(handlers=["composioo"])
    logger = logging.getLogger("config.missing")
    logger.addHandler(queue_handler)
    try:
        logger.warning("x", extra={"telemetry": {"functionName": "F"}})
    finally:
        logger.removeHandler(queue_handler)
    lines = capfd.readouterr().err.splitlines()
    assert lines == [
        "composio-logtelemetry: warning: TelemetryQueueHandler: no handler named 'composioo'",
        "composio-logtelemetry: warning: TelemetryQueueHandler has no handler to pass records "
        "to, so telemetry is off: check the names in its 'handlers'",
    ]


# -- plain http --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://telemetry.example.com/v1",
        "http://10.0.0.5:8080/v1",
        "http://[2001:db8::1]/v1",
        "http://localhost.example.com/v1",
        "http://127.0.0.1.nip.io/v1",
        "HTTP://TELEMETRY.EXAMPLE.COM/v1",
    ],
)
def test_plain_http_to_a_remote_host_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="allow_insecure"):
        TelemetryHandler(endpoint=url)
    TelemetryHandler(endpoint=url, allow_insecure=True)  # the explicit escape hatch


def test_plain_http_from_the_environment_is_refused_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPOSIO_TELEMETRY_URL", "http://telemetry.example.com/v1")
    with pytest.raises(ValueError, match="allow_insecure"):
        TelemetryHandler()


@pytest.mark.parametrize(
    "url",
    [
        "https://telemetry.example.com/v1",
        "http://127.0.0.1:8787/v1",
        "http://127.3.2.1/v1",
        "http://localhost:8787/v1",
        "http://[::1]:8787/v1",
    ],
)
def test_https_and_loopback_http_are_accepted(url: str) -> None:
    assert TelemetryHandler(endpoint=url).endpoint == url


@pytest.mark.parametrize("url", ["ftp://example.com/v1", "telemetry.example.com", "https:///v1"])
def test_endpoints_that_are_not_http_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        TelemetryHandler(endpoint=url)
