"""Requests -> the endpoint: senders, retries, 413 splits, the spool, replay, and the close.

The listener thread (or, for a handler used directly, the logging thread) adds events; the
batcher closes them into jobs, which wait for a sender; a few sender threads post them. A
free sender takes every batch that waits (up to ``MAX_BATCH_BYTES``) in one request, so a
slow endpoint costs latency, not throughput. Every event ends sent, rejected, spooled or
dropped, and is counted as such. The engine's lifecycle is one value, ``state``: RUNNING,
then DRAINING (nothing may wait past the drain's deadline), then CLOSED (what comes later
goes to the spool).
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from . import _diagnostics
from ._batch import MAX_BATCH_BYTES, Batcher, Job
from ._endpoint import shown_url
from ._runtime import State
from ._spool import Claim, Spool
from ._stats import Counters

if TYPE_CHECKING:  # requests and urllib3 are imported with the first Transport, not here
    from urllib3.util.retry import Retry

    from ._transport import Outcome, Transport

SENDERS = 4
REPLAY_IDLE_RECHECK = 5.0
UNHEALTHY_PROBE_INTERVAL = 10.0
SPOOL_HANDOFF = 0.15
PATIENCE = 1.0
DRAIN_PATIENCE = 0.25
SEND_GATHER_SECONDS = 0.025
MAX_WAITING_BYTES = 2 * MAX_BATCH_BYTES
"""Encoded events that may wait for a sender while the endpoint answers (one job a sender
while it does not); past this the listener waits (``PATIENCE``), then spools: memory stays
bounded, and flat while the endpoint is down."""


class Delivery:
    """Owns batching, retries, spooling and shutdown for one handler."""

    def __init__(
        self,
        transport: Transport,
        spool: Spool | None,
        counters: Counters,
        *,
        batch_size: int,
        flush_interval: float,
        background: bool,
        thread_registry: Callable[[threading.Thread], None],
    ) -> None:
        self.transport = transport
        self.spool = spool
        self.counters = counters
        self.batcher = Batcher(batch_size, flush_interval)
        self.flush_interval = flush_interval
        self.background = background
        self.state = State.RUNNING
        self._register_thread = thread_registry
        self._settle_lock = threading.Condition()
        self._unsettled: set[Job] = set()
        self._work = threading.Condition()  # guards the jobs waiting for a sender
        self._hurry = False  # a flush waits: no sender lets batches gather
        self._waiting: collections.deque[Job] = collections.deque()
        self._waiting_bytes = 0
        self._senders: list[threading.Thread] = []
        self._senders_lock = threading.Lock()
        self._closed = threading.Event()  # wakes retry waits when the state becomes CLOSED
        self._overflowing = False
        self._consecutive_failures = 0
        self._next_replay = 0.0
        self._handoff_at = float("inf")
        self._drain_began = float("inf")
        self._last_accepted = 0.0
        self.last_cause: str | None = None  # of the latest failed attempt, said at exit

    # -- the producing side: listener thread, or the logging thread when used directly -----

    def add(self, kind: str, body: str) -> None:
        if kind == "error":
            self._add_job(Job("error", [body]))
        else:
            self.add_metrics([body])

    def add_metrics(self, bodies: list[str]) -> None:
        """Metric bodies that came together, batched together (see ``Batcher.add``)."""
        if self.closed:
            self._keep_for_later(Job("metric", bodies))
            return
        now = time.monotonic()
        for job in self.batcher.add(bodies, now, at_once=not self.background):
            self._submit(job)
        self._replay_when_due(now)

    def _add_job(self, job: Job) -> None:
        if self.closed:
            self._keep_for_later(job)
            return
        self._submit(job)
        self._replay_when_due(time.monotonic())

    def _replay_when_due(self, now: float) -> None:
        if self.background and now >= self._next_replay and self.spool is not None:
            self._replay()

    def seconds_until_due(self) -> float:
        """How long the listener may sleep before a partial batch or a replay is due."""
        now = time.monotonic()
        wake = self._next_replay - now if self.spool is not None else self.flush_interval
        batch_due = self.batcher.seconds_until_due(now)
        if batch_due is not None:
            wake = min(wake, batch_due)
        return max(0.01, min(wake, self.flush_interval))

    def on_wake(self) -> None:
        """Sends a partial batch that waited ``flush_interval``, and replays the spool."""
        if self.closed:
            return
        job = self.batcher.take_due(time.monotonic())
        if job is not None:
            self._submit(job)
        self._replay()

    def send_pending(self) -> None:
        """A flush: the partial batch, and what a sender lets gather, are sent now."""
        job = self.batcher.take()
        if job is not None:
            self._submit(job)
        with self._work:
            self._hurry = True
            self._work.notify_all()

    def _submit(self, job: Job) -> None:
        with self._settle_lock:
            self._unsettled.add(job)
        if not self.background:
            self._deliver(job)
            return
        self.start_senders()
        if self.closed:
            self._keep_for_later(job)
            return
        if not self._wait_for_room(job):
            self._overflowing = True
            self._settle_failed(job, "endpoint not keeping up")

    def _wait_for_room(self, job: Job) -> bool:
        """Puts ``job`` where the senders take work. Every sender is busy when there is no
        room: a slow or flaky endpoint makes room soon; a hung or dead one does not, and then
        waiting would only fill the record queue, so after ``PATIENCE`` it returns False."""
        patience = 0.0 if self._overflowing else (PATIENCE if self._running else DRAIN_PATIENCE)
        give_up_at = min(time.monotonic() + patience, self._handoff_at)
        with self._work:
            while not self.closed:
                if len(self._waiting) < SENDERS or (
                    self.healthy and self._waiting_bytes + job.size <= MAX_WAITING_BYTES
                ):
                    self._waiting.append(job)
                    self._waiting_bytes += job.size
                    self._overflowing = False
                    if len(self._waiting) == 1:  # else the sender woken before takes it too
                        self._work.notify()
                    return True
                remaining = give_up_at - time.monotonic()
                if remaining <= 0:
                    break
                self._work.wait(min(remaining, 0.05))
        return False

    def _next_job(self) -> Job | None:
        """What a free sender posts next (None once the engine is closed): the oldest job,
        with the batches of metrics that wait behind it, up to ``MAX_BATCH_BYTES``.

        Woken by the first batch of a busy run, a sender lets the next ones come for
        ``SEND_GATHER_SECONDS``: one request then carries them all, rather than each costing
        a request (and the application's thread a GIL hand-over)."""
        gathered = False
        with self._work:
            while True:
                if self.closed:
                    return None
                if not self._waiting:
                    self._work.wait()
                elif not gathered and self._worth_gathering():
                    gathered = True
                    self._work.wait(SEND_GATHER_SECONDS)
                else:
                    break
            job = self._waiting.popleft()
            if not self._waiting:
                self._hurry = False  # the flush's batches are on their way
            self._waiting_bytes -= job.size
            if job.mergeable and self._waiting and self._waiting[0].mergeable:
                job = self._merged(job)
            self._work.notify_all()  # room for a listener that waits
            return job

    def _worth_gathering(self) -> bool:
        """A metric batch of this run waits alone while the endpoint answers and the
        pipeline runs (a drain or a flush must not wait; neither may a full request)."""
        return (
            self._running
            and not self._hurry
            and self.healthy
            and self._waiting[0].mergeable
            and self._waiting_bytes < MAX_BATCH_BYTES // 2
        )

    def _merged(self, first: Job) -> Job:
        """``first`` and the mergeable jobs after it as one job (call with ``_work`` held)."""
        parts, size, events = [first], first.size, len(first.bodies)
        limit = self.batcher.body_limit
        while self._waiting and self._waiting[0].mergeable:
            following = self._waiting[0]
            if size + following.size > MAX_BATCH_BYTES or (
                limit is not None and events + len(following.bodies) > limit
            ):
                break
            self._waiting.popleft()
            self._waiting_bytes -= following.size
            parts.append(following)
            size += following.size
            events += len(following.bodies)
        if len(parts) == 1:
            return first
        merged = Job("metric", [body for part in parts for body in part.bodies], size=size)
        with self._settle_lock:  # one job settles for them all
            self._unsettled.difference_update(parts)
            self._unsettled.add(merged)
        return merged

    # -- replaying the spool -------------------------------------------------------------

    def _replay(self) -> bool:
        """Claims spooled events for the senders; True if it submitted any."""
        if self.spool is None:
            return False
        now = time.monotonic()
        if now < self._next_replay:
            return False
        if not self.healthy:
            self._next_replay = now + UNHEALTHY_PROBE_INTERVAL
            if self._unsettled:
                return False  # jobs in flight already probe the endpoint
        submitted = False
        while len(self._waiting) < SENDERS:
            job = self._claimed_job()
            if job is None:
                self._next_replay = now + REPLAY_IDLE_RECHECK
                return submitted
            self.start_senders()
            if not self._wait_for_room(job):
                self._release(job)
                return submitted
            submitted = True
            if not self.healthy:
                break  # one probe at a time while the endpoint is down
        return submitted

    def replay_now(self) -> int:
        """Claims one batch from the spool and delivers it on this thread, as the senders
        would (413 splits included; no retries): ``spool replay``. Returns how many events
        it claimed, 0 once the spool is empty."""
        job = self._claimed_job()
        if job is None:
            return 0
        self._deliver(job)
        return len(job.bodies)

    def _claimed_job(self) -> Job | None:
        """The next batch in the spool, claimed, as a job; None when there is none."""
        assert self.spool is not None
        try:
            claim = self.spool.claim(self.batcher.events_per_request)
            expired = self.spool.expired_count_and_reset()
        except Exception as exc:
            _diagnostics.warn("spool-read", f"cannot read the spool {self.spool.path}: {exc}")
            claim, expired = None, 0
        if expired:
            self.counters.add("spool_expired", expired)
        if claim is None:
            return None
        job = Job(claim.kind, list(claim.bodies), claim, from_spool=True)
        with self._settle_lock:
            self._unsettled.add(job)
        return job

    # -- the sender side ---------------------------------------------------------------------

    def start_senders(self) -> None:
        if self._senders or self.closed:
            return
        with self._senders_lock:
            if not self._senders:
                self.transport.open()
                try:
                    self._senders = [self._start_sender(number) for number in range(SENDERS)]
                except RuntimeError:  # Python 3.12 at exit: "can't create new thread at ..."
                    self.state = State.CLOSED

    def _start_sender(self, number: int) -> threading.Thread:
        thread = threading.Thread(
            target=self._send_forever, name=f"composio-telemetry-sender-{number}", daemon=True
        )
        thread.start()
        self._register_thread(thread)
        return thread

    def _send_forever(self) -> None:
        while True:
            job = self._next_job()
            if job is None:
                return
            try:
                self._deliver(job)
            except Exception as exc:  # never let a sender die
                _diagnostics.warn("sender", f"telemetry sender error: {exc!r}")
                self._settle_failed(job, repr(exc))

    def _deliver(self, job: Job) -> None:
        retry: Retry = self.transport.retry_policy
        body = job.payload()
        while not self.closed:
            outcome = self.transport.post(job.kind, body)
            if outcome.delivered:
                self._last_accepted = time.monotonic()
                self._mark_health(True)
                self._settle_sent(job)
                return
            if not self.transport.is_retryable(outcome):
                self._mark_health(True)
                if outcome.too_large and len(job.bodies) > 1:
                    self._split(job)
                else:
                    self._settle_rejected(job, outcome)
                return
            self._mark_health(False)
            self._failed_attempt(outcome)
            step = None if outcome.lasting else self.transport.next_wait(retry, outcome, job.kind)
            if step is None or not self.background:
                self._settle_failed(job, outcome.cause)
                return
            retry, wait = step
            if time.monotonic() + wait >= self._handoff_at:
                self._settle_failed(job, outcome.cause)
                return
            self.counters.add("retried", len(job.bodies))
            if self._closed.wait(wait):
                return  # shutdown: the closer spools what is still unsettled

    def _split(self, job: Job) -> None:
        """A batch the endpoint finds too large (413) goes again as two halves, each settled
        on its own: only an event too large by itself ends rejected."""
        half = len(job.bodies) // 2
        self.batcher.shrink_to(half)
        parts = [
            Job(job.kind, bodies, from_spool=job.from_spool)
            for bodies in (job.bodies[:half], job.bodies[half:])
        ]
        with self._settling(job) as mine:
            if not mine:
                return
            with self._settle_lock:
                self._unsettled.update(parts)
            if job.claim is not None:  # its events travel on in the parts
                self._finish_claim(job.claim, delivered=True)
        self.counters.add("retried", len(job.bodies))
        _diagnostics.warn(
            "split-413",
            f"the telemetry endpoint refused {len(job.bodies)} events in one request as too "
            "large (HTTP 413): sending them, and the events after them, in smaller requests",
        )
        for part in parts:
            self._deliver(part)
            if self.closed:  # close() may have listed the unsettled before this
                self._settle_failed(part, "shutdown timeout")

    def _failed_attempt(self, outcome: Outcome) -> None:
        """Remembers the cause; in a drain, an endpoint that has accepted nothing since the
        drain began and does not even answer (refused, hung, a certificate that does not
        verify) is not worth the user's wait: the drain's deadline becomes now, so what is
        left goes to the spool at once. One that answers (a reset, a 503) keeps the budget."""
        self.last_cause = outcome.cause
        if not self._running and outcome.unanswered and self._last_accepted < self._drain_began:
            self._handoff_at = min(self._handoff_at, time.monotonic())

    @property
    def _running(self) -> bool:
        return self.state is State.RUNNING

    @property
    def closed(self) -> bool:
        """Read anew at every use: another thread closes the engine."""
        return self.state is State.CLOSED

    @property
    def healthy(self) -> bool:
        """The last attempt succeeded: the moment to replay the spool."""
        return self._consecutive_failures == 0

    def _mark_health(self, healthy: bool) -> None:
        if healthy:
            if not self.healthy:
                self._next_replay = 0.0
            self._overflowing = False
            self._consecutive_failures = 0
        else:
            self._consecutive_failures += 1

    # -- settling: each job ends exactly once --------------------------------------------------

    @contextlib.contextmanager
    def _settling(self, job: Job) -> Iterator[bool]:
        """Yields True to the one caller that settles ``job``; waiters wake once it is recorded."""
        with self._settle_lock:
            mine = not job.settled
            job.settled = True
        try:
            yield mine
        finally:
            if mine:
                with self._settle_lock:
                    self._unsettled.discard(job)
                    self._settle_lock.notify_all()

    def _settle_sent(self, job: Job) -> None:
        with self._settling(job) as mine:
            if not mine:
                return
            self.counters.add("sent", len(job.bodies))
            if job.from_spool:
                self.counters.add("replayed", len(job.bodies))
            if job.claim is not None:
                self._finish_claim(job.claim, delivered=True)

    def _settle_rejected(self, job: Job, outcome: Outcome) -> None:
        with self._settling(job) as mine:
            if not mine:
                return
            self.counters.add("rejected", len(job.bodies))
            url = shown_url(self.transport.urls[job.kind])
            _diagnostics.warn(
                f"rejected-{outcome.status}",
                f"the telemetry endpoint rejected {len(job.bodies)} event(s) with "
                f"{outcome.describe()} ({url}); they are dropped",
            )
            if job.claim is not None:
                self._finish_claim(job.claim, delivered=True)

    def _settle_failed(self, job: Job, reason: str) -> None:
        with self._settling(job) as mine:
            if not mine:
                return
            if job.claim is not None:
                self._finish_claim(job.claim, delivered=False)
                return
            self.counters.add("failed", len(job.bodies))
            self._spool_or_drop(job, reason)

    def _spool_or_drop(self, job: Job, reason: str) -> None:
        if self.spool is None:
            self.counters.add("dropped", len(job.bodies))
            _diagnostics.warn(
                "dropped", f"telemetry could not be delivered ({reason}) and the spool is off"
            )
            return
        try:
            evicted = self.spool.add(job.kind, job.bodies)
        except Exception as exc:
            self.counters.add("dropped", len(job.bodies))
            _diagnostics.warn("spool-write", f"cannot write the spool {self.spool.path}: {exc}")
            return
        self.counters.add("spooled", len(job.bodies))
        if self._running:  # the exit line says it otherwise
            _diagnostics.warn(
                "spooling",
                f"telemetry not delivered ({reason}): saved to the spool ({self.spool.path}), "
                "to be sent when the endpoint answers again",
            )
        if evicted:
            self.counters.add("spool_evicted", evicted)
            _diagnostics.warn(
                "spool-evicted",
                f"the spool {self.spool.path} is full (spool_max_bytes="
                f"{self.spool.max_bytes}): its oldest events are dropped",
            )

    def _keep_for_later(self, job: Job) -> None:
        with self._settle_lock:
            self._unsettled.add(job)
        if self.spool is not None:
            _diagnostics.warn(
                "late",
                "telemetry logged when it can no longer be sent (after its handler shut down, "
                "or during exit where no thread may start) is saved to the spool "
                f"({self.spool.path}) for the next run",
            )
        self._settle_failed(job, "logged after shutdown")

    def _release(self, job: Job) -> None:
        with self._settling(job) as mine:
            if mine and job.claim is not None:
                self._finish_claim(job.claim, delivered=False)

    def _finish_claim(self, claim: Claim, *, delivered: bool) -> None:
        assert self.spool is not None
        try:
            self.spool.settle(claim, delivered)
        except Exception as exc:
            _diagnostics.warn("spool-settle", f"cannot update the spool {self.spool.path}: {exc}")

    # -- flush and close -------------------------------------------------------------------

    def wait_idle(self, deadline: float) -> bool:
        """Waits until every submitted job is settled; False if ``deadline`` came first."""
        with self._settle_lock:
            while self._unsettled:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._settle_lock.wait(remaining)
        return True

    def begin_drain(self, deadline: float) -> None:
        """From now on, nothing may wait past ``deadline``: retries give up early."""
        if self.state is State.RUNNING:
            self.state = State.DRAINING
            self._drain_began = time.monotonic()
        self._handoff_at = min(self._handoff_at, deadline - SPOOL_HANDOFF)

    def close(self, deadline: float) -> None:
        """Sends what it can until ``deadline``, then spools whatever is still unsettled."""
        self.begin_drain(deadline)
        self.send_pending()
        # Within the budget the drain goes on while the endpoint makes progress: what this
        # run spooled (a batch out of retries) and what earlier runs spooled go too.
        while (
            self.wait_idle(self._handoff_at)
            and self._senders
            and time.monotonic() < self._handoff_at
            and (self.healthy or self._last_accepted >= self._drain_began)
        ):
            self._next_replay = 0.0
            if not self._replay():
                break
        self.state = State.CLOSED
        self._closed.set()
        with self._work:
            self._work.notify_all()  # senders waiting for work end
        pending = self.batcher.take()  # what another thread added since send_pending
        with self._settle_lock:
            if pending is not None:
                self._unsettled.add(pending)
            leftovers = list(self._unsettled)
        for job in leftovers:
            if job.claim is not None:
                self._release(job)
            else:
                self._settle_failed(job, "shutdown timeout")
        self.wait_idle(time.monotonic() + SPOOL_HANDOFF)  # a sender may be spooling one still
        self.transport.close()
