"""``TelemetryFormatter`` on LogRecords, and ``create_event`` errors that name the field."""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import json
import logging
import logging.config
import math
import sys
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pythonjsonlogger.json import JsonEncoder

from composio_logtelemetry import (
    EnvironmentType,
    ServiceType,
    TelemetryFormatter,
    create_event,
)
from composio_logtelemetry._capture import CAPTURED_ERROR_ATTR, MAX_COPIES, snapshot
from composio_logtelemetry._encoding import reused_encoder
from composio_logtelemetry._sanitize import (
    MAX_DEPTH,
    MAX_MESSAGE,
    MAX_PROPS_BYTES,
    MAX_STACK,
    MAX_STRING,
    TOO_MANY_VALUES,
)
from conftest import VALIDATORS, FaultyEndpoint
from hostile import Colour, ItemlessDict, UnlistableList, Unprintable


def make_record(
    telemetry: Any = None, *, exc_info: Any = None, func: str = "run_tool", **attrs: Any
) -> logging.LogRecord:
    record = logging.LogRecord(
        "app.tools", logging.INFO, __file__, 42, "tool ran", None, exc_info, func=func
    )
    if telemetry is not None:
        record.telemetry = telemetry
    record.__dict__.update(attrs)
    return record


def formatted(record: logging.LogRecord, **options: Any) -> dict[str, Any]:
    """The formatter's JSON, checked to be strict UTF-8 and valid against the event schema."""
    text = TelemetryFormatter(**options).format(record)
    text.encode("utf-8")  # no lone surrogates
    payload: dict[str, Any] = json.loads(text)
    kind = "error" if "error" in payload else "metric"
    body = payload if kind == "error" else [payload]
    assert [e.message for e in VALIDATORS[kind].iter_errors(body)] == []
    return payload


def exc_info_of(exc: BaseException) -> Any:
    try:
        raise exc
    except BaseException:
        return sys.exc_info()


# -- record -> payload ---------------------------------------------------------------------


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


# -- odd objects in props: encoded with python-json-logger's encoder, never an exception -------


@dataclasses.dataclass
class Shipment:
    sku: str
    shipped: datetime.date


ENCODER = JsonEncoder()
MOMENT = datetime.datetime(2025, 1, 16, 7, 25, 45, 123456, tzinfo=datetime.timezone.utc)
ID = uuid.UUID("12345678-1234-5678-1234-567812345678")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (MOMENT, ENCODER.default(MOMENT)),
        (MOMENT.date(), "2025-01-16"),
        (MOMENT.time(), ENCODER.default(MOMENT.time())),
        (ID, str(ID)),
        (decimal.Decimal("1.10"), "1.10"),
        (decimal.Decimal("NaN"), "NaN"),
        (b"\xff\x00binary", ENCODER.default(b"\xff\x00binary")),
        (bytearray(b"ab"), ENCODER.default(bytearray(b"ab"))),
        (Colour.RED, "red"),
        (Shipment("A-1", MOMENT.date()), {"sku": "A-1", "shipped": "2025-01-16"}),
        (ValueError("bad input"), "ValueError: bad input"),
        (Unprintable(), ENCODER.default(Unprintable())),
        (1 + 2j, "(1+2j)"),
        (10**40, str(10**40)),
        (math.inf, "inf"),
        (math.nan, "nan"),
        ((1, "two"), [1, "two"]),
        (frozenset({"only"}), ["only"]),
        (UnlistableList([1]), "<unserializable UnlistableList>"),
        (ItemlessDict(a=1), "<unserializable ItemlessDict>"),
        ("lone \ud800 surrogate", "lone \ufffd surrogate"),
        (None, None),
    ],
    ids=lambda value: type(value).__name__,
)
def test_odd_prop_values_are_encoded(value: Any, expected: Any) -> None:
    payload = formatted(make_record({"functionName": "F", "props": {"value": value}}))
    assert payload["props"] == {"value": expected}


def test_sets_become_lists() -> None:
    props = formatted(make_record({"functionName": "F", "props": {"tags": {"b", "a"}}}))["props"]
    assert sorted(props["tags"]) == ["a", "b"]


def test_cycles_are_cut() -> None:
    loop: dict[str, Any] = {"name": "loop"}
    loop["self"] = loop
    loop["items"] = [loop]
    props = formatted(make_record({"functionName": "F", "props": {"loop": loop}}))["props"]
    assert props["loop"] == {"name": "loop", "self": "<cycle>", "items": ["<cycle>"]}


def test_the_same_object_twice_is_not_a_cycle() -> None:
    shared = {"k": 1}
    props = formatted(make_record({"functionName": "F", "props": {"a": shared, "b": shared}}))
    assert props["props"] == {"a": {"k": 1}, "b": {"k": 1}}


def test_deep_nesting_is_cut_with_a_marker() -> None:
    value: Any = "bottom"
    for _ in range(5000):  # deeper than the recursion limit
        value = {"down": [value]}
    text = json.dumps(formatted(make_record({"functionName": "F", "props": {"deep": value}})))
    assert "<max depth>" in text
    assert "bottom" not in text


def test_shared_parts_cannot_make_the_walk_exponential() -> None:
    """Five small lists that name each other 200 times hold 200**5 values when walked."""
    value: Any = list(range(200))
    for _ in range(4):
        value = [value] * 200
    props = formatted(make_record({"functionName": "F", "props": {"bomb": value}}))["props"]
    text = json.dumps(props)
    assert TOO_MANY_VALUES in text or "some dropped" in props.get("_truncated", "")
    assert len(text.encode()) <= MAX_PROPS_BYTES


# -- snapshot: what the queue handler keeps of a record's telemetry ---------------------------


def test_a_snapshot_keeps_the_values_of_the_moment() -> None:
    props: dict[str, Any] = {"step": 1, "seen": [1], "tags": {"a"}, "args": {"q": {"deep": 1}}}
    telemetry = {"functionName": "F", "durationMs": 1.0, "props": props, "metadata": {}}
    kept = snapshot(telemetry)
    telemetry["durationMs"] = 2.0
    props["step"] = 2
    props["seen"].append(2)
    props["tags"].add("b")
    props["args"]["q"]["deep"] = 2
    assert kept == {
        "functionName": "F",
        "durationMs": 1.0,
        "props": {"step": 1, "seen": [1], "tags": ["a"], "args": {"q": {"deep": 1}}},
        "metadata": {},
    }


def test_a_snapshot_keeps_cycles_and_shared_parts_as_they_were() -> None:
    loop: dict[str, Any] = {"name": "loop"}
    loop["self"] = loop
    shared = {"k": [1]}
    kept = snapshot({"functionName": "F", "props": {"loop": loop, "a": shared, "b": shared}})
    assert kept["props"]["loop"]["self"] is kept["props"]["loop"] is not loop
    assert kept["props"]["a"] is kept["props"]["b"] is not shared
    assert formatted(make_record(kept))["props"] == {
        "loop": {"name": "loop", "self": "<cycle>"},
        "a": {"k": [1]},
        "b": {"k": [1]},
    }


def test_a_snapshot_turns_sets_into_lists_only_where_they_are_sent_as_lists() -> None:
    """In props a set goes out as a list; a set anywhere else is invalid, and named as a set."""
    kept = snapshot({"functionName": {"F"}, "metadata": {"provider": {"p"}}, "props": {"t": {1}}})
    assert kept == {"functionName": {"F"}, "metadata": {"provider": {"p"}}, "props": {"t": [1]}}
    assert snapshot({"tags": {"a"}}, props=True) == {"tags": ["a"]}


def test_a_snapshot_copies_no_more_than_can_be_sent() -> None:
    deep: Any = {"bottom": True}
    for _ in range(5000):
        deep = {"down": deep}
    many = [[n] for n in range(10 * MAX_COPIES)]
    kept = snapshot({"functionName": "F", "props": {"deep": deep, "many": many}})
    level, original, copied_levels = kept["props"]["deep"], deep, 0
    while level is not original:
        level, original, copied_levels = level["down"], original["down"], copied_levels + 1
    assert 0 < copied_levels <= MAX_DEPTH
    copied_rows = sum(
        row is not original for row, original in zip(kept["props"]["many"], many, strict=True)
    )
    assert 0 < copied_rows < MAX_COPIES


def test_a_snapshot_leaves_other_objects_and_mappings_to_the_listener() -> None:
    mapping = collections.OrderedDict(functionName="F")
    assert snapshot(mapping) is mapping
    shipment = Shipment("A-1", datetime.date(2025, 1, 16))
    assert snapshot({"props": {"shipment": shipment}})["props"]["shipment"] is shipment


def test_odd_keys_become_strings() -> None:
    props = formatted(
        make_record({"functionName": "F", "props": {1: "a", (2, 3): "b", Unprintable(): "c"}})
    )["props"]
    assert props == {"1": "a", "(2, 3)": "b", "<Unprintable>": "c"}


def test_surrogates_anywhere_become_replacement_characters() -> None:
    record = make_record(
        {"functionName": "Tool\udc80", "source": {"host": "h\ud800"}, "props": {"\udfff": 1}}
    )
    payload = formatted(record)
    assert payload["functionName"] == "Tool\ufffd"
    assert payload["source"]["host"] == "h\ufffd"
    assert payload["props"] == {"\ufffd": 1}


# -- size caps, each with a visible marker ---------------------------------------------------


def test_long_prop_strings_are_truncated_with_a_marker() -> None:
    props = formatted(make_record({"functionName": "F", "props": {"blob": "x" * 3_000_000}}))
    blob = props["props"]["blob"]
    assert blob.startswith("x" * MAX_STRING)
    assert blob.endswith(f"...[truncated {3_000_000 - MAX_STRING} chars]")


def test_props_over_the_byte_cap_are_trimmed_with_a_marker() -> None:
    many = {f"field_{n}": "y" * 4000 for n in range(40)}
    props = formatted(make_record({"functionName": "F", "props": many}))["props"]
    assert len(json.dumps(props).encode()) <= MAX_PROPS_BYTES
    assert "_truncated" in props
    assert "some dropped" in props["_truncated"]


def test_long_lists_are_truncated_with_a_marker() -> None:
    props = formatted(make_record({"functionName": "F", "props": {"ids": list(range(1000))}}))
    ids = props["props"]["ids"]
    assert ids[-1] == "[truncated 800 items]"
    assert ids[:-1] == list(range(200))


def test_cutting_what_was_cut_keeps_the_first_marker() -> None:
    """before_send's payload is completed again: the marker must still say what was cut."""
    from composio_logtelemetry._sanitize import clean_stack, clean_text

    text = clean_text("x" * 10_000, MAX_STRING)
    assert clean_text(text, MAX_STRING) == text
    assert text.endswith(f"...[truncated {10_000 - MAX_STRING} chars]")
    stack = clean_stack("frame\n" * 20_000)
    assert clean_stack(stack) == stack
    assert f"...[truncated {6 * 20_000 - MAX_STACK} chars]..." in stack


def test_huge_error_message_and_stack_are_truncated_with_markers() -> None:
    record = make_record(
        {
            "functionName": "F",
            "error": {"name": "Huge", "message": "m" * 5_000_000, "stack": "s" * 5_000_000},
        }
    )
    error = formatted(record)["error"]
    assert len(error["message"]) < MAX_MESSAGE + 100
    assert "...[truncated" in error["message"]
    assert len(error["stack"]) < MAX_STACK + 100
    assert "...[truncated" in error["stack"]


def test_a_long_traceback_keeps_its_head_and_tail() -> None:
    def fail(depth: int) -> None:
        try:
            if depth:
                fail(depth - 1)
            raise LookupError("the first failure")
        except LookupError as exc:
            raise LookupError(f"wrapped at depth {depth}: " + "z" * 2000) from exc

    record = make_record(exc_info=exc_info_of_call(lambda: fail(30)))
    stack = formatted(record)["error"]["stack"]
    assert stack.startswith("Traceback (most recent call last):")
    assert "the first failure" in stack  # the head: where it started
    assert stack.rstrip().endswith("z")  # the tail: the outermost exception
    assert "wrapped at depth 30" in stack
    assert "...[truncated" in stack
    assert len(stack) < MAX_STACK + 100


def exc_info_of_call(function: Any) -> Any:
    try:
        function()
    except BaseException:
        return sys.exc_info()
    raise AssertionError("expected an exception")


# -- redaction ---------------------------------------------------------------------------------

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


# -- invalid telemetry: an error that names the field ------------------------------------------


@pytest.mark.parametrize(
    ("telemetry", "error", "field"),
    [
        ({"functionName": ""}, ValueError, "functionName must be a non-empty string"),
        ({"functionName": 7}, TypeError, "functionName must be a string, got int"),
        ({"durationMs": -1}, ValueError, "durationMs must be >= 0"),
        ({"durationMs": math.nan}, ValueError, "durationMs must be finite"),
        ({"durationMs": 10**400}, ValueError, "durationMs must be finite"),
        ({"timestamp": "yesterday"}, TypeError, "timestamp must be a number, got str"),
        ({"props": ["a"]}, TypeError, "props must be a dict, got list"),
        ({"source": {"service": "x"}}, ValueError, "source.service: 'x' is not one of"),
        ({"colour": "red"}, ValueError, "unknown key 'colour'"),
        ("Tools.execute", TypeError, "telemetry must be a dict, got str"),
    ],
)
def test_build_event_names_the_bad_field(telemetry: Any, error: type, field: str) -> None:
    with pytest.raises(error, match=field.replace("(", r"\(").replace(".", r"\.")):
        TelemetryFormatter().event(make_record(telemetry))


@pytest.mark.parametrize(
    ("event_type", "payload", "error", "message"),
    [
        ("trace", {"functionName": "F"}, ValueError, "event type must be 'metric' or 'error'"),
        ("metric", {}, ValueError, "functionName is required"),
        ("metric", {"functionName": "  "}, ValueError, "functionName must be a non-empty"),
        ("metric", {"functionName": None}, ValueError, "functionName is required"),
        ("metric", {"functionName": b"F"}, TypeError, "functionName must be a string, got bytes"),
        ("metric", {"functionName": "F", "durationMs": -0.5}, ValueError, "durationMs must be >="),
        ("metric", {"functionName": "F", "duration_ms": math.inf}, ValueError, "durationMs"),
        ("metric", {"functionName": "F", "durationMs": math.nan}, ValueError, "durationMs"),
        ("metric", {"functionName": "F", "durationMs": 10**400}, ValueError, "durationMs"),
        ("metric", {"functionName": "F", "durationMs": "12"}, TypeError, "durationMs"),
        ("metric", {"functionName": "F", "durationMs": True}, TypeError, "durationMs"),
        ("metric", {"functionName": "F", "timestamp": -math.inf}, ValueError, "timestamp"),
        ("metric", {"functionName": "F", "props": "a=1"}, TypeError, "props must be a dict"),
        ("metric", {"functionName": "F", "source": "sdk"}, TypeError, "source must be a dict"),
        ("metric", {"functionName": "F", "source": {"service": "web"}}, ValueError, "service"),
        ("metric", {"functionName": "F", "source": {"language": "cobol"}}, ValueError, "language"),
        ("metric", {"functionName": "F", "source": {"environment": "prod"}}, ValueError, "environ"),
        ("metric", {"functionName": "F", "source": {"region": "eu"}}, ValueError, "source.region"),
        ("metric", {"functionName": "F", "source": {"host": 1}}, TypeError, "source.host"),
        ("metric", {"functionName": "F", "metadata": {"projectId": 5}}, TypeError, "projectId"),
        ("metric", {"functionName": "F", "metadata": {"team": "x"}}, ValueError, "metadata.team"),
        ("metric", {"functionName": "F", "error": {"message": "m"}}, ValueError, "error.name"),
        ("metric", {"functionName": "F", "error": {"name": ""}}, ValueError, "error.name"),
        ("metric", {"functionName": "F", "error": {"name": "E", "code": 5}}, TypeError, "code"),
        ("metric", {"functionName": "F", "error": {"name": "E", "line": 1}}, ValueError, "line"),
        ("metric", {"functionName": "F", "error": "boom"}, TypeError, "error must be a dict"),
        ("error", {"functionName": "F"}, ValueError, "'error' field"),
        ("metric", {"functionName": "F", "colour": "red"}, ValueError, "unknown key 'colour'"),
        ("metric", {"functionName": "F", "function_name": "G"}, ValueError, "given twice"),
    ],
)
def test_create_event_raises_naming_the_field(
    event_type: Any, payload: dict[str, Any], error: type, message: str
) -> None:
    with pytest.raises(error) as raised:
        create_event(event_type, **payload)
    assert message in str(raised.value)


def test_create_event_accepts_snake_case_enums_and_exceptions() -> None:
    event = create_event(
        "error",
        function_name="Tools.execute",
        duration_ms=3,
        source={"service": ServiceType.HERMES, "environment": EnvironmentType.CI},
        metadata={"project_id": "p1", "provider": None},
        error=exc_info_of(KeyError("k"))[1],
    )
    event_type, data = event
    assert event_type == "error"
    assert data["functionName"] == "Tools.execute"
    assert data["durationMs"] == 3
    assert data["source"] == {"service": "hermes", "environment": "ci"}
    assert data["metadata"] == {"projectId": "p1"}  # None is left out, never sent as null
    assert data["error"]["name"] == "KeyError"
    assert "Traceback" in data["error"]["stack"]


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(value=_json_values, ensure_ascii=st.booleans())
def test_reused_encoder_writes_what_json_dumps_writes(value: Any, ensure_ascii: bool) -> None:
    """The listener's encoder reuses json's C encoder across calls."""
    encode = reused_encoder(
        json.JSONEncoder(ensure_ascii=ensure_ascii, separators=(",", ":"), check_circular=False)
    )
    expected = json.dumps(value, ensure_ascii=ensure_ascii, separators=(",", ":"))
    assert encode(value) == expected
    assert encode(value) == expected  # and again: nothing is left over from the first call


def test_reused_encoder_is_not_used_where_cycles_are_checked() -> None:
    encoder = json.JSONEncoder(check_circular=True)
    assert reused_encoder(encoder) == encoder.encode
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="Circular"):
        reused_encoder(encoder)(cycle)


# -- the one-pass path for the usual record -----------------------------------------------------


def _mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(usual, usual, usual, odd)


_names = _mostly(st.sampled_from(["Tools.execute", "x"]), st.sampled_from(["", " ", "é", 5]))
_numbers = _mostly(
    st.floats(min_value=0, max_value=1e12), st.integers(0, 10**6) | st.floats() | st.booleans()
)
_props = _mostly(st.dictionaries(st.text(max_size=8), _json_values, max_size=4), st.just([1]))
_metadata = _mostly(
    st.dictionaries(st.sampled_from(["projectId", "provider"]), st.none() | st.text(max_size=8)),
    st.dictionaries(st.sampled_from(["project_id", "colour"]), st.just("p" * 600)),
)
_telemetry_dicts = st.fixed_dictionaries(
    {"functionName": _names},
    optional={
        "durationMs": _numbers | st.none(),
        "timestamp": _numbers | st.none(),
        "props": _props | st.none(),
        "metadata": _metadata | st.none(),
        "source": st.just({"version": "2"}),
        "error": st.just({"name": "E"}),
    },
)


_usual_text = st.text(
    st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=20
).filter(lambda text: not text.isspace())
_usual_telemetry = st.fixed_dictionaries(
    {"functionName": _usual_text},
    optional={
        "durationMs": st.floats(min_value=0, max_value=1e12) | st.none(),
        "timestamp": st.floats(allow_nan=False, allow_infinity=False) | st.none(),
        "props": st.dictionaries(st.text(max_size=8), _json_values, max_size=4) | st.none(),
        "metadata": st.dictionaries(
            st.sampled_from(["projectId", "provider"]), st.none() | _usual_text
        )
        | st.none(),
    },
)


@settings(max_examples=300, deadline=None)
@given(
    telemetry=_usual_telemetry,
    metadata=st.sampled_from([None, {"provider": "openai"}]),
    redact=st.booleans(),
)
def test_the_one_pass_path_writes_what_the_full_path_writes(
    telemetry: dict[str, Any], metadata: dict[str, str] | None, redact: bool
) -> None:
    """Every usual record takes the one-pass path, and it writes the full path's event."""
    formatter = TelemetryFormatter(metadata=metadata, source={"version": "1.0"}, redact=redact)
    record = make_record(telemetry)
    text = formatter.builder._usual_metric_json(record)
    assert text is not None
    event = formatter.builder.record_event(record)
    assert event is not None and event[0] == "metric"
    expected = formatter.builder.to_json(event[1])
    assert _canonical(text) == _canonical(expected)  # the same JSON, keys maybe in another order
    VALIDATORS["metric"].validate([json.loads(text)])


@settings(max_examples=200, deadline=None)
@given(telemetry=_telemetry_dicts)
def test_the_one_pass_path_declines_or_agrees(telemetry: dict[str, Any]) -> None:
    """On any record, the one-pass path either declines it or agrees with the full path."""
    formatter = TelemetryFormatter()
    record = make_record(telemetry)
    text = formatter.builder._usual_metric_json(record)
    if text is not None:
        event = formatter.builder.record_event(record)
        assert event is not None
        assert _canonical(text) == _canonical(formatter.builder.to_json(event[1]))


def _canonical(text: str) -> str:
    return json.dumps(json.loads(text), sort_keys=True)  # 5 and 5.0 stay apart


def test_the_usual_record_takes_the_one_pass_path() -> None:
    """What README's examples log: if this falls back, the listener's hot path got slower."""
    formatter = TelemetryFormatter()
    for telemetry in (
        {"functionName": "Tools.execute", "durationMs": 12.5, "props": {"toolkit": "github"}},
        {"functionName": "Tools.execute", "metadata": {"provider": "openai", "projectId": None}},
        {"functionName": "Tools.execute", "props": {"nested": {"list": [1, "two"]}}},
    ):
        assert formatter.builder._usual_metric_json(make_record(telemetry)) is not None


@pytest.mark.parametrize(
    "telemetry",
    [
        {"function_name": "Tools.execute"},  # snake_case
        {"functionName": "Tools.execute", "source": {"version": "2"}},
        {"functionName": "Tools.execute", "error": {"name": "E"}},
        {"functionName": "Tools.exécute"},  # not ASCII
        {"functionName": "Tools.execute", "durationMs": 5},  # an int becomes a float there
        {"functionName": "f", "props": dict.fromkeys("abc", "x" * 4000)},  # may need bounding
        {"durationMs": 1.0},  # functionName comes from the record
    ],
)
def test_other_records_take_the_full_path(telemetry: dict[str, Any]) -> None:
    assert TelemetryFormatter().builder._usual_metric_json(make_record(telemetry)) is None


def test_an_exception_on_the_record_takes_the_full_path() -> None:
    record = make_record({"functionName": "f"}, exc_info=exc_info_of(KeyError("k")))
    assert TelemetryFormatter().builder._usual_metric_json(record) is None
    captured = make_record({"functionName": "f"}, **{CAPTURED_ERROR_ATTR: {"name": "E"}})
    assert TelemetryFormatter().builder._usual_metric_json(captured) is None


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
