"""Which events are sent: sampling, the error rate limit and the user's ``before_send``.

Between the event builder and batching: an event that leaves here is counted as such
(``sampled_out``, ``rate_limited``, ``filtered``, or ``invalid`` for a ``before_send``
that returns something the wire cannot carry).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from ._stats import Counters
from .models import Event

ERRORS_PER_NAME_PER_MINUTE = 30
_MAX_ERROR_NAMES = 1000

BeforeSend = Callable[[dict[str, Any]], "dict[str, Any] | None"]
Rebuild = Callable[[str, Mapping[str, Any]], Event]


class Policy:
    """Decides, per event, whether it goes on and in what form."""

    def __init__(
        self,
        counters: Counters,
        *,
        sample_rate: float,
        sample_rates: Mapping[str, float],
        sample_errors: bool,
        before_send: BeforeSend | None,
        rebuild: Rebuild,
    ) -> None:
        """``rebuild`` validates and completes what ``before_send`` returns, as the event
        builder does for a log record."""
        self.counters = counters
        self.sample_rate = sample_rate
        self.sample_rates = dict(sample_rates)
        self.sample_errors = sample_errors
        self.before_send = before_send
        self._rebuild = rebuild
        self._error_window: dict[str, tuple[float, int]] = {}

    @property
    def passes_metrics(self) -> bool:
        """True when no metric is sampled, filtered or changed: metrics may skip ``admit``."""
        return self.before_send is None and self.sample_rate >= 1.0 and not self.sample_rates

    def admit(self, event: Event) -> Event | None:
        """The event to send, or None when it is sampled out, rate-limited or filtered."""
        event_type, data = event
        if event_type == "error" and self._rate_limited(data.get("error", {}).get("name", "")):
            self.counters.add("rate_limited")
            return None
        if event_type == "metric" or self.sample_errors:
            rate = self.sample_rates.get(data["functionName"], self.sample_rate)
            if rate < 1.0 and random.random() >= rate:
                self.counters.add("sampled_out")
                return None
        if self.before_send is None:
            return event
        try:
            changed = self.before_send(dict(data))
            if changed is None:
                self.counters.add("filtered")
                return None
            return self._rebuild(event_type, changed)
        except Exception as exc:
            self.counters.invalid(exc, "before_send")
            return None

    def reset_after_fork(self, counters: Counters) -> None:
        """A child counts its own events, and its own errors per minute."""
        self.counters = counters
        self._error_window = {}

    def _rate_limited(self, error_name: str) -> bool:
        """At most ERRORS_PER_NAME_PER_MINUTE of one exception name: a storm stays a trickle."""
        now = time.monotonic()
        started, seen = self._error_window.get(error_name, (now, 0))
        if now - started >= 60.0:
            started, seen = now, 0
        if len(self._error_window) > _MAX_ERROR_NAMES:
            self._error_window.clear()
        self._error_window[error_name] = (started, seen + 1)
        return seen >= ERRORS_PER_NAME_PER_MINUTE
