"""``TelemetryFormatter``: a python-json-logger formatter whose JSON is a Composio event."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from ._event import EventBuilder
from .models import Event, EventType

__all__ = ["TelemetryFormatter"]

_SERIALIZING_HOOKS = ("serialize_log_record", "jsonify_log_record")
_HOOKS = ("add_fields", "process_log_record", *_SERIALIZING_HOOKS)


class TelemetryFormatter(JsonFormatter):
    """Formats a record as the Composio event it carries, through python-json-logger's hooks.

    ``add_fields`` puts the record's event (built and checked by the event builder) into the
    dict, ``process_log_record`` may change it, ``serialize_log_record`` makes its text. A
    subclass that overrides one of them (set with dictConfig's ``formatter`` key) changes
    what is sent; what its hooks return is checked again, and an invalid result is counted
    and explained, never sent. While no hook is overridden, events take the builder's
    one-pass path, which gives the same text.
    """

    def __init__(
        self,
        *,
        source: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        capture_exceptions: bool = True,
        redact: bool = True,
    ) -> None:
        super().__init__(json_ensure_ascii=False)
        self.builder = EventBuilder(
            source=source, metadata=metadata, capture_exceptions=capture_exceptions, redact=redact
        )
        overridden = {
            hook
            for hook in _HOOKS
            if getattr(type(self), hook) is not getattr(TelemetryFormatter, hook)
        }
        self.hooked = bool(overridden)
        self.serializes_itself = not overridden.isdisjoint(_SERIALIZING_HOOKS)

    # -- python-json-logger's hooks ------------------------------------------------------------

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        """The record's event, and nothing else: the wire takes no other keys."""
        event = self.builder.record_event(record)
        if event is not None:
            log_data.update(event[1])

    def jsonify_log_record(self, log_data: Any) -> str:
        return self.builder.to_json(log_data)

    # -- what the handler asks for -------------------------------------------------------------

    def format(self, record: logging.LogRecord) -> str:
        """The record's event as JSON, or ``""`` for a record that carries none.

        Unlike ``JsonFormatter.format`` it does not format the message or the traceback,
        which the wire does not carry; the hooks are called in the same order."""
        event = self.event(record)
        return "" if event is None else self.serialize(event[1])

    def event(self, record: logging.LogRecord) -> Event | None:
        """The record's event, through ``add_fields`` and ``process_log_record``."""
        if not self.hooked:
            return self.builder.record_event(record)
        log_data: dict[str, Any] = {}
        self.add_fields(log_data, record, {})
        if not log_data:
            return None
        return self.checked(self.process_log_record(log_data))

    def event_json(self, record: logging.LogRecord) -> tuple[EventType, str] | None:
        """``event`` and ``serialize`` in one call: the listener's path for a record."""
        if not self.hooked:
            return self.builder.record_json(record)
        event = self.event(record)
        return None if event is None else (event[0], self.serialize(event[1]))

    def checked(self, data: Mapping[str, Any], event_type: object = None) -> Event:
        """``data`` (from a hook, ``push_event`` or ``before_send``) validated and completed;
        raises ``ValueError``/``TypeError`` naming the bad field."""
        if event_type is None:
            event_type = "error" if "error" in data else "metric"
        return self.builder.rebuild(event_type, data)

    def serialize(self, data: Mapping[str, Any]) -> str:
        """The text of a complete event, through ``serialize_log_record``.

        A subclass's text is read back and checked like any payload from outside: what
        goes on the wire is always a valid event (raises naming the field otherwise)."""
        if not self.serializes_itself:
            return self.builder.to_json(data)
        text = self.serialize_log_record(dict(data))
        event_type = "error" if "error" in data else "metric"
        return self.builder.to_json(self.checked(json.loads(text), event_type)[1])
