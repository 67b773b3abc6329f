"""``TelemetryFormatter`` on LogRecords: the payload it makes, its options (including
``redact``), and python-json-logger's hooks that shape what is sent."""

from __future__ import annotations

import json
import logging
import logging.config
import sys
from typing import Any

import pytest

from composio_logtelemetry import (
    ServiceType,
    TelemetryFormatter,
    TelemetryHandler,
)
from composio_logtelemetry._capture import CAPTURED_ERROR_ATTR
from conftest import FaultyEndpoint
from records import exc_info_of, formatted, make_record

# -- record -> payload -------------------------------------------------------------------------


def test_telemetry_extra_becomes_a_camel_case_payload_with_defaults() -> None:
    record = make_record(
        {
            "function_name": "Tools.execute",
            "duration_ms": 12,
            "props": {"toolkit": "github"},
            "source": {"service": ServiceType.APOLLO, "version": "1.0"},
            "metadata": {"project_id": "proj_1"},
        }
    )
    assert formatted(record, metadata={"provider": "openai"}) == {
        "functionName": "Tools.execute",
        "durationMs": 12,
        "timestamp": record.created,
        "props": {"toolkit": "github"},
        "source": {"language": "python", "service": "apollo", "version": "1.0"},
        "metadata": {"provider": "openai", "projectId": "proj_1"},
    }


def test_function_name_and_timestamp_default_to_the_record() -> None:
    record = make_record({"durationMs": 1.5}, func="fetch_repos")
    payload = formatted(record)
    assert payload["functionName"] == "fetch_repos"
    assert payload["timestamp"] == record.created


def test_record_without_telemetry_or_exception_formats_to_nothing() -> None:
    assert TelemetryFormatter().format(make_record()) == ""
    assert TelemetryFormatter().event(make_record()) is None


def test_exception_becomes_an_error_event_with_the_chained_stack() -> None:
    try:
        try:
            {}["missing"]
        except KeyError as exc:
            raise RuntimeError("tool failed") from exc
    except RuntimeError:
        record = make_record(exc_info=sys.exc_info())
    payload = formatted(record)
    assert payload["functionName"] == "run_tool"
    assert payload["error"]["name"] == "RuntimeError"
    assert payload["error"]["message"] == "tool failed"
    assert "KeyError: 'missing'" in payload["error"]["stack"]
    assert "direct cause" in payload["error"]["stack"]


def test_capture_exceptions_off_ignores_a_bare_exception() -> None:
    record = make_record(exc_info=exc_info_of(ValueError("x")))
    assert TelemetryFormatter(capture_exceptions=False).format(record) == ""
    with_extra = make_record({"functionName": "F"}, exc_info=exc_info_of(ValueError("x")))
    assert "error" not in formatted(with_extra, capture_exceptions=False)


def test_error_captured_by_the_queue_handler_is_used() -> None:
    """The queue handler drops ``exc_info`` and leaves the ErrorData it captured."""
    record = make_record({"functionName": "F"}, **{CAPTURED_ERROR_ATTR: {"name": "Captured"}})
    event = TelemetryFormatter().event(record)
    assert event is not None
    assert event[0] == "error"
    assert event[1]["error"] == {"name": "Captured"}


def test_the_extra_error_wins_over_the_record_exception() -> None:
    record = make_record(
        {"functionName": "F", "error": {"name": "Declined", "code": "E42"}},
        exc_info=exc_info_of(ValueError("x")),
    )
    assert formatted(record)["error"] == {"name": "Declined", "code": "E42"}


def test_the_events_own_source_wins_over_the_defaults() -> None:
    record = make_record({"functionName": "F", "source": {"environment": "staging"}})
    payload = formatted(record, source={"environment": "production", "host": "web-1"})
    assert payload["source"] == {
        "language": "python",
        "service": "sdk",
        "environment": "staging",
        "host": "web-1",
    }


@pytest.mark.parametrize(("value", "expected"), [("CI", "ci"), ("test", "test"), ("bogus", None)])
def test_environment_variable_sets_a_valid_environment_only(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str | None
) -> None:
    monkeypatch.setenv("ENVIRONMENT", value)
    source = formatted(make_record({"functionName": "F"}))["source"]
    assert source.get("environment") == expected


def test_invalid_defaults_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match=r"source\.environment"):
        TelemetryFormatter(source={"environment": "prod"})
    with pytest.raises(ValueError, match=r"metadata\.colour"):
        TelemetryFormatter(metadata={"colour": "red"})


def test_it_works_as_a_plain_logging_formatter(capsys: pytest.CaptureFixture[str]) -> None:
    stream_handler = logging.StreamHandler(sys.stdout)
    stream_handler.setFormatter(TelemetryFormatter())
    logger = logging.getLogger("formatter.as.formatter")
    logger.propagate = False
    logger.addHandler(stream_handler)
    try:
        logger.warning("x", extra={"telemetry": {"functionName": "Printed"}})
    finally:
        logger.removeHandler(stream_handler)
    assert json.loads(capsys.readouterr().out)["functionName"] == "Printed"


# -- redaction by the formatter ----------------------------------------------------------------


SECRET_TEXTS = [
    ("Authorization: Bearer eyJhbGciOi.eyJzdWIi.c2lnbmF0dXJl", "eyJhbGciOi"),
    ("header Basic dXNlcjpwYXNzd29yZA== rejected", "dXNlcjpwYXNzd29yZA"),
    ("call failed: api_key=sk-live-123456", "sk-live-123456"),
    ("x-api-key: abcdef123456", "abcdef123456"),
    ('{"token": "tok_987654"}', "tok_987654"),
    ("login with password: hunter2 failed", "hunter2"),
    ("client_secret=cs_abcdef", "cs_abcdef"),
    ("GET https://api.example.com/v1/items?sig=0a1b2c&user=7 -> 403", "sig=0a1b2c"),
    ("connect postgres://admin:s3cr3tpw@db.internal/app", "s3cr3tpw"),
]


@pytest.mark.parametrize(("text", "secret"), SECRET_TEXTS)
def test_secrets_in_error_message_and_stack_are_masked(text: str, secret: str) -> None:
    record = make_record(
        {"functionName": "F", "error": {"name": "Leak", "message": text, "stack": f"at x\n{text}"}}
    )
    error = formatted(record)["error"]
    for field in ("message", "stack"):
        assert secret not in error[field]
        assert "[REDACTED]" in error[field]


def test_secrets_in_an_exception_are_masked() -> None:
    def call_vendor() -> None:
        raise ConnectionError("POST https://vendor.test/hook?api_key=sk-in-url failed")

    try:
        try:
            call_vendor()
        except ConnectionError as exc:
            raise RuntimeError("retry with token=tok-in-cause also failed") from exc
    except RuntimeError:
        record = make_record(exc_info=sys.exc_info())
    text = json.dumps(formatted(record))
    assert "sk-in-url" not in text
    assert "tok-in-cause" not in text
    assert "call_vendor" in text  # the traceback itself is kept


def test_secret_looking_prop_keys_are_masked_and_harmless_ones_kept() -> None:
    props = {
        "api_key": "k1",
        "apiKey": "k2",
        "x-api-key": "k3",
        "access_token": "k4",
        "client_secret": "k5",
        "password": "k6",
        "Authorization": "k7",
        "cookie": "k8",
        "headers": {"Set-Cookie": "k9", "accept": "application/json"},
        "note": "retry with token=k10",
        "toolkit": "github",
        "attempt": 2,
        "keyboard": "dvorak",
        "monkey": "banana",
    }
    masked = formatted(make_record({"functionName": "F", "props": props}))["props"]
    assert masked == {
        "api_key": "[REDACTED]",
        "apiKey": "[REDACTED]",
        "x-api-key": "[REDACTED]",
        "access_token": "[REDACTED]",
        "client_secret": "[REDACTED]",
        "password": "[REDACTED]",
        "Authorization": "[REDACTED]",
        "cookie": "[REDACTED]",
        "headers": {"Set-Cookie": "[REDACTED]", "accept": "application/json"},
        "note": "retry with token=[REDACTED]",
        "toolkit": "github",
        "attempt": 2,
        "keyboard": "dvorak",
        "monkey": "banana",
    }


def test_redaction_can_be_turned_off() -> None:
    record = make_record(
        {
            "functionName": "F",
            "props": {"api_key": "k1"},
            "error": {"name": "E", "message": "api_key=sk-visible"},
        }
    )
    payload = formatted(record, redact=False)
    assert payload["props"] == {"api_key": "k1"}
    assert payload["error"]["message"] == "api_key=sk-visible"


# -- python-json-logger's hooks shape what is sent ---------------------------------------------


class AddsARegion(TelemetryFormatter):
    """What a python-json-logger user writes: one hook overridden."""

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        log_data["props"] = {**log_data.get("props", {}), "region": "eu"}
        return log_data


class BreaksTheEvent(TelemetryFormatter):
    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        log_data["durationMs"] = "slow"
        return log_data


def _configure_with_formatter(
    formatter_class: type[TelemetryFormatter], endpoint_url: str, tmp_path: Any
) -> logging.Logger:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"shaped": {"()": formatter_class}},
            "handlers": {
                "telemetry": {
                    "class": "composio_logtelemetry.TelemetryQueueHandler",
                    "handlers": ["composio"],
                },
                "composio": {
                    "class": "composio_logtelemetry.TelemetryHandler",
                    "endpoint": endpoint_url,
                    "formatter": "shaped",
                    "spool_path": str(tmp_path / "spool.sqlite3"),
                },
            },
            "loggers": {"hooks": {"handlers": ["telemetry"], "level": "INFO", "propagate": False}},
        }
    )
    return logging.getLogger("hooks")


def _queue_handler(logger: logging.Logger) -> Any:
    [handler] = logger.handlers
    return handler


def test_a_subclass_hook_set_by_dictconfig_shapes_metric_and_error_events(
    endpoint: FaultyEndpoint, tmp_path: Any
) -> None:
    logger = _configure_with_formatter(AddsARegion, endpoint.base_url, tmp_path)
    try:
        logger.info("ran", extra={"telemetry": {"functionName": "Tools.execute"}})
        try:
            raise KeyError("missing")
        except KeyError:
            logger.exception("failed")
        assert _queue_handler(logger).flush(10.0)
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
    assert {kind: event["props"] for kind, event in endpoint.events} == {
        "metric": {"region": "eu"},
        "error": {"region": "eu"},
    }
    assert endpoint.violations == []


def test_a_hook_that_returns_an_invalid_event_is_counted_and_explained(
    endpoint: FaultyEndpoint, tmp_path: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    logger = _configure_with_formatter(BreaksTheEvent, endpoint.base_url, tmp_path)
    try:
        logger.info("ran", extra={"telemetry": {"functionName": "Tools.execute"}})
        handler = _queue_handler(logger)
        assert handler.flush(10.0)
        assert handler.stats()["invalid"] == 1
    finally:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
    assert endpoint.events == []
    err = capfd.readouterr().err
    assert "durationMs must be a number" in err
    assert "Traceback" not in err


def test_format_goes_through_the_hooks() -> None:
    record = make_record({"functionName": "F"})
    assert json.loads(AddsARegion().format(record))["props"] == {"region": "eu"}
    assert json.loads(TelemetryFormatter().format(record))["functionName"] == "F"
    assert TelemetryFormatter().format(make_record(None)) == ""


def test_a_formatter_subclass_formats_every_record(endpoint: FaultyEndpoint, pipeline: Any) -> None:
    """The handler's one-pass path for usual records must not skip a subclass's own formatting."""

    class Tagging(TelemetryFormatter):
        def process_log_record(self, log_data: Any) -> Any:
            return {**log_data, "props": {**log_data.get("props", {}), "tag": 1}}

    logger, handler = pipeline()
    telemetry_handler = handler.handler_refs[0]
    assert isinstance(telemetry_handler, TelemetryHandler)
    telemetry_handler.setFormatter(Tagging())
    logger.info("x", extra={"telemetry": {"functionName": "Tools.execute", "durationMs": 1.5}})
    assert handler.flush(5.0)
    assert [event["props"] for _, event in endpoint.events] == [{"tag": 1}]
