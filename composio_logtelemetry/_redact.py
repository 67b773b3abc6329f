"""Mask secrets before an event leaves the process.

Tracebacks and exception messages routinely carry request URLs, headers and connection
strings; the newer Composio SDKs mask the same patterns, so the receiver never sees them.
"""

from __future__ import annotations

import functools
import re

MASK = "[REDACTED]"

_TEXT_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization: Bearer abc / Basic dXNlcjpwYXNz
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{4,}"), rf"\1\2{MASK}"),
    # api_key=..., "token": "...", password: ..., x-api-key=...
    (
        re.compile(
            r"""(?ix)
            \b((?:x[-_])?api[-_]?key|apikey|access[-_]?token|refresh[-_]?token|auth[-_]?token
               |token|secret|client[-_]?secret|password|passwd|pwd|authorization|cookie)
            (["']?\s*[=:]\s*["']?)
            (?!\[REDACTED\]|(?:bearer|basic)\s)[^\s"'&,;)}\]]+"""
        ),
        rf"\1\2{MASK}",
    ),
    # the query string of any URL: https://host/path?key=value
    (re.compile(r"(?i)\b((?:https?|wss?|ftp)://[^\s?#\"'<>]+)\?[^\s#\"'<>]+"), rf"\1?{MASK}"),
    # user:password@ in URLs
    (re.compile(r"(?i)\b((?:[a-z][a-z0-9+.-]*)://[^\s:/@\"']+):[^\s@/\"']+@"), rf"\1:{MASK}@"),
)

_KEY_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
# A key is secret when it names one of these (``api_key``, ``authToken``, ``Cookie``)...
_SECRET_LAST_WORDS = frozenset(
    {
        *("key", "token", "secret", "password", "passwd", "pwd", "passphrase", "apikey"),
        *("auth", "authorization", "cookie", "cookies", "credential", "credentials"),
        *("signature", "sessionid"),
    }
)
# ...or mentions one of these anywhere (``password_hint``, ``cookie_jar``); counts such as
# ``prompt_tokens`` or ``token_count`` are telemetry, not secrets.
_SECRET_ANY_WORDS = frozenset(
    ["password", "passwd", "secret", "authorization", "cookie", "credential", "credentials"]
)


# Every pattern above needs one of these; most strings have none and skip the substitutions.
_TRIGGER = re.compile(r"(?i)bearer|basic|key|token|secret|passw|pwd|auth|cookie|://")


def redact_text(text: str) -> str:
    """``text`` with tokens, credential pairs and URL query strings masked."""
    if _TRIGGER.search(text) is None:
        return text
    for pattern, replacement in _TEXT_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


@functools.lru_cache(maxsize=1024)
def is_secret_key(key: str) -> bool:
    words = [word.lower() for word in _KEY_WORDS.findall(key)]
    if not words:
        return False
    if words[-1] in _SECRET_LAST_WORDS or not _SECRET_ANY_WORDS.isdisjoint(words):
        return True
    return words[-2:] == ["session", "id"]
