"""Counters for every way an event leaves the pipeline: delivered, or why not.

One ``Counters`` per handler is handed down the chain; each step counts what it does itself
(the policy what it samples out, delivery what it sends or spools), so no step reports back
up. ``stats()`` reads them all at once.
"""

from __future__ import annotations

import re
import threading

from . import _diagnostics

STAT_KEYS = (
    "sent",
    "failed",
    "retried",
    "rejected",
    "dropped",
    "spooled",
    "replayed",
    "invalid",
    "sampled_out",
    "rate_limited",
    "filtered",
    "spool_evicted",
    "spool_expired",
)
UNDELIVERED_KEYS = ("failed", "rejected", "dropped")

_VALUES_IN_REASON = re.compile(r"""'[^']*'|"[^"]*"|-?\b\d[\d.e+-]*|, got .*$""")


class Counters:
    """Thread-safe counts under ``STAT_KEYS``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(STAT_KEYS, 0)

    def add(self, key: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[key] += amount

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def undelivered(self) -> int:
        """Events that left without being delivered: failed, rejected or dropped."""
        with self._lock:
            return sum(self._counts[key] for key in UNDELIVERED_KEYS)

    def invalid(self, exc: BaseException, where: str) -> None:
        """Counts an event that is not sent because it is invalid, and says why on stderr
        (once a minute per kind of problem, not once per value)."""
        self.add("invalid")
        try:
            reason = str(exc)
        except Exception:
            reason = "<unprintable>"
        if not isinstance(exc, TypeError | ValueError):
            reason = f"{type(exc).__name__}: {reason}"
        _diagnostics.warn(
            f"invalid:{type(exc).__name__}:{_kind_of_problem(reason)}",
            f"telemetry not sent, invalid event from {where}: {reason}",
        )


def _kind_of_problem(reason: str) -> str:
    """The reason without the values in it: 'durationMs must be >= 0, got -1.0' is said once
    a minute, not once for each value an application gets wrong."""
    return _VALUES_IN_REASON.sub("_", reason)
