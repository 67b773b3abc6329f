"""One POST of one batch to the Composio endpoint, classified for the delivery engine.

Retry *policy* (which statuses, how many tries, backoff, ``Retry-After``) is urllib3's
``Retry`` value object; only the *waiting* is ours, because it must stop at shutdown.
``timeout`` bounds the whole request (connect, send, reply): see ``_deadline``.

``requests`` and urllib3 (most of the library's import time) are imported when a pipeline
starts, that is with its first event (``open``): neither ``import`` nor dictConfig pays for
them, and neither does a process that never sends.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING

from . import _runtime
from ._endpoint import endpoint_url, shown_url
from ._version import __version__

if TYPE_CHECKING:
    import requests
    from urllib3.util.retry import Retry

RETRY_STATUSES = frozenset({408, 429, *range(500, 600)})
MAX_RETRY_AFTER = 60.0
MAX_BACKOFF = 30.0
MAX_REPLY_BYTES = 64 * 1024
USER_AGENT = f"composio-logtelemetry/{__version__}"


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: ``status`` for an HTTP answer, ``error`` for no answer.

    ``error`` is already the cause in words a user can act on ("connection refused by
    HOST:PORT"); ``lasting`` marks a cause that will not heal in seconds (a certificate that
    does not verify, a proxy that refuses us), on which retrying soon only spends the budget.
    """

    status: int | None
    error: str | None
    response: object | None  # the urllib3 response, for ``Retry``
    lasting: bool = False
    url: str = ""  # where it was posted, as shown (``shown_url``)
    unanswered: bool = False
    """Nothing answered at the endpoint's address: refused, no such name, no reply in time.
    An exit drain gives up at once on such an endpoint (a reset or a 503 is worth a retry)."""

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def too_large(self) -> bool:
        """413: the same events may still go through in smaller requests."""
        return self.status == HTTPStatus.REQUEST_ENTITY_TOO_LARGE

    def describe(self) -> str:
        """The cause, short: callers that print the URL next to it use this."""
        if self.status is None:
            return f"{self.error}"
        headers = getattr(self.response, "headers", None)
        location = headers.get("Location") if headers is not None else None
        if 300 <= self.status < 400 and location:
            # Redirects are not followed (the events would go where nobody configured them):
            # say where to, so that the endpoint can be set right.
            return f"HTTP {self.status} redirecting to {shown_url(location)}"
        if self.status == HTTPStatus.PROXY_AUTHENTICATION_REQUIRED:
            return (
                f"HTTP {self.status}: the proxy wants credentials (user:password@ in HTTPS_PROXY)"
            )
        return f"HTTP {self.status}"

    @property
    def cause(self) -> str:
        """The cause in one line that stands alone, saying where: for stderr and summaries."""
        if self.status is None or not self.url:
            return self.describe()
        return f"{self.describe()} from {self.url}"


class Transport:
    """Posts bodies over one keep-alive ``requests.Session`` per process."""

    def __init__(
        self,
        endpoint: str,
        *,
        timeout: float,
        max_retries: int,
        retry_backoff: float,
        pool_size: int,
    ) -> None:
        self.endpoint = endpoint
        self.urls = {
            "metric": endpoint_url(endpoint, "/metrics/invocations"),
            "error": endpoint_url(endpoint, "/errors"),
        }
        self.timeout = timeout
        self.retry_backoff = retry_backoff
        self.max_retries = max_retries
        self._retry_policy: Retry | None = None
        self._pool_size = pool_size
        self._session: requests.Session | None = None
        self._templates: dict[str, requests.PreparedRequest] = {}
        self._session_pid = 0
        self._session_lock = threading.Lock()
        self._proxy: str | None = None

    @property
    def retry_policy(self) -> Retry:
        """urllib3's ``Retry`` for our settings, made when first asked for (by a sender)."""
        if self._retry_policy is None:
            from urllib3.util.retry import Retry

            self._retry_policy = Retry(
                total=self.max_retries,
                backoff_factor=self.retry_backoff,
                status_forcelist=RETRY_STATUSES,
                allowed_methods=None,
                respect_retry_after_header=True,
                raise_on_status=False,
                raise_on_redirect=False,
            )
        return self._retry_policy

    def _current_session(self) -> tuple[requests.Session, dict[str, requests.PreparedRequest]]:
        """A session of this process (a forked child must not share its parent's sockets),
        and a request per endpoint prepared once: preparing each POST anew costs a third
        of requests' time."""
        pid = _runtime.pid
        if self._session is None or self._session_pid != pid:
            with self._session_lock:
                if self._session is None or self._session_pid != pid:
                    import requests

                    from ._adapter import DeadlineAdapter

                    session = requests.Session()
                    adapter = DeadlineAdapter(
                        pool_connections=1, pool_maxsize=self._pool_size, max_retries=0
                    )
                    session.mount("http://", adapter)
                    session.mount("https://", adapter)
                    session.headers.update(
                        {"User-Agent": USER_AGENT, "Content-Type": "application/json"}
                    )
                    # Read proxy and CA settings from the environment once, not per request
                    # (a third of a millisecond per POST in requests' merge_environment_settings).
                    session.trust_env = False
                    session.proxies = requests.utils.get_environ_proxies(self.endpoint)
                    self._proxy = requests.utils.select_proxy(self.endpoint, session.proxies)
                    session.verify = (
                        os.environ.get("REQUESTS_CA_BUNDLE")
                        or os.environ.get("CURL_CA_BUNDLE")
                        or True
                    )
                    self._templates = {
                        kind: session.prepare_request(requests.Request("POST", url))
                        for kind, url in self.urls.items()
                    }
                    self._session, self._session_pid = session, pid
        return self._session, self._templates

    def open(self) -> None:
        """Imports requests and urllib3 and makes this process's session now, when the
        pipeline starts, rather than in the first POST: a pipeline that starts with a burst of
        records would otherwise pay for the import (tens of milliseconds holding the GIL)
        while its queue fills. Never raises: ``post`` says what is wrong."""
        try:
            self._current_session()
            from . import _deadline  # noqa: F401  (what post() uses, imported now)

            self._retry_policy = self.retry_policy
        except Exception:
            pass

    def post(self, kind: str, body: bytes) -> Outcome:
        """One attempt, within ``timeout`` in all; never raises."""
        url = self.urls[kind]
        try:
            session, templates = self._current_session()  # the first imports requests
        except Exception as exc:  # a broken proxy setting: never raise
            return Outcome(None, f"{type(exc).__name__}: {exc}", None, url=shown_url(url))
        from . import _deadline  # imported with requests by the first call

        deadline = _deadline.start(self.timeout)
        try:
            request = templates[kind].copy()
            request.prepare_body(body, None)
            response = session.send(
                request, timeout=self.timeout, allow_redirects=False, stream=True
            )
            try:
                # Read to the end, so that the connection serves the next POST; but a reply
                # past MAX_REPLY_BYTES is cut off with its connection rather than held in memory.
                response.raw.read(MAX_REPLY_BYTES, decode_content=False)
            finally:
                deadline.finish()
                response.close()
            if deadline.expired:
                # The reply was cut off at the deadline, which urllib3 may take as its end.
                return Outcome(None, self._no_reply(), None, url=shown_url(url), unanswered=True)
            status = response.status_code
            lasting = status == HTTPStatus.PROXY_AUTHENTICATION_REQUIRED
            return Outcome(status, None, response.raw, lasting, shown_url(url))
        except Exception as exc:  # a broken proxy setting, an odd adapter: never raise
            deadline.finish()
            error, lasting = self._cause(exc, expired=deadline.expired)
            unanswered = lasting or not _answered(exc, expired=deadline.expired)
            return Outcome(None, error, None, lasting, shown_url(url), unanswered)

    def _no_reply(self) -> str:
        return f"no reply from {self._host_port()} within timeout={self.timeout:g} s"

    def _host_port(self) -> str:
        parsed = urllib.parse.urlsplit(self.endpoint)
        default_port = 443 if parsed.scheme == "https" else 80
        return f"{parsed.hostname}:{parsed.port or default_port}"

    def _cause(self, exc: BaseException, *, expired: bool) -> tuple[str, bool]:
        """``exc`` in words a user can act on, and whether it will last (see ``Outcome``)."""
        import http.client  # these come with requests, which the failed POST imported
        import ssl

        import requests
        import urllib3

        host = urllib.parse.urlsplit(self.endpoint).hostname
        errors = list(_causes(exc))
        if expired or any(isinstance(error, (TimeoutError, socket.timeout)) for error in errors):
            return self._no_reply(), False
        proxy = shown_url(self._proxy) if self._proxy else None
        if proxy and any(isinstance(error, urllib3.exceptions.ProxyError) for error in errors):
            for error in errors:
                if isinstance(error, ConnectionRefusedError):
                    return f"the proxy {proxy} refused the connection (is HTTPS_PROXY right?)", True
                if isinstance(error, socket.gaierror):
                    return f"the name of the proxy {proxy} does not resolve", True
                answer = str(error).partition("Tunnel connection failed: ")[2]
                if answer:
                    return (
                        f"the proxy {proxy} answered {answer} to CONNECT {self._host_port()}",
                        True,
                    )
        for error in errors:
            if isinstance(error, ssl.SSLCertVerificationError):
                bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
                remedy = (
                    f"REQUESTS_CA_BUNDLE={bundle} does not hold its CA"
                    if bundle
                    else "a private CA? name it with REQUESTS_CA_BUNDLE=/path/ca.pem"
                )
                reason = error.verify_message or error.reason or "verification failed"
                return f"the certificate of {host} does not verify: {reason} ({remedy})", True
            if isinstance(error, ssl.SSLError) and error.reason == "WRONG_VERSION_NUMBER":
                return f"{self._host_port()} does not speak TLS (is the endpoint http://?)", True
            if isinstance(error, socket.gaierror):
                return f"the name {host} does not resolve", False
            if isinstance(error, ConnectionRefusedError):
                return f"connection refused by {self._host_port()}", False
        for error in errors:
            if isinstance(error, ssl.SSLError):
                return f"TLS with {self._host_port()} failed: {error.reason or error}", False
            if isinstance(error, (ConnectionError, http.client.HTTPException)):
                return f"{self._host_port()} closed the connection without a reply", False
        if isinstance(exc, requests.RequestException):
            return f"{type(exc).__name__} posting to {shown_url(self.urls['metric'])}", False
        return f"{type(exc).__name__}: {exc}", False

    def is_retryable(self, outcome: Outcome) -> bool:
        if outcome.status is None:
            return True
        return self.retry_policy.is_retry("POST", outcome.status, has_retry_after=False)

    def next_wait(self, retry: Retry, outcome: Outcome, kind: str) -> tuple[Retry, float] | None:
        """The retry state after ``outcome`` and the seconds to wait, or None when exhausted."""
        try:
            retry = retry.increment(
                method="POST",
                url=self.urls[kind],
                response=outcome.response,  # type: ignore[arg-type]
                error=None if outcome.status is not None else ConnectionError(outcome.error),
            )
        except Exception:
            return None
        try:
            retry_after = retry.get_retry_after(outcome.response) if outcome.response else None  # type: ignore[arg-type]
        except Exception:  # "Retry-After: soon": back off as if the header were not there
            retry_after = None
        if retry_after is not None:
            return retry, min(max(retry_after, 0.0), MAX_RETRY_AFTER)
        backoff = min(max(retry.get_backoff_time(), self.retry_backoff), MAX_BACKOFF)
        return retry, random.uniform(backoff / 2, backoff)

    def close(self) -> None:
        if self._session is not None and self._session_pid == _runtime.pid:
            self._session.close()


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: requests and urllib3 nest the real error a few levels deep."""
    seen: set[int] = set()
    waiting = [exc]
    while waiting:
        error = waiting.pop(0)
        if id(error) in seen:
            continue
        seen.add(id(error))
        yield error
        nested = [*error.args, getattr(error, "reason", None), error.__cause__, error.__context__]
        waiting.extend(item for item in nested if isinstance(item, BaseException))


def _answered(exc: BaseException, *, expired: bool) -> bool:
    """Whether something at the endpoint's address took part (a reset, a TLS error), as
    opposed to a refused connection, a name that does not resolve or a request past its
    deadline."""
    if expired:
        return False
    return not any(
        isinstance(error, ConnectionRefusedError | socket.gaierror | TimeoutError)
        for error in _causes(exc)
    )
