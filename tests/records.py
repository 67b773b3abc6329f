"""LogRecords and the events the formatter makes of them: helpers shared by the tests of the
formatter, the event builder, sanitising and capture."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from hypothesis import strategies as st

from composio_logtelemetry import TelemetryFormatter
from conftest import VALIDATORS


def make_record(
    telemetry: Any = None, *, exc_info: Any = None, func: str = "run_tool", **attrs: Any
) -> logging.LogRecord:
    record = logging.LogRecord(
        "app.tools", logging.INFO, __file__, 42, "tool ran", None, exc_info, func=func
    )
    if telemetry is not None:
        record.telemetry = telemetry
    record.__dict__.update(attrs)
    return record


def formatted(record: logging.LogRecord, **options: Any) -> dict[str, Any]:
    """The formatter's JSON, checked to be strict UTF-8 and valid against the event schema."""
    text = TelemetryFormatter(**options).format(record)
    text.encode("utf-8")  # no lone surrogates
    payload: dict[str, Any] = json.loads(text)
    kind = "error" if "error" in payload else "metric"
    body = payload if kind == "error" else [payload]
    assert [e.message for e in VALIDATORS[kind].iter_errors(body)] == []
    return payload


def exc_info_of(exc: BaseException) -> Any:
    try:
        raise exc
    except BaseException:
        return sys.exc_info()


def exc_info_of_call(function: Any) -> Any:
    try:
        function()
    except BaseException:
        return sys.exc_info()
    raise AssertionError("expected an exception")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
