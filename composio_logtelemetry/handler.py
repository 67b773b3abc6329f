"""``TelemetryHandler``: records in, Composio events out, over HTTP.

Behind a ``TelemetryQueueListener`` it batches and delivers in the background; attached
directly to a logger it sends each event synchronously (for scripts and tests).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from . import _diagnostics, _runtime
from ._delivery import SENDERS, Delivery
from ._endpoint import DEFAULT_ENDPOINT, check_endpoint
from ._options import check_bool, check_count, check_rate, check_seconds, disabled_by_environment
from ._policy import BeforeSend, Policy
from ._runtime import holds_logging_lock, register_library_thread, run_outside_logging_lock
from ._spool import Spool, default_spool_path
from ._stats import STAT_KEYS, Counters
from ._transport import Transport
from .formatter import TelemetryFormatter
from .models import EventType

__all__ = ["STAT_KEYS", "TelemetryHandler"]

CLOSE_TIMEOUT = 5.0

_open_handlers: set[logging.Handler] = set()
"""Strong references: in a dictConfig on 3.10/3.11 only a name (a weak reference) points at a
TelemetryHandler until the queue handler looks it up on the first record."""


class TelemetryHandler(logging.Handler):
    """Delivers the telemetry carried by log records to a Composio endpoint.

    Every option can be given from ``logging.config.dictConfig``; see README.rst.
    """

    _capture_endpoint: str | None = None
    """Set by the pytest plugin while a test captures telemetry: every engine made meanwhile
    sends there, with no spool, whatever the handler's own endpoint (which stays as it is)."""

    def __init__(
        self,
        level: int | str = logging.NOTSET,
        *,
        endpoint: str | None = None,
        timeout: float = 2.0,
        batch_size: int = 100,
        flush_interval: float = 1.0,
        max_retries: int = 5,
        retry_backoff: float = 0.5,
        source: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        capture_exceptions: bool = True,
        sample_rate: float = 1.0,
        sample_rates: Mapping[str, float] | None = None,
        sample_errors: bool = False,
        redact: bool = True,
        before_send: BeforeSend | None = None,
        spool: bool = True,
        spool_path: str | os.PathLike[str] | None = None,
        spool_max_bytes: int = 50 * 2**20,
        spool_ttl: float = 7 * 86400.0,
        enabled: bool | None = None,
        allow_insecure: bool = False,
    ) -> None:
        # Everything is checked before logging knows the handler: one that fails half-built
        # would otherwise be closed by logging.shutdown at exit, and fail there again.
        for name, flag in (
            ("capture_exceptions", capture_exceptions),
            ("sample_errors", sample_errors),
            ("redact", redact),
            ("spool", spool),
            ("allow_insecure", allow_insecure),
        ):
            check_bool(name, flag)
        if enabled is not None:
            check_bool("enabled", enabled)
        if sample_rates is not None and not isinstance(sample_rates, Mapping):
            raise TypeError(
                "sample_rates must be a dict of functionName to rate, "
                f"got {type(sample_rates).__name__}"
            )
        if before_send is not None and not callable(before_send):
            raise TypeError("before_send must be a callable (in dictConfig: 'ext://module.func')")
        self.timeout = check_seconds("timeout", timeout)
        self.flush_interval = check_seconds("flush_interval", flush_interval)
        self.spool_ttl = check_seconds("spool_ttl", spool_ttl)
        self.batch_size = check_count("batch_size", batch_size, minimum=1)
        self.spool_max_bytes = check_count("spool_max_bytes", spool_max_bytes, minimum=1)
        self.max_retries = check_count("max_retries", max_retries, minimum=0)
        self.retry_backoff = check_seconds("retry_backoff", retry_backoff, minimum=0.0)
        rates = {
            name: check_rate(f"sample_rates[{name!r}]", rate)
            for name, rate in (sample_rates or {}).items()
        }
        self.endpoint = check_endpoint(
            endpoint or os.environ.get("COMPOSIO_TELEMETRY_URL") or DEFAULT_ENDPOINT,
            allow_insecure,
        )
        formatter = TelemetryFormatter(
            source=source,
            metadata=metadata,
            capture_exceptions=capture_exceptions,
            redact=redact,
        )
        super().__init__(level)
        self.setFormatter(formatter)
        self.enabled = (not disabled_by_environment()) if enabled is None else enabled
        self.spool_path = os.fspath(spool_path or default_spool_path(self.endpoint))
        self.counters = Counters()
        self.policy = Policy(
            self.counters,
            sample_rate=check_rate("sample_rate", sample_rate),
            sample_rates=rates,
            sample_errors=sample_errors,
            before_send=before_send,
            rebuild=lambda event_type, data: self.telemetry_formatter.checked(data, event_type),
        )
        self.spool = spool
        self.background = False
        _open_handlers.add(self)
        self._delivery: Delivery | None = None
        self._delivery_pid = 0
        self._delivery_lock = threading.Lock()

    def setFormatter(self, fmt: logging.Formatter | None) -> None:
        """Refuses formatters that cannot build Composio payloads (a dictConfig slip)."""
        if not isinstance(fmt, TelemetryFormatter):
            raise TypeError(
                "TelemetryHandler formats with TelemetryFormatter (or a subclass); "
                f"got {type(fmt).__name__}: remove the 'formatter' key from its configuration"
            )
        super().setFormatter(fmt)
        self.telemetry_formatter = fmt

    # -- the delivery engine, made on first use in each process ---------------------------------

    def _engine(self) -> Delivery:
        pid = _runtime.pid
        delivery = self._delivery
        if delivery is None or self._delivery_pid != pid:
            with self._delivery_lock:
                if self._delivery is None or self._delivery_pid != pid:
                    self._delivery = self._new_delivery()
                    self._delivery_pid = pid
                delivery = self._delivery
        return delivery

    def _new_delivery(self) -> Delivery:
        capture = TelemetryHandler._capture_endpoint
        transport = Transport(
            capture or self.endpoint,
            timeout=self.timeout,
            max_retries=self.max_retries,
            retry_backoff=self.retry_backoff,
            pool_size=SENDERS,
        )
        spool = (
            Spool(self.spool_path, max_bytes=self.spool_max_bytes, ttl=self.spool_ttl)
            if self.spool and capture is None
            else None
        )
        delivery = Delivery(
            transport,
            spool,
            self.counters,
            batch_size=self.batch_size,
            flush_interval=self.flush_interval,
            background=self.background,
            thread_registry=register_library_thread,
        )
        return delivery

    def _current_delivery(self) -> Delivery | None:
        """This process's engine, if it has one (a forked child starts without)."""
        return self._delivery if self._delivery_pid == _runtime.pid else None

    def _renew_delivery(self, deadline: float) -> None:
        """Closes this process's engine (sending until ``deadline``, spooling the rest): the
        next event makes a new one, for the endpoint in force then (the pytest plugin's seam)."""
        with self._delivery_lock:
            delivery = self._current_delivery()
            self._delivery = None
        if delivery is not None:
            delivery.close(deadline)

    def reset_after_fork(self) -> None:
        """Forgets the parent's engine: its threads and sockets do not exist in the child."""
        self._delivery = None
        self._delivery_lock = threading.Lock()
        self.counters = Counters()
        self.policy.reset_after_fork(self.counters)

    # -- records and events ----------------------------------------------------------------

    def emit(self, record: logging.LogRecord) -> None:
        self.emit_many((record,))

    def emit_many(self, items: Sequence[Any]) -> None:
        """Records and ``push_event`` events that the listener took from the queue at once:
        their metrics are batched together (one request, up to 1 MiB, while records wait).

        While no policy or formatter hook has a say, the usual metric is encoded in one pass;
        anything else (or anything that makes that pass fail) takes the full path, which
        says what is wrong."""
        if not self.enabled:
            return
        try:
            engine = self._engine()
            formatter = self.telemetry_formatter
            usual: list[str | None] = [None] * len(items)
            if self.policy.passes_metrics and not formatter.hooked:
                with contextlib.suppress(Exception):  # the full path says what went wrong
                    usual = list(map(formatter.builder.usual_json, items))
            metrics = [text for text in usual if text is not None]
            others = (
                []
                if len(metrics) == len(items)
                else [item for item, text in zip(items, usual, strict=True) if text is None]
            )
            for item in others:
                built = (
                    self._record_json(item)
                    if isinstance(item, logging.LogRecord)
                    else self._event_json(item)
                )
                if built is None:
                    continue
                if built[0] == "metric":
                    metrics.append(built[1])
                else:
                    engine.add(*built)
            if metrics:
                engine.add_metrics(metrics)
        except Exception:
            self.handleError(items[0])

    def _record_json(self, record: logging.LogRecord) -> tuple[EventType, str] | None:
        """The event a record carries, as sent, if it is sent: through the formatter's hooks
        and the policy."""
        formatter = self.telemetry_formatter
        try:
            if self.policy.passes_metrics:
                built = formatter.event_json(record)
                if built is None or built[0] == "metric":
                    return built
                # an error event: the policy's rate limit must see it, so it is built again
            event = formatter.event(record)
            event = None if event is None else self.policy.admit(event)
            return None if event is None else (event[0], formatter.serialize(event[1]))
        except Exception as exc:  # also hostile input: a mapping whose items() raises...
            self.counters.invalid(exc, f"logger {record.name!r}, function {record.funcName!r}")
            return None

    def _event_json(self, event: object) -> tuple[EventType, str] | None:
        """``_record_json`` for what ``push_event`` was given (it says what is wrong)."""
        formatter = self.telemetry_formatter
        try:
            if type(event) is not tuple or len(event) != 2:
                raise TypeError(
                    "push_event takes the (type, data) event that create_event() returns, "
                    f"got {type(event).__name__}"
                )
            admitted = self.policy.admit(formatter.checked(event[1], event[0]))
            return None if admitted is None else (admitted[0], formatter.serialize(admitted[1]))
        except Exception as exc:
            self.counters.invalid(exc, "push_event")
            return None

    def stats(self) -> dict[str, int]:
        """Counters for every way an event left: sent, or why not."""
        return self.counters.snapshot()

    def handleError(self, record: object) -> None:
        """A short rate-limited line instead of a traceback per record."""
        _diagnostics.warn("handler-error", "telemetry handler failed on a record; skipped")

    # -- background delivery hooks, driven by TelemetryQueueListener ------------------------

    def start_background(self) -> None:
        """Starts the sender threads now: Python 3.12+ refuses new threads once exit began."""
        self.background = True
        if self.enabled:
            self._engine().start_senders()

    def seconds_until_due(self) -> float:
        if self._delivery is None or not self.enabled:
            return self.flush_interval
        return self._delivery.seconds_until_due()

    def on_wake(self) -> None:
        if self.enabled:
            self._engine().on_wake()

    def send_pending(self) -> None:
        delivery = self._current_delivery()
        if delivery is not None:
            delivery.send_pending()

    def wait_idle(self, deadline: float) -> bool:
        delivery = self._current_delivery()
        return True if delivery is None else delivery.wait_idle(deadline)

    def begin_drain(self, deadline: float) -> None:
        delivery = self._current_delivery()
        if delivery is not None:
            delivery.begin_drain(deadline)

    def flush(self, timeout: float | None = None) -> bool:  # type: ignore[override]
        """Sends what is pending; True when nothing is left unsent (bounded by ``timeout``)."""
        delivery = self._current_delivery()
        if delivery is None:
            return True
        if holds_logging_lock():  # dictConfig: our senders need that lock; close() follows
            delivery.send_pending()
            return False
        before = self.undelivered()
        delivery.send_pending()
        deadline = time.monotonic() + (CLOSE_TIMEOUT if timeout is None else timeout)
        return delivery.wait_idle(deadline) and self.undelivered() == before

    def spooled_events(self) -> int:
        """Events in this handler's spool file now (of every process that shares it)."""
        delivery = self._current_delivery()
        if delivery is None or delivery.spool is None:
            return 0
        try:
            return int(str(delivery.spool.stats()["events"]))
        except Exception:
            return 0

    def last_cause(self) -> str | None:
        """Why the latest attempt to deliver failed, in words a user can act on."""
        delivery = self._current_delivery()
        return None if delivery is None else delivery.last_cause

    def undelivered(self) -> int:
        """Events that left without being delivered: failed, rejected or dropped."""
        return self.counters.undelivered()

    def close_delivery(self, deadline: float) -> None:
        """Sends until ``deadline``, then spools the rest and what comes later (exit)."""
        if self.enabled:
            self._engine().close(deadline)

    def close(self) -> None:
        """Sends what is pending (bounded) when used directly; behind a listener, the queue
        handler's shutdown closes the engine once its listener has passed on what it holds
        (dictConfig closes both at once, and closing here first would spool those records)."""
        if self.enabled and not self.background and not self._engine().closed:
            run_outside_logging_lock(
                lambda: self.close_delivery(time.monotonic() + CLOSE_TIMEOUT), "close"
            )
        _open_handlers.discard(self)
        super().close()
