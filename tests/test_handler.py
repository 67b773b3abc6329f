"""``TelemetryHandler``: used directly on the application's thread it never raises, secrets it
is given never reach the receiver unless ``redact=False``, and opting out (an environment
variable or ``enabled=False``) means no request, thread, file or work."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given

from composio_logtelemetry import (
    TelemetryHandler,
    TelemetryQueueHandler,
    create_event,
)
from conftest import FaultyEndpoint, run_python
from hostile import HYPOTHESIS, exceptions, levels, log_and_count, other_extras, tagged_telemetry

# -- hostile input, on the application's thread ------------------------------------------------


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
    moved = log_and_count(
        logger, handler, endpoint, telemetry, extras, exc, level, flush=lambda: True
    )
    if valid:
        assert moved["invalid"] == 0


class _ClashingKey:
    """A key that hashes like ``props`` and raises when compared: the one-pass path fails on
    it in the middle of a run."""

    def __hash__(self) -> int:
        return hash("props")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("compared")


def test_an_item_that_breaks_the_one_pass_path_costs_only_itself(
    endpoint: FaultyEndpoint, direct: tuple[logging.Logger, TelemetryHandler]
) -> None:
    """The listener hands a run of items over at once; one hostile item sends the run down
    the full path, which counts it and delivers the others."""
    _, handler = direct
    hostile = ("metric", {"functionName": "Hostile", _ClashingKey(): 1})
    handler.emit_many(
        [
            create_event("metric", functionName="Before"),
            hostile,
            create_event("metric", functionName="After"),
        ]
    )
    assert endpoint.wait_for(2)
    assert sorted(event["functionName"] for event in endpoint.of_kind("metric")) == [
        "After",
        "Before",
    ]
    assert handler.stats()["invalid"] == 1


# -- secrets -----------------------------------------------------------------------------------


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


# -- opt-out -----------------------------------------------------------------------------------


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
