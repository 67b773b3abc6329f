"""What is process-wide: the pid, fork hooks, the library's threads, logging's lock, the exit.

One module holds them so that the platform's differences live in one place: fork hooks are
registered only where ``os.register_at_fork`` exists (not on Windows), and every part of the
library asks here rather than calling ``os`` itself.
"""

from __future__ import annotations

import atexit
import enum
import gc
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Protocol


class State(enum.Enum):
    """Where a pipeline part is in its life, one value that every part reads."""

    IDLE = "idle"  # not started in this process (a forked child starts here)
    RUNNING = "running"
    DRAINING = "draining"  # shutting down: nothing waits past the drain's deadline
    CLOSED = "closed"  # what comes now is handled at once: it goes to the spool


pid = os.getpid()
"""This process's pid, kept without a system call per log record (``os.getpid()`` is a fifth
of an emit); the fork hook below keeps it right in children."""

CAN_FORK = hasattr(os, "register_at_fork")


def at_fork(
    *, before: Callable[[], None] | None = None, after_in_child: Callable[[], None] | None = None
) -> None:
    """``os.register_at_fork`` where the platform forks; nothing to do where it does not."""
    if not CAN_FORK:
        return
    if before is not None:
        os.register_at_fork(before=before)
    if after_in_child is not None:
        os.register_at_fork(after_in_child=after_in_child)


def _refresh_pid_in_child() -> None:
    global pid
    pid = os.getpid()


at_fork(after_in_child=_refresh_pid_in_child)


# -- the library's own threads: what they log never becomes telemetry -------------------------

library_threads: set[int] = set()


def register_library_thread(thread: threading.Thread) -> None:
    """Marks a started thread whose own log records must never become telemetry."""
    if thread.ident is not None:
        library_threads.add(thread.ident)


# -- logging's module lock ----------------------------------------------------------------------


def holds_logging_lock() -> bool:
    """True inside dictConfig (and fileConfig), which hold logging's module lock while they
    flush and close the handlers they replace."""
    is_owned = getattr(getattr(logging, "_lock", None), "_is_owned", None)
    return callable(is_owned) and bool(is_owned())


def run_outside_logging_lock(work: Callable[[], None], name: str) -> None:
    """Runs ``work`` (a bounded close) now, or on a thread of its own when this thread holds
    logging's module lock: dictConfig closes the handlers it replaces with that lock held,
    and our senders need it (urllib3 logs), so waiting for them here would only wait out the
    timeout and spool events that had in fact been sent."""
    if holds_logging_lock():
        try:  # not a daemon: an exit that follows waits for it, within its timeout
            start_thread(threading.Thread(target=work, name=f"composio-telemetry-{name}"))
            return
        except RuntimeError:  # Python 3.12 at exit: no new thread; wait here after all
            pass
    work()


def start_thread(thread: threading.Thread) -> None:
    """``thread.start()``, also where this thread holds logging's module lock (dictConfig,
    or a signal that came in the middle of it). ``start`` waits until the new thread runs:
    should its start-up collect garbage that holds a logging handler, logging's weakref
    callback would wait for that lock, and both threads would wait forever. So nothing is
    collected until it runs."""
    if not holds_logging_lock():
        thread.start()
        return
    collecting = gc.isenabled()
    gc.disable()
    try:
        thread.start()
    finally:
        if collecting:
            gc.enable()


# -- pipelines: drained at exit, reset in forked children ---------------------------------------


class Pipeline(Protocol):
    """What the exit drain and the fork hook need of a queue handler."""

    shutdown_timeout: float

    def shutdown_until(self, deadline: float, moment: str = ...) -> None: ...

    def reset_after_fork(self) -> None: ...


_pipelines: weakref.WeakSet[Pipeline] = weakref.WeakSet()


def add_pipeline(pipeline: Pipeline) -> None:
    _pipelines.add(pipeline)


def pipelines() -> list[Pipeline]:
    """Every queue handler alive in this process."""
    return list(_pipelines)


def drain_all() -> None:
    """Shuts down every started pipeline of this process within its ``shutdown_timeout``."""
    started = time.monotonic()
    for pipeline in pipelines():
        pipeline.shutdown_until(started + pipeline.shutdown_timeout)


def _reset_pipelines_in_child() -> None:
    for pipeline in pipelines():
        pipeline.reset_after_fork()


at_fork(after_in_child=_reset_pipelines_in_child)

_exit_drain_pid = 0


def register_exit_drain() -> None:
    """A multiprocessing child ends with os._exit, skipping atexit; its finalizers do run.

    A child clears them as it starts, after a spawned or forkserver child has imported the
    main module (which may log already): the finalizer is made again there, after fork."""
    global _exit_drain_pid
    if _exit_drain_pid == pid:
        return
    _exit_drain_pid = pid
    from . import _runners  # Celery's and RQ's workers end with os._exit too

    _runners.hook_runners(drain_all)
    multiprocessing = sys.modules.get("multiprocessing")
    if multiprocessing is not None:
        from multiprocessing import util

        util.register_after_fork(_DRAIN_IN_CHILDREN, _drain_as_a_finalizer)
        if multiprocessing.parent_process() is not None:
            _drain_as_a_finalizer(_DRAIN_IN_CHILDREN)


class _ChildDrain:
    """What ``multiprocessing.util.register_after_fork`` holds on to (it keeps weak refs)."""


_DRAIN_IN_CHILDREN = _ChildDrain()


def _drain_as_a_finalizer(_: _ChildDrain) -> None:
    from multiprocessing import util

    util.Finalize(None, drain_all, exitpriority=10)


# Registered on import, that is when logging is configured: atexit calls the last registered
# first, so the exit hooks an application registers afterwards still have their telemetry sent.
atexit.register(drain_all)
