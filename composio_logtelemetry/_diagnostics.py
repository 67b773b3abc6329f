"""The library's own voice: short, rate-limited lines on stderr, never a traceback.

Problems are explained where the developer looks (stderr) without flooding it, and
without going through ``logging``, where a user's root handler could turn them into
telemetry about telemetry.
"""

from __future__ import annotations

import sys
import threading
import time

from . import _runtime

PREFIX = "composio-logtelemetry"
INTERVAL = 60.0
_MAX_KEYS = 512

_lock = threading.Lock()
_last_said: dict[str, float] = {}


def warn(key: str, message: str) -> bool:
    """Writes ``message`` unless a message with ``key`` was written in the last minute."""
    now = time.monotonic()
    with _lock:
        last = _last_said.get(key)
        if last is not None and now - last < INTERVAL:
            return False
        if len(_last_said) >= _MAX_KEYS:
            _last_said.clear()
        _last_said[key] = now
    say(f"warning: {message}")
    return True


def say(message: str) -> None:
    try:
        stream = sys.stderr
        if stream is not None:
            stream.write(f"{PREFIX}: {message}\n")
            stream.flush()
    except Exception:
        pass


def _reinit_lock_in_child() -> None:
    global _lock
    _lock = threading.Lock()


_runtime.at_fork(after_in_child=_reinit_lock_in_child)
