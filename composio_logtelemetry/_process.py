"""This process's pid, kept without a system call per log record.

``os.getpid()`` is a real system call (a fifth of an emit); a fork hook keeps this copy
right in children, which is where every pid check of the library looks.
"""

from __future__ import annotations

import os

pid = os.getpid()


def _refresh_in_child() -> None:
    global pid
    pid = os.getpid()


os.register_at_fork(after_in_child=_refresh_in_child)
