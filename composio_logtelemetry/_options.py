"""Checks of configuration values, made where the option is given.

A config file says ``"false"`` for a flag and ``"5"`` for a number: each check refuses what
would otherwise be read wrong later, naming the option, before logging registers a handler.
"""

from __future__ import annotations

import math
import os

OPT_OUT_VARIABLES = ("COMPOSIO_DISABLE_TELEMETRY", "TELEMETRY_DISABLED", "DO_NOT_TRACK")


def disabled_by_environment() -> bool:
    """True when a standard opt-out variable is set to a truthy value."""
    for name in OPT_OUT_VARIABLES:
        value = os.environ.get(name, "").strip().lower()
        if value and value not in ("0", "false", "no", "off"):
            return True
    return False


def check_bool(name: str, value: object) -> bool:
    """A flag given as True/False: in a config file "false" is a string, and it is truthy."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be true or false, got {value!r}")
    return value


def check_seconds(name: str, value: object, *, minimum: float | None = None) -> float:
    """A finite number of seconds, > 0 unless a ``minimum`` is given."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or (value < minimum if minimum is not None else value <= 0)
    ):
        bound = "a positive number" if minimum is None else f"a number >= {minimum:g}"
        raise ValueError(f"{name} must be {bound} of seconds, got {value!r}")
    return float(value)


def check_count(name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_rate(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}")
    return float(value)
