"""Validation of request bodies against the packaged wire schemas.

The package may depend only on ``requests`` and ``python-json-logger``, so instead of
``jsonschema`` this interprets exactly the keywords that ``schemas/*.json`` use, and refuses
to load a schema that uses any other (a new keyword must not be silently ignored).
``tests/test_schema.py`` checks that it agrees with ``jsonschema`` on generated bodies.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources
from typing import Any, Literal

__all__ = ["BODY_SCHEMA_IDS", "load_schemas", "validate", "validate_body"]

_SCHEMA_FILES = (
    "telemetry-event.schema.json",
    "metrics-body.schema.json",
    "error-body.schema.json",
)

BODY_SCHEMA_IDS: Mapping[str, str] = {
    "metric": "composio-telemetry-metrics-body",
    "error": "composio-telemetry-error-body",
}
"""The ``$id`` of the schema that each kind of request body must match."""

_ANNOTATIONS = frozenset({"$schema", "$id", "title", "description"})
_KEYWORDS = frozenset(
    {
        "$ref",
        "allOf",
        "type",
        "required",
        "additionalProperties",
        "properties",
        "enum",
        "minLength",
        "minimum",
        "minItems",
        "items",
    }
)
_TYPE_NAMES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "a boolean",
    "null": "null",
}
_OBJECT_KEYWORDS = frozenset({"type", "required", "properties", "additionalProperties"})
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*\Z")
_SHOWN_CHARS = 60


@cache
def load_schemas() -> Mapping[str, Mapping[str, Any]]:
    """The packaged schemas keyed by ``$id``, read once; callers must not mutate them."""
    folder = resources.files(__package__ or "composio_logtelemetry") / "schemas"
    schemas: dict[str, Mapping[str, Any]] = {}
    for file_name in _SCHEMA_FILES:
        schema = json.loads(folder.joinpath(file_name).read_text(encoding="utf-8"))
        _check_supported(schema, file_name)
        schemas[schema["$id"]] = schema
    for schema_id, schema in schemas.items():
        _check_refs(schema, schemas, schema_id)
    return schemas


def validate_body(kind: Literal["metric", "error"], body: object) -> str | None:
    """None if ``body`` is a valid request body for ``kind``, else why not, naming the JSON path.

    The path is written like ``$[0].durationMs``. Booleans are not numbers, and NaN or
    infinities are not valid numbers, as no JSON document can hold them.
    """
    try:
        schema_id = BODY_SCHEMA_IDS[kind]
    except KeyError:
        raise ValueError(f"kind must be 'metric' or 'error', not {kind!r}") from None
    return validate(schema_id, body)


def validate(schema_id: str, instance: object) -> str | None:
    """None if ``instance`` matches the packaged schema with this ``$id``, else the first error."""
    if schema_id not in load_schemas():
        raise KeyError(f"no packaged schema has $id {schema_id!r}")
    return _compiled(schema_id)(instance, ())


# A check returns None or the message of the first error. The path it gets is a linked list,
# () for the root and (parent, key or index) below it, turned into text only for an error:
# the receiver validates every event of every batch, so the valid case must be cheap.
_Path = tuple[Any, ...]
_Check = Callable[[Any, _Path], "str | None"]


@cache
def _compiled(schema_id: str) -> _Check:
    return _compile(load_schemas()[schema_id])


def _compile(schema: Mapping[str, Any]) -> _Check:
    """Keywords are checked in a fixed order so that the same body always gets the same message."""
    if schema.get("type") == "object" and schema.keys() - _ANNOTATIONS <= _OBJECT_KEYWORDS:
        return _object_check(schema, typed=True)  # one call for an object, not three
    checks: list[_Check] = []
    if "$ref" in schema:
        checks.append(_compiled(schema["$ref"]))
    checks.extend(_compile(subschema) for subschema in schema.get("allOf", ()))
    if "type" in schema:
        checks.append(_type_check(schema["type"]))
    if "enum" in schema:
        checks.append(_enum_check(schema["enum"]))
    if "minLength" in schema:
        checks.append(_min_length_check(schema["minLength"]))
    if "minimum" in schema:
        checks.append(_minimum_check(schema["minimum"]))
    if "minItems" in schema or "items" in schema:
        checks.append(_array_check(schema))
    if (_OBJECT_KEYWORDS - {"type"}) & schema.keys():
        checks.append(_object_check(schema, typed=False))
    if len(checks) == 1:
        return checks[0]

    def check_all(instance: Any, path: _Path) -> str | None:
        for check in checks:
            error = check(instance, path)
            if error is not None:
                return error
        return None

    return check_all


def _type_check(expected: str) -> _Check:
    is_type = _TYPE_PREDICATES[expected]

    def check_type(instance: Any, path: _Path) -> str | None:
        if is_type(instance):
            return None
        if expected == "number" and isinstance(instance, float):
            return f"{_format_path(path)}: {_show(instance)} is not a finite number"
        return f"{_format_path(path)}: expected {_TYPE_NAMES[expected]}, got {_describe(instance)}"

    return check_type


def _enum_check(values: list[str]) -> _Check:
    allowed = frozenset(values)
    allowed_text = ", ".join(json.dumps(value) for value in values)

    def check_enum(instance: Any, path: _Path) -> str | None:
        if isinstance(instance, str) and instance in allowed:
            return None
        return f"{_format_path(path)}: {_show(instance)} is not one of {allowed_text}"

    return check_enum


def _min_length_check(min_length: int) -> _Check:
    def check_min_length(instance: Any, path: _Path) -> str | None:
        if not isinstance(instance, str) or len(instance) >= min_length:
            return None
        return (
            f"{_format_path(path)}: {_show(instance)} is shorter than"
            f" the minimum length of {min_length}"
        )

    return check_min_length


def _minimum_check(minimum: float) -> _Check:
    def check_minimum(instance: Any, path: _Path) -> str | None:
        if not _is_number(instance) or instance >= minimum:
            return None
        return f"{_format_path(path)}: {_show(instance)} is less than the minimum of {minimum}"

    return check_minimum


def _array_check(schema: Mapping[str, Any]) -> _Check:
    min_items: int = schema.get("minItems", 0)
    check_item = _compile(schema["items"]) if "items" in schema else None

    def check_array(instance: Any, path: _Path) -> str | None:
        if not isinstance(instance, list):
            return None
        if len(instance) < min_items:
            return (
                f"{_format_path(path)}: array has {len(instance)} items,"
                f" fewer than the minimum of {min_items}"
            )
        if check_item is not None:
            for index, item in enumerate(instance):
                error = check_item(item, (path, index))
                if error is not None:
                    return error
        return None

    return check_array


def _object_check(schema: Mapping[str, Any], *, typed: bool) -> _Check:
    """With ``typed``, also the check of ``"type": "object"``, which then comes first."""
    check_type = _type_check("object") if typed else None
    required: tuple[str, ...] = tuple(schema.get("required", ()))
    property_checks = {
        name: (_quick_accept(subschema), _compile(subschema))
        for name, subschema in schema.get("properties", {}).items()
    }
    closed = schema.get("additionalProperties", True) is False
    allowed_text = ", ".join(sorted(property_checks)) or "none"

    def check_object(instance: Any, path: _Path) -> str | None:
        if not isinstance(instance, dict):
            return None if check_type is None else check_type(instance, path)
        for name in required:
            if name not in instance:
                return f"{_format_path((path, name))}: required property is missing"
        for name, value in instance.items():
            checks = property_checks.get(name)
            if checks is None:
                if closed:
                    return (
                        f"{_format_path((path, name))}: unknown property (allowed: {allowed_text})"
                    )
                continue
            accepts, check_property = checks
            if accepts is not None and accepts(value):
                continue
            error = check_property(value, (path, name))
            if error is not None:
                return error
        return None

    return check_object


def _quick_accept(schema: Mapping[str, Any]) -> Callable[[Any], bool] | None:
    """One call that passes the usual valid value of a simple schema (most of an event's
    fields), so the full check runs only for the rest. False means "check", never "invalid":
    messages always come from the full check."""
    keywords = schema.keys() - _ANNOTATIONS
    if keywords == {"type"}:
        return _QUICK_TYPES.get(schema["type"])
    if keywords == {"enum"}:
        allowed = frozenset(schema["enum"])
        return lambda value: type(value) is str and value in allowed
    if keywords == {"type", "minLength"} and schema["type"] == "string":
        min_length: int = schema["minLength"]
        return lambda value: type(value) is str and len(value) >= min_length
    if keywords == {"type", "minimum"} and schema["type"] == "number":
        minimum: float = schema["minimum"]
        return lambda value: (
            (type(value) is float or type(value) is int) and (minimum <= value < math.inf)
        )
    return None


_QUICK_TYPES: Mapping[str, Callable[[Any], bool]] = {
    "string": lambda value: type(value) is str,
    "object": lambda value: type(value) is dict,
    "number": lambda value: (
        type(value) is int or (type(value) is float and -math.inf < value < math.inf)
    ),
}


def _format_path(path: _Path) -> str:
    parts: list[Any] = []
    while path:
        path, part = path
        parts.append(part)
    text = "$"
    for part in reversed(parts):
        text = _child(text, part)
    return text


def _is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int)


_TYPE_PREDICATES: Mapping[str, Callable[[Any], bool]] = {
    "object": lambda value: isinstance(value, dict),
    "array": lambda value: isinstance(value, list),
    "string": lambda value: isinstance(value, str),
    "number": _is_number,
    "integer": lambda value: _is_number(value) and (isinstance(value, int) or value.is_integer()),
    "boolean": lambda value: isinstance(value, bool),
    "null": lambda value: value is None,
}


def _child(path: str, name: object) -> str:
    if isinstance(name, str) and _IDENTIFIER.match(name):
        return f"{path}.{name}"
    return f"{path}[{_show(name)}]"


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {_show(value)}"
    if isinstance(value, str):
        return f"the string {_show(value)}"
    if isinstance(value, (int, float)):
        return f"the number {_show(value)}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return f"a Python {type(value).__name__}"


def _show(value: object) -> str:
    """JSON text of a scalar, shortened: a message must stay readable whatever was sent."""
    if isinstance(value, (dict, list)):
        return _describe(value)
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = f"<{type(value).__name__}>"
    if len(text) > _SHOWN_CHARS:
        text = text[: _SHOWN_CHARS - 1] + "…"
    return text


def _check_supported(schema: object, where: str) -> None:
    """A schema that needs a keyword this module does not implement must fail at load, not pass."""
    if not isinstance(schema, dict):
        raise ValueError(f"{where}: a schema must be an object")
    for keyword, value in schema.items():
        if keyword in _ANNOTATIONS:
            continue
        if keyword not in _KEYWORDS:
            raise ValueError(f"{where}: unsupported schema keyword {keyword!r}")
        if keyword == "additionalProperties" and value is not False:
            raise ValueError(f"{where}: only 'additionalProperties: false' is supported")
        if keyword == "type" and value not in _TYPE_NAMES:
            raise ValueError(f"{where}: unsupported type {value!r}")
        if keyword == "enum" and not all(isinstance(item, str) for item in value):
            raise ValueError(f"{where}: only enums of strings are supported")
        if keyword == "items":
            _check_supported(value, f"{where}/items")
        elif keyword == "allOf":
            for index, subschema in enumerate(value):
                _check_supported(subschema, f"{where}/allOf/{index}")
        elif keyword == "properties":
            for name, subschema in value.items():
                _check_supported(subschema, f"{where}/properties/{name}")


def _check_refs(schema: Any, schemas: Mapping[str, Any], where: str) -> None:
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if ref is not None and ref not in schemas:
            raise ValueError(f"{where}: $ref {ref!r} names no packaged schema")
        for value in schema.values():
            _check_refs(value, schemas, where)
    elif isinstance(schema, list):
        for value in schema:
            _check_refs(value, schemas, where)
