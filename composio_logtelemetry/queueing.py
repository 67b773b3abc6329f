"""The application-side half: ``TelemetryQueueHandler`` and its ``TelemetryQueueListener``.

Each override of ``logging.handlers`` says in its docstring what the stdlib does that a
telemetry pipeline can't afford.
"""

from __future__ import annotations

import copy
import logging
import logging.handlers
import queue
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any

from . import _diagnostics, _runtime, _sigterm
from ._capture import QueuedRecord, capture
from ._delivery import SPOOL_HANDOFF
from ._options import check_bool, check_seconds, disabled_by_environment
from ._runtime import (
    State,
    holds_logging_lock,
    register_library_thread,
    run_outside_logging_lock,
)
from ._stats import STAT_KEYS
from .handler import TelemetryHandler
from .models import Event

__all__ = ["TelemetryQueueHandler", "TelemetryQueueListener"]

EXCLUDED_LOGGERS = frozenset({"composio_logtelemetry", "urllib3", "requests", "charset_normalizer"})
DEFAULT_MAXSIZE = 10_000
DEFAULT_SHUTDOWN_TIMEOUT = 5.0


BURST = 2048  # records the listener takes from the queue at once
GATHER_SECONDS = 0.002  # how long a listener woken by one record lets the next ones come


_USUAL_ITEMS = frozenset({QueuedRecord, tuple})  # records for telemetry alone, events


class _Burst(list[Any]):
    """Records the listener took from the queue in one go (see ``dequeue``)."""


class _FlushRequest:
    """Travels through the queue behind everything logged before ``flush()`` was called."""

    def __init__(self) -> None:
        self.done = threading.Event()


class TelemetryQueueListener(logging.handlers.QueueListener):
    """Runs the telemetry handlers on one background thread."""

    def __init__(
        self, queue: Any, *handlers: logging.Handler, respect_handler_level: bool = False
    ) -> None:
        """Tells its telemetry handlers that they run behind a listener, so they batch and
        send in the background (directly on a logger they send at once)."""
        super().__init__(queue, *handlers, respect_handler_level=respect_handler_level)
        self.telemetry_handlers = [h for h in handlers if isinstance(h, TelemetryHandler)]
        for handler in self.telemetry_handlers:
            handler.background = True
        self.owner: weakref.ref[TelemetryQueueHandler] | None = None
        self._sentinel_met = False  # while taking what waits: the stdlib's loop sees it next

    def start(self) -> None:
        """Starts the senders first (Python 3.12+ refuses new threads once exit began), then
        the stdlib's thread, named and registered so that what it logs is never telemetry."""
        for handler in self.telemetry_handlers:
            handler.start_background()
        super().start()
        thread = getattr(self, "_thread", None)
        if isinstance(thread, threading.Thread):
            thread.name = "composio-telemetry-listener"
            register_library_thread(thread)

    def dequeue(self, block: bool) -> Any:
        """Takes what waits in the queue at once (the stdlib takes one record per turn of its
        loop), and waits at most until a partial batch is due (the stdlib blocks forever).

        A busy queue is read without working out that wait, which is most of the cost."""
        records: Any = self.queue
        if self._sentinel_met:
            self._sentinel_met = False
            return getattr(self, "_sentinel", None)
        try:
            first = records.get(False)
        except queue.Empty:
            if not block:
                raise
        else:
            return self._with_what_waits(first)
        while True:
            timeout = min(
                (h.seconds_until_due() for h in self.telemetry_handlers),
                default=None,
            )
            try:
                first = records.get(True, timeout)
            except queue.Empty:
                self._wake_handlers()
                continue
            if first is getattr(self, "_sentinel", None) or isinstance(first, _FlushRequest):
                return first
            # Woken by one record: what the application logs next joins it, rather than
            # each record costing the listener a wake-up (and both threads a GIL hand-over).
            time.sleep(GATHER_SECONDS)
            return self._with_what_waits(first)

    def _with_what_waits(self, first: Any) -> Any:
        """``first``, or a ``_Burst`` of it and the records queued behind it."""
        records: Any = self.queue
        sentinel = getattr(self, "_sentinel", None)
        if first is sentinel:
            return first
        burst = _Burst((first,))
        get, append = records.get_nowait, burst.append
        for _ in range(BURST - 1):
            try:
                item = get()
            except queue.Empty:
                break
            if item is sentinel:  # the stdlib's loop must see it on its own
                self._sentinel_met = True
                break
            append(item)
        return burst if len(burst) > 1 else first

    def _wake_handlers(self) -> None:
        for handler in self.telemetry_handlers:
            try:
                handler.on_wake()
            except Exception as exc:
                _diagnostics.warn("listener-wake", f"telemetry delivery error: {exc!r}")

    def handle(self, record: Any) -> None:
        """Routes flush markers and ``push_event`` events; never lets an error kill the thread."""
        if type(record) is _Burst:
            self._handle_burst(record)
            if hasattr(self.queue, "task_done"):  # the stdlib calls it once for the burst
                for _ in range(len(record) - 1):
                    self.queue.task_done()
        elif self._straight_to_telemetry(record):
            self._emit_run([record])
        else:
            try:
                if isinstance(record, _FlushRequest):
                    for handler in self.telemetry_handlers:
                        handler.send_pending()
                    record.done.set()
                else:
                    super().handle(record)
            except Exception as exc:
                _diagnostics.warn("listener-handle", f"telemetry listener error: {exc!r}")

    def _straight_to_telemetry(self, item: Any) -> bool:
        """A record for the telemetry handlers alone (they are all behind us, unfiltered), or
        what ``push_event`` was given (an event, or whatever it says is wrong)."""
        kind = type(item)  # the usual items first: this runs for every one
        if kind is tuple:
            return True
        if kind is QueuedRecord:
            return not self.respect_handler_level
        return not isinstance(item, logging.LogRecord | _FlushRequest)

    def _handle_burst(self, burst: _Burst) -> None:
        """Telemetry records and events go to the handlers together, in runs that end at
        whatever else the queue held (a flush marker, a record for other handlers)."""
        if not self.respect_handler_level and _USUAL_ITEMS.issuperset(map(type, burst)):
            self._emit_run(burst)  # the usual burst: one run
            return
        run: list[Any] = []
        for item in burst:
            if self._straight_to_telemetry(item):
                run.append(item)
                continue
            if run:
                self._emit_run(run)
                run = []
            self.handle(item)
        if run:
            self._emit_run(run)

    def _emit_run(self, run: list[Any]) -> None:
        try:
            for handler in self.telemetry_handlers:
                handler.emit_many(run)
        except Exception as exc:
            _diagnostics.warn("listener-handle", f"telemetry listener error: {exc!r}")

    def stop(self, timeout: float | None = None) -> bool:  # type: ignore[override]
        """Stops within ``timeout``; returns False if records were still being processed.
        The stdlib's ``stop`` waits forever, and its ``enqueue_sentinel`` cannot wait for room
        in a full queue: the sentinel is put here, within the same ``timeout``.

        Without a timeout, as in the stdlib recipe ``atexit.register(handler.listener.stop)``,
        it shuts the owning queue handler down instead: bounded by its ``shutdown_timeout``,
        with the one line on stderr that says what was not delivered.
        """
        owner = None if self.owner is None else self.owner()
        if timeout is None and owner is not None and owner.listener is self:
            owner.shutdown()
            timeout = 0.0  # done, unless nothing was ever logged: then just ask it to end
        thread = getattr(self, "_thread", None)
        if thread is None:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        records: Any = self.queue
        try:
            records.put(getattr(self, "_sentinel", None), True, timeout)
        except queue.Full:
            return False
        thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            return False
        self._thread = None
        return True


class TelemetryQueueHandler(logging.handlers.QueueHandler):
    """Queues records that carry telemetry; costs the logging thread next to nothing.

    In ``dictConfig`` give ``handlers`` (names, any order) on every Python; options such as
    ``shutdown_timeout`` and ``maxsize`` go in the ``"."`` key (see README.rst), because
    Python 3.12's dictConfig passes a QueueHandler subclass nothing but its queue.
    """

    handle_sigterm = _sigterm.HandleSigterm()

    def __init__(
        self,
        queue: Any = None,
        *,
        handlers: Iterable[logging.Handler | str] = (),
        respect_handler_level: bool = False,
        maxsize: int = DEFAULT_MAXSIZE,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        handle_sigterm: bool = True,
        level: int | str = logging.NOTSET,
    ) -> None:
        if queue is not None and not callable(getattr(queue, "put_nowait", None)):
            raise TypeError(
                f"queue must be a queue object, got {type(queue).__name__} (dictConfig builds "
                "one from a 'queue' key on Python 3.12+ only; elsewhere set 'maxsize' in '.')"
            )
        super().__init__(_new_queue() if queue is None else queue)
        self.setLevel(level)
        self.listener = None
        self.handler_refs: list[logging.Handler | str] = list(handlers)
        self.respect_handler_level = respect_handler_level
        self.maxsize = maxsize
        self.shutdown_timeout = shutdown_timeout
        self.handle_sigterm = handle_sigterm  # drains on SIGTERM (see _sigterm)
        self.disabled = disabled_by_environment()
        self._state = State.IDLE
        self._state_pid = 0  # the process the state is of: a forked child starts IDLE
        self._start_lock = threading.Lock()
        self._drop_lock = threading.Lock()
        self._dropped_queue_full = 0
        self._losses_at_flush = 0  # dropped and undelivered, as the last flush() saw them
        self._compact = False
        _runtime.add_pipeline(self)

    @property
    def maxsize(self) -> int:
        """Records the queue may hold; beyond, they are dropped and counted."""
        return self._maxsize

    @maxsize.setter
    def maxsize(self, value: int) -> None:  # checked here: dictConfig's "." sets attributes
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"maxsize must be an integer >= 1, got {value!r}")
        self._maxsize = value

    @property
    def respect_handler_level(self) -> bool:
        """As the stdlib's: the listener passes a record only to handlers whose level it meets."""
        return self._respect_handler_level

    @respect_handler_level.setter
    def respect_handler_level(self, value: bool) -> None:
        self._respect_handler_level = check_bool("respect_handler_level", value)

    @property
    def shutdown_timeout(self) -> float:
        """Seconds the application may wait at exit for telemetry to be delivered."""
        return self._shutdown_timeout

    @shutdown_timeout.setter
    def shutdown_timeout(self, value: float) -> None:
        self._shutdown_timeout = check_seconds("shutdown_timeout", value, minimum=0.0)

    @property
    def state(self) -> State:
        """This process's pipeline: IDLE until its first record, RUNNING, then CLOSED."""
        return self._state if self._state_pid == _runtime.pid else State.IDLE

    @property
    def listener(self) -> TelemetryQueueListener | None:
        return self._listener

    @listener.setter
    def listener(self, listener: logging.handlers.QueueListener | None) -> None:
        """Python 3.12+'s dictConfig hands over a plain QueueListener: ours replaces it at once,
        so that the stdlib recipe ``handler.listener.start()`` starts the right one."""
        if listener is not None and not isinstance(listener, TelemetryQueueListener):
            listener = TelemetryQueueListener(
                listener.queue,
                *listener.handlers,
                respect_handler_level=listener.respect_handler_level,
            )
        if listener is not None:
            listener.owner = weakref.ref(self)
        self._listener = listener

    # -- the logging thread's path: as short as we can make it -------------------------------

    def handle(self, record: logging.LogRecord) -> bool:
        """Drops what can't be telemetry before any work; skips the handler lock (the queue is
        thread-safe), so ``emit`` never waits on another thread."""
        if record.exc_info is None and record.__dict__.get("telemetry") is None:
            return False
        if self.disabled:
            return False
        if self.filters:
            filtered = self.filter(record)  # 3.12+ filters may return a replacement record
            if not filtered:
                return False
            if isinstance(filtered, logging.LogRecord):
                record = filtered
        if (
            record.name.partition(".")[0] in EXCLUDED_LOGGERS
            or threading.get_ident() in _runtime.library_threads
        ):
            return False
        if self._state_pid != _runtime.pid:
            self._start()
            if self.disabled:  # every telemetry handler is disabled: nothing will read the queue
                return False
        try:
            if self._state is State.CLOSED:
                self._handle_now(self.prepare(record))
            else:
                self.enqueue(self.prepare(record))
        except Exception:
            self.handleError(record)
        return True

    def prepare(self, record: logging.LogRecord) -> Any:
        """Captures what the listener will need before the application moves on (see
        ``_capture``): the stdlib formats and copies every record, but a telemetry record
        needs no formatting, and when only telemetry handlers listen, a fifth-of-the-size
        ``QueuedRecord`` waits in the queue instead of the copy."""
        prepared = QueuedRecord(record) if self._compact else copy.copy(record)
        capture(prepared)
        return prepared

    def enqueue(self, record: Any) -> None:
        """Drops and counts when full: the stdlib raises (and prints a traceback per record)
        or, with an unbounded queue, grows without limit."""
        telemetry_queue: Any = self.queue
        if telemetry_queue.qsize() < self._maxsize:
            try:
                telemetry_queue.put_nowait(record)
                return
            except queue.Full:
                pass
        with self._drop_lock:
            self._dropped_queue_full += 1
        _diagnostics.warn(
            "queue-full",
            f"telemetry queue is full ({self._maxsize}); records are dropped and counted in "
            "stats()['dropped_queue_full']",
        )

    def enqueue_event(self, event: Event) -> None:
        """The ``push_event`` path: an already built event skips the record machinery."""
        if self.disabled:
            return
        if self._state_pid != _runtime.pid:
            self._start()
        if self.disabled:
            return
        if self._state is State.CLOSED or type(event) is not tuple:  # None would stop the listener
            self._handle_now(event)
        else:
            self.enqueue(event)

    def _handle_now(self, item: Any) -> None:
        """Once the exit drain has run (or no thread may start), the listener's work is done
        on the logging thread; its telemetry handlers then spool, which takes microseconds."""
        if self.listener is None:  # closed before its first record: build it closed
            with self._start_lock:
                if self.listener is None:
                    self._close_telemetry_handlers(self._build())
        if self.listener is not None:
            self.listener.handle(item)

    def handleError(self, record: logging.LogRecord) -> None:
        _diagnostics.warn("queue-handler-error", "telemetry queue handler failed on a record")

    # -- the listener, started on first use in each process -----------------------------------

    def _start(self) -> None:
        with self._start_lock:
            pid = _runtime.pid
            if self._state_pid == pid:
                return
            self._state, self._state_pid = State.RUNNING, pid
            telemetry = self._build()
            listener = self.listener
            if self.disabled or listener is None:
                return
            if getattr(listener, "_thread", None) is None:  # the user may have started it
                try:
                    listener.start()
                except RuntimeError:  # Python 3.12 refuses new threads once the interpreter exits
                    self._state = State.CLOSED
                    self._close_telemetry_handlers(telemetry)
                    return
            _runtime.register_exit_drain()

    def _build(self) -> list[TelemetryHandler]:
        """Resolves the handlers and makes the listener (not started); returns the telemetry
        handlers. With nothing to pass records to, the queue handler turns itself off."""
        handlers = self._resolve_handlers()
        telemetry = [h for h in handlers if isinstance(h, TelemetryHandler)]
        if not handlers or (
            len(telemetry) == len(handlers) and not any(h.enabled for h in telemetry)
        ):
            if not handlers:
                _diagnostics.warn(
                    "no-handlers",
                    "TelemetryQueueHandler has no handler to pass records to, so telemetry "
                    "is off: "
                    + (
                        "check the names in its 'handlers'"
                        if self.handler_refs
                        else "give it 'handlers': [...]"
                    ),
                )
            self.disabled = True
            return []
        self._compact = all(isinstance(h, TelemetryHandler) and not h.filters for h in handlers)
        listener = self.listener
        if listener is None or listener.queue is not self.queue:
            self.listener = TelemetryQueueListener(
                self.queue, *handlers, respect_handler_level=self.respect_handler_level
            )
        return telemetry

    @staticmethod
    def _close_telemetry_handlers(handlers: list[TelemetryHandler]) -> None:
        for handler in handlers:
            handler.close_delivery(time.monotonic())

    def _resolve_handlers(self) -> list[logging.Handler]:
        """Handler names are looked up now, so dictConfig may list them in any order."""
        if self.listener is not None and self.listener.handlers:
            self.respect_handler_level = self.listener.respect_handler_level
            return list(self.listener.handlers)
        resolved: list[logging.Handler] = []
        for ref in self.handler_refs:
            handler = _handler_by_name(ref) if isinstance(ref, str) else ref
            if handler is None:
                _diagnostics.warn(
                    f"unknown-handler-{ref}", f"TelemetryQueueHandler: no handler named {ref!r}"
                )
            else:
                resolved.append(handler)
        return resolved

    def _telemetry_handlers(self) -> list[TelemetryHandler]:
        return [] if self.listener is None else self.listener.telemetry_handlers

    # -- flush, shutdown, stats ----------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:  # type: ignore[override]
        """Waits (at most ``timeout``) until what was logged before is delivered; True when
        all of it was: nothing dropped for a full queue, failed, spooled or rejected since
        the previous flush."""
        if self.state is not State.RUNNING or self.disabled:
            return True
        if holds_logging_lock():  # dictConfig: our senders need that lock; close() follows
            return False
        deadline = time.monotonic() + (self.shutdown_timeout if timeout is None else timeout)
        handlers = self._telemetry_handlers()
        request = _FlushRequest()
        records: Any = self.queue
        try:
            records.put(request, True, max(0.0, deadline - time.monotonic()))
        except queue.Full:
            return False
        if not request.done.wait(max(0.0, deadline - time.monotonic())):
            return False
        idle = all(h.wait_idle(deadline) for h in handlers)
        with self._drop_lock:
            losses = self._dropped_queue_full + sum(h.undelivered() for h in handlers)
            lost_since = losses - self._losses_at_flush
            self._losses_at_flush = losses
        return idle and lost_since == 0

    def shutdown(self, timeout: float | None = None) -> None:
        """Delivers what is queued within ``timeout`` (default ``shutdown_timeout``), spools
        the rest, and says on stderr what did not make it."""
        budget = self.shutdown_timeout if timeout is None else timeout
        self.shutdown_until(time.monotonic() + budget, "on shutdown")

    def shutdown_until(self, deadline: float, moment: str = "at exit") -> None:
        with self._start_lock:
            running = self.state is State.RUNNING
            # What is logged from now on goes straight to the spool.
            self._state, self._state_pid = State.CLOSED, _runtime.pid
            if not running or self.disabled:
                return
        handlers = self._telemetry_handlers()
        for handler in handlers:
            handler.begin_drain(deadline)
        listener = self.listener
        stopped = (
            True
            if listener is None
            else listener.stop(max(0.0, deadline - SPOOL_HANDOFF - time.monotonic()))
        )
        for handler in handlers:
            handler.close_delivery(deadline)
        records: Any = self.queue
        unprocessed = 0 if stopped else max(0, records.qsize() - 1)  # less the stop sentinel
        self._report_exit(self.stats(), unprocessed, handlers, moment)

    def _report_exit(
        self,
        after: dict[str, int],
        unprocessed: int,
        handlers: list[TelemetryHandler],
        moment: str,
    ) -> None:
        """One line for the whole run: what waits in the spool, what the endpoint refused,
        what is gone, and the last cause. Events spooled and replayed since are not counted."""
        spooled = max(0, after["spooled"] - after["replayed"])
        losses = {
            "queue full": after["dropped_queue_full"],
            "evicted from the full spool": after["spool_evicted"],
            "spool off or unwritable": after["dropped"],
            "still queued": unprocessed,
        }
        lost = sum(losses.values())
        if not spooled and not lost and not after["rejected"]:
            return
        parts = []
        if spooled:
            where = ", ".join(sorted({h.spool_path for h in handlers}))
            held = sum({h.spool_path: h.spooled_events() for h in handlers}.values())
            in_all = f" (it holds {held} in all)" if held > spooled else ""
            parts.append(f"{spooled} saved to the spool ({where}) for the next run{in_all}")
        if after["rejected"]:
            parts.append(f"{after['rejected']} rejected by the endpoint")
        if lost:
            why = ", ".join(f"{count} {reason}" for reason, count in losses.items() if count)
            parts.append(f"{lost} lost ({why})")
        causes = [cause for cause in (h.last_cause() for h in handlers) if cause]
        if causes and (spooled or lost):
            parts.append(f"last cause: {causes[-1]}")
        _diagnostics.say(f"{moment}, telemetry not delivered: " + "; ".join(parts))

    def stats(self) -> dict[str, int]:
        """The telemetry handlers' counters, summed, plus ``dropped_queue_full``."""
        totals = dict.fromkeys(STAT_KEYS, 0)
        handlers = self._telemetry_handlers() or [
            ref for ref in self.handler_refs if isinstance(ref, TelemetryHandler)
        ]
        for handler in handlers:
            for key, value in handler.stats().items():
                totals[key] += value
        with self._drop_lock:
            totals["dropped_queue_full"] = self._dropped_queue_full
        return totals

    def close(self) -> None:
        """``logging.shutdown`` and dictConfig close handlers: stop the pipeline, bounded."""
        run_outside_logging_lock(self.shutdown, "close")
        super().close()

    def reset_after_fork(self) -> None:
        """A forked child gets a fresh queue, listener and locks; the parent keeps its own."""
        self._start_lock = threading.Lock()
        self._drop_lock = threading.Lock()
        self._dropped_queue_full = 0
        self._losses_at_flush = 0
        self._state, self._state_pid = State.IDLE, 0
        self.queue = _fresh_queue_like(self.queue)
        handlers = self._telemetry_handlers()
        if self.listener is not None:
            self.listener = TelemetryQueueListener(
                self.queue,
                *self.listener.handlers,
                respect_handler_level=self.listener.respect_handler_level,
            )
        for handler in handlers:
            handler.reset_after_fork()


def _new_queue() -> queue.SimpleQueue[Any]:
    """A C-implemented queue: ``put`` costs tens of nanoseconds; our ``maxsize`` bounds it."""
    return queue.SimpleQueue()


def _fresh_queue_like(old: Any) -> Any:
    if isinstance(old, queue.SimpleQueue):
        return queue.SimpleQueue()
    if isinstance(old, queue.Queue):
        return type(old)(old.maxsize)
    return old


def _handler_by_name(name: str) -> logging.Handler | None:
    get_by_name = getattr(logging, "getHandlerByName", None)
    if get_by_name is not None:
        handler: logging.Handler | None = get_by_name(name)
        return handler
    return logging._handlers.get(name)  # type: ignore[attr-defined,no-any-return]
