"""``devtools.validation`` (fastjsonschema) against ``jsonschema``, the reference validator.

Both must give the same verdict on the packaged wire schemas, and a message must name a field
that ``jsonschema`` also blames and say what is wrong with it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, Literal

import jsonschema
import pytest
import referencing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from composio_logtelemetry.devtools.validation import BODY_SCHEMA_IDS, load_schemas, validate_body

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
# "<field> <what is wrong>": the rules of fastjsonschema's messages, and our two rewordings.
MESSAGE = re.compile(r"(?P<field>data.*?) (?P<problem>must .+|is required|is not allowed \(.+\))\Z")


def _path_text(parts: Iterable[str | int]) -> str:
    text = "data"
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_$][A-Za-z0-9_$]*", part):
            text += f".{part}"
        else:
            text += f"[{json.dumps(part, ensure_ascii=False)}]"
    return text


def _assert_agrees(kind: Kind, body: object) -> str | None:
    """Same verdict as jsonschema and, when invalid, a field that jsonschema also blames."""
    message = validate_body(kind, body)
    reference_errors = list(REFERENCE[kind].iter_errors(body))
    assert (message is None) == (not reference_errors), (body, message, reference_errors)
    if message is not None:
        parsed = MESSAGE.match(message)
        assert parsed is not None, message
        field = parsed["field"]
        blamed = {_path_text(error.absolute_path) for error in reference_errors}
        # jsonschema blames an object for a missing or unknown key; we name the key itself.
        assert any(field == p or field.startswith((p + ".", p + "[")) for p in blamed), (
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


EVENT = {"functionName": "Tools.execute", "durationMs": 1.5}
ERROR = {"functionName": "Tools.execute", "error": {"name": "ValueError"}}
EVENT_KEYS = "functionName, durationMs, timestamp, props, source, metadata, error"

INVALID_BODIES: list[tuple[Kind, object, str]] = [
    ("metric", [], "data must contain at least 1 items"),
    ("metric", EVENT, "data must be array"),
    ("metric", None, "data must be array"),
    ("metric", "[]", "data must be array"),
    ("metric", [{}], "data[0].functionName is required"),
    ("metric", [EVENT, {"durationMs": 1}], "data[1].functionName is required"),
    ("metric", [{"functionName": ""}], "data[0].functionName must be longer than or equal to 1"),
    ("metric", [{"functionName": 7}], "data[0].functionName must be string"),
    (
        "metric",
        [{**EVENT, "durationMs": -1}],
        "data[0].durationMs must be bigger than or equal to 0",
    ),
    ("metric", [{**EVENT, "durationMs": "5"}], "data[0].durationMs must be number"),
    ("metric", [{**EVENT, "durationMs": True}], "data[0].durationMs must be number"),
    ("metric", [{**EVENT, "durationMs": None}], "data[0].durationMs must be number"),
    ("metric", [{**EVENT, "durationMs": object()}], "data[0].durationMs must be number"),
    ("metric", [{**EVENT, "timestamp": "now"}], "data[0].timestamp must be number"),
    ("metric", [{**EVENT, "props": []}], "data[0].props must be object"),
    (
        "metric",
        [{**EVENT, "function_name": "x"}],
        f"data[0].function_name is not allowed (allowed: {EVENT_KEYS})",
    ),
    ("metric", [{**EVENT, "a b": 1}], 'data[0]["a b"] is not allowed'),
    ("metric", [{**EVENT, "source": {"service": "cli"}}], "data[0].source.service must be one of"),
    ("metric", [{**EVENT, "source": {"language": "java"}}], "data[0].source.language must be"),
    ("metric", [{**EVENT, "source": {"environment": "prod"}}], "data[0].source.environment must"),
    ("metric", [{**EVENT, "source": {"environment": None}}], "data[0].source.environment must"),
    ("metric", [{**EVENT, "source": {"host": 1}}], "data[0].source.host must be string"),
    ("metric", [{**EVENT, "source": {"region": "eu"}}], "data[0].source.region is not allowed"),
    ("metric", [{**EVENT, "source": "sdk"}], "data[0].source must be object"),
    ("metric", [{**EVENT, "metadata": {"project_id": "p"}}], "data[0].metadata.project_id is not"),
    ("metric", [{**EVENT, "metadata": {"provider": 1}}], "data[0].metadata.provider must be str"),
    ("metric", [{**EVENT, "error": {}}], "data[0].error.name is required"),
    ("error", [ERROR], "data must be object"),
    ("error", {"functionName": "f"}, "data.error is required"),
    ("error", {"error": {"name": "E"}}, "data.functionName is required"),
    (
        "error",
        {**ERROR, "error": {"name": ""}},
        "data.error.name must be longer than or equal to 1",
    ),
    ("error", {**ERROR, "error": {"name": "E", "trace": ""}}, "data.error.trace is not allowed"),
    ("error", {**ERROR, "error": {"name": "E", "stack": ["a"]}}, "data.error.stack must be str"),
    ("error", {**ERROR, "error": {"name": "E", "errorId": 5}}, "data.error.errorId must be str"),
    ("error", {**ERROR, "error": "boom"}, "data.error must be object"),
    ("error", {**ERROR, "durationMs": -0.5}, "data.durationMs must be bigger than or equal to 0"),
]


@pytest.mark.parametrize(("kind", "body", "expected"), INVALID_BODIES)
def test_invalid_bodies_are_explained(kind: Kind, body: object, expected: str) -> None:
    message = validate_body(kind, body)
    assert message is not None
    assert message.startswith(expected), message
    assert MESSAGE.match(message), message


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        validate_body("trace", [])  # type: ignore[arg-type]


def test_long_keys_and_values_are_shortened_in_messages() -> None:
    for body in (
        [{**EVENT, "x" * 10_000: 1}],
        [{**EVENT, " " * 10_000: 1}],
        [{**EVENT, "source": {"service": "x" * 10_000}}],
    ):
        message = validate_body("metric", body)
        assert message is not None
        assert message.startswith("data[0]")
        assert len(message) < 200, message


def test_a_valid_body_is_left_as_it_was() -> None:
    """A validator that filled in defaults would change what the receiver stores."""
    body = [{"functionName": "f", "source": {}, "metadata": {}}]
    assert validate_body("metric", body) is None
    assert body == [{"functionName": "f", "source": {}, "metadata": {}}]


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


@pytest.mark.parametrize("kind", ["metric", "error"])
def test_agrees_with_jsonschema_on_generated_bodies(kind: Kind) -> None:
    verdicts: list[bool] = []

    @settings(max_examples=400, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(body=_bodies(kind))
    def agrees(body: object) -> None:
        verdicts.append(_assert_agrees(kind, body) is None)

    agrees()
    # The agreement is only worth something if both verdicts are common among the bodies.
    valid = sum(verdicts)
    assert min(valid, len(verdicts) - valid) >= len(verdicts) // 5, (valid, len(verdicts))
