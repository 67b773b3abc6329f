"""``snapshot``: what the queue handler keeps, on the application's thread, of a record's
telemetry."""

from __future__ import annotations

import collections
import datetime
import logging
from typing import Any

from hypothesis import given, settings

from composio_logtelemetry import (
    TelemetryFormatter,
)
from composio_logtelemetry._capture import MAX_COPIES, _copied, snapshot
from composio_logtelemetry._sanitize import MAX_DEPTH, to_json_safe
from hostile import Shipment, tagged_telemetry
from records import formatted, make_record


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


def test_the_usual_telemetry_is_copied_apart_from_the_applications_dicts() -> None:
    """Flat props and metadata take the short way; it copies them all the same."""
    props, metadata = {"call": 1}, {"provider": "openai"}
    telemetry = {"functionName": "F", "props": props, "metadata": metadata}
    kept = snapshot(telemetry)
    props["call"] = 2
    metadata["provider"] = "other"
    telemetry["functionName"] = "G"
    assert kept == {"functionName": "F", "props": {"call": 1}, "metadata": {"provider": "openai"}}


@settings(max_examples=300, deadline=None)
@given(tagged=tagged_telemetry)
def test_the_short_way_keeps_what_the_walk_keeps(tagged: tuple[bool, Any]) -> None:
    """On any telemetry, the usual case's short way and the full walk keep what sends the
    same (compared as sent: the walk's copies may hold cycles)."""
    _, telemetry = tagged
    if type(telemetry) is dict:
        for props in (False, True):
            short_way = to_json_safe(snapshot(telemetry, props=props))
            assert short_way == to_json_safe(_copied(telemetry, 0, {}, props))


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


def _formatted_or_error(record: logging.LogRecord) -> str:
    try:
        return TelemetryFormatter().format(record)
    except Exception as exc:  # the handler counts it invalid; the same reason both times
        return f"invalid: {exc!r}"


def _empty_every_plain_container(value: Any) -> None:
    """What an application that reuses its telemetry dict may do after the log call."""
    stack, seen = [value], set()
    while stack:
        item = stack.pop()
        if type(item) not in (dict, list, set) or id(item) in seen:
            continue
        seen.add(id(item))
        stack.extend(item.values() if type(item) is dict else item)
        item.clear()


@settings(max_examples=150, deadline=None, database=None)
@given(tagged=tagged_telemetry)
def test_a_snapshot_formats_as_the_telemetry_did_before_it_changed(
    tagged: tuple[bool, Any],
) -> None:
    _, telemetry = tagged
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "m", None, None, func="run")
    record.telemetry = telemetry
    before = _formatted_or_error(record)
    record.telemetry = snapshot(telemetry)
    _empty_every_plain_container(telemetry)
    assert _formatted_or_error(record) == before
