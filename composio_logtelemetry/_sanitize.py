"""Make any user object JSON-safe and bounded, reusing python-json-logger's encoder.

Telemetry props come from application code: datetimes, UUIDs, dataclasses, cycles,
objects whose ``__str__`` raises, lone surrogates, megabyte strings. None of that may
break delivery or blow the request size, so values are converted once, here.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from pythonjsonlogger.json import JsonEncoder

from . import _redact

MAX_STRING = 4096
MAX_ITEMS = 200
MAX_DEPTH = 12
MAX_VALUES = 4096
"""Values walked in one props: more could not fit in ``MAX_PROPS_BYTES`` anyway, and a value
that shares its parts (``[row] * 200``, nested) would otherwise take exponential time."""
MAX_PROPS_BYTES = 32 * 1024
MAX_MESSAGE = 8192
MAX_STACK = 32 * 1024
MAX_NAME = 512
_MIN_INT, _MAX_INT = -(2**63), 2**64  # what JSON readers take as an integer
_REDACT_OVERLAP = 512  # longer than any token format _redact knows

_encoder = JsonEncoder()
_CUT_MARK = re.compile(r"\.\.\.\[truncated \d+ chars\]")
_STACK_CUT_MARK = re.compile(r"\n\.\.\.\[truncated \d+ chars\]\.\.\.\n")
_ITEMS_CUT_MARK = re.compile(r"\[truncated \d+ items\]")
TOO_MANY_VALUES = f"<more than {MAX_VALUES} values>"


def clean_text(text: str, limit: int) -> str:
    """Valid UTF-8 text of at most about ``limit`` characters, cut with a visible marker."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if len(text) <= limit or _CUT_MARK.fullmatch(text, limit):
        return text  # short, or cut here already (before_send's payload is completed again)
    cut = len(text) - limit
    return f"{text[:limit]}...[truncated {cut} chars]"


def clean_stack(stack: str) -> str:
    """A traceback cut in the middle: its head says where, its tail says what."""
    stack = clean_text(stack, len(stack))
    if len(stack) <= MAX_STACK:
        return stack
    head = MAX_STACK // 4
    tail = MAX_STACK - head
    if _STACK_CUT_MARK.fullmatch(stack, head, len(stack) - tail):
        return stack  # cut here already
    cut = len(stack) - MAX_STACK
    return f"{stack[:head]}\n...[truncated {cut} chars]...\n{stack[-tail:]}"


def _fallback(value: object) -> Any:
    try:
        return _encoder.default(value)
    except Exception:
        return f"<unserializable {type(value).__name__}>"


def to_json_safe(value: Any, redact: bool = False) -> Any:
    """``value`` as plain JSON types: cycles, depth, sizes and odd types made harmless.

    With ``redact``, the same walk masks secret-looking keys' values and secrets in strings.
    """
    if type(value) is dict:  # props, on every event
        return _json_safe_dict(value, 0, frozenset(), redact, [MAX_VALUES])
    return _json_safe(value, 0, frozenset(), redact, [MAX_VALUES])


def sent_as_is(props: dict[Any, Any], redact: bool) -> bool:
    """True when ``to_json_safe`` would keep ``props`` as they are: a flat dict of short ASCII
    keys and plain values, nothing to redact. The usual props, which then need no copy."""
    if len(props) > MAX_ITEMS:
        return False
    for key, item in props.items():
        if type(key) is not str or not key.isascii() or len(key) > MAX_NAME:
            return False
        kind = type(item)
        if kind is str:
            if not item.isascii() or len(item) > MAX_STRING:
                return False
            if redact and _redact.redact_text(item) != item:
                return False
        elif kind is int:
            if not _MIN_INT <= item < _MAX_INT:
                return False
        elif kind is float:
            if not math.isfinite(item):
                return False
        elif item is not None and kind is not bool:
            return False
        if redact and _redact.is_secret_key(key):
            return False
    return True


def _json_safe(
    value: Any, depth: int, path: frozenset[int], redact: bool, budget: list[int]
) -> Any:
    """``budget`` holds how many more values the whole walk may take."""
    if type(value) is str:  # the common cases first
        if redact:  # before the cut, so that a secret the cut would halve is masked whole
            scanned = MAX_STRING + _REDACT_OVERLAP
            value = _redact.redact_text(value[:scanned]) + value[scanned:]
        return clean_text(value, MAX_STRING)
    if type(value) is dict:
        return _json_safe_dict(value, depth, path, redact, budget)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _json_safe(str.__str__(value), depth, path, redact, budget)
    if isinstance(value, int):
        return value if _MIN_INT <= value < _MAX_INT else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return _json_safe_dict(value, depth, path, redact, budget)
    stop = _stop_mark(value, depth, path, budget)
    if stop is not None:
        return stop
    inner = path | {id(value)}
    if isinstance(value, list | tuple | set | frozenset):
        try:
            seq = list(value)
        except Exception:  # a subclass whose __iter__ raises
            return f"<unserializable {type(value).__name__}>"
        kept = seq[:MAX_ITEMS]
        budget[0] -= len(kept)
        out_list = [_json_safe(item, depth + 1, inner, redact, budget) for item in kept]
        if len(seq) > MAX_ITEMS:
            marked = len(seq) == MAX_ITEMS + 1 and _is_items_mark(seq[-1])  # cut already
            out_list.append(seq[-1] if marked else f"[truncated {len(seq) - MAX_ITEMS} items]")
        return out_list
    converted = _fallback(value)
    if converted is value:
        return f"<unserializable {type(value).__name__}>"
    return _json_safe(converted, depth + 1, inner, redact, budget)


def _stop_mark(value: object, depth: int, path: frozenset[int], budget: list[int]) -> str | None:
    """Where a container is not walked into: too deep, a cycle, or past the values budget."""
    if depth >= MAX_DEPTH:
        return "<max depth>"
    if id(value) in path:
        return "<cycle>"
    if budget[0] <= 0:
        return TOO_MANY_VALUES
    return None


def _json_safe_dict(
    value: dict[Any, Any], depth: int, path: frozenset[int], redact: bool, budget: list[int]
) -> Any:
    """``to_json_safe`` of a dict, which props always are: plain keys and scalars, the usual
    content, are copied in place without a call per item."""
    stop = _stop_mark(value, depth, path, budget)
    if stop is not None:
        return stop
    try:
        items = list(value.items())
    except Exception:  # a dict subclass whose items() raises
        return f"<unserializable {type(value).__name__}>"
    truncated = len(items) - MAX_ITEMS
    if truncated == 1 and items[-1][0] == "..." and _is_items_mark(items[-1][1]):
        truncated = 0  # cut already: keep its mark
    elif truncated > 0:
        items = items[:MAX_ITEMS]
    budget[0] -= len(items)
    inner = None
    out: dict[str, Any] = {}
    for raw_key, item in items:
        plain_key = type(raw_key) is str and raw_key.isascii() and len(raw_key) <= MAX_NAME
        key = raw_key if plain_key else _key(raw_key)
        kind = type(item)
        if redact and _redact.is_secret_key(key):
            out[key] = _redact.MASK
        elif (
            item is None
            or kind is bool
            or (kind is int and _MIN_INT <= item < _MAX_INT)
            or (kind is float and math.isfinite(item))
        ):
            out[key] = item
        elif kind is str and item.isascii() and len(item) <= MAX_STRING:
            out[key] = _redact.redact_text(item) if redact else item
        else:
            if inner is None:
                inner = path | {id(value)}
            out[key] = _json_safe(item, depth + 1, inner, redact, budget)
    if truncated > 0:
        out["..."] = f"[truncated {truncated} items]"
    return out


def _is_items_mark(value: object) -> bool:
    return type(value) is str and _ITEMS_CUT_MARK.fullmatch(value) is not None


def _key(key: object) -> str:
    if isinstance(key, str):
        return clean_text(key, MAX_NAME)
    try:
        return clean_text(str(key), MAX_NAME)
    except Exception:
        return f"<{type(key).__name__}>"


def bound_props(props: dict[str, Any]) -> dict[str, Any]:
    """Props whose JSON stays under ``MAX_PROPS_BYTES``, replaced by a marker when it does not."""
    size = len(json.dumps(props, ensure_ascii=False).encode("utf-8"))
    if size <= MAX_PROPS_BYTES:
        return props
    kept: dict[str, Any] = {}
    budget = MAX_PROPS_BYTES - 200
    for key, item in props.items():
        item_size = len(json.dumps({key: item}, ensure_ascii=False).encode("utf-8"))
        if item_size > budget:
            continue
        kept[key] = item
        budget -= item_size
    kept["_truncated"] = f"props exceeded {MAX_PROPS_BYTES} bytes ({size} bytes); some dropped"
    return kept
