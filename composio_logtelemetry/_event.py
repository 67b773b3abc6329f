"""The event builder: the one home of the wire rules.

Loosely typed input (snake_case or camelCase, a log record, ``create_event``'s keywords)
becomes a valid ``TelemetryData`` and its JSON text. Validation happens here, once, so that
``create_event`` fails at the call site with a message naming the field, and the log path
can count and explain what it drops. The usual metric takes a one-pass fast path,
``EventBuilder.usual_json``, which lives next to the full path it must agree with.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from pythonjsonlogger.json import JsonEncoder

from . import _redact, _sanitize
from ._capture import CAPTURED_ERROR_ATTR, error_from_exception, snapshot
from ._encoding import reused_encoder
from .models import (
    EnvironmentType,
    ErrorData,
    Event,
    EventType,
    LanguageType,
    Metadata,
    ServiceType,
    SourceData,
    TelemetryData,
)

EVENT_TYPES = ("metric", "error")
_ALIASES = {
    "function_name": "functionName",
    "duration_ms": "durationMs",
    "error_id": "errorId",
    "project_id": "projectId",
}
_SOURCE_ENUMS: dict[str, type[ServiceType | LanguageType | EnvironmentType]] = {
    "service": ServiceType,
    "language": LanguageType,
    "environment": EnvironmentType,
}
_SOURCE_CHOICES = {
    key: frozenset(member.value for member in enum_type) for key, enum_type in _SOURCE_ENUMS.items()
}
_SOURCE_KEYS = ("host", "service", "language", "version", "platform", "environment")
_METADATA_KEYS = ("projectId", "provider")
_ERROR_KEYS = ("name", "code", "errorId", "message", "stack")
_TELEMETRY_KEYS = (
    "functionName",
    "durationMs",
    "timestamp",
    "props",
    "source",
    "metadata",
    "error",
)
_FAST_KEYS = frozenset(_TELEMETRY_KEYS)


def _type_name(value: object) -> str:
    return type(value).__name__


def _canonical_items(value: object, where: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    """The mapping with snake_case keys renamed and ``None`` values skipped (no nulls)."""
    if type(value) is not dict and not isinstance(value, Mapping):
        raise TypeError(f"{where} must be a dict, got {_type_name(value)}")
    items: dict[str, Any] = {}
    for raw_key, item in value.items():
        key = _ALIASES.get(raw_key, raw_key) if type(raw_key) is str else raw_key
        if key not in allowed:
            place = f"{where}.{raw_key}" if where != "telemetry" else str(raw_key)
            raise ValueError(f"unknown key {place!r}; expected one of: {', '.join(allowed)}")
        if item is None:
            continue
        if key in items:
            raise ValueError(f"{where}.{key} is given twice (snake_case and camelCase)")
        items[key] = item
    return items


def _string(value: object, where: str, *, non_empty: bool = False) -> str:
    if type(value) is str and (not non_empty or (value and not value.isspace())):
        return value
    if isinstance(value, ServiceType | LanguageType | EnvironmentType):
        value = value.value
    if not isinstance(value, str):
        raise TypeError(f"{where} must be a string, got {_type_name(value)}")
    if non_empty and not value.strip():
        raise ValueError(f"{where} must be a non-empty string")
    return value


def _number(value: object, where: str, *, minimum: float | None = None) -> float:
    if type(value) is float and math.isfinite(value) and (minimum is None or value >= minimum):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{where} must be a number, got {_type_name(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{where} must be finite, got an integer too large for a float") from None
    if not math.isfinite(number):
        raise ValueError(f"{where} must be finite, got {value!r}")
    if minimum is not None and number < minimum:
        raise ValueError(f"{where} must be >= {minimum:g}, got {value!r}")
    return number


def _source(value: object) -> SourceData:
    source: dict[str, str] = {}
    for key, item in _canonical_items(value, "source", _SOURCE_KEYS).items():
        text = _string(item, f"source.{key}")
        choices = _SOURCE_CHOICES.get(key)
        if choices is not None and text not in choices:
            listed = ", ".join(member.value for member in _SOURCE_ENUMS[key])
            raise ValueError(f"source.{key}: {text!r} is not one of {listed}")
        source[key] = text
    result: SourceData = source  # type: ignore[assignment]
    return result


def _metadata(value: object) -> Metadata:
    metadata: Any = _canonical_items(value, "metadata", _METADATA_KEYS)
    for key, item in metadata.items():
        if type(item) is not str:
            metadata[key] = _string(item, f"metadata.{key}")
    result: Metadata = metadata
    return result


def _error(value: object) -> ErrorData:
    if isinstance(value, BaseException):
        return error_from_exception(value)
    error: dict[str, str] = {}
    for key, item in _canonical_items(value, "error", _ERROR_KEYS).items():
        error[key] = _string(item, f"error.{key}", non_empty=key == "name")
    if "name" not in error:
        raise ValueError("error.name is required")
    return cast(ErrorData, error)


def _props(value: object) -> dict[str, Any]:
    """Props as a dict, not yet copied: ``complete_event`` makes them JSON-safe into a new one."""
    if type(value) is dict:
        return value
    if not isinstance(value, Mapping):
        raise TypeError(f"props must be a dict, got {_type_name(value)}")
    return dict(value)


_TELEMETRY_PARSERS: dict[str, Callable[[Any], Any]] = {
    "functionName": lambda value: _string(value, "functionName", non_empty=True),
    "durationMs": lambda value: _number(value, "durationMs", minimum=0),
    "timestamp": lambda value: _number(value, "timestamp"),
    "props": _props,
    "source": _source,
    "metadata": _metadata,
    "error": _error,
}


def normalize_telemetry(payload: object) -> dict[str, Any]:
    """Validated telemetry fields in camelCase; ``functionName`` may still be missing."""
    items: Iterable[tuple[str, Any]]
    if type(payload) is dict and _FAST_KEYS.issuperset(payload):
        items = payload.items()  # camelCase already: nothing to rename
    else:
        items = _canonical_items(payload, "telemetry", _TELEMETRY_KEYS).items()
    fields: dict[str, Any] = {}
    for key, value in items:
        if value is not None:
            fields[key] = _TELEMETRY_PARSERS[key](value)
    return fields


def make_event(event_type: object, payload: Mapping[str, Any]) -> Event:
    """A validated event, raising ``ValueError``/``TypeError`` that names the bad field."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"event type must be 'metric' or 'error', got {event_type!r}")
    data = normalize_telemetry(payload)
    if "props" in data:
        data["props"] = snapshot(data["props"], props=True)  # kept as they were at creation
    if "functionName" not in data:
        raise ValueError("functionName is required")
    if event_type == "error" and "error" not in data:
        raise ValueError("an 'error' event needs an 'error' field (at least error.name)")
    return cast(Event, (event_type, cast(TelemetryData, data)))


# -- completing an event: defaults, JSON-safe values, bounds, redaction, JSON text -------------

_ENVIRONMENTS = {member.value for member in EnvironmentType}
_USUAL_KEYS = frozenset({"functionName", "durationMs", "timestamp", "props", "metadata"})
_USUAL_METADATA_KEYS = frozenset(_METADATA_KEYS)


def _default_source() -> dict[str, str]:
    source = {"language": "python", "service": "sdk"}
    environment = os.environ.get("ENVIRONMENT", "").strip().lower()
    if environment in _ENVIRONMENTS:
        source["environment"] = environment
    return source


def _clean_values(section: Mapping[str, str]) -> dict[str, str]:
    return {key: _sanitize.clean_text(text, _sanitize.MAX_NAME) for key, text in section.items()}


class EventBuilder:
    """Turns records and loose payloads into complete, schema-valid events and their JSON."""

    def __init__(
        self,
        *,
        source: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        capture_exceptions: bool = True,
        redact: bool = True,
    ) -> None:
        defaults = normalize_telemetry(
            {"source": {**_default_source(), **(source or {})}, "metadata": metadata or {}}
        )
        self.default_source: dict[str, str] = dict(defaults["source"])
        self.default_metadata: dict[str, str] = dict(defaults["metadata"])
        self.capture_exceptions = capture_exceptions
        self.redact = redact
        self._encode = reused_encoder(
            JsonEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)
        )
        # What the one-pass path joins to an event's own JSON (its closing brace dropped).
        source_json = f',"source":{self._encode(self.default_source)}}}'
        self._source_json = source_json
        self._defaults_json = (
            f',"metadata":{self._encode(self.default_metadata)}{source_json}'
            if self.default_metadata
            else source_json
        )

    def usual_json(self, item: object) -> str | None:
        """The JSON of a usual metric, in one pass: a record's or ``push_event``'s whose
        telemetry is a plain camelCase dict of valid, short, ASCII values. None for any other
        item, which takes the full path (``record_json``, ``rebuild``): it handles every case
        and raises what is invalid."""
        if type(item) is tuple:
            event: tuple[Any, ...] = item
            if len(event) == 2 and type(event[0]) is str and event[0] == "metric":
                return self._usual_metric_json(event[1], None)
            return None
        if (
            isinstance(item, logging.LogRecord)
            and not item.exc_info
            and getattr(item, CAPTURED_ERROR_ATTR, None) is None
        ):
            return self._usual_metric_json(getattr(item, "telemetry", None), item.created)
        return None

    def record_json(self, record: logging.LogRecord) -> tuple[EventType, str] | None:
        """The event type and JSON text a record carries, ``None`` if it carries none."""
        event = self.record_event(record)
        return None if event is None else (event[0], self.to_json(event[1]))

    def record_event(self, record: logging.LogRecord) -> Event | None:
        """The complete event a record carries, ``None`` if it carries none.

        Raises ``ValueError``/``TypeError`` naming the field when its telemetry is invalid.
        """
        telemetry = getattr(record, "telemetry", None)
        error: ErrorData | None = getattr(record, CAPTURED_ERROR_ATTR, None)
        if error is None and record.exc_info and record.exc_info[1] is not None:
            error = error_from_exception(record.exc_info[1])
        if telemetry is None:
            if error is None or not self.capture_exceptions:
                return None
            data: dict[str, Any] = {}
        else:
            data = normalize_telemetry(telemetry)
        if error is not None and self.capture_exceptions:
            data.setdefault("error", error)
        if "functionName" not in data:
            data["functionName"] = record.funcName or record.name
        if "timestamp" not in data:
            data["timestamp"] = record.created
        return self._completed(data, None)

    def _usual_metric_json(self, telemetry: object, created: float | None) -> str | None:
        """The complete metric's JSON of usual telemetry (a plain camelCase dict of valid,
        short, ASCII values), in one pass; None for any other. ``created`` is the timestamp
        when the telemetry has none (a record's time; none for ``push_event``).

        Telemetry whose props go as they are is encoded without a copy, and the defaults'
        JSON (encoded once) is joined to its text."""
        if type(telemetry) is not dict or not _USUAL_KEYS.issuperset(telemetry):
            return None
        name = telemetry.get("functionName")
        if (
            type(name) is not str
            or not name.isascii()
            or not 0 < len(name) <= _sanitize.MAX_NAME
            or name.isspace()
        ):
            return None
        duration = telemetry.get("durationMs")
        if duration is not None and (type(duration) is not float or not 0.0 <= duration < math.inf):
            return None
        timestamp = telemetry.get("timestamp")
        if timestamp is not None and (
            type(timestamp) is not float or not -math.inf < timestamp < math.inf
        ):
            return None
        fields: dict[str, Any] = telemetry
        props = telemetry.get("props")
        if props is not None:
            if type(props) is not dict:
                return None
            if not _sanitize.sent_as_is(props, self.redact):
                fields = {**fields, "props": _sanitize.to_json_safe(props, redact=self.redact)}
        metadata = telemetry.get("metadata")
        if metadata is not None:
            merged = self._usual_metadata(metadata)
            if merged is None:
                return None
            if merged is not metadata or not merged:  # no empty metadata on the wire
                fields = {**fields, "metadata": merged or None}
        if None in fields.values():
            fields = {key: value for key, value in fields.items() if value is not None}
        text = self._encode(fields)
        if props is not None and len(text) > _sanitize.MAX_PROPS_BYTES // 4:
            return None  # props may need bounding
        stamp = "" if timestamp is not None or created is None else f',"timestamp":{created!r}'
        return f"{text[:-1]}{stamp}{self._defaults_json if metadata is None else self._source_json}"

    def _usual_metadata(self, metadata: object) -> dict[str, Any] | None:
        """A record's plain metadata with the defaults under it (itself, when there is
        nothing to merge or skip); None if it is not plain."""
        if type(metadata) is not dict or not _USUAL_METADATA_KEYS.issuperset(metadata):
            return None
        skipped = False
        for text in metadata.values():
            if text is None:
                skipped = True
            elif type(text) is not str or not text.isascii() or len(text) > _sanitize.MAX_NAME:
                return None
        if not skipped and not self.default_metadata:
            return metadata
        return {
            **self.default_metadata,
            **{key: text for key, text in metadata.items() if text is not None},
        }

    def rebuild(self, event_type: object, payload: Mapping[str, Any]) -> Event:
        """A payload from outside (``push_event``, ``before_send``, a formatter hook) checked
        and completed as a record's is; raises naming the bad field."""
        checked_type, checked = make_event(event_type, payload)
        return self._completed(dict(checked), checked_type)

    def _completed(self, payload: dict[str, Any], event_type: EventType | None) -> Event:
        """Defaults merged under a dict of our own, changed in place: values made JSON-safe,
        bounded and redacted."""
        payload["functionName"] = _sanitize.clean_text(payload["functionName"], _sanitize.MAX_NAME)
        own_source, own_metadata = payload.get("source"), payload.get("metadata")
        payload["source"] = (
            {**self.default_source, **_clean_values(own_source)}
            if own_source
            else self.default_source.copy()
        )
        if own_metadata:
            payload["metadata"] = {**self.default_metadata, **_clean_values(own_metadata)}
        elif self.default_metadata:
            payload["metadata"] = self.default_metadata.copy()
        else:
            payload.pop("metadata", None)
        if "props" in payload:
            payload["props"] = _sanitize.to_json_safe(payload["props"], redact=self.redact)
        if "error" in payload:
            payload["error"] = self._clean_error(payload["error"])
        if event_type is None:
            event_type = "error" if "error" in payload else "metric"
        data: Any = payload
        return event_type, data

    def _clean_error(self, error: dict[str, str]) -> ErrorData:
        cleaned: dict[str, str] = {}
        for key, text in error.items():
            if key == "stack":
                cleaned[key] = _sanitize.clean_stack(self._redacted(text, 4 * _sanitize.MAX_STACK))
            elif key == "message":
                cleaned[key] = _sanitize.clean_text(
                    self._redacted(text, 4 * _sanitize.MAX_MESSAGE), _sanitize.MAX_MESSAGE
                )
            else:
                cleaned[key] = _sanitize.clean_text(text, _sanitize.MAX_NAME)
        result: ErrorData = cleaned  # type: ignore[assignment]
        return result

    def _redacted(self, text: str, scan_limit: int) -> str:
        """Redacts at most ``scan_limit`` characters, so a huge message costs bounded time."""
        if len(text) > scan_limit:
            text = f"{text[:scan_limit]}...[truncated {len(text) - scan_limit} chars]"
        return _redact.redact_text(text) if self.redact else text

    def to_json(self, data: Mapping[str, Any]) -> str:
        """The JSON text of one complete event, as it goes on the wire, with its props
        bounded. Values are plain JSON by now (``to_json_safe`` converted the odd ones with
        python-json-logger's encoder, and left no cycles), so one reused encoder does."""
        text = self._encode(data)
        props = data.get("props")
        if type(props) is dict and len(text) > _sanitize.MAX_PROPS_BYTES // 4:
            bounded = _sanitize.bound_props(props)
            if bounded is not props:
                text = self._encode({**data, "props": bounded})
        return text
