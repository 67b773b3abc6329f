"""Safety: hostile input, secrets, plain http, opt-out, feedback loops, sampling, rate limits.

Everything goes through real HTTP to a loopback endpoint that validates every body against the
wire schemas; nothing is mocked.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import json
import logging
import math
import threading
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from composio_logtelemetry import (
    EnvironmentType,
    LanguageType,
    ServiceType,
    TelemetryFormatter,
    TelemetryHandler,
    TelemetryQueueHandler,
    create_event,
)
from composio_logtelemetry._batch import MAX_BATCH_BYTES
from composio_logtelemetry._capture import snapshot
from composio_logtelemetry._policy import ERRORS_PER_NAME_PER_MINUTE
from conftest import FaultyEndpoint, closed_port, run_python
from hostile import Colour, ItemlessDict, UnlistableList, Unprintable

COUNTED = ("sent", "invalid", "sampled_out", "rate_limited", "filtered")

# -- hostile values ---------------------------------------------------------------------------


@dataclasses.dataclass
class Shipment:
    sku: str
    contents: Any = None


class ExplodingMapping(Mapping[str, Any]):
    """A telemetry "dict" that raises whenever it is read."""

    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("no getitem")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("no iteration")

    def __len__(self) -> int:
        return 1


def _cycle() -> dict[str, Any]:
    loop: dict[str, Any] = {"name": "loop"}
    loop["self"] = loop
    loop["list"] = [loop, {"back": loop}]
    return loop


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"down": [value]}
    return value


MEGA_ASCII = "a" * 3_000_000
MEGA_SURROGATES = "\ud800x" * 1_000_000

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
    st.builds(Shipment, sku=texts, contents=st.none() | st.builds(Unprintable)),
    st.sampled_from(Colour),
    st.complex_numbers(),
    st.builds(ValueError, texts),
    st.builds(Unprintable),
    st.builds(_cycle),
    st.builds(UnlistableList, st.lists(st.integers(), max_size=3)),
    st.builds(ItemlessDict, st.dictionaries(st.text(max_size=3), st.integers(), max_size=3)),
    st.sampled_from([20, 300, 5000]).map(_nested),
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


def _log_and_count(
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
tagged_telemetry = st.tuples(st.just(True), valid_telemetry()) | st.tuples(
    st.just(False), hostile_telemetry
)


@pytest.fixture
def queued(pipeline: Any) -> tuple[logging.Logger, TelemetryQueueHandler]:
    logger, queue_handler = pipeline()
    return logger, queue_handler


@HYPOTHESIS
@given(tagged=tagged_telemetry, extras=other_extras, exc=exceptions, level=levels)
def test_hostile_extras_never_raise_and_every_body_validates(
    endpoint: FaultyEndpoint,
    queued: tuple[logging.Logger, TelemetryQueueHandler],
    tagged: tuple[bool, Any],
    extras: dict[str, Any],
    exc: BaseException | None,
    level: int,
) -> None:
    logger, queue_handler = queued
    valid, telemetry = tagged
    moved = _log_and_count(
        logger,
        queue_handler,
        endpoint,
        telemetry,
        extras,
        exc,
        level,
        flush=lambda: queue_handler.flush(10.0),
    )
    if valid:
        assert moved["invalid"] == 0


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


@pytest.fixture
def direct(endpoint: FaultyEndpoint, tmp_path: Any) -> Iterator[tuple[logging.Logger, Any]]:
    handler = TelemetryHandler(endpoint=endpoint.base_url, spool_path=str(tmp_path / "s.db"))
    logger = logging.getLogger(f"direct.{id(handler)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield logger, handler
    logger.removeHandler(handler)
    handler.close()


@HYPOTHESIS
@given(tagged=tagged_telemetry, extras=other_extras, exc=exceptions, level=levels)
def test_hostile_extras_never_raise_from_a_handler_used_directly(
    endpoint: FaultyEndpoint,
    direct: tuple[logging.Logger, TelemetryHandler],
    tagged: tuple[bool, Any],
    extras: dict[str, Any],
    exc: BaseException | None,
    level: int,
) -> None:
    """Attached straight to a logger, the handler runs on the application's thread."""
    logger, handler = direct
    valid, telemetry = tagged
    moved = _log_and_count(
        logger, handler, endpoint, telemetry, extras, exc, level, flush=lambda: True
    )
    if valid:
        assert moved["invalid"] == 0


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
        "loop": _cycle(),
        "surrogate": "bad \udc00 text",
        "deep": _nested(3000),
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


def test_unreadable_telemetry_is_counted_invalid(endpoint: FaultyEndpoint, pipeline: Any) -> None:
    logger, handler = pipeline()
    logger.info("x", extra={"telemetry": ExplodingMapping()})
    logger.info("x", extra={"telemetry": ItemlessDict(functionName="F")})
    logger.info("x", extra={"telemetry": {"functionName": "F", Unprintable(): 1}})
    logger.info("x", extra={"telemetry": {"functionName": "Good"}})
    assert handler.flush(5.0)
    assert handler.stats()["invalid"] == 3
    assert [event["functionName"] for event in endpoint.of_kind("metric")] == ["Good"]


def test_invalid_events_are_explained_once_naming_the_field(
    endpoint: FaultyEndpoint, pipeline: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    unique = uuid.uuid4().hex[:8]  # the warnings are rate-limited per message, process-wide
    number = int(unique, 16)
    bad = [
        ({"functionName": "F", "durationMs": -number}, f"durationMs must be >= 0, got -{number}"),
        (
            {"functionName": "F", "source": {"environment": unique}},
            f"source.environment: '{unique}'",
        ),
        ({"functionName": "F", "metadata": {f"team_{unique}": "x"}}, f"metadata.team_{unique}"),
        ({"functionName": "F", f"colour_{unique}": "red"}, f"unknown key 'colour_{unique}'"),
    ]
    logger, handler = pipeline()
    for _ in range(25):
        for telemetry, _field in bad:
            logger.info("bad", extra={"telemetry": telemetry})
    assert handler.flush(5.0)
    assert handler.stats()["invalid"] == 25 * len(bad)
    assert endpoint.requests == 0
    lines = capfd.readouterr().err.splitlines()
    for _telemetry, field in bad:
        explained = [line for line in lines if field in line]
        assert len(explained) == 1, (field, lines)
        assert explained[0].startswith("composio-logtelemetry: warning: telemetry not sent")


def test_one_kind_of_problem_is_explained_once_whatever_the_values(
    endpoint: FaultyEndpoint, pipeline: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    logger, handler = pipeline()
    for number in range(1, 301):
        logger.info("bad", extra={"telemetry": {"functionName": "F", "durationMs": -number}})
        logger.info("bad", extra={"telemetry": {"functionName": "F", f"field_{number}": 1}})
    assert handler.flush(5.0)
    assert handler.stats()["invalid"] == 600
    lines = capfd.readouterr().err.splitlines()
    assert len([line for line in lines if "durationMs must be >= 0" in line]) == 1
    assert len([line for line in lines if "unknown key 'field_" in line]) == 1


# -- size caps -------------------------------------------------------------------------------


class MeasuringEndpoint(FaultyEndpoint):
    """Also records the size of every request body it accepts."""

    def __init__(self) -> None:
        self.body_sizes: list[int] = []
        super().__init__()

    def accept(self, kind: str, body: bytes) -> None:
        with self.changed:
            self.body_sizes.append(len(body))
        super().accept(kind, body)


@pytest.fixture
def measuring_endpoint() -> Iterator[MeasuringEndpoint]:
    server = MeasuringEndpoint()
    yield server
    server.close()


def test_no_request_is_above_the_byte_cap(
    measuring_endpoint: MeasuringEndpoint, pipeline: Any
) -> None:
    logger, handler = pipeline(endpoint=measuring_endpoint.base_url, batch_size=100)
    bulky = {f"field_{n}": f"{n}" * 4000 for n in range(7)}  # ~28 KB, under the props cap
    for _ in range(100):
        logger.info("bulky", extra={"telemetry": {"functionName": "Big", "props": bulky}})
    oversized = {f"field_{n}": "y" * 4000 for n in range(50)}
    logger.info("too big", extra={"telemetry": {"functionName": "Huge", "props": oversized}})
    try:
        raise RuntimeError("m" * 3_000_000)
    except RuntimeError:
        logger.exception("huge message")
    assert handler.flush(10.0)
    assert len(measuring_endpoint.of_kind("metric")) == 101
    assert len(measuring_endpoint.of_kind("error")) == 1
    assert max(measuring_endpoint.body_sizes) <= MAX_BATCH_BYTES
    assert len(measuring_endpoint.batches) >= 3  # 100 x 28 KB had to be split
    [huge] = [e for e in measuring_endpoint.of_kind("metric") if e["functionName"] == "Huge"]
    assert "some dropped" in huge["props"]["_truncated"]
    [error] = measuring_endpoint.of_kind("error")
    assert "...[truncated" in error["error"]["message"]
    assert measuring_endpoint.violations == []


# -- secrets ---------------------------------------------------------------------------------

BEARER = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.c2lnbmF0dXJlLXZhbHVl"
BASIC = "YWRtaW46aHVudGVyMg=="
API_KEY = "sk-live-4f3c2b1a09876543"
TOKEN = "tok_9d8c7b6a5f4e3d2c"
PASSWORD = "correct-horse-battery-staple"
QUERY_SECRET = "sig=0a1b2c3d4e5f6a7b"
PROP_SECRETS = [f"prop-secret-{n}" for n in range(9)]


def _call_vendor(api_key: str) -> None:
    url = f"https://api.vendor.test/v1/items?{QUERY_SECRET}&page=2"
    raise ConnectionError(f"POST {url} failed; Authorization: Bearer {BEARER} api_key={api_key}")


def _login() -> None:
    try:
        _call_vendor(API_KEY)
    except ConnectionError as exc:
        raise PermissionError(f"login with password: {PASSWORD} token={TOKEN}") from exc


def _check_basic_auth() -> None:
    raise PermissionError("header Basic YWRtaW46aHVudGVyMg== rejected")  # secret in the source


SECRET_PROPS = {
    "api_key": PROP_SECRETS[0],
    "token": PROP_SECRETS[1],
    "client_secret": PROP_SECRETS[2],
    "password": PROP_SECRETS[3],
    "Authorization": f"Bearer {PROP_SECRETS[4]}",
    "cookie": f"session={PROP_SECRETS[5]}",
    "headers": {"X-Api-Key": PROP_SECRETS[6], "Cookie": PROP_SECRETS[7]},
    "callback": f"https://hooks.test/cb?key={PROP_SECRETS[8]}",
}
HARMLESS_PROPS = {
    "toolkit": "github",
    "attempt": 2,
    "model": "gpt-4o",
    "keyboard": "dvorak",
    "prompt_tokens": 812,
    "token_count": 3,
}


def _log_secrets(logger: logging.Logger, queue_handler: TelemetryQueueHandler) -> None:
    telemetry = {"functionName": "Vendor.call", "props": {**SECRET_PROPS, **HARMLESS_PROPS}}
    try:
        _login()
    except PermissionError:
        logger.exception("vendor call failed", extra={"telemetry": telemetry})
    try:
        _check_basic_auth()
    except PermissionError:
        logger.exception("basic auth failed")
    logger.info("metric", extra={"telemetry": telemetry})
    queue_handler.enqueue_event(
        create_event(
            "error",
            functionName="Vendor.push",
            error={"name": "Leak", "message": f"Bearer {BEARER}", "stack": f"password={PASSWORD}"},
            props={**SECRET_PROPS, **HARMLESS_PROPS},
        )
    )
    assert queue_handler.flush(5.0)


ALL_SECRETS = [BEARER, BASIC, API_KEY, TOKEN, PASSWORD, QUERY_SECRET, *PROP_SECRETS]


def test_planted_secrets_never_reach_the_receiver(endpoint: FaultyEndpoint, pipeline: Any) -> None:
    logger, queue_handler = pipeline()
    _log_secrets(logger, queue_handler)
    assert len(endpoint.events) == 4
    received = json.dumps(endpoint.events, ensure_ascii=False)
    leaked = [secret for secret in ALL_SECRETS if secret in received]
    assert leaked == []
    [vendor_error] = [e for e in endpoint.of_kind("error") if e["functionName"] == "Vendor.call"]
    assert "_call_vendor" in vendor_error["error"]["stack"]  # the stack is still useful
    assert "[REDACTED]" in vendor_error["error"]["message"]
    assert "[REDACTED]" in vendor_error["error"]["stack"]
    for _kind, event in endpoint.events:
        if "props" in event:
            assert {key: event["props"].get(key) for key in HARMLESS_PROPS} == HARMLESS_PROPS
    assert endpoint.violations == []


def test_with_redaction_off_the_same_secrets_arrive(
    endpoint: FaultyEndpoint, pipeline: Any
) -> None:
    """Shows the test above would see a leak."""
    logger, queue_handler = pipeline(redact=False)
    _log_secrets(logger, queue_handler)
    received = json.dumps(endpoint.events, ensure_ascii=False)
    assert [secret for secret in ALL_SECRETS if secret not in received] == []


def test_before_send_can_change_drop_or_break(
    endpoint: FaultyEndpoint, pipeline: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    seen: list[dict[str, Any]] = []

    def before_send(payload: dict[str, Any]) -> dict[str, Any] | None:
        seen.append(json.loads(json.dumps(payload)))
        name = payload["functionName"]
        if name == "Drop.me":
            return None
        if name == "Break.me":
            raise RuntimeError("before_send bug")
        if name == "Spoil.me":
            return {**payload, "colour": "red"}
        payload["functionName"] = f"Renamed.{name}"
        payload["props"] = {**payload.get("props", {}), "region": "eu", "api_key": "sk-late"}
        return payload

    logger, handler = pipeline(before_send=before_send)
    for name in ("Keep.me", "Drop.me", "Break.me", "Spoil.me"):
        logger.info("x", extra={"telemetry": {"functionName": name, "props": {"token": "t0k"}}})
    assert handler.flush(5.0)
    assert seen[0]["props"] == {"token": "[REDACTED]"}  # before_send sees redacted data
    [event] = endpoint.events
    assert event[1]["functionName"] == "Renamed.Keep.me"
    assert event[1]["props"] == {"token": "[REDACTED]", "region": "eu", "api_key": "[REDACTED]"}
    stats = handler.stats()
    assert (stats["sent"], stats["filtered"], stats["invalid"]) == (1, 1, 2)
    err = capfd.readouterr().err
    assert "before_send" in err
    assert "Traceback" not in err
    assert endpoint.violations == []


def test_a_formatter_subclass_formats_every_record(endpoint: FaultyEndpoint, pipeline: Any) -> None:
    """The handler's one-pass path for usual records must not skip a subclass's own formatting."""

    class Tagging(TelemetryFormatter):
        def process_log_record(self, log_data: Any) -> Any:
            return {**log_data, "props": {**log_data.get("props", {}), "tag": 1}}

    logger, handler = pipeline()
    telemetry_handler = handler.handler_refs[0]
    assert isinstance(telemetry_handler, TelemetryHandler)
    telemetry_handler.setFormatter(Tagging())
    logger.info("x", extra={"telemetry": {"functionName": "Tools.execute", "durationMs": 1.5}})
    assert handler.flush(5.0)
    assert [event["props"] for _, event in endpoint.events] == [{"tag": 1}]


# -- plain http --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://telemetry.example.com/v1",
        "http://10.0.0.5:8080/v1",
        "http://[2001:db8::1]/v1",
        "http://localhost.example.com/v1",
        "http://127.0.0.1.nip.io/v1",
        "HTTP://TELEMETRY.EXAMPLE.COM/v1",
    ],
)
def test_plain_http_to_a_remote_host_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="allow_insecure"):
        TelemetryHandler(endpoint=url)
    TelemetryHandler(endpoint=url, allow_insecure=True)  # the explicit escape hatch


def test_plain_http_from_the_environment_is_refused_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPOSIO_TELEMETRY_URL", "http://telemetry.example.com/v1")
    with pytest.raises(ValueError, match="allow_insecure"):
        TelemetryHandler()


@pytest.mark.parametrize(
    "url",
    [
        "https://telemetry.example.com/v1",
        "http://127.0.0.1:8787/v1",
        "http://127.3.2.1/v1",
        "http://localhost:8787/v1",
        "http://[::1]:8787/v1",
    ],
)
def test_https_and_loopback_http_are_accepted(url: str) -> None:
    assert TelemetryHandler(endpoint=url).endpoint == url


@pytest.mark.parametrize("url", ["ftp://example.com/v1", "telemetry.example.com", "https:///v1"])
def test_endpoints_that_are_not_http_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="endpoint"):
        TelemetryHandler(endpoint=url)


# -- opt-out -------------------------------------------------------------------------------------

OPT_OUT_APP = """
import json, logging, os, threading
import composio_logtelemetry
from composio_logtelemetry import TelemetryHandler, TelemetryQueueHandler

endpoint = os.environ["TEST_ENDPOINT"]
threads_before = set(threading.enumerate())
touched = []

class Watched(dict):
    def items(self):
        touched.append("telemetry read")
        return super().items()

default_spool = TelemetryHandler(endpoint=endpoint, flush_interval=0.05)
own_spool = TelemetryHandler(endpoint=endpoint, spool_path=os.environ["TEST_SPOOL"])
queue_handler = TelemetryQueueHandler(handlers=[default_spool, own_spool])
root = logging.getLogger()
root.setLevel(logging.DEBUG)
root.addHandler(queue_handler)
log = logging.getLogger("app")
for number in range(100):
    log.info("tick", extra={"telemetry": Watched(functionName="OptOut.tick", durationMs=number)})
try:
    {}["missing"]
except KeyError:
    log.exception("failed", extra={"telemetry": Watched(functionName="OptOut.failed")})
composio_logtelemetry.setup(endpoint=endpoint)
composio_logtelemetry.push_event(composio_logtelemetry.create_event("metric", functionName="P"))
with composio_logtelemetry.timed("OptOut.timed"):
    pass
composio_logtelemetry.flush(5.0)
queue_handler.flush(5.0)
started = [thread.name for thread in threading.enumerate() if thread not in threads_before]
print(json.dumps({"started": started, "touched": len(touched), "stats": queue_handler.stats()}))
"""


def _run_opt_out_app(endpoint: FaultyEndpoint, tmp_path: Any, env: dict[str, str]) -> Any:
    result = run_python(
        OPT_OUT_APP,
        env={
            "TEST_ENDPOINT": endpoint.base_url,
            "TEST_SPOOL": str(tmp_path / "spool" / "own.sqlite3"),
            "XDG_CACHE_HOME": str(tmp_path / "cache"),
            **env,
        },
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("name", "value"),
    [("COMPOSIO_DISABLE_TELEMETRY", "1"), ("TELEMETRY_DISABLED", "true"), ("DO_NOT_TRACK", "1")],
)
def test_each_opt_out_variable_means_no_request_thread_or_file(
    endpoint: FaultyEndpoint, tmp_path: Any, name: str, value: str
) -> None:
    report = _run_opt_out_app(endpoint, tmp_path, {name: value})
    assert endpoint.requests == 0
    assert report["started"] == []
    assert report["touched"] == 0  # the telemetry was never even read: near-zero cost
    assert [path for path in tmp_path.rglob("*") if path.name != "cwd"] == []


def test_a_falsy_opt_out_value_keeps_telemetry_on(endpoint: FaultyEndpoint, tmp_path: Any) -> None:
    """The control for the test above: the same application does send, start and read."""
    report = _run_opt_out_app(
        endpoint, tmp_path, {"DO_NOT_TRACK": "0", "TELEMETRY_DISABLED": "false"}
    )
    assert endpoint.of_kind("error") and endpoint.of_kind("metric")
    assert "composio-telemetry-listener" in report["started"]
    assert report["touched"] > 0


def test_enabled_false_means_no_request_thread_file_or_work(
    endpoint: FaultyEndpoint, pipeline: Any, tmp_path: Any
) -> None:
    threads_before = set(threading.enumerate())
    logger, queue_handler = pipeline(enabled=False)
    read: list[str] = []

    class Watched(dict):  # type: ignore[type-arg]
        def items(self) -> Any:
            read.append("telemetry")
            return super().items()

    for number in range(100):
        logger.info("x", extra={"telemetry": Watched(functionName="Off", durationMs=number)})
    try:
        raise ValueError("not sent")
    except ValueError:
        logger.exception("failed", extra={"telemetry": Watched(functionName="Off")})
    queue_handler.enqueue_event(create_event("metric", functionName="Off.push"))
    assert queue_handler.flush(5.0)
    assert endpoint.requests == 0
    assert set(threading.enumerate()) - threads_before == set()
    assert read == []
    assert [path for path in tmp_path.rglob("*") if path.name != "cwd"] == []
    assert queue_handler.queue.qsize() == 0  # nothing is left waiting for a listener


# -- no feedback loop ------------------------------------------------------------------------


@pytest.fixture
def root_at_debug() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    yield root
    root.setLevel(level)


LIBRARY_LOGGERS = (
    "urllib3",
    "urllib3.connectionpool",
    "requests",
    "charset_normalizer",
    "composio_logtelemetry",
    "composio_logtelemetry._delivery",
)


def test_root_at_debug_with_a_failing_endpoint_sends_only_application_events(
    endpoint: FaultyEndpoint, tmp_path: Any, root_at_debug: logging.Logger
) -> None:
    answers = iter([("reset",), ("status", 503, {}), ("reset",), ("status", 500, {})])
    lock = threading.Lock()

    def failing_at_first(kind: str) -> tuple[Any, ...]:
        with lock:
            return next(answers, ("ok",))

    endpoint.script = failing_at_first
    on_listener_thread: list[str] = []

    def before_send(payload: dict[str, Any]) -> dict[str, Any]:
        on_listener_thread.append(threading.current_thread().name)
        try:
            raise RuntimeError("logged on the listener thread")
        except RuntimeError:
            logging.getLogger("app.hook").exception(
                "hook", extra={"telemetry": {"functionName": "Hook.loop"}}
            )
        return payload

    handler = TelemetryHandler(
        endpoint=endpoint.base_url,
        spool_path=str(tmp_path / "spool.sqlite3"),
        retry_backoff=0.01,
        max_retries=10,
        before_send=before_send,
    )
    queue_handler = TelemetryQueueHandler(handlers=[handler])
    root_at_debug.addHandler(queue_handler)
    try:
        app = logging.getLogger("app")
        for number in range(5):
            app.info(
                "tick", extra={"telemetry": {"functionName": "App.tick", "props": {"n": number}}}
            )
        try:
            raise ValueError("the application failed")
        except ValueError:
            app.exception("failed", extra={"telemetry": {"functionName": "App.failed"}})
        for name in LIBRARY_LOGGERS:
            try:
                raise OSError(f"{name} trouble")
            except OSError:
                logging.getLogger(name).exception(
                    "trouble", extra={"telemetry": {"functionName": f"Library.{name}"}}
                )
        assert queue_handler.flush(10.0)
    finally:
        root_at_debug.removeHandler(queue_handler)
        queue_handler.shutdown(2.0)
    received = collections.Counter(event["functionName"] for _kind, event in endpoint.events)
    assert received == {"App.tick": 5, "App.failed": 1}
    assert handler.stats()["retried"] >= 1  # the endpoint did fail, and was retried
    assert set(on_listener_thread) == {"composio-telemetry-listener"}
    assert endpoint.violations == []


def test_a_dead_endpoint_does_not_feed_itself(tmp_path: Any, root_at_debug: logging.Logger) -> None:
    handler = TelemetryHandler(
        endpoint=f"http://127.0.0.1:{closed_port()}/v1",
        spool_path=str(tmp_path / "spool.sqlite3"),
        retry_backoff=0.01,
        max_retries=1,
    )
    queue_handler = TelemetryQueueHandler(handlers=[handler])
    root_at_debug.addHandler(queue_handler)
    try:
        app = logging.getLogger("app")
        for _ in range(3):
            app.info("tick", extra={"telemetry": {"functionName": "App.tick"}})
        try:
            raise ValueError("the application failed")
        except ValueError:
            app.exception("failed")
        assert not queue_handler.flush(5.0)  # undeliverable: spooled, reported as not flushed
        stats = handler.stats()
    finally:
        root_at_debug.removeHandler(queue_handler)
        queue_handler.shutdown(2.0)
    assert stats["failed"] == stats["spooled"] == 4  # the application's four events, no more


# -- sampling and rate limiting ------------------------------------------------------------------


def _log_metrics(logger: logging.Logger, name: str, count: int) -> None:
    for number in range(count):
        logger.info("m", extra={"telemetry": {"functionName": name, "props": {"n": number}}})


def _log_errors(logger: logging.Logger, exc_type: type[Exception], count: int) -> None:
    for number in range(count):
        try:
            raise exc_type(f"failure {number}")
        except exc_type:
            logger.exception("failed")


def test_sample_rate_zero_drops_metrics_but_keeps_errors(
    endpoint: FaultyEndpoint, pipeline: Any
) -> None:
    logger, handler = pipeline(sample_rate=0.0)
    _log_metrics(logger, "Sampled", 50)
    _log_errors(logger, TimeoutError, 3)
    assert handler.flush(5.0)
    assert endpoint.of_kind("metric") == []
    assert len(endpoint.of_kind("error")) == 3
    assert handler.stats()["sampled_out"] == 50


def test_errors_are_sampled_only_when_asked(endpoint: FaultyEndpoint, pipeline: Any) -> None:
    logger, handler = pipeline(sample_rate=0.0, sample_errors=True)
    _log_errors(logger, TimeoutError, 3)
    assert handler.flush(5.0)
    assert endpoint.of_kind("error") == []
    assert handler.stats()["sampled_out"] == 3


def test_per_function_sample_rates_override_the_default(
    endpoint: FaultyEndpoint, pipeline: Any
) -> None:
    logger, handler = pipeline(sample_rate=1.0, sample_rates={"Hot.path": 0.0, "Cold.path": 1.0})
    _log_metrics(logger, "Hot.path", 40)
    _log_metrics(logger, "Cold.path", 10)
    _log_metrics(logger, "Other", 10)
    assert handler.flush(5.0)
    received = collections.Counter(event["functionName"] for event in endpoint.of_kind("metric"))
    assert received == {"Cold.path": 10, "Other": 10}
    assert handler.stats()["sampled_out"] == 40


def test_a_fractional_sample_rate_keeps_about_that_share(
    endpoint: FaultyEndpoint, pipeline: Any
) -> None:
    logger, handler = pipeline(sample_rate=0.25)
    _log_metrics(logger, "Quarter", 800)
    assert handler.flush(10.0)
    stats = handler.stats()
    assert stats["sent"] + stats["sampled_out"] == 800
    assert 120 < stats["sent"] < 280  # mean 200, standard deviation ~12
    assert len(endpoint.of_kind("metric")) == stats["sent"]


@pytest.mark.parametrize("rate", [-0.1, 1.5, math.nan, "0.5", True, None])
def test_sample_rates_out_of_range_are_refused(rate: Any) -> None:
    with pytest.raises(ValueError, match="sample_rate"):
        TelemetryHandler(sample_rate=rate)
    with pytest.raises(ValueError, match="Hot"):
        TelemetryHandler(sample_rates={"Hot": rate})


def test_an_exception_storm_is_rate_limited_per_type(
    endpoint: FaultyEndpoint, pipeline: Any
) -> None:
    assert ERRORS_PER_NAME_PER_MINUTE < 100
    logger, handler = pipeline()
    _log_errors(logger, TimeoutError, 100)
    _log_errors(logger, KeyError, 2)
    _log_metrics(logger, "During.storm", 20)
    assert handler.flush(10.0)
    received = collections.Counter(event["error"]["name"] for event in endpoint.of_kind("error"))
    assert received == {"TimeoutError": ERRORS_PER_NAME_PER_MINUTE, "KeyError": 2}
    assert len(endpoint.of_kind("metric")) == 20
    assert handler.stats()["rate_limited"] == 100 - ERRORS_PER_NAME_PER_MINUTE
