"""Flask, with logging configured by ``dictConfig`` before the app is created.

Run it (from a fresh virtualenv)::

    pip install '.[samples]'                        # from the repository root
    composio-logtelemetry serve                     # terminal 1: a local receiver on :8787
    export COMPOSIO_TELEMETRY_URL=http://127.0.0.1:8787/v1
    python samples/flask_app.py --port 8003         # or: flask --app samples/flask_app run
    curl http://127.0.0.1:8003/search?q=shoes       # a metric
    curl http://127.0.0.1:8003/invoices/7           # a 500, and an error event

What you should see: each ``/search`` request makes the receiver print ``metric Search.run``;
``/invoices/7`` answers 500, Flask prints the traceback, and the receiver prints
``error  invoice ... InvoiceMissingError: invoice 7 is not in the ledger``. Stop with Ctrl-C:
what is still queued is delivered before the process exits.

Flask logs an unhandled exception with ``app.logger`` from its own ``log_exception``;
``EndpointTelemetry`` names that error event after the Flask endpoint instead.

The logging configuration here repeats the canonical one in README.rst ("Configure with
dictConfig") so that this file can be copied alone; change that one first.
"""

from __future__ import annotations

import argparse
import logging
import logging.config
import time

from flask import Flask, has_request_context, request


class EndpointTelemetry(logging.Filter):
    """Names the error event of an unhandled exception after the endpoint that raised it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context() and getattr(record, "telemetry", None) is None:
            record.telemetry = {
                "functionName": request.endpoint or request.path,
                "props": {"method": request.method, "path": request.path},
            }
        return True


LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s"}},
    "filters": {"endpoint_telemetry": {"()": EndpointTelemetry}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        # Options of the queue handler go in "."; the same dict works on Python 3.10 to 3.13
        # (see samples/plain_script.py for why).
        "telemetry": {
            "class": "composio_logtelemetry.TelemetryQueueHandler",
            "handlers": ["composio"],
            "filters": ["endpoint_telemetry"],
            ".": {"shutdown_timeout": 5.0},
        },
        # The endpoint comes from COMPOSIO_TELEMETRY_URL when not given here.
        "composio": {
            "class": "composio_logtelemetry.TelemetryHandler",
            "source": {"version": "1.0.0"},
            "metadata": {"provider": "flask"},
        },
    },
    # On the root logger: app.logger propagates to it, and Flask adds no handler of its own
    # when one is configured (as long as logging is configured before Flask(...)).
    "root": {"handlers": ["console", "telemetry"], "level": "INFO"},
}

logging.config.dictConfig(LOGGING)
logger = logging.getLogger("shop")

app = Flask(__name__)


class InvoiceMissingError(LookupError):
    """What ``load_invoice`` raises; its name becomes ``error.name`` in the event."""


@app.get("/search")
def search() -> dict[str, object]:
    """Logs a metric with the time the search took."""
    started = time.perf_counter()
    query = request.args.get("q", "")
    time.sleep(0.002)
    hits = len(query) * 3
    logger.info(
        "searched %r",
        query,
        extra={
            "telemetry": {
                "functionName": "Search.run",
                "durationMs": (time.perf_counter() - started) * 1000,
                "props": {"hits": hits},
            }
        },
    )
    return {"query": query, "hits": hits}


def load_invoice(number: int) -> dict[str, object]:
    raise InvoiceMissingError(f"invoice {number} is not in the ledger")


@app.get("/invoices/<int:number>")
def invoice(number: int) -> dict[str, object]:
    """Raises: Flask answers 500 and logs the exception with app.logger."""
    return load_invoice(number)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8003)
    args = parser.parse_args()
    app.run(host=args.host, port=args.port)
