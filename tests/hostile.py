"""Values that break the usual protocols, shared by the tests of bad input."""

from __future__ import annotations

import enum
from typing import Any


class Colour(enum.Enum):
    RED = "red"


class Unprintable:
    """Neither ``str`` nor ``repr`` works."""

    def __str__(self) -> str:
        raise RuntimeError("no str")

    __repr__ = __str__


class UnlistableList(list):  # type: ignore[type-arg]
    def __iter__(self) -> Any:
        raise RuntimeError("no iteration")


class ItemlessDict(dict):  # type: ignore[type-arg]
    def items(self) -> Any:
        raise RuntimeError("no items")
