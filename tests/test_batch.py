"""Batches: no request body is above the byte cap, however bulky the events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from composio_logtelemetry._batch import MAX_BATCH_BYTES
from conftest import FaultyEndpoint


class MeasuringEndpoint(FaultyEndpoint):
    """Also records the size of every request body it accepts."""

    def __init__(self) -> None:
        self.body_sizes: list[int] = []
        super().__init__()

    def accept(self, kind: str, body: bytes) -> None:
        with self.changed:
            self.body_sizes.append(len(body))
        super().accept(kind, body)


@pytest.fixture
def measuring_endpoint() -> Iterator[MeasuringEndpoint]:
    server = MeasuringEndpoint()
    yield server
    server.close()


def test_no_request_is_above_the_byte_cap(
    measuring_endpoint: MeasuringEndpoint, pipeline: Any
) -> None:
    logger, handler = pipeline(endpoint=measuring_endpoint.base_url, batch_size=100)
    bulky = {f"field_{n}": f"{n}" * 4000 for n in range(7)}  # ~28 KB, under the props cap
    for _ in range(100):
        logger.info("bulky", extra={"telemetry": {"functionName": "Big", "props": bulky}})
    oversized = {f"field_{n}": "y" * 4000 for n in range(50)}
    logger.info("too big", extra={"telemetry": {"functionName": "Huge", "props": oversized}})
    try:
        raise RuntimeError("m" * 3_000_000)
    except RuntimeError:
        logger.exception("huge message")
    assert handler.flush(10.0)
    assert len(measuring_endpoint.of_kind("metric")) == 101
    assert len(measuring_endpoint.of_kind("error")) == 1
    assert max(measuring_endpoint.body_sizes) <= MAX_BATCH_BYTES
    assert len(measuring_endpoint.batches) >= 3  # 100 x 28 KB had to be split
    [huge] = [e for e in measuring_endpoint.of_kind("metric") if e["functionName"] == "Huge"]
    assert "some dropped" in huge["props"]["_truncated"]
    [error] = measuring_endpoint.of_kind("error")
    assert "...[truncated" in error["error"]["message"]
    assert measuring_endpoint.violations == []
