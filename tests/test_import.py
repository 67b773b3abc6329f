"""A cheap import: ``requests`` waits for the first event that is sent.

A CLI that only configures logging must not pay for the HTTP client at start-up; the first
event must still arrive. Each case runs a fresh interpreter, whose ``sys.modules`` is its own.
"""

from __future__ import annotations

import json

from composio_logtelemetry.devtools.receiver import Receiver
from conftest import run_python

FLUSH_TIMEOUT = 10.0
HTTP_CLIENT = ("requests", "urllib3")

# README's "Configure with dictConfig", as written there: the endpoint comes from
# $COMPOSIO_TELEMETRY_URL.
README_CONFIGURED = """
import json, logging, logging.config, sys
import composio_logtelemetry

logging.config.dictConfig({
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {
        "telemetry": {
            "class": "composio_logtelemetry.TelemetryQueueHandler",
            "handlers": ["composio"],
            ".": {"shutdown_timeout": 5.0, "maxsize": 10000},
        },
        "composio": {
            "class": "composio_logtelemetry.TelemetryHandler",
            "source": {"service": "sdk", "version": "1.0.0"},
            "metadata": {"provider": "openai"},
        },
    },
    "root": {"handlers": ["telemetry"], "level": "INFO"},
})
"""


def _loaded(names: tuple[str, ...]) -> str:
    return f"[name for name in {names!r} if name in sys.modules]"


def test_import_and_dictconfig_leave_requests_unimported_until_the_first_event(
    receiver: Receiver,
) -> None:
    code = README_CONFIGURED + (
        f"configured = {_loaded(HTTP_CLIENT)}\n"
        "logging.getLogger('myapp').info(\n"
        "    'started', extra={'telemetry': {'functionName': 'App.start', 'durationMs': 12.5}}\n"
        ")\n"
        f"delivered = logging.getLogger().handlers[0].flush({FLUSH_TIMEOUT})\n"
        f"print(json.dumps([configured, delivered, {_loaded(HTTP_CLIENT)}]))\n"
    )
    result = run_python(code, env={"COMPOSIO_TELEMETRY_URL": receiver.base_url})
    assert result.returncode == 0, result.stderr
    configured, delivered, after_sending = json.loads(result.stdout.splitlines()[-1])
    assert configured == [], f"imported by import + dictConfig: {configured}"
    assert delivered is True, result.stderr
    assert receiver.wait_for(1, FLUSH_TIMEOUT, "metric")
    assert [stored["event"]["functionName"] for stored in receiver.events("metric")] == [
        "App.start"
    ]
    assert after_sending == list(HTTP_CLIENT)  # the first event brought the client in


def test_requests_waits_for_the_first_post_not_for_the_transport() -> None:
    """The first log call makes the engine (and its ``Transport``) on the application's thread:
    requests is imported by the sender that posts, so that call does not pay for it."""
    result = run_python(
        "import json, sys\n"
        "import composio_logtelemetry.cli, composio_logtelemetry.devtools.receiver\n"
        "from composio_logtelemetry._transport import Transport\n"
        "Transport('http://127.0.0.1:9/v1', timeout=1.0, max_retries=0, retry_backoff=0.0,\n"
        "          pool_size=1)\n"
        f"print(json.dumps({_loaded(HTTP_CLIENT)}))\n"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []
