"""Counters: an event that is not sent is counted, and an invalid one is explained on stderr
once per kind of problem, naming the field."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from conftest import FaultyEndpoint
from hostile import ExplodingMapping, ItemlessDict, Unprintable


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
