"""The compatibility API of the Composio SDK's ``_telemetry.py``, on a default pipeline.

``push_event(create_event(...))`` keeps working for SDK code; ``timed`` is the short way
to measure a call.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast

from . import _diagnostics, _runtime
from ._event import make_event
from .handler import TelemetryHandler
from .models import Event, EventType
from .queueing import DEFAULT_MAXSIZE, DEFAULT_SHUTDOWN_TIMEOUT, TelemetryQueueHandler

__all__ = [
    "DEFAULT_LOGGER_NAME",
    "create_event",
    "flush",
    "push_event",
    "setup",
    "shutdown",
    "timed",
]

DEFAULT_LOGGER_NAME = "composio.telemetry"
_MEASURED = frozenset({"durationMs", "duration_ms", "functionName", "function_name"})

P = ParamSpec("P")
R = TypeVar("R")

_default_handler: TelemetryQueueHandler | None = None
_setup_lock = threading.Lock()


def create_event(type: EventType, **payload: Any) -> Event:
    """A validated event; raises ``ValueError``/``TypeError`` naming the bad field."""
    return make_event(type, payload)


def setup(**options: Any) -> TelemetryQueueHandler:
    """Builds the default pipeline once, on the ``composio.telemetry`` logger.

    Options are those of ``TelemetryHandler`` plus ``maxsize`` and ``shutdown_timeout``;
    later calls return the same handler and ignore their options.
    """
    global _default_handler
    handler = _default_handler
    if handler is not None:
        return handler
    with _setup_lock:
        if _default_handler is None:
            maxsize = options.pop("maxsize", DEFAULT_MAXSIZE)
            shutdown_timeout = options.pop("shutdown_timeout", DEFAULT_SHUTDOWN_TIMEOUT)
            telemetry_handler = TelemetryHandler(**options)
            queue_handler = TelemetryQueueHandler(
                handlers=[telemetry_handler], maxsize=maxsize, shutdown_timeout=shutdown_timeout
            )
            logger = logging.getLogger(DEFAULT_LOGGER_NAME)
            logger.addHandler(queue_handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False
            _default_handler = queue_handler
        return _default_handler


def push_event(event: Event) -> None:
    """Queues an event for delivery; never blocks, never raises."""
    try:
        handler = _default_handler or setup()
        handler.enqueue_event(event)
    except Exception as exc:  # setup() refused the configuration (COMPOSIO_TELEMETRY_URL...)
        _diagnostics.warn(f"push-event:{exc}", f"telemetry not sent by push_event: {exc}")


def flush(timeout: float | None = None) -> bool:
    """True once everything pushed or logged to the default pipeline is delivered."""
    handler = _default_handler
    return True if handler is None else handler.flush(timeout)


def shutdown(timeout: float | None = None) -> None:
    """Stops the default pipeline within ``timeout``, spooling what is left."""
    handler = _default_handler
    if handler is not None:
        handler.shutdown(timeout)


class timed:
    """Measures a call: a metric with ``durationMs`` on success (a clean ``sys.exit()`` too),
    an error event on failure.

    Works as ``@timed("Tools.execute")`` on plain and ``async`` functions, and as
    ``with timed("Tools.execute"):``. The exception is re-raised unchanged. ``fields`` (props,
    metadata, source...) go into the event; ``logger`` defaults to the default pipeline.
    """

    def __init__(
        self, function_name: str, *, logger: logging.Logger | str | None = None, **fields: Any
    ) -> None:
        measured = _MEASURED.intersection(fields)
        if measured:
            raise ValueError(f"timed sets {', '.join(sorted(measured))} itself: remove it")
        make_event("metric", {"functionName": function_name, **fields})
        if isinstance(logger, str):
            logger = logging.getLogger(logger)
        elif logger is not None and not isinstance(logger, logging.Logger):
            raise TypeError(f"logger must be a logging.Logger or its name, got {logger!r}")
        self.function_name = function_name
        self.fields = fields
        self.logger = logger
        self._started: list[float] = []

    def _logger(self) -> logging.Logger:
        if self.logger is None:
            setup()
            return logging.getLogger(DEFAULT_LOGGER_NAME)
        return self.logger

    def _telemetry(self, started: float) -> dict[str, Any]:
        duration_ms = (time.perf_counter() - started) * 1000.0
        return {**self.fields, "functionName": self.function_name, "durationMs": duration_ms}

    def _report(self, started: float, exc: BaseException | None) -> None:
        try:
            telemetry = self._telemetry(started)
            if exc is None or _clean_exit(exc):
                self._logger().info(
                    "%s took %.1f ms",
                    self.function_name,
                    telemetry["durationMs"],
                    extra={"telemetry": telemetry},
                )
            else:
                self._logger().error(
                    "%s failed: %s",
                    self.function_name,
                    type(exc).__name__,
                    exc_info=exc,
                    extra={"telemetry": telemetry},
                )
        except Exception as exc:  # setup() refused the configuration (COMPOSIO_TELEMETRY_URL...)
            _diagnostics.warn(f"timed:{exc}", f"telemetry not sent by timed: {exc}")

    def __enter__(self) -> timed:
        self._started.append(time.perf_counter())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._report(self._started.pop(), exc)

    def __call__(self, function: Callable[P, R]) -> Callable[P, R]:
        if inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function):
            raise TypeError(
                f"timed cannot measure the generator {function.__name__!r} by decorating it "
                "(that times its creation only): use 'with timed(...):' around its loop"
            )
        if inspect.iscoroutinefunction(function):
            coroutine_function = cast(Callable[P, Awaitable[Any]], function)

            @functools.wraps(function)
            async def timed_coroutine(*args: P.args, **kwargs: P.kwargs) -> Any:
                started = time.perf_counter()
                try:
                    result = await coroutine_function(*args, **kwargs)
                except BaseException as exc:
                    self._report(started, exc)
                    raise
                self._report(started, None)
                return result

            return cast(Callable[P, R], timed_coroutine)

        @functools.wraps(function)
        def timed_call(*args: P.args, **kwargs: P.kwargs) -> R:
            started = time.perf_counter()
            try:
                result = function(*args, **kwargs)
            except BaseException as exc:
                self._report(started, exc)
                raise
            self._report(started, None)
            return result

        return timed_call


def _clean_exit(exc: BaseException) -> bool:
    """``sys.exit()`` and ``sys.exit(0)`` end a call that went well (a CLI's ``main``)."""
    return isinstance(exc, SystemExit) and exc.code in (None, 0)


def _forget_default_pipeline_lock() -> None:
    global _setup_lock
    _setup_lock = threading.Lock()


_runtime.at_fork(after_in_child=_forget_default_pipeline_lock)
