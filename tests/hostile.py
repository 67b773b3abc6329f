"""Values that break the usual protocols, the hypothesis strategies that generate them, and the
check the tests of hostile input share."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from composio_logtelemetry import EnvironmentType, LanguageType, ServiceType
from conftest import FaultyEndpoint


class Colour(enum.Enum):
    RED = "red"


class Unprintable:
    """Neither ``str`` nor ``repr`` works."""

    def __str__(self) -> str:
        raise RuntimeError("no str")

    __repr__ = __str__


class UnlistableList(list):  # type: ignore[type-arg]
    def __iter__(self) -> Any:
        raise RuntimeError("no iteration")


class ItemlessDict(dict):  # type: ignore[type-arg]
    def items(self) -> Any:
        raise RuntimeError("no items")


@dataclasses.dataclass
class Shipment:
    """A dataclass, which python-json-logger's encoder turns into a dict of its fields."""

    sku: str
    shipped: Any = None


class ExplodingMapping(Mapping[str, Any]):
    """A telemetry "dict" that raises whenever it is read."""

    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("no getitem")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("no iteration")

    def __len__(self) -> int:
        return 1


def cycle() -> dict[str, Any]:
    loop: dict[str, Any] = {"name": "loop"}
    loop["self"] = loop
    loop["list"] = [loop, {"back": loop}]
    return loop


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"down": [value]}
    return value


MEGA_ASCII = "a" * 3_000_000


MEGA_SURROGATES = "\ud800x" * 1_000_000


# -- strategies: telemetry that is valid, and anything an application might pass instead


texts = st.text(
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF) | st.characters(), max_size=30
)


odd_objects = st.one_of(
    st.datetimes(timezones=st.none() | st.just(datetime.timezone.utc)),
    st.dates(),
    st.times(),
    st.timedeltas(),
    st.uuids(),
    st.decimals(),
    st.binary(max_size=40),
    st.binary(max_size=40).map(bytearray),
    st.sets(st.integers() | st.text(max_size=5), max_size=5),
    st.frozensets(st.integers(), max_size=5),
    st.builds(Shipment, sku=texts, shipped=st.none() | st.builds(Unprintable)),
    st.sampled_from(Colour),
    st.complex_numbers(),
    st.builds(ValueError, texts),
    st.builds(Unprintable),
    st.builds(cycle),
    st.builds(UnlistableList, st.lists(st.integers(), max_size=3)),
    st.builds(ItemlessDict, st.dictionaries(st.text(max_size=3), st.integers(), max_size=3)),
    st.sampled_from([20, 300, 5000]).map(nested),
    st.sampled_from([MEGA_ASCII, MEGA_SURROGATES]),
    st.integers(min_value=2**64, max_value=10**400),
    st.sampled_from([object(), len, int, Ellipsis, NotImplemented]),
)


keys = st.one_of(texts, st.integers(), st.builds(Unprintable), st.tuples(st.integers()))


leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), texts, odd_objects)


values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(keys, children, max_size=4)
        | st.tuples(children, children)
    ),
    max_leaves=12,
)


props = st.dictionaries(keys, odd_objects | values, max_size=6)


names = texts.filter(lambda text: bool(text.strip()))


numbers = st.floats(min_value=0, allow_nan=False, allow_infinity=False) | st.integers(0, 2**53)


def _enum_values(enum_type: type[enum.Enum]) -> st.SearchStrategy[Any]:
    return st.sampled_from([*enum_type, *(member.value for member in enum_type)])


@st.composite
def valid_telemetry(draw: st.DrawFn) -> dict[str, Any]:
    """Telemetry that must become exactly one event, in snake_case or camelCase."""
    fields: dict[str, Any] = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "functionName": names,
                "durationMs": numbers | st.none(),
                "timestamp": st.floats(allow_nan=False, allow_infinity=False),
                "props": props,
                "source": st.fixed_dictionaries(
                    {},
                    optional={
                        "service": _enum_values(ServiceType),
                        "language": _enum_values(LanguageType),
                        "environment": _enum_values(EnvironmentType),
                        "host": texts,
                        "version": texts,
                        "platform": texts,
                    },
                ),
                "metadata": st.fixed_dictionaries(
                    {}, optional={"projectId": texts, "provider": texts | st.none()}
                ),
                "error": st.fixed_dictionaries(
                    {"name": names},
                    optional={"message": texts, "stack": texts, "code": texts, "errorId": texts},
                )
                | st.builds(RuntimeError, texts),
            },
        )
    )
    snake = {"functionName": "function_name", "durationMs": "duration_ms"}
    return {
        snake[key] if key in snake and draw(st.booleans()) else key: value
        for key, value in fields.items()
    }


FIELD_NAMES = "functionName function_name durationMs duration_ms timestamp props source metadata"


field_names = st.sampled_from([*FIELD_NAMES.split(), "error", "errorId", "colour", ""])


hostile_telemetry = st.one_of(
    values,
    st.dictionaries(field_names | keys, values, max_size=6),
    valid_telemetry().flatmap(
        lambda good: st.tuples(field_names, values).map(lambda bad: {**good, bad[0]: bad[1]})
    ),
    st.builds(ExplodingMapping),
    st.builds(ItemlessDict, st.just({"functionName": "F"})),
)


other_extras = st.dictionaries(
    st.text("abcdefghij", min_size=1, max_size=6).map(lambda key: f"x_{key}"), values, max_size=3
)


exceptions = (
    st.none()
    | st.builds(ValueError, texts)
    | st.builds(Unprintable).map(lambda unprintable: KeyError(unprintable))
)


levels = st.sampled_from([logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR])


tagged_telemetry = st.tuples(st.just(True), valid_telemetry()) | st.tuples(
    st.just(False), hostile_telemetry
)


# -- the check the tests of hostile input share: nothing raised, every event accounted for


COUNTED = ("sent", "invalid", "sampled_out", "rate_limited", "filtered")


def log_and_count(
    logger: logging.Logger,
    handler: Any,
    endpoint: FaultyEndpoint,
    telemetry: Any,
    extras: dict[str, Any],
    exc: BaseException | None,
    level: int,
    *,
    flush: Any,
) -> dict[str, int]:
    """Logs one record; returns by how much each counter moved, checking they add up."""
    before = handler.stats()
    received_before = len(endpoint.events)
    logger.log(level, "hostile", extra={"telemetry": telemetry, **extras}, exc_info=exc)
    assert flush()
    after = handler.stats()
    moved = {key: after[key] - before[key] for key in after}
    expected = 0 if telemetry is None and exc is None else 1
    assert sum(moved[key] for key in COUNTED) == expected, moved
    assert len(endpoint.events) - received_before == moved["sent"]
    assert moved["failed"] == moved["rejected"] == moved["dropped"] == 0
    assert endpoint.violations == []
    return moved


HYPOTHESIS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one pipeline per test, not per example
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
