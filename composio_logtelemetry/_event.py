"""Turn loosely typed input (snake_case or camelCase) into a valid ``TelemetryData``.

Validation happens here, once, so that ``create_event`` fails at the call site with a
message naming the field, and the log path can count and explain what it drops.
"""

from __future__ import annotations

import contextlib
import math
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from ._sanitize import snapshot
from .models import (
    EnvironmentType,
    ErrorData,
    Event,
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


def error_from_exception(exc: BaseException) -> ErrorData:
    """ErrorData for an exception: class name, ``str(exc)`` and the full chained traceback."""
    error: dict[str, str] = {"name": type(exc).__name__}
    try:
        error["message"] = str(exc)
    except Exception:
        error["message"] = f"<unprintable {type(exc).__name__}>"
    with contextlib.suppress(Exception):
        error["stack"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return cast(ErrorData, error)


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
