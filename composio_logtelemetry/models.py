"""The Composio telemetry data model, with the wire's camelCase keys.

These mirror ``composio/core/models/_telemetry.py`` so that code written against the
Composio SDK type-checks unchanged against this library.
"""

from __future__ import annotations

import enum
from typing import Any, Literal, TypedDict

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
]


class ServiceType(str, enum.Enum):
    SDK = "sdk"
    APOLLO = "apollo"
    HERMES = "hermes"
    THERMOS = "thermos"


class LanguageType(str, enum.Enum):
    PYTHON = "python"
    TYPESCRIPT = "typescript"
    GO = "go"
    RUST = "rust"


class EnvironmentType(str, enum.Enum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"
    CI = "ci"
    STAGING = "staging"
    TEST = "test"


class _ErrorName(TypedDict):
    name: str


class ErrorData(_ErrorName, total=False):
    code: str
    errorId: str
    message: str
    stack: str


class SourceData(TypedDict, total=False):
    host: str
    service: str
    language: str
    version: str
    platform: str
    environment: str


class Metadata(TypedDict, total=False):
    projectId: str
    provider: str


class _FunctionName(TypedDict):
    functionName: str


class TelemetryData(_FunctionName, total=False):
    durationMs: float
    timestamp: float
    props: dict[str, Any]
    source: SourceData
    metadata: Metadata
    error: ErrorData


EventType = Literal["metric", "error"]
Event = tuple[EventType, TelemetryData]
