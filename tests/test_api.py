"""The SDK-compatible API (create_event, push_event, setup, flush, shutdown) and timed()."""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from composio_logtelemetry import create_event, timed
from conftest import FaultyEndpoint, run_python


def test_create_event_accepts_snake_and_camel_case_and_drops_nulls() -> None:
    event = create_event(
        "error",
        function_name="Tools.execute",
        durationMs=5,
        timestamp=None,
        metadata={"project_id": "p1", "provider": None},
        error={"name": "ToolError", "error_id": "abc"},
    )
    assert event == (
        "error",
        {
            "functionName": "Tools.execute",
            "durationMs": 5.0,
            "metadata": {"projectId": "p1"},
            "error": {"name": "ToolError", "errorId": "abc"},
        },
    )


def test_create_event_keeps_the_props_it_was_given() -> None:
    props: dict[str, Any] = {"toolkit": "github", "args": {"repos": ["a"]}}
    event = create_event("metric", function_name="Tools.execute", props=props)
    props["later"] = "changed"
    props["args"]["repos"].append("b")
    assert event[1]["props"] == {"toolkit": "github", "args": {"repos": ["a"]}}


def _failing_tool() -> None:
    raise PermissionError("no access to toolkit")


def test_timed_reports_metric_and_error_and_reraises(
    endpoint: FaultyEndpoint, pipeline: Any
) -> None:
    logger, handler = pipeline()

    @timed("Tools.execute", logger=logger, props={"toolkit": "github"})
    def execute(value: int, *, twice: bool = False) -> int:
        """Runs a tool."""
        return value * 2 if twice else value

    assert execute(3, twice=True) == 6
    assert execute.__name__ == "execute" and execute.__doc__ == "Runs a tool."
    assert str(inspect.signature(execute)) == "(value: 'int', *, twice: 'bool' = False) -> 'int'"

    raised = PermissionError("no access to toolkit")
    with pytest.raises(PermissionError) as info, timed("Tools.fail", logger=logger):
        try:
            _failing_tool()
        except PermissionError as exc:
            raised = exc
            raise
    assert info.value is raised  # the very same exception object
    assert handler.flush(5.0)
    [metric] = endpoint.of_kind("metric")
    assert metric["functionName"] == "Tools.execute"
    assert metric["props"] == {"toolkit": "github"}
    assert metric["durationMs"] >= 0
    [error] = endpoint.of_kind("error")
    assert error["functionName"] == "Tools.fail"
    assert error["error"]["name"] == "PermissionError"
    assert error["error"]["message"] == "no access to toolkit"
    assert "_failing_tool" in error["error"]["stack"]
    assert "durationMs" in error


def test_timed_counts_a_clean_sys_exit_as_success(endpoint: FaultyEndpoint, pipeline: Any) -> None:
    logger, handler = pipeline()

    @timed("Cli.main", logger=logger)
    def main(code: int | None) -> None:
        sys.exit(code)

    for code in (None, 0, 2):
        with pytest.raises(SystemExit):
            main(code)
    assert handler.flush(5.0)
    assert [e["functionName"] for e in endpoint.of_kind("metric")] == ["Cli.main"] * 2
    [error] = endpoint.of_kind("error")
    assert (error["error"]["name"], error["error"]["message"]) == ("SystemExit", "2")
    stack = error["error"]["stack"]
    assert stack.startswith("Traceback (most recent call last):")
    assert "sys.exit(code)" in stack and stack.rstrip().endswith("SystemExit: 2")


def test_timed_on_async_functions(endpoint: FaultyEndpoint, pipeline: Any) -> None:
    logger, handler = pipeline()

    @timed("Async.ok", logger=logger)
    async def ok() -> str:
        await asyncio.sleep(0)
        return "done"

    @timed("Async.fail", logger=logger)
    async def fail() -> None:
        await asyncio.sleep(0)
        raise TimeoutError("slow upstream")

    assert inspect.iscoroutinefunction(ok)
    assert asyncio.run(ok()) == "done"
    with pytest.raises(TimeoutError):
        asyncio.run(fail())
    assert handler.flush(5.0)
    assert [e["functionName"] for e in endpoint.of_kind("metric")] == ["Async.ok"]
    [error] = endpoint.of_kind("error")
    assert error["error"]["name"] == "TimeoutError" and "in fail" in error["error"]["stack"]


def test_timed_rejects_bad_fields_at_decoration_time() -> None:
    with pytest.raises(ValueError, match="unknown key 'colour'"):
        timed("X", colour="red")
    with pytest.raises(ValueError, match="timed sets duration_ms itself"):
        timed("X", duration_ms=5.0)
    with pytest.raises(TypeError, match=r"logger must be a logging\.Logger"):
        timed("X", logger=42)  # type: ignore[arg-type]

    def ticks() -> Iterator[int]:
        yield 1

    with pytest.raises(TypeError, match="cannot measure the generator 'ticks'"):
        timed("X")(ticks)


def test_timed_takes_a_logger_by_name(endpoint: FaultyEndpoint, pipeline: Any) -> None:
    logger, handler = pipeline()
    with timed("Named.logger", logger=logger.name):
        pass
    assert handler.flush(5.0)
    assert [e["functionName"] for e in endpoint.of_kind("metric")] == ["Named.logger"]


SDK_USE = """
import composio_logtelemetry as telemetry
telemetry.setup(endpoint={url!r}, spool=False)
assert telemetry.setup() is telemetry.setup()  # idempotent
for i in range(50):
    telemetry.push_event(telemetry.create_event("metric", function_name="Tools.execute",
                                                duration_ms=float(i), props={{"i": i}}))
try:
    raise ValueError("boom")
except ValueError as exc:
    telemetry.push_event(telemetry.create_event("error", function_name="Tools.execute",
                                                error={{"name": type(exc).__name__,
                                                        "message": str(exc)}}))
telemetry.push_event(("metric", {{"functionName": ""}}))  # invalid: counted, not raised
for wrong in ("garbage", None, ["metric", {{"functionName": "X"}}]):
    telemetry.push_event(wrong)  # never raises; None must not stop the listener
telemetry.push_event(telemetry.create_event("metric", function_name="After.wrong"))
assert telemetry.flush(5.0) is not None
assert telemetry.setup().stats()["invalid"] == 4
assert telemetry.flush(5.0) is not None
{ending}
"""


@pytest.mark.parametrize("ending", ["telemetry.shutdown(5.0)", "pass  # just exit"])
def test_push_event_through_the_default_pipeline(endpoint: FaultyEndpoint, ending: str) -> None:
    result = run_python(SDK_USE.format(url=endpoint.base_url, ending=ending))
    assert result.returncode == 0, result.stderr
    assert len(endpoint.of_kind("metric")) == 51
    assert endpoint.of_kind("metric")[-1]["functionName"] == "After.wrong"
    assert [e["error"]["name"] for e in endpoint.of_kind("error")] == ["ValueError"]
    assert "functionName must be a non-empty string" in result.stderr
    assert "push_event takes the (type, data) event that create_event() returns" in result.stderr
    assert "Traceback" not in result.stderr
    assert endpoint.violations == []


def test_push_event_says_why_nothing_is_sent_when_setup_refuses_the_endpoint() -> None:
    result = run_python(
        "import composio_logtelemetry as t\n"
        "t.push_event(t.create_event('metric', function_name='X'))\n"
        "t.push_event(t.create_event('metric', function_name='Y'))\n",
        env={"COMPOSIO_TELEMETRY_URL": "http://example.com/v1"},
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert result.stderr.count("telemetry not sent by push_event: refusing plain http") == 1


def test_setup_uses_the_composio_telemetry_logger() -> None:
    result = run_python(
        "import logging, composio_logtelemetry as t\n"
        "h = t.setup(enabled=False)\n"
        "log = logging.getLogger('composio.telemetry')\n"
        "assert h in log.handlers and log.propagate is False\n"
        "t.shutdown()\n"
    )
    assert result.returncode == 0, result.stderr
