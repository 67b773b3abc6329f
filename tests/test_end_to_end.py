"""The whole pipeline, record to receiver, through real HTTP on 127.0.0.1."""

from __future__ import annotations

import logging
import logging.config
import sys
import textwrap
import threading
from typing import Any

import pytest

from composio_logtelemetry.devtools.receiver import Receiver
from conftest import FaultyEndpoint, run_python


def _raise_tool_error() -> None:
    raise KeyError("toolkit 'github' has no version")


def test_metric_arrives_as_given_and_validates(endpoint: FaultyEndpoint, pipeline: Any) -> None:
    logger, handler = pipeline(
        source={"version": "1.2.3", "environment": "production"},
        metadata={"provider": "openai"},
    )
    logger.info(
        "tool ran",
        extra={
            "telemetry": {
                "function_name": "Tools.execute",
                "duration_ms": 412.34,
                "props": {"toolkit": "github", "attempt": 2, "tags": ["a", "b"]},
                "metadata": {"project_id": "proj_1"},
                "timestamp": 1737012345.123456,
            }
        },
    )
    assert handler.flush(5.0)
    [event] = endpoint.of_kind("metric")
    assert event == {
        "functionName": "Tools.execute",
        "durationMs": 412.34,
        "timestamp": 1737012345.123456,
        "props": {"toolkit": "github", "attempt": 2, "tags": ["a", "b"]},
        "source": {
            "language": "python",
            "service": "sdk",
            "version": "1.2.3",
            "environment": "production",
        },
        "metadata": {"provider": "openai", "projectId": "proj_1"},
    }
    assert endpoint.violations == []
    assert any(agent.startswith("composio-logtelemetry/") for agent in endpoint.user_agents)


def test_logger_exception_becomes_an_error_event(endpoint: FaultyEndpoint, pipeline: Any) -> None:
    logger, handler = pipeline()
    try:
        try:
            _raise_tool_error()
        except KeyError as exc:
            raise RuntimeError("tool failed") from exc
    except RuntimeError:
        logger.exception("execute failed")
    assert handler.flush(5.0)
    [event] = endpoint.of_kind("error")
    assert event["functionName"] == "test_logger_exception_becomes_an_error_event"
    assert event["error"]["name"] == "RuntimeError"
    assert event["error"]["message"] == "tool failed"
    stack = event["error"]["stack"]
    assert "_raise_tool_error" in stack and "KeyError" in stack  # the chained cause
    assert "direct cause" in stack
    assert endpoint.violations == []


def test_telemetry_extra_with_exception_keeps_both(endpoint: FaultyEndpoint, pipeline: Any) -> None:
    logger, handler = pipeline()
    try:
        _raise_tool_error()
    except KeyError:
        logger.exception(
            "failed", extra={"telemetry": {"functionName": "Tools.execute", "durationMs": 5}}
        )
    assert handler.flush(5.0)
    [event] = endpoint.of_kind("error")
    assert event["functionName"] == "Tools.execute"
    assert event["durationMs"] == 5
    assert event["error"]["name"] == "KeyError"


def test_error_entry_in_the_extra_is_an_error_event(
    endpoint: FaultyEndpoint, pipeline: Any
) -> None:
    logger, handler = pipeline()
    logger.warning(
        "declined",
        extra={"telemetry": {"functionName": "Tools.execute", "error": {"name": "Declined"}}},
    )
    assert handler.flush(5.0)
    assert endpoint.of_kind("error")[0]["error"] == {"name": "Declined"}


def test_records_without_telemetry_send_nothing(endpoint: FaultyEndpoint, pipeline: Any) -> None:
    logger, handler = pipeline()
    logger.info("plain message")
    logger.error("an error without an exception")
    logger.info("with other extras", extra={"user": "bob"})
    assert handler.flush(5.0)
    assert endpoint.requests == 0
    assert handler.listener is None  # nothing to deliver: no thread was even started


def test_invalid_telemetry_is_counted_explained_and_never_raised(
    endpoint: FaultyEndpoint, pipeline: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    logger, handler = pipeline()
    logger.info("bad", extra={"telemetry": {"functionName": "X", "durationMs": -3}})
    logger.info("bad", extra={"telemetry": ["not", "a", "dict"]})
    logger.info("bad", extra={"telemetry": {"functionName": "X", "colour": "red"}})
    logger.info("good", extra={"telemetry": {"functionName": "Good"}})
    assert handler.flush(5.0)
    assert [event["functionName"] for event in endpoint.of_kind("metric")] == ["Good"]
    assert handler.stats()["invalid"] == 3
    err = capfd.readouterr().err
    assert "durationMs must be >= 0" in err
    assert "telemetry must be a dict, got list" in err
    assert "unknown key 'colour'" in err
    assert "Traceback" not in err


def test_metrics_are_batched(endpoint: FaultyEndpoint, pipeline: Any) -> None:
    logger, handler = pipeline(batch_size=50)
    for number in range(500):
        logger.info("x", extra={"telemetry": {"functionName": "Batch", "props": {"n": number}}})
    assert handler.flush(10.0)
    assert len(endpoint.of_kind("metric")) == 500
    # never smaller than batch_size but for the last (the flush's); larger when records
    # waited in the queue or behind a busy sender
    assert all(size >= 50 for size in endpoint.batches[:-1])


def test_a_request_carries_batch_size_when_nothing_waits(
    endpoint: FaultyEndpoint, pipeline: Any
) -> None:
    logger, _ = pipeline(batch_size=50)
    for round_number in range(1, 4):
        for number in range(50):
            logger.info("x", extra={"telemetry": {"functionName": "Batch", "props": {"n": number}}})
        assert endpoint.wait_for(50 * round_number, timeout=10.0)
    assert endpoint.batches == [50, 50, 50]
    assert len(endpoint.batches) <= 20  # not one POST per event


def test_partial_batch_leaves_within_flush_interval(
    endpoint: FaultyEndpoint, pipeline: Any
) -> None:
    logger, _ = pipeline(flush_interval=0.2)
    logger.info("x", extra={"telemetry": {"functionName": "Lonely"}})
    assert endpoint.wait_for(1, timeout=2.0)  # no flush(): the listener wakes by itself


def test_direct_handler_sends_synchronously(endpoint: FaultyEndpoint, tmp_path: Any) -> None:
    from composio_logtelemetry import TelemetryHandler

    handler = TelemetryHandler(endpoint=endpoint.base_url, spool_path=str(tmp_path / "s.db"))
    logger = logging.getLogger("direct")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning("x", extra={"telemetry": {"functionName": "Direct", "durationMs": 1}})
        assert [event["functionName"] for event in endpoint.of_kind("metric")] == ["Direct"]
    finally:
        logger.removeHandler(handler)
        handler.close()


DICT_CONFIG = """
import logging, logging.config, sys
endpoint = sys.argv[1] if len(sys.argv) > 1 else {endpoint!r}
logging.config.dictConfig({{
    "version": 1,
    "handlers": {{
        {queue_name!r}: {{
            "class": "composio_logtelemetry.TelemetryQueueHandler",
            "handlers": [{handler_name!r}],
            ".": {{"shutdown_timeout": 3.0, "maxsize": 5000}},
        }},
        {handler_name!r}: {{
            "class": "composio_logtelemetry.TelemetryHandler",
            "endpoint": endpoint,
            "spool": False,
            "batch_size": 50,
        }},
    }},
    "root": {{"handlers": [{queue_name!r}], "level": "INFO"}},
}})
log = logging.getLogger("app")
queue_handler = logging.getLogger().handlers[0]
assert queue_handler.shutdown_timeout == 3.0 and queue_handler.maxsize == 5000
for i in range({count}):
    log.info("tick", extra={{"telemetry": {{"functionName": "Loop.tick", "durationMs": i}}}})
try:
    {{}}["missing"]
except KeyError:
    log.exception("boom")
"""


@pytest.mark.parametrize(
    ("queue_name", "handler_name"), [("a_queue", "z_http"), ("z_queue", "a_http")]
)
def test_dictconfig_any_order_and_exit_delivers_everything(
    endpoint: FaultyEndpoint, queue_name: str, handler_name: str
) -> None:
    code = DICT_CONFIG.format(
        endpoint=endpoint.base_url, queue_name=queue_name, handler_name=handler_name, count=1000
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert len(endpoint.of_kind("metric")) == 1000  # the exit drain, nobody called flush()
    assert [e["error"]["name"] for e in endpoint.of_kind("error")] == ["KeyError"]
    assert endpoint.violations == []
    assert result.stderr == ""
    assert result.elapsed < 10


def test_serve_receiver_validates_what_we_send() -> None:
    with Receiver() as receiver:
        code = DICT_CONFIG.format(
            endpoint=receiver.base_url, queue_name="t", handler_name="h", count=10
        )
        result = run_python(code)
        assert result.returncode == 0, result.stderr
        assert receiver.count("metric") == 10
        assert receiver.count("error") == 1


def test_readme_dictconfig_runs_on_this_python() -> None:
    """The README's configuration, copied verbatim, works on the running interpreter."""
    import pathlib
    import re

    readme = (pathlib.Path(__file__).parent.parent / "README.rst").read_text()
    block = re.search(
        r"\.\. code-block:: python\n\n((?:    .*\n|\n)+?)(?=\S)",
        readme.split("Configure with dictConfig", 1)[1],
    )
    assert block is not None
    code = textwrap.dedent(block.group(1))
    with Receiver() as receiver:
        result = run_python(code, env={"COMPOSIO_TELEMETRY_URL": receiver.base_url})
        assert result.returncode == 0, result.stderr
        assert receiver.count() >= 1, (sys.version, result.stderr)


def test_handler_named_only_in_dictconfig_survives_garbage_collection(
    endpoint: FaultyEndpoint,
) -> None:
    """On 3.10/3.11 only a name points at the TelemetryHandler until the first record."""
    code = textwrap.dedent(
        f"""
        import gc, logging, logging.config
        logging.config.dictConfig({{"version": 1, "handlers": {{
            "q": {{"class": "composio_logtelemetry.TelemetryQueueHandler", "handlers": ["h"]}},
            "h": {{"class": "composio_logtelemetry.TelemetryHandler",
                   "endpoint": {endpoint.base_url!r}, "spool": False}}}},
            "root": {{"handlers": ["q"], "level": "INFO"}}}})
        gc.collect()
        logging.getLogger("a").info("x", extra={{"telemetry": {{"functionName": "AfterGC"}}}})
        """
    )
    result = run_python(code)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert [e["functionName"] for e in endpoint.of_kind("metric")] == ["AfterGC"]


def test_a_filter_may_replace_the_record(endpoint: FaultyEndpoint, pipeline: Any) -> None:
    logger, handler = pipeline()

    def rename(record: logging.LogRecord) -> logging.LogRecord | bool:
        if sys.version_info < (3, 12):
            record.telemetry = {"functionName": "from.filter"}
            return True
        replacement = logging.makeLogRecord(record.__dict__)
        replacement.telemetry = {"functionName": "from.filter"}
        return replacement

    handler.addFilter(rename)
    logger.info("x", extra={"telemetry": {"functionName": "original"}})
    assert handler.flush(5.0)
    assert [e["functionName"] for e in endpoint.of_kind("metric")] == ["from.filter"]


def test_other_handlers_behind_the_listener_get_whole_records(
    endpoint: FaultyEndpoint, tmp_path: Any
) -> None:
    """Only when telemetry handlers alone listen is a slimmed QueuedRecord queued."""
    from composio_logtelemetry import TelemetryHandler, TelemetryQueueHandler

    class Collecting(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    collecting = Collecting()
    telemetry = TelemetryHandler(endpoint=endpoint.base_url, spool_path=str(tmp_path / "s.db"))
    telemetry.addFilter(lambda record: "secret" not in record.getMessage())
    queue_handler = TelemetryQueueHandler(handlers=[telemetry, collecting])
    logger = logging.getLogger("mixed")
    logger.propagate = False
    logger.addHandler(queue_handler)
    try:
        logger.warning("kept %s", 1, extra={"telemetry": {"functionName": "Kept"}})
        logger.warning("secret %s", 2, extra={"telemetry": {"functionName": "Filtered"}})
        try:
            _raise_tool_error()
        except KeyError:
            logger.exception("failed %s", 3)
        assert queue_handler.flush(5.0)
    finally:
        logger.removeHandler(queue_handler)
        queue_handler.shutdown(2.0)
    assert collecting.messages == ["kept 1", "secret 2", "failed 3"]
    assert [e["functionName"] for e in endpoint.of_kind("metric")] == ["Kept"]
    assert endpoint.of_kind("error")[0]["error"]["name"] == "KeyError"


@pytest.mark.parametrize("listeners", ["telemetry only", "with another handler"])
@pytest.mark.parametrize("props", ["flat", "nested"])
def test_each_event_keeps_the_values_it_was_logged_with(
    endpoint: FaultyEndpoint, tmp_path: Any, listeners: str, props: str
) -> None:
    """An application that reuses one dict and changes it between calls: the listener is
    held until every call returned, so it reads each record after the dict changed."""
    from composio_logtelemetry import TelemetryHandler, TelemetryQueueHandler

    release = threading.Event()

    def hold_the_listener(payload: dict[str, Any]) -> dict[str, Any]:
        release.wait(10.0)
        return payload

    telemetry = TelemetryHandler(
        endpoint=endpoint.base_url,
        spool_path=str(tmp_path / "s.db"),
        before_send=hold_the_listener,
    )
    others = [logging.NullHandler()] if listeners == "with another handler" else []
    queue_handler = TelemetryQueueHandler(handlers=[telemetry, *others])
    logger = logging.getLogger(f"reuse.{listeners}.{props}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(queue_handler)
    data: dict[str, Any] = {"functionName": "Step", "durationMs": 0.0, "props": {"step": 0}}
    if props == "nested":
        data["props"]["seen"] = []
    try:
        for step in range(5):
            data["durationMs"] = float(step)
            data["props"]["step"] = step
            if props == "nested":
                data["props"]["seen"].append(step)
            logger.info("step", extra={"telemetry": data})
        release.set()
        assert queue_handler.flush(5.0)
    finally:
        release.set()
        logger.removeHandler(queue_handler)
        queue_handler.shutdown(2.0)
    logged = [
        (
            float(step),
            {"step": step, "seen": list(range(step + 1))} if props == "nested" else {"step": step},
        )
        for step in range(5)
    ]
    assert [(event["durationMs"], event["props"]) for event in endpoint.of_kind("metric")] == logged


@pytest.mark.skipif(sys.version_info < (3, 12), reason="the stdlib queue keys are 3.12+")
def test_stdlib_queue_keys_on_312_and_later(endpoint: FaultyEndpoint) -> None:
    code = textwrap.dedent(
        f"""
        import logging, logging.config
        logging.config.dictConfig({{"version": 1, "handlers": {{
            "telemetry": {{
                "class": "composio_logtelemetry.TelemetryQueueHandler",
                "handlers": ["composio"],
                "queue": {{"()": "queue.Queue", "maxsize": 500}},
                "listener": "composio_logtelemetry.TelemetryQueueListener",
                "respect_handler_level": True,
            }},
            "composio": {{"class": "composio_logtelemetry.TelemetryHandler", "level": "INFO",
                          "endpoint": {endpoint.base_url!r}, "spool": False}}}},
            "root": {{"handlers": ["telemetry"], "level": "DEBUG"}}}})
        log = logging.getLogger("a")
        log.debug("below the handler level", extra={{"telemetry": {{"functionName": "Debug"}}}})
        log.info("sent", extra={{"telemetry": {{"functionName": "Info"}}}})
        handler = logging.getLogger().handlers[0]
        assert handler.queue.maxsize == 500
        """
    )
    result = run_python(code)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert [e["functionName"] for e in endpoint.of_kind("metric")] == ["Info"]


@pytest.mark.skipif(sys.version_info < (3, 12), reason="dictConfig builds the listener on 3.12+")
def test_the_stdlib_recipe_of_starting_and_stopping_the_listener(endpoint: FaultyEndpoint) -> None:
    """Python's docs tell 3.12+ users to start ``handler.listener`` and stop it at exit."""
    code = textwrap.dedent(
        f"""
        import atexit, logging, logging.config
        logging.config.dictConfig({{"version": 1, "handlers": {{
            "telemetry": {{"class": "composio_logtelemetry.TelemetryQueueHandler",
                           "handlers": ["composio"]}},
            "composio": {{"class": "composio_logtelemetry.TelemetryHandler",
                          "endpoint": {endpoint.base_url!r}, "spool": False}}}},
            "root": {{"handlers": ["telemetry"], "level": "INFO"}}}})
        handler = logging.getHandlerByName("telemetry")
        handler.listener.start()
        atexit.register(handler.listener.stop)
        for number in range(300):
            logging.getLogger("a").info("x", extra={{"telemetry": {{"functionName": "Recipe"}}}})
        """
    )
    result = run_python(code)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert len(endpoint.of_kind("metric")) == 300
    assert len(endpoint.batches) <= 10  # batched by our listener, not sent one by one
    # One listener, stopped once. The bound is the default exit budget (5 s): an exit that
    # waited it out (a second listener to drain) fails; the interpreter's start and 300
    # events on a loaded machine stay well under it.
    assert result.elapsed < 5.0
