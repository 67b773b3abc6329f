"""Batches: no request body is above the byte cap, however bulky the events."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from composio_logtelemetry._batch import MAX_BATCH_BYTES, Batcher, body_size
from composio_logtelemetry._delivery import SEND_GATHER_SECONDS, Delivery
from composio_logtelemetry._stats import Counters
from composio_logtelemetry._transport import Transport
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


def _one_by_one(
    pending: list[str], bodies: list[str], per_request: int
) -> tuple[list[list[str]], list[str]]:
    """The batching rule, body by body: a batch closes before the body that would take it
    past ``per_request`` events or ``MAX_BATCH_BYTES``."""
    closed = []
    for body in bodies:
        size = 2 + sum(map(body_size, pending))
        if pending and (size + body_size(body) > MAX_BATCH_BYTES or len(pending) >= per_request):
            closed.append(pending)
            pending = []
        pending = [*pending, body]
    if len(pending) >= per_request:
        closed.append(pending)
        pending = []
    return closed, pending


_bodies = st.lists(
    st.sampled_from(["{}", '{"a":"é"}', "x" * 300_000, "é" * 200_000, "y" * (MAX_BATCH_BYTES + 5)]),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(adds=st.lists(_bodies, min_size=1, max_size=4), per_request=st.integers(1, 12))
def test_bodies_added_in_runs_are_batched_as_one_by_one(
    adds: list[list[str]], per_request: int
) -> None:
    """The listener adds thousands of bodies at once; the batches are those of the rule
    applied to each body in turn, whatever their sizes (non-ASCII, above the cap alone)."""
    batcher = Batcher(per_request, flush_interval=60.0)
    pending: list[str] = []
    for bodies in adds:
        expected, pending = _one_by_one(pending, bodies, per_request)
        jobs = batcher.add(bodies, 0.0, at_once=False)
        assert [job.bodies for job in jobs] == expected
        assert all(job.size == 2 + sum(map(body_size, job.bodies)) for job in jobs)
    last = batcher.take()
    assert (last.bodies if last else []) == pending


def test_a_batch_larger_than_a_shrunk_limit_closes_before_the_next_body() -> None:
    """After a 413 the limit may drop below what is already pending."""
    batcher = Batcher(10, flush_interval=60.0)
    assert batcher.add(["{}"] * 8, 0.0, at_once=False) == []
    batcher.shrink_to(3)
    jobs = batcher.add(["{}"] * 10, 0.0, at_once=False)
    assert [len(job.bodies) for job in jobs] == [8, 3, 3, 3]
    last = batcher.take()
    assert last is not None and len(last.bodies) == 1


@pytest.fixture
def delivery(endpoint: FaultyEndpoint) -> Iterator[Delivery]:
    """The engine behind the listener, sending to the test's endpoint."""
    transport = Transport(
        endpoint.base_url, timeout=5.0, max_retries=0, retry_backoff=0.0, pool_size=4
    )
    engine = Delivery(
        transport,
        None,
        Counters(),
        batch_size=10,
        flush_interval=60.0,
        background=True,
        thread_registry=lambda thread: None,
    )
    yield engine
    engine.close(time.monotonic() + 2.0)


def _metric(number: int) -> str:
    return f'{{"functionName":"F","props":{{"n":{number}}},"source":{{"language":"python"}}}}'


def test_batches_closed_while_a_sender_gathers_go_in_one_request(
    endpoint: FaultyEndpoint, delivery: Delivery
) -> None:
    """A busy listener closes a batch every few milliseconds; the sender woken by the first
    lets the next ones come, so a request carries many batches, not one each."""
    gap = SEND_GATHER_SECONDS / 10
    for batch in range(10):
        delivery.add_metrics([_metric(batch * 10 + n) for n in range(10)])  # closes one job
        time.sleep(gap)  # the pace of a listener; not a synchronisation
    assert delivery.wait_idle(time.monotonic() + 10.0)
    assert sum(endpoint.batches) == 100
    assert len(endpoint.batches) <= 5, endpoint.batches  # one request per batch without it


def test_a_flush_does_not_wait_for_a_sender_to_gather(
    endpoint: FaultyEndpoint, delivery: Delivery
) -> None:
    """Each flush sends its partial batch at once: five flushes in a row take less than the
    five gathering waits they would otherwise cost."""
    started = time.monotonic()
    for number in range(5):
        delivery.add_metrics([_metric(number)])
        delivery.send_pending()
        assert delivery.wait_idle(time.monotonic() + 10.0)
    assert time.monotonic() - started < 5 * SEND_GATHER_SECONDS
    assert len(endpoint.batches) == 5
