"""The endpoint's URL: checked, spelled one way, and shown without secrets.

Kept apart from ``_transport`` because configuring a handler needs these, and importing
``requests`` (most of the library's import time) waits until the first event is sent.
"""

from __future__ import annotations

import ipaddress
import urllib.parse

DEFAULT_ENDPOINT = "https://telemetry.composio.dev/v1"


def check_endpoint(endpoint: str, allow_insecure: bool) -> str:
    """The normalized endpoint; plain http only to loopback unless allowed."""
    parsed = urllib.parse.urlsplit(endpoint)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(f"endpoint must be an http(s) URL, got {shown_url(endpoint)!r}")
    if parsed.scheme == "http" and not allow_insecure and not _is_loopback(parsed.hostname):
        raise ValueError(
            f"refusing plain http to {parsed.hostname!r}: telemetry would cross the network "
            "unencrypted; use https, or allow it (allow_insecure=True, --allow-insecure)"
        )
    return normalize_endpoint(endpoint)


def normalize_endpoint(endpoint: str) -> str:
    """One spelling per endpoint (its spool file is named after it): no trailing slash."""
    parsed = urllib.parse.urlsplit(endpoint)
    return parsed._replace(path=parsed.path.rstrip("/"), fragment="").geturl()


def endpoint_url(endpoint: str, path: str) -> str:
    """``path`` under the endpoint's own path, keeping its query (a proxy's token, say)."""
    parsed = urllib.parse.urlsplit(endpoint)
    return parsed._replace(path=parsed.path.rstrip("/") + path).geturl()


def shown_url(url: str) -> str:
    """``url`` as our messages print it: without user:password or query, which may be secret."""
    parsed = urllib.parse.urlsplit(url)
    host = parsed.netloc.rpartition("@")[2]
    return parsed._replace(netloc=host, query="", fragment="").geturl()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
