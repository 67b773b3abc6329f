"""The ``composio_telemetry`` pytest fixture: what a test's code sent, checked on the wire.

Registered by the package's ``pytest11`` entry point, so there is nothing to configure; it
needs the ``pytest`` extra (``pip install 'composio-logtelemetry[pytest]'``) for the schema
validator. For the test's duration every TelemetryHandler of the process (built by dictConfig
at import with any endpoint, the default pipeline of ``push_event`` and ``timed``, one built
during the test) makes its delivery engine for a capture server on 127.0.0.1: the events go
through the same formatter, batching, JSON and HTTP as in production, without a spool. After
the test the handlers make their engines for their own endpoints and spools again.

pytest imports this module in every session of everyone who has the package installed, used
or not: the capture server and the validator are imported only when a test asks for them.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from . import _runtime
from . import handler as _handler_module
from .handler import TelemetryHandler
from .queueing import TelemetryQueueHandler

if TYPE_CHECKING:
    from .devtools.capture import CaptureServer

__all__ = ["WAIT_SECONDS", "TelemetryCapture", "composio_telemetry"]

WAIT_SECONDS = 5.0
"""How long ``metrics()``, ``errors()`` and the end of a test wait for telemetry to arrive."""


class TelemetryCapture:
    """What ``composio_telemetry`` gives a test: the events its code sent, as dicts."""

    def __init__(self, server: CaptureServer) -> None:
        self._server = server
        self._problems_reported = 0

    def metrics(self, function_name: str | None = None) -> list[dict[str, Any]]:
        """The metric events sent so far (of ``function_name`` only, if given), oldest first,
        once everything logged before this call has been delivered."""
        return self._sent("metric", function_name)

    def errors(self, function_name: str | None = None) -> list[dict[str, Any]]:
        """The error events sent so far (of ``function_name`` only, if given), oldest first,
        once everything logged before this call has been delivered."""
        return self._sent("error", function_name)

    def _sent(self, kind: str, function_name: str | None) -> list[dict[str, Any]]:
        delivered = _deliver_everything(time.monotonic() + WAIT_SECONDS)
        self._fail_on_invalid_bodies()
        if not delivered:
            pytest.fail(
                f"composio_telemetry: what was logged was not all delivered within "
                f"{WAIT_SECONDS} s (see the telemetry warnings on stderr)",
                pytrace=False,
            )
        return [
            copy.deepcopy(event)
            for event_kind, event in self._server.events()
            if event_kind == kind
            and (function_name is None or event["functionName"] == function_name)
        ]

    def _fail_on_invalid_bodies(self) -> None:
        """Fails the test once for the bodies that did not match the wire schema."""
        problems = self._server.problems()[self._problems_reported :]
        self._problems_reported += len(problems)
        if problems:
            pytest.fail(
                "composio_telemetry: telemetry sent does not match the wire schema: "
                + "\n".join(problems),
                pytrace=False,
            )


@pytest.fixture
def composio_telemetry(monkeypatch: pytest.MonkeyPatch) -> Iterator[TelemetryCapture]:
    """Captures the telemetry sent during the test; see ``TelemetryCapture``."""
    try:
        from .devtools.capture import CaptureServer
    except ImportError as error:
        raise RuntimeError(
            "the composio_telemetry fixture checks bodies with fastjsonschema: "
            "pip install 'composio-logtelemetry[pytest]'"
        ) from error
    for name in ("no_proxy", "NO_PROXY"):  # requests would send 127.0.0.1 through a proxy
        monkeypatch.setenv(name, ",".join(filter(None, (os.environ.get(name), "127.0.0.1"))))
    server = CaptureServer()
    capture = TelemetryCapture(server)
    _capture_from_now_on(server.url)
    try:
        yield capture
    finally:
        try:
            _deliver_everything(time.monotonic() + WAIT_SECONDS)
        finally:
            _capture_from_now_on(None)
            server.stop()
    capture._fail_on_invalid_bodies()


def _telemetry_handlers() -> list[TelemetryHandler]:
    return [h for h in list(_handler_module._open_handlers) if isinstance(h, TelemetryHandler)]


def _capture_from_now_on(endpoint: str | None) -> None:
    """Every engine made from now on sends to ``endpoint`` (None: to the handler's own).

    The engines made before are closed: what they hold goes where they were sending, at once
    (sent if it can be now, else spooled as at exit), and the next event makes a new engine.
    """
    TelemetryHandler._capture_endpoint = endpoint
    deadline = time.monotonic() + (0.0 if endpoint is not None else WAIT_SECONDS)
    for handler in _telemetry_handlers():
        handler._renew_delivery(deadline)


def _deliver_everything(deadline: float) -> bool:
    """True once every record and event queued before now has been sent (or refused).

    Queue handlers are flushed first: a marker travels through each queue behind the records
    and the listener sends its handlers' pending batches when it meets it. Handlers used
    directly on a logger sent synchronously; their flush waits for any batch still in flight.
    """
    delivered = True
    for pipeline in _runtime.pipelines():
        if isinstance(pipeline, TelemetryQueueHandler):
            delivered &= pipeline.flush(max(0.0, deadline - time.monotonic()))
    for handler in _telemetry_handlers():
        delivered &= handler.flush(max(0.0, deadline - time.monotonic()))
    return delivered
