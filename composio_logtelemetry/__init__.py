"""Composio telemetry through the standard ``logging`` module.

``logger.info("done", extra={"telemetry": {...}})`` and ``logger.exception(...)`` become
Composio metric and error events, delivered in the background by a ``QueueListener``.
"""

from ._version import __version__
from .api import create_event, flush, push_event, setup, shutdown, timed
from .formatter import TelemetryFormatter
from .handler import TelemetryHandler
from .models import (
    EnvironmentType,
    ErrorData,
    Event,
    EventType,
    LanguageType,
    Metadata,
    ServiceType,
    SourceData,
    TelemetryData,
)
from .queueing import TelemetryQueueHandler, TelemetryQueueListener

__all__ = [
    "EnvironmentType",
    "ErrorData",
    "Event",
    "EventType",
    "LanguageType",
    "Metadata",
    "ServiceType",
    "SourceData",
    "TelemetryData",
    "TelemetryFormatter",
    "TelemetryHandler",
    "TelemetryQueueHandler",
    "TelemetryQueueListener",
    "__version__",
    "create_event",
    "flush",
    "push_event",
    "setup",
    "shutdown",
    "timed",
]
