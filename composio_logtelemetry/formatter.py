"""``TelemetryFormatter``: a LogRecord in, a Composio telemetry payload out."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from typing import Any

from pythonjsonlogger.json import JsonEncoder, JsonFormatter

from . import _redact, _sanitize
from ._encoding import reused_encoder
from ._event import error_from_exception, normalize_telemetry
from .models import EnvironmentType, ErrorData, Event, EventType, TelemetryData

__all__ = ["CAPTURED_ERROR_ATTR", "TelemetryFormatter"]

CAPTURED_ERROR_ATTR = "_composio_logtelemetry_error"
"""Where the queue handler leaves the ErrorData it captured before ``exc_info`` was dropped."""

_ENVIRONMENTS = {member.value for member in EnvironmentType}
_USUAL_KEYS = frozenset({"functionName", "durationMs", "timestamp", "props", "metadata"})
_USUAL_METADATA_KEYS = frozenset({"projectId", "provider"})


def _default_source() -> dict[str, str]:
    source = {"language": "python", "service": "sdk"}
    environment = os.environ.get("ENVIRONMENT", "").strip().lower()
    if environment in _ENVIRONMENTS:
        source["environment"] = environment
    return source


def _clean_values(section: Mapping[str, str]) -> dict[str, str]:
    return {key: _sanitize.clean_text(text, _sanitize.MAX_NAME) for key, text in section.items()}


def _usual_text(text: str) -> bool:
    """Text that ``clean_text`` keeps as it is: ASCII (no lone surrogates), and short."""
    return text.isascii() and len(text) <= _sanitize.MAX_NAME


class TelemetryFormatter(JsonFormatter):
    """Builds the wire payload of a record and serialises it with python-json-logger.

    Validation, defaults, size caps and redaction all happen here so that every path
    (log records, ``push_event``, ``before_send``) yields the same, schema-valid JSON.
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
        defaults = normalize_telemetry(
            {"source": {**_default_source(), **(source or {})}, "metadata": metadata or {}}
        )
        self.default_source: dict[str, str] = dict(defaults["source"])
        self.default_metadata: dict[str, str] = dict(defaults["metadata"])
        self.capture_exceptions = capture_exceptions
        self.redact = redact
        self._encode = reused_encoder(
            JsonEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)
        )
        self._default_source_json = self._encode(self.default_source)

    def build_event(self, record: logging.LogRecord) -> Event | None:
        """The event a record carries, ``None`` if it carries none.

        Raises ``ValueError``/``TypeError`` naming the field when its telemetry is invalid.
        """
        telemetry = getattr(record, "telemetry", None)
        error: ErrorData | None = getattr(record, CAPTURED_ERROR_ATTR, None)
        if error is None and record.exc_info and record.exc_info[1] is not None:
            error = error_from_exception(record.exc_info[1])
        if telemetry is None:
            if error is None or not self.capture_exceptions:
                return None
            data: dict[str, Any] = {}
        else:
            data = normalize_telemetry(telemetry)
        if error is not None and self.capture_exceptions:
            data.setdefault("error", error)
        if "functionName" not in data:
            data["functionName"] = record.funcName or record.name
        if "timestamp" not in data:
            data["timestamp"] = record.created
        return self._completed(data, None)

    def usual_metric_json(self, record: logging.LogRecord) -> str | None:
        """``serialize_event(build_event(record)[1])`` of the usual record, in one pass: a metric
        whose telemetry is a plain camelCase dict of valid, short, ASCII values, and no source
        of its own (the default's JSON is encoded once). None for any other record, which then
        takes ``build_event``: that path handles every case and explains what is invalid."""
        telemetry = getattr(record, "telemetry", None)
        if (
            type(telemetry) is not dict
            or not _USUAL_KEYS.issuperset(telemetry)
            or record.exc_info
            or getattr(record, CAPTURED_ERROR_ATTR, None) is not None
        ):
            return None
        name = telemetry.get("functionName")
        if type(name) is not str or not _usual_text(name) or not name or name.isspace():
            return None
        fields: dict[str, Any] = {"functionName": name}
        duration = telemetry.get("durationMs")
        if duration is not None:
            if type(duration) is not float or not 0.0 <= duration < math.inf:
                return None
            fields["durationMs"] = duration
        timestamp = telemetry.get("timestamp")
        if timestamp is None:
            timestamp = record.created
        elif type(timestamp) is not float or not -math.inf < timestamp < math.inf:
            return None
        fields["timestamp"] = timestamp
        props = telemetry.get("props")
        if props is not None:
            if type(props) is not dict:
                return None
            fields["props"] = _sanitize.to_json_safe(props, redact=self.redact)
        metadata = self._usual_metadata(telemetry.get("metadata"))
        if metadata is None:
            return None
        if metadata:
            fields["metadata"] = metadata
        text = self._encode(fields)
        if props is not None and len(text) > _sanitize.MAX_PROPS_BYTES // 4:
            return None  # props may need bounding
        return f'{text[:-1]},"source":{self._default_source_json}}}'

    def _usual_metadata(self, metadata: object) -> dict[str, Any] | None:
        """The defaults under a record's plain metadata; None if it is not plain."""
        if metadata is None:
            return self.default_metadata
        if type(metadata) is not dict or not _USUAL_METADATA_KEYS.issuperset(metadata):
            return None
        merged = dict(self.default_metadata)
        for key, text in metadata.items():
            if text is None:
                continue
            if type(text) is not str or not _usual_text(text):
                return None
            merged[key] = text
        return merged

    def complete_event(self, data: TelemetryData, event_type: EventType | None = None) -> Event:
        """Defaults merged under ``data``, values made JSON-safe, bounded and redacted."""
        return self._completed(dict(data), event_type)

    def _completed(self, payload: dict[str, Any], event_type: EventType | None) -> Event:
        """``complete_event`` on a dict of our own, changed in place (the listener's hot path)."""
        payload["functionName"] = _sanitize.clean_text(payload["functionName"], _sanitize.MAX_NAME)
        own_source, own_metadata = payload.get("source"), payload.get("metadata")
        payload["source"] = (
            {**self.default_source, **_clean_values(own_source)}
            if own_source
            else self.default_source.copy()
        )
        if own_metadata:
            payload["metadata"] = {**self.default_metadata, **_clean_values(own_metadata)}
        elif self.default_metadata:
            payload["metadata"] = self.default_metadata.copy()
        else:
            payload.pop("metadata", None)
        if "props" in payload:
            payload["props"] = _sanitize.to_json_safe(payload["props"], redact=self.redact)
        if "error" in payload:
            payload["error"] = self._clean_error(payload["error"])
        if event_type is None:
            event_type = "error" if "error" in payload else "metric"
        data: Any = payload
        return event_type, data

    def _clean_error(self, error: dict[str, str]) -> ErrorData:
        cleaned: dict[str, str] = {}
        for key, text in error.items():
            if key == "stack":
                cleaned[key] = _sanitize.clean_stack(self._redacted(text, 4 * _sanitize.MAX_STACK))
            elif key == "message":
                cleaned[key] = _sanitize.clean_text(
                    self._redacted(text, 4 * _sanitize.MAX_MESSAGE), _sanitize.MAX_MESSAGE
                )
            else:
                cleaned[key] = _sanitize.clean_text(text, _sanitize.MAX_NAME)
        result: ErrorData = cleaned  # type: ignore[assignment]
        return result

    def _redacted(self, text: str, scan_limit: int) -> str:
        """Redacts at most ``scan_limit`` characters, so a huge message costs bounded time."""
        if len(text) > scan_limit:
            text = f"{text[:scan_limit]}...[truncated {len(text) - scan_limit} chars]"
        return _redact.redact_text(text) if self.redact else text

    def serialize_event(self, data: TelemetryData) -> str:
        """The JSON text of one event, as it goes on the wire, with its props bounded."""
        fields: Any = data
        text = self.jsonify_log_record(fields)
        if "props" in data and len(text) > _sanitize.MAX_PROPS_BYTES // 4:  # props may be over
            bounded = _sanitize.bound_props(data["props"])
            if bounded is not data["props"]:
                text = self.jsonify_log_record({**data, "props": bounded})
        return text

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        """One reused encoder: values are plain JSON by now (python-json-logger's encoder
        already converted the odd ones, and there are no cycles left to check for)."""
        return self._encode(log_data)

    def format(self, record: logging.LogRecord) -> str:
        """The record's payload as JSON, or ``""`` for a record that carries no telemetry."""
        event = self.build_event(record)
        return "" if event is None else self.serialize_event(event[1])
