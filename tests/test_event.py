"""The event builder: telemetry and ``create_event`` checked with errors that name the field,
an event completed twice unchanged, and the one-pass path for the usual record."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from composio_logtelemetry import (
    EnvironmentType,
    ServiceType,
    TelemetryFormatter,
    create_event,
)
from composio_logtelemetry._capture import CAPTURED_ERROR_ATTR
from conftest import VALIDATORS
from hostile import MEGA_ASCII, valid_telemetry
from records import exc_info_of, json_values, make_record

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
        # with function_name spelt in snake_case
        ("metrics", {"function_name": "X"}, ValueError, "event type"),
        ("metric", {"function_name": "  "}, ValueError, "functionName"),
        ("metric", {"function_name": 3}, TypeError, "functionName must be a string"),
        ("metric", {"function_name": "X", "duration_ms": -1}, ValueError, "durationMs"),
        ("metric", {"function_name": "X", "duration_ms": math.nan}, ValueError, "durationMs"),
        ("metric", {"function_name": "X", "duration_ms": math.inf}, ValueError, "durationMs"),
        ("metric", {"function_name": "X", "duration_ms": "12"}, TypeError, "durationMs"),
        ("metric", {"function_name": "X", "duration_ms": True}, TypeError, "durationMs"),
        (
            "metric",
            {"function_name": "X", "source": {"language": "cobol"}},
            ValueError,
            "source.language",
        ),
        (
            "metric",
            {"function_name": "X", "source": {"environment": "prod"}},
            ValueError,
            "source.environment",
        ),
        ("metric", {"function_name": "X", "colour": "red"}, ValueError, "colour"),
        ("metric", {"function_name": "X", "metadata": {"team": "a"}}, ValueError, "metadata.team"),
        ("metric", {"function_name": "X", "props": ["a"]}, TypeError, "props must be a dict"),
        ("error", {"function_name": "X"}, ValueError, "'error'"),
        ("error", {"function_name": "X", "error": {"message": "m"}}, ValueError, "error.name"),
        ("metric", {"function_name": "X", "functionName": "Y"}, ValueError, "twice"),
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


@settings(max_examples=150, deadline=None, database=None)
@given(telemetry=valid_telemetry(), cut=st.sampled_from([None, MEGA_ASCII, list(range(500))]))
def test_an_event_completed_twice_is_the_same_event(telemetry: dict[str, Any], cut: Any) -> None:
    """What before_send returns is completed again: what was cut stays cut as it was."""
    if cut is not None:
        telemetry = {**telemetry, "props": {**telemetry.get("props", {}), "cut": cut}}
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "m", None, None, func="run")
    record.telemetry = telemetry
    formatter = TelemetryFormatter()
    event = formatter.event(record)
    assert event is not None
    again = formatter.checked(event[1], event[0])
    assert formatter.serialize(again[1]) == formatter.serialize(event[1])


# -- the one-pass path for the usual record ----------------------------------------------------


def _mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(usual, usual, usual, odd)


_names = _mostly(st.sampled_from(["Tools.execute", "x"]), st.sampled_from(["", " ", "é", 5]))


_numbers = _mostly(
    st.floats(min_value=0, max_value=1e12), st.integers(0, 10**6) | st.floats() | st.booleans()
)


_props = _mostly(st.dictionaries(st.text(max_size=8), json_values, max_size=4), st.just([1]))


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
        "props": st.dictionaries(st.text(max_size=8), json_values, max_size=4) | st.none(),
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
    text = formatter.builder.usual_json(record)
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
    text = formatter.builder.usual_json(record)
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
        assert formatter.builder.usual_json(make_record(telemetry)) is not None


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
    assert TelemetryFormatter().builder.usual_json(make_record(telemetry)) is None


def test_an_exception_on_the_record_takes_the_full_path() -> None:
    builder = TelemetryFormatter().builder
    record = make_record({"functionName": "f"}, exc_info=exc_info_of(KeyError("k")))
    captured = make_record({"functionName": "f"}, **{CAPTURED_ERROR_ATTR: {"name": "E"}})
    for erred in (record, captured):
        assert builder.usual_json(erred) is None
        assert (builder.record_json(erred) or ("none", ""))[0] == "error"


@pytest.mark.parametrize(
    "item",
    [
        ("error", {"functionName": "f", "error": {"name": "E"}}),
        ("metric", {"functionName": "f"}, "extra"),
        (5, {"functionName": "f"}),
        ["metric", {"functionName": "f"}],
        None,
        "metric",
    ],
)
def test_other_push_event_items_take_the_full_path(item: object) -> None:
    """Errors, and whatever ``push_event`` was given that is not ``create_event``'s metric,
    are left to the full path, which says what is wrong."""
    assert TelemetryFormatter().builder.usual_json(item) is None


@settings(max_examples=200, deadline=None)
@given(telemetry=_usual_telemetry)
def test_push_events_take_the_one_pass_path_and_write_the_full_paths_event(
    telemetry: dict[str, Any],
) -> None:
    """What ``create_event`` returns for usual telemetry is encoded in one pass on the
    listener, and the text is the one the full path (``rebuild``) writes."""
    builder = TelemetryFormatter(metadata={"provider": "openai"}).builder
    event_type, data = create_event("metric", **telemetry)
    text = builder.usual_json((event_type, data))
    assert text is not None
    checked_type, checked = builder.rebuild(event_type, data)
    assert checked_type == "metric"
    assert _canonical(text) == _canonical(builder.to_json(checked))
