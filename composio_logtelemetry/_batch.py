"""Encoded events -> requests: what one POST carries, and when a partial batch is due.

Metric events wait here until ``batch_size`` of them are pending, ``flush_interval`` has
passed, or the body would pass ``MAX_BATCH_BYTES``; an error event is a request of its own.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from ._spool import Claim

MAX_BATCH_BYTES = 1024 * 1024


def body_size(body: str) -> int:
    """Bytes one event adds to a request's JSON array: its UTF-8 and a comma."""
    return (len(body) if body.isascii() else len(body.encode("utf-8"))) + 1


def bodies_size(bodies: list[str]) -> int:
    """``body_size`` of them all, counted at C speed when they are ASCII (the usual case)."""
    if all(map(str.isascii, bodies)):
        return sum(map(len, bodies)) + len(bodies)
    return sum(map(body_size, bodies))


@dataclass(eq=False)
class Job:
    """One request's worth of events, and where they came from."""

    kind: str
    bodies: list[str]
    claim: Claim | None = None
    from_spool: bool = False  # also for the halves of a claimed job, which hold no claim
    settled: bool = False
    size: int = -1  # bytes of its body; worked out when not given

    def __post_init__(self) -> None:
        if self.size < 0:
            self.size = 2 + bodies_size(self.bodies)

    @property
    def mergeable(self) -> bool:
        """A batch of this run's metrics, which may travel with others in one request."""
        return self.kind == "metric" and self.claim is None and not self.from_spool

    def payload(self) -> bytes:
        text = self.bodies[0] if self.kind == "error" else "[" + ",".join(self.bodies) + "]"
        return text.encode("utf-8")


@dataclass
class _Pending:
    bodies: list[str] = field(default_factory=list)
    size: int = 2  # the brackets of the JSON array
    started: float = 0.0


class Batcher:
    """Gathers metric bodies into jobs; thread-safe (the listener adds, a flush takes)."""

    def __init__(self, batch_size: int, flush_interval: float) -> None:
        self.events_per_request = batch_size  # fewer once the endpoint answered 413
        self.body_limit: int | None = None  # events per request that passed a 413, if any
        self.flush_interval = flush_interval
        self._lock = threading.Lock()
        self._pending = _Pending()

    def add(self, bodies: list[str], now: float, *, at_once: bool) -> list[Job]:
        """Adds metric bodies that came together; returns the jobs they closed, of
        ``events_per_request`` each (a sender that finds several waiting takes them in one
        request). ``at_once``: close what is pending too.

        Bodies join the pending batch a run at a time, not one by one: the listener adds
        thousands at once."""
        closed: list[Job] = []
        with self._lock:
            start = 0
            while start < len(bodies):
                pending = self._pending
                room = max(0, self.events_per_request - len(pending.bodies))
                run = bodies[start : start + room]
                size = bodies_size(run)
                while len(run) > 1 and pending.size + size > MAX_BATCH_BYTES:
                    run = run[: len(run) // 2]
                    size = bodies_size(run)
                if pending.bodies and (not run or pending.size + size > MAX_BATCH_BYTES):
                    closed.append(self._close())  # full: the run starts the next batch
                    continue
                if not pending.bodies:
                    pending.started = now
                pending.bodies += run
                pending.size += size
                start += len(run)
            pending = self._pending
            if pending.bodies and (
                at_once
                or len(pending.bodies) >= self.events_per_request
                or now - pending.started >= self.flush_interval
            ):
                closed.append(self._close())
        return closed

    def take(self) -> Job | None:
        """What is pending, as a job, whether it is due or not (a flush, a close)."""
        with self._lock:
            return self._close() if self._pending.bodies else None

    def take_due(self, now: float) -> Job | None:
        """What is pending, if it has waited ``flush_interval``."""
        with self._lock:
            pending = self._pending
            due = pending.bodies and now - pending.started >= self.flush_interval
            return self._close() if due else None

    def seconds_until_due(self, now: float) -> float | None:
        """How long until the pending batch is due; None when nothing is pending."""
        pending = self._pending
        if not pending.bodies:
            return None
        return pending.started + self.flush_interval - now

    def shrink_to(self, events: int) -> None:
        """After a 413, later batches start at the size that passed: a proxy's body limit
        stays where it is."""
        self.events_per_request = max(1, min(self.events_per_request, events))
        self.body_limit = self.events_per_request

    def _close(self) -> Job:
        """The pending batch as a job, and a new empty one (call with the lock held)."""
        job = Job("metric", self._pending.bodies, size=self._pending.size)
        self._pending = _Pending()
        return job
