"""The ``requests`` adapter whose connections report to the watchdog of ``_deadline``.

A module of its own because subclassing ``HTTPAdapter`` imports ``requests``: ``_transport``
imports this with the first POST, not when the library is imported.
"""

from __future__ import annotations

from typing import Any

import urllib3
from requests.adapters import HTTPAdapter

from . import _deadline


class DeadlineAdapter(HTTPAdapter):
    """An adapter whose connections report to the watchdog of ``_deadline``, proxied or not."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _deadline.POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, urllib3.ProxyManager):  # SOCKS managers have pools of their own
            manager.pool_classes_by_scheme = _deadline.POOL_CLASSES
        return manager
