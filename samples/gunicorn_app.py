"""A WSGI app for gunicorn's pre-fork workers, logging configured when the module is imported.

Run it (from a fresh virtualenv)::

    pip install '.[samples]'                        # from the repository root
    composio-logtelemetry serve                     # terminal 1: a local receiver on :8787
    export COMPOSIO_TELEMETRY_URL=http://127.0.0.1:8787/v1
    gunicorn -w 2 --preload -b 127.0.0.1:8004 --chdir samples gunicorn_app:app
    curl http://127.0.0.1:8004/                     # a metric, with the worker's pid in props
    curl http://127.0.0.1:8004/fail                 # a 500, and an error event

What you should see: as soon as gunicorn starts, the receiver prints three
``metric Master.startup`` lines, once each (the master sent them; the forked workers do not
send them again). Each request prints ``metric App.handle`` on the receiver, with the pid of
the worker that served it in ``props``; ``/fail`` prints ``error  App.handle ...
ConnectionResetError: the upstream closed the connection``. Ctrl-C (or SIGTERM) stops gunicorn
gracefully, and each process delivers what it still has queued as it exits.

With ``--preload`` this module is imported once, in the master, before the workers are forked:
the pipeline built there works in every worker, each with its own queue, listener thread and
HTTP connections, made on first use after the fork.

The logging configuration here repeats the canonical one in README.rst ("Configure with
dictConfig") so that this file can be copied alone; change that one first.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

LOGGING = {
    "version": 1,
    # gunicorn set up its own loggers before importing us; keep them working.
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s [%(process)d] %(levelname)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        # Options of the queue handler go in "."; the same dict works on Python 3.10 to 3.13
        # (see samples/plain_script.py for why).
        "telemetry": {
            "class": "composio_logtelemetry.TelemetryQueueHandler",
            "handlers": ["composio"],
            ".": {"shutdown_timeout": 5.0},
        },
        # The endpoint comes from COMPOSIO_TELEMETRY_URL when not given here.
        "composio": {
            "class": "composio_logtelemetry.TelemetryHandler",
            "source": {"version": "1.0.0"},
            "metadata": {"provider": "gunicorn"},
        },
    },
    "loggers": {"shop": {"handlers": ["console", "telemetry"], "level": "INFO"}},
}

logging.config.dictConfig(LOGGING)
logger = logging.getLogger("shop")

# Logged in the master at import, before any fork: delivered once, by the master.
for startup_step in ("config", "routes", "cache"):
    logger.info(
        "master started: %s ready",
        startup_step,
        extra={
            "telemetry": {
                "functionName": "Master.startup",
                "props": {"step": startup_step, "pid": os.getpid()},
            }
        },
    )

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def call_upstream(path: str) -> None:
    """Stands in for real work; ``/fail`` fails the way a flaky upstream does."""
    time.sleep(0.05)
    if path == "/fail":
        raise ConnectionResetError("the upstream closed the connection")


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Logs one event per request, with the pid of the worker that served it."""
    started = time.perf_counter()
    path = environ.get("PATH_INFO", "/")
    pid = os.getpid()
    try:
        call_upstream(path)
    except ConnectionResetError:
        logger.exception(
            "request failed",
            extra={"telemetry": {"functionName": "App.handle", "props": {"pid": pid}}},
        )
        status, body = "500 Internal Server Error", {"error": "upstream", "pid": pid}
    else:
        logger.info(
            "request served",
            extra={
                "telemetry": {
                    "functionName": "App.handle",
                    "durationMs": (time.perf_counter() - started) * 1000,
                    "props": {"pid": pid, "path": path},
                }
            },
        )
        status, body = "200 OK", {"pid": pid}
    payload = json.dumps(body).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
    )
    return [payload]
