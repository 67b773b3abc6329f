"""Validation of request bodies against the packaged wire schemas, for the receiver.

The schemas are compiled to Python by ``fastjsonschema`` (the ``dev`` extra), once per kind.
``jsonschema`` is the reference: ``tests/test_validation.py`` checks that both give the same
verdict on generated bodies. A message names the field and says what is wrong with it, like
``data[0].durationMs must be bigger than or equal to 0``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources
from typing import Any, Literal

import fastjsonschema

__all__ = ["BODY_SCHEMA_IDS", "load_schemas", "validate_body"]

_SCHEMAS_PACKAGE = "composio_logtelemetry"
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

_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*\Z")
_SHOWN_CHARS = 60


@cache
def load_schemas() -> Mapping[str, Mapping[str, Any]]:
    """The packaged schemas keyed by ``$id``, read once; callers must not mutate them."""
    folder = resources.files(_SCHEMAS_PACKAGE) / "schemas"
    schemas = {}
    for file_name in _SCHEMA_FILES:
        schema = json.loads(folder.joinpath(file_name).read_text(encoding="utf-8"))
        schemas[schema["$id"]] = schema
    return schemas


def validate_body(kind: Literal["metric", "error"], body: object) -> str | None:
    """None if ``body`` (as ``json.loads`` returns it) is a valid request body for ``kind``,
    else the first error found, naming the field."""
    try:
        schema_id = BODY_SCHEMA_IDS[kind]
    except KeyError:
        raise ValueError(f"kind must be 'metric' or 'error', not {kind!r}") from None
    try:
        _compiled(schema_id)(body)
    except fastjsonschema.JsonSchemaValueException as error:
        return _message(error)
    return None


@cache
def _compiled(schema_id: str) -> Callable[[object], object]:
    """The ``$ref`` between packaged schemas are plain ``$id`` names, which fastjsonschema hands
    to the handler of the empty URI scheme: it serves them from the package, never the network.
    """
    return fastjsonschema.compile(
        dict(load_schemas()[schema_id]),
        handlers={"": _packaged_schema},
        use_default=False,  # a validator that fills in defaults would change what is stored
    )


def _packaged_schema(uri: str) -> Mapping[str, Any]:
    try:
        return load_schemas()[uri]
    except KeyError:
        raise ValueError(f"$ref {uri!r} names no packaged schema") from None


def _message(error: fastjsonschema.JsonSchemaValueException) -> str:
    """fastjsonschema's message, except where it blames the object instead of the field."""
    value = error.value
    if error.rule == "required" and isinstance(value, dict):
        required = error.definition.get("required", ())
        missing = next(name for name in required if name not in value)
        return f"{_child(error.name, missing)} is required"
    if error.rule == "additionalProperties" and isinstance(value, dict):
        allowed = error.definition.get("properties", {})
        unknown = next(name for name in value if name not in allowed)
        return f"{_child(error.name, unknown)} is not allowed (allowed: {', '.join(allowed)})"
    return error.message


def _child(path: str | None, name: str) -> str:
    """The path of a key that the client chose: shortened, so the message stays readable."""
    parent = path or "data"
    if len(name) > _SHOWN_CHARS:
        name = name[: _SHOWN_CHARS - 1] + "…"
    if _IDENTIFIER.match(name):
        return f"{parent}.{name}"
    return f"{parent}[{json.dumps(name, ensure_ascii=False)}]"
