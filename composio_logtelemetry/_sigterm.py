"""SIGTERM drains telemetry, then still ends the process as SIGTERM does.

``docker stop``, Kubernetes and systemd stop a process with SIGTERM, whose default action ends
it at once, without ``atexit``, so the exit drain would never run. When a queue handler is
configured in the main thread and SIGTERM still has that default, the library takes it: the
bounded exit drain runs, then the default comes back and SIGTERM is raised again, so the
process still ends "killed by SIGTERM" (status -15, 143 in a shell), as supervisors expect.

A handler an application or server installed is never replaced, and one installed later
simply replaces ours. uvicorn restores the handler it found and raises the signal again once it
has shut down gracefully: configured before ``uvicorn.run``, ours is the one it finds.
SIGINT is left alone: it raises KeyboardInterrupt, and ``atexit`` drains.
"""

from __future__ import annotations

import os
import signal
import threading
import weakref
from types import FrameType
from typing import Any, overload

from . import _runtime
from ._options import check_bool, disabled_by_environment

ENVIRONMENT_VARIABLE = "COMPOSIO_TELEMETRY_SIGTERM"
"""Set to 0, false, no or off to leave SIGTERM alone, whatever the handlers say."""

_JOIN_MARGIN = 1.0
"""How long past the longest ``shutdown_timeout`` a stuck drain is waited for: the drain is
bounded by itself; this only guards against it waiting on a lock the signal interrupted."""

_SUPPORTED = os.name == "posix"  # elsewhere os.kill(pid, SIGTERM) is not a signal but the end

_wanted_by: weakref.WeakSet[Any] = weakref.WeakSet()


class HandleSigterm:
    """The ``handle_sigterm`` option of ``TelemetryQueueHandler``: a descriptor, so that
    dictConfig's ``"."`` (which sets attributes after ``__init__``) takes or leaves SIGTERM too.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self._attribute = f"_{name}"

    @overload
    def __get__(self, instance: None, owner: type) -> HandleSigterm: ...

    @overload
    def __get__(self, instance: object, owner: type) -> bool: ...

    def __get__(self, instance: object | None, owner: type) -> HandleSigterm | bool:
        if instance is None:
            return self
        wanted: bool = getattr(instance, self._attribute, False)
        return wanted

    def __set__(self, instance: object, value: bool) -> None:
        wanted = check_bool("handle_sigterm", value)
        setattr(instance, self._attribute, wanted)
        if wanted:
            _wanted_by.add(instance)
            take()
        else:
            _wanted_by.discard(instance)
            if not _wanted_by:
                leave()


def take() -> None:
    """Installs the drain on SIGTERM if SIGTERM has its default action and we may."""
    if (
        not _SUPPORTED
        or threading.current_thread() is not threading.main_thread()
        or not _allowed_by_environment()
        or disabled_by_environment()
    ):
        return
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _drain_then_terminate)
    except ValueError:  # not the main interpreter's main thread
        pass


def leave() -> None:
    """Gives SIGTERM its default back, if ours is still the handler."""
    if not _SUPPORTED or threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is _drain_then_terminate:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except ValueError:
        pass


def _allowed_by_environment() -> bool:
    value = os.environ.get(ENVIRONMENT_VARIABLE, "").strip().lower()
    return value not in ("0", "false", "no", "off")


def _drain_then_terminate(signum: int, frame: FrameType | None) -> None:
    """Drains every pipeline within its ``shutdown_timeout``, then dies of SIGTERM.

    The default comes back first, so a second SIGTERM ends the process at once. The drain
    runs on a thread of its own: the signal may have interrupted this thread while it held a
    lock the drain needs, and waiting for it here would then never end."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        budget = max((p.shutdown_timeout for p in _runtime.pipelines()), default=0.0)
        drain = threading.Thread(
            target=_runtime.drain_all, name="composio-telemetry-sigterm", daemon=True
        )
        try:
            _runtime.start_thread(drain)
        except RuntimeError:  # the interpreter is exiting: no new thread; drain here
            _runtime.drain_all()
        else:
            drain.join(budget + _JOIN_MARGIN)
    finally:
        os.kill(os.getpid(), signal.SIGTERM)
