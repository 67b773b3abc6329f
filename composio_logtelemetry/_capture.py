"""What the logging thread captures before a record waits in the queue.

The application goes on after its log call: it may change the dict it logged, and the
stdlib's ``prepare`` erases ``exc_info``. So the telemetry is copied and the exception is
turned into picklable ErrorData here, on the logging thread, as cheaply as that can be done.
"""

from __future__ import annotations

import contextlib
import logging
import traceback
from itertools import islice
from typing import Any, cast

from ._sanitize import MAX_DEPTH, MAX_ITEMS
from .models import ErrorData

CAPTURED_ERROR_ATTR = "_composio_logtelemetry_error"
"""Where the queue handler leaves the ErrorData it captured before ``exc_info`` was dropped."""
MAX_COPIES = 100  # containers that ``snapshot`` copies on the logging thread
_COPIED_TYPES = frozenset({dict, list, set})


class QueuedRecord(logging.LogRecord):
    """The part of a LogRecord that telemetry needs, kept while it waits in the queue.

    A full record holds some 600 bytes and the exception's frames; this holds the fields
    ``TelemetryFormatter`` reads (and ``levelno`` for ``respect_handler_level``).
    """

    __slots__ = (
        "created",
        "exc_info",
        "exc_text",
        "funcName",
        "levelno",
        "name",
        "telemetry",
        CAPTURED_ERROR_ATTR,
    )

    def __init__(self, record: logging.LogRecord) -> None:  # no super(): nothing else is needed
        self.name = record.name
        self.levelno = record.levelno
        self.funcName = record.funcName
        self.created = record.created
        self.telemetry = record.__dict__.get("telemetry")
        self.exc_info = record.exc_info
        self.exc_text = None
        setattr(self, CAPTURED_ERROR_ATTR, None)  # read for every record: a missing slot is slow


def capture(record: logging.LogRecord) -> None:
    """Takes ``record``'s telemetry as it is now and its exception as ErrorData, in place
    (on a copy of the application's record: ``QueuedRecord`` or the stdlib's copy)."""
    telemetry = getattr(record, "telemetry", None)
    if telemetry is not None:
        record.telemetry = snapshot(telemetry)
    if record.exc_info is not None:
        exc = record.exc_info[1]
        setattr(record, CAPTURED_ERROR_ATTR, None if exc is None else error_from_exception(exc))
        record.exc_info = None
        record.exc_text = None


def error_from_exception(exc: BaseException) -> ErrorData:
    """ErrorData for an exception: class name, ``str(exc)`` and the full chained traceback."""
    error: dict[str, str] = {"name": type(exc).__name__}
    try:
        error["message"] = str(exc)
    except Exception:
        error["message"] = f"<unprintable {type(exc).__name__}>"
    with contextlib.suppress(Exception):
        error["stack"] = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return cast(ErrorData, error)


def snapshot(telemetry: Any, *, props: bool = False) -> Any:
    """``telemetry`` (or, with ``props``, an event's props) with the dicts, lists and sets in
    it copied, so that an event says what was true when it was logged even if the
    application goes on changing the same dict (the listener reads it later). A container
    shared by two parts, or a cycle, is one in the copy too.

    The logging thread pays at most for what ``to_json_safe`` will send: ``MAX_DEPTH``
    levels, ``MAX_ITEMS`` per container, ``MAX_COPIES`` containers in all; past that, and
    for any other mutable object, the listener reads the application's own value.

    The usual telemetry, whose only containers are flat dicts (props, metadata), is copied
    without the walk, in a third less time; a flat dict given to two fields is then copied
    twice, which sends the same.
    """
    if type(telemetry) is not dict:
        return telemetry  # not a dict: invalid, and explained as it was given
    copied = telemetry.copy()
    if len(copied) <= MAX_ITEMS:
        for key, value in copied.items():  # replacing values only: the size stays
            kind = type(value)
            if kind in _COPIED_TYPES:
                if kind is not dict or len(value) > MAX_ITEMS or not _flat(value):
                    return _copied(telemetry, 0, {}, props)
                copied[key] = value.copy()
        return copied
    return _copied(telemetry, 0, {}, props)


def _flat(mapping: dict[Any, Any]) -> bool:
    return _COPIED_TYPES.isdisjoint(map(type, mapping.values()))


def _copied(value: Any, depth: int, copies: dict[int, Any], in_props: bool) -> Any:
    """``in_props``: below the telemetry's own fields, in the free-form props."""
    if type(value) is set:
        # In props, as the list it will be sent as: a copied set may iterate in another
        # order. Anywhere else it is invalid, and its type is what the message names.
        copied: Any = list(value) if in_props else value.copy()
        copies[id(value)] = copied
        return copied
    copied = value.copy()
    copies[id(value)] = copied
    if depth >= MAX_DEPTH:
        return copied
    items: Any = copied.items() if type(copied) is dict else enumerate(copied)
    values: Any = copied.values() if type(copied) is dict else copied
    if len(copied) > MAX_ITEMS:
        items, values = islice(items, MAX_ITEMS), islice(values, MAX_ITEMS)
    if _COPIED_TYPES.isdisjoint(map(type, values)):
        return copied  # flat, the usual case: the copy is complete
    for key, item in items:
        if type(item) in _COPIED_TYPES:
            seen = copies.get(id(item))
            if seen is not None:
                copied[key] = seen
            elif len(copies) < MAX_COPIES:
                below = in_props or (depth == 0 and key == "props")
                copied[key] = _copied(item, depth + 1, copies, below)
    return copied
