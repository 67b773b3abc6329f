"""The built-in validator must agree with ``jsonschema`` on the packaged wire schemas."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, Literal

import jsonschema
import pytest
import referencing
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from composio_logtelemetry._schema import BODY_SCHEMA_IDS, load_schemas, validate, validate_body

Kind = Literal["metric", "error"]

# The two bodies of shared/wire/examples.md, verbatim.
METRIC_EXAMPLE = (
    '[{"functionName":"Tools.execute","timestamp":1737012345.123456,"props":{},"source":'
    '{"environment":"development","language":"python","service":"sdk","version":"1.0.0"},'
    '"metadata":{"provider":"openai"},"durationMs":412.34}]'
)
ERROR_EXAMPLE = (
    '{"functionName":"Tools.execute","timestamp":1737012345.123456,"props":{},"source":'
    '{"language":"python","service":"sdk"},"metadata":{"provider":"openai"},"error":'
    '{"name":"ToolVersionRequiredError","message":"Toolkit version not specified.","stack":'
    '"Traceback (most recent call last):\\n  File \\"tools.py\\", line 523, in execute\\n'
    "    raise ToolVersionRequiredError()\\nToolVersionRequiredError: Toolkit version not "
    'specified.\\n"},"durationMs":231.05}'
)
TS_ERROR = {
    "functionName": "Tools.execute",
    "source": {"language": "typescript", "service": "sdk", "environment": "production"},
    "error": {
        "name": "ToolNotFoundError",
        "code": "TS-SDK::TOOL_NOT_FOUND",
        "errorId": "4b0c3c8e-0c39-4b5e-9a43-2f1f8e0d8f6a",
        "message": "Tool not found",
        "stack": "ToolNotFoundError: Tool not found\n    at execute (tools.ts:10:5)",
    },
}


def _reference_validators() -> dict[str, jsonschema.protocols.Validator]:
    schemas = load_schemas()
    registry: referencing.Registry[Any] = referencing.Registry().with_resources(
        (schema_id, referencing.Resource.from_contents(dict(schema)))
        for schema_id, schema in schemas.items()
    )
    validators = {}
    for kind, schema_id in BODY_SCHEMA_IDS.items():
        schema = dict(schemas[schema_id])
        jsonschema.Draft202012Validator.check_schema(schema)
        validators[kind] = jsonschema.Draft202012Validator(schema, registry=registry)
    return validators


REFERENCE = _reference_validators()


def _path_text(parts: Iterable[str | int]) -> str:
    text = "$"
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_$][A-Za-z0-9_$]*", part):
            text += f".{part}"
        else:
            text += f"[{json.dumps(part, ensure_ascii=False)}]"
    return text


def _assert_agrees(kind: Kind, body: object) -> str | None:
    """Same verdict as jsonschema and, when invalid, a path that jsonschema also blames."""
    message = validate_body(kind, body)
    reference_errors = list(REFERENCE[kind].iter_errors(body))
    assert (message is None) == (not reference_errors), (body, message, reference_errors)
    if message is not None:
        path = message.split(": ", 1)[0]
        blamed = {_path_text(error.absolute_path) for error in reference_errors}
        # jsonschema blames an object for a missing or unknown key; we name the key itself.
        assert any(path == p or path.startswith((p + ".", p + "[")) for p in blamed), (
            message,
            blamed,
        )
    return message


@pytest.mark.parametrize(
    ("kind", "text"), [("metric", METRIC_EXAMPLE), ("error", ERROR_EXAMPLE)], ids=str
)
def test_wire_examples_are_valid(kind: Kind, text: str) -> None:
    assert _assert_agrees(kind, json.loads(text)) is None


def test_typescript_error_with_code_and_error_id_is_valid() -> None:
    assert _assert_agrees("error", TS_ERROR) is None
    assert _assert_agrees("metric", [{"functionName": "x"}] * 3) is None


def test_schemas_are_loaded_by_id() -> None:
    assert set(load_schemas()) == {
        "composio-telemetry-event",
        "composio-telemetry-metrics-body",
        "composio-telemetry-error-body",
    }
    assert validate("composio-telemetry-event", {"functionName": "f"}) is None


EVENT = {"functionName": "Tools.execute", "durationMs": 1.5}
ERROR = {"functionName": "Tools.execute", "error": {"name": "ValueError"}}

INVALID_BODIES: list[tuple[Kind, object, str]] = [
    ("metric", [], "$: array has 0 items, fewer than the minimum of 1"),
    ("metric", EVENT, "$: expected an array, got an object"),
    ("metric", None, "$: expected an array, got null"),
    ("metric", "[]", '$: expected an array, got the string "[]"'),
    ("metric", [{}], "$[0].functionName: required property is missing"),
    ("metric", [EVENT, {"durationMs": 1}], "$[1].functionName: required property is missing"),
    ("metric", [{"functionName": ""}], '$[0].functionName: "" is shorter than the minimum length'),
    ("metric", [{"functionName": 7}], "$[0].functionName: expected a string, got the number 7"),
    ("metric", [{**EVENT, "durationMs": -1}], "$[0].durationMs: -1 is less than the minimum of 0"),
    (
        "metric",
        [{**EVENT, "durationMs": "5"}],
        "$[0].durationMs: expected a number, got the string",
    ),
    ("metric", [{**EVENT, "durationMs": True}], "$[0].durationMs: expected a number, got the bool"),
    ("metric", [{**EVENT, "durationMs": None}], "$[0].durationMs: expected a number, got null"),
    ("metric", [{**EVENT, "timestamp": "now"}], "$[0].timestamp: expected a number"),
    ("metric", [{**EVENT, "props": []}], "$[0].props: expected an object, got an array"),
    ("metric", [{**EVENT, "function_name": "x"}], "$[0].function_name: unknown property"),
    ("metric", [{**EVENT, "a b": 1}], '$[0]["a b"]: unknown property'),
    ("metric", [{**EVENT, "source": {"service": "cli"}}], '$[0].source.service: "cli" is not one'),
    ("metric", [{**EVENT, "source": {"language": "java"}}], "$[0].source.language:"),
    ("metric", [{**EVENT, "source": {"environment": "prod"}}], "$[0].source.environment:"),
    ("metric", [{**EVENT, "source": {"environment": None}}], "$[0].source.environment: null is"),
    ("metric", [{**EVENT, "source": {"host": 1}}], "$[0].source.host: expected a string"),
    ("metric", [{**EVENT, "source": {"region": "eu"}}], "$[0].source.region: unknown property"),
    ("metric", [{**EVENT, "source": "sdk"}], "$[0].source: expected an object"),
    ("metric", [{**EVENT, "metadata": {"project_id": "p"}}], "$[0].metadata.project_id: unknown"),
    ("metric", [{**EVENT, "metadata": {"provider": 1}}], "$[0].metadata.provider: expected a str"),
    ("metric", [{**EVENT, "error": {}}], "$[0].error.name: required property is missing"),
    ("error", [ERROR], "$: expected an object, got an array"),
    ("error", {"functionName": "f"}, "$.error: required property is missing"),
    ("error", {"error": {"name": "E"}}, "$.functionName: required property is missing"),
    ("error", {**ERROR, "error": {"name": ""}}, '$.error.name: "" is shorter than the minimum'),
    ("error", {**ERROR, "error": {"name": "E", "trace": ""}}, "$.error.trace: unknown property"),
    ("error", {**ERROR, "error": {"name": "E", "stack": ["a"]}}, "$.error.stack: expected a str"),
    ("error", {**ERROR, "error": {"name": "E", "errorId": 5}}, "$.error.errorId: expected a str"),
    ("error", {**ERROR, "error": "boom"}, "$.error: expected an object, got the string"),
    ("error", {**ERROR, "durationMs": -0.5}, "$.durationMs: -0.5 is less than the minimum of 0"),
]


@pytest.mark.parametrize(("kind", "body", "expected"), INVALID_BODIES)
def test_invalid_bodies_are_explained(kind: Kind, body: object, expected: str) -> None:
    message = _assert_agrees(kind, body)
    assert message is not None
    assert message.startswith(expected), message


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_numbers_are_not_numbers(number: float) -> None:
    """jsonschema accepts them, but no JSON document can carry them: they must not pass."""
    message = validate_body("metric", [{**EVENT, "durationMs": number}])
    assert message is not None
    assert message.startswith("$[0].durationMs: ")
    assert "not a finite number" in message


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        validate_body("trace", [])  # type: ignore[arg-type]


def test_long_values_are_shortened_in_messages() -> None:
    message = validate_body("metric", [{**EVENT, "source": {"service": "x" * 10_000}}])
    assert message is not None
    assert len(message) < 200


def test_python_objects_that_are_not_json_are_invalid() -> None:
    assert validate_body("metric", [{**EVENT, "durationMs": object()}]) is not None
    assert validate_body("metric", ({"functionName": "f"},)) is not None


# Arbitrary JSON values, and bodies that are "nearly right" so that both verdicts are common.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)


def _weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """``one_of`` with weights (``one_of`` ignores a strategy given twice)."""
    indexes = [index for index, (weight, _) in enumerate(choices) for _ in range(weight)]
    return st.sampled_from(indexes).flatmap(lambda index: choices[index][1])


def _mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return _weighted((12, valid), (1, json_values))


def _enum(*names: str) -> st.SearchStrategy[Any]:
    return _mostly(st.sampled_from(names) | st.sampled_from(["", "SDK", "other"]))


def _extra_keys(*names: str) -> st.SearchStrategy[dict[str, Any]]:
    return _weighted((8, st.just({})), (1, st.dictionaries(st.sampled_from(names), json_values)))


sources = st.builds(
    lambda fields, extra: {**fields, **extra},
    st.fixed_dictionaries(
        {},
        optional={
            "host": _mostly(st.text(max_size=5)),
            "service": _enum("sdk", "apollo", "hermes", "thermos"),
            "language": _enum("python", "typescript", "go", "rust"),
            "version": _mostly(st.text(max_size=5)),
            "platform": _mostly(st.text(max_size=5)),
            "environment": _enum("development", "production", "ci", "staging", "test"),
        },
    ),
    _extra_keys("region", "Service", "language"),
)
errors = st.builds(
    lambda fields, extra: {**fields, **extra},
    st.fixed_dictionaries(
        {"name": _mostly(st.text(min_size=1, max_size=5))},
        optional={
            "code": _mostly(st.text(max_size=5)),
            "errorId": _mostly(st.text(max_size=5)),
            "message": _mostly(st.text(max_size=5)),
            "stack": _mostly(st.text(max_size=5)),
        },
    ),
    _extra_keys("error_id", "trace", "name"),
)
numbers = st.floats(min_value=-5, allow_nan=False, allow_infinity=False) | st.integers(min_value=-5)
event_fields: dict[str, st.SearchStrategy[Any]] = {
    "functionName": _mostly(st.text(min_size=1, max_size=8)),
    "durationMs": _mostly(numbers),
    "timestamp": _mostly(numbers),
    "props": _mostly(st.dictionaries(st.text(max_size=5), json_values, max_size=3)),
    "source": _mostly(sources),
    "metadata": _mostly(
        st.fixed_dictionaries(
            {},
            optional={
                "projectId": _mostly(st.text(max_size=5)),
                "provider": _mostly(st.text(max_size=5)),
            },
        )
    ),
    "error": _mostly(errors),
}


def _events(*required: str) -> st.SearchStrategy[Any]:
    """Events that mostly carry the keys a body requires, and sometimes lack one or add one."""
    fields = st.fixed_dictionaries(
        {name: event_fields[name] for name in required},
        optional={name: value for name, value in event_fields.items() if name not in required},
    )
    return st.builds(
        lambda event, extra, dropped: {
            name: value for name, value in {**event, **extra}.items() if name != dropped
        },
        fields,
        _extra_keys("function_name", "duration_ms", "extra"),
        st.sampled_from([*[None] * 10, "functionName", "error"]),
    )


def _bodies(kind: str) -> st.SearchStrategy[Any]:
    if kind == "metric":
        body = st.lists(_events("functionName"), max_size=3)
        return _weighted((6, body), (1, _events("functionName")), (1, json_values))
    body = _events("functionName", "error")
    return _weighted((6, body), (1, st.lists(body, max_size=2)), (1, json_values))


kinds_and_bodies = st.sampled_from(["metric", "error"]).flatmap(
    lambda kind: st.tuples(st.just(kind), _bodies(kind))
)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(kind_and_body=kinds_and_bodies)
def test_agrees_with_jsonschema_on_arbitrary_bodies(kind_and_body: tuple[Kind, object]) -> None:
    _assert_agrees(*kind_and_body)


@pytest.mark.parametrize("kind", ["metric", "error"])
@pytest.mark.parametrize("valid", [True, False])
def test_generated_bodies_cover_both_verdicts(kind: Kind, valid: bool) -> None:
    """The agreement test above is only worth something if it sees both verdicts often."""
    body = find(
        _bodies(kind),
        lambda body: (validate_body(kind, body) is None) == valid,
        settings=settings(phases=[Phase.generate], database=None),
    )
    assert (validate_body(kind, body) is None) == valid
