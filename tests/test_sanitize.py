"""JSON safety and bounds: odd objects encoded with python-json-logger's encoder, cycles, depth,
surrogates, size caps with visible markers, and the reused JSON encoder."""

from __future__ import annotations

import datetime
import decimal
import json
import math
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pythonjsonlogger.json import JsonEncoder

from composio_logtelemetry._encoding import reused_encoder
from composio_logtelemetry._sanitize import (
    MAX_MESSAGE,
    MAX_PROPS_BYTES,
    MAX_STACK,
    MAX_STRING,
    TOO_MANY_VALUES,
    sent_as_is,
    to_json_safe,
)
from conftest import FaultyEndpoint
from hostile import (
    MEGA_SURROGATES,
    Colour,
    ItemlessDict,
    Shipment,
    UnlistableList,
    Unprintable,
    cycle,
    nested,
)
from records import exc_info_of_call, formatted, json_values, make_record

# -- odd objects in props: encoded with python-json-logger's encoder, never an exception -------


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


def test_odd_props_arrive_encoded(endpoint: FaultyEndpoint, pipeline: Any) -> None:
    logger, handler = pipeline()
    moment = datetime.datetime(2025, 1, 16, 7, 25, 45, tzinfo=datetime.timezone.utc)
    odd = {
        "when": moment,
        "id": uuid.UUID(int=7),
        "price": decimal.Decimal("9.99"),
        "raw": b"\x00\xff",
        "tags": {"solo"},
        "shipment": Shipment("A-1", Unprintable()),
        "colour": Colour.RED,
        "unprintable": Unprintable(),
        "loop": cycle(),
        "surrogate": "bad \udc00 text",
        "deep": nested(3000),
        "huge": MEGA_SURROGATES,
        "unlistable": UnlistableList([1]),
        "itemless": ItemlessDict(a=1),
        "nan": math.nan,
    }
    logger.info("odd", extra={"telemetry": {"functionName": "Odd.props", "props": odd}})
    assert handler.flush(5.0)
    [event] = endpoint.of_kind("metric")
    props = event["props"]
    assert props["when"] == "2025-01-16T07:25:45+00:00"
    assert props["id"] == "00000000-0000-0000-0000-000000000007"
    assert props["price"] == "9.99"
    assert props["raw"] == "AP8="  # python-json-logger's url-safe base64
    assert props["tags"] == ["solo"]
    assert props["shipment"]["sku"] == "A-1"
    assert props["colour"] == "red"
    assert props["unprintable"] == "__could_not_encode__"
    assert props["loop"]["self"] == "<cycle>"
    assert props["surrogate"] == "bad \ufffd text"
    assert "<max depth>" in json.dumps(props["deep"])
    assert "...[truncated" in props["huge"]
    assert props["unlistable"] == "<unserializable UnlistableList>"
    assert props["itemless"] == "<unserializable ItemlessDict>"
    assert props["nan"] == "nan"
    assert endpoint.violations == []


# -- size caps, each with a visible marker -----------------------------------------------------


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


# -- props that go as they are ------------------------------------------------------------------

_odd_scalars = st.sampled_from(
    [math.nan, math.inf, 2**64, "é", "x" * (MAX_STRING + 1), "sk-" + "a" * 40, b"bytes", Colour.RED]
)


@settings(max_examples=300, deadline=None)
@given(
    props=st.dictionaries(
        st.text(max_size=8) | st.sampled_from(["api_key", "password", "k" * 600]) | st.integers(),
        json_values | _odd_scalars,
        max_size=5,
    ),
    redact=st.booleans(),
)
def test_props_said_to_go_as_they_are_come_out_of_to_json_safe_unchanged(
    props: dict[Any, Any], redact: bool
) -> None:
    """The one-pass path encodes such props without a copy: they must be what
    ``to_json_safe`` would have made of them, or a secret or an odd value would slip by."""
    if sent_as_is(props, redact):
        assert to_json_safe(props, redact=redact) == props
        assert json.loads(json.dumps(props)) == props


def test_the_usual_props_go_as_they_are() -> None:
    assert sent_as_is({"toolkit": "github", "call": 5, "ok": True, "ms": 1.5, "n": None}, True)
    assert not sent_as_is({"api_key": "x"}, True)
    assert not sent_as_is({"url": "https://h/p?token=abc"}, True)
    assert sent_as_is({"url": "https://h/p?token=abc"}, False)
    assert not sent_as_is({"nested": {"a": 1}}, False)


# -- the reused encoder ------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(value=json_values, ensure_ascii=st.booleans())
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


def test_a_secret_the_length_cut_would_halve_is_masked_whole() -> None:
    """A long props string is redacted before it is cut: no token's head survives the cut."""
    token = "ghp_" + "A1b2C3d4E5" * 4
    text = "x" * (MAX_STRING - 10) + " " + token + " tail"
    safe = to_json_safe({"log": text}, redact=True)["log"]
    assert "ghp_A1b2" not in safe
    assert "[truncated" in safe
