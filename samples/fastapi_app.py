"""FastAPI under uvicorn, with endpoints measured by ``composio_logtelemetry.timed``.

Run it (from a fresh virtualenv)::

    pip install '.[samples]'                        # from the repository root
    composio-logtelemetry serve                     # terminal 1: a local receiver on :8787
    export COMPOSIO_TELEMETRY_URL=http://127.0.0.1:8787/v1
    python samples/fastapi_app.py --port 8002       # terminal 2
    curl http://127.0.0.1:8002/quotes/widget        # a metric
    curl http://127.0.0.1:8002/payments             # a 500, and an error event

(``uvicorn --port 8002 samples.fastapi_app:app`` works too.)

What you should see: each ``/quotes/...`` request makes the receiver print
``metric Quotes.get 5.2ms``; ``/payments`` answers 500, uvicorn prints the traceback, and the
receiver prints ``error  Payments.charge ... PaymentDeclinedError: card ending 4242 was declined``.
Ctrl-C or SIGTERM stops uvicorn gracefully; what is still queued is delivered on the way out.

Telemetry is attached to the ``shop`` logger only: ``timed`` already reports the failure, so
uvicorn's own "Exception in ASGI application" record must not become a second error event.

The logging configuration here repeats the canonical one in README.rst ("Configure with
dictConfig") so that this file can be copied alone; change that one first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import logging.config
from collections.abc import AsyncIterator

from fastapi import FastAPI

from composio_logtelemetry import TelemetryQueueHandler, timed

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s"}},
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
            "metadata": {"provider": "fastapi"},
        },
    },
    "loggers": {
        "shop": {"handlers": ["telemetry"], "level": "INFO"},
        # When started by the uvicorn command, uvicorn configured these before importing us;
        # let them reach the root console handler again.
        "uvicorn": {"handlers": [], "propagate": True},
        "uvicorn.access": {"handlers": [], "propagate": True},
    },
    "root": {"handlers": ["console"], "level": "INFO"},
}

logging.config.dictConfig(LOGGING)
logger = logging.getLogger("shop")


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Delivers what is queued when uvicorn stops, however it was started.

    Run as ``python samples/fastapi_app.py`` this is not needed: ``dictConfig`` above runs
    before ``uvicorn.run``, so the library takes SIGTERM first, and uvicorn, which restores the
    handler it found and re-raises the signal after its graceful shutdown, hands it back to
    the library's exit drain. The ``uvicorn`` command imports this module only after taking
    SIGTERM itself, then restores the default action, which ends the process without the
    drain: this shutdown covers that case (or give uvicorn the logging config with
    ``--log-config``, which it applies before taking the signal).
    """
    yield
    for handler in logger.handlers:
        if isinstance(handler, TelemetryQueueHandler):
            await asyncio.to_thread(handler.shutdown)


app = FastAPI(title="composio-logtelemetry sample", lifespan=lifespan)


class PaymentDeclinedError(Exception):
    """What ``charge_card`` raises; its name becomes ``error.name`` in the event."""


@app.get("/quotes/{item}")
@timed("Quotes.get", logger=logger, props={"route": "/quotes/{item}"})
async def get_quote(item: str) -> dict[str, object]:
    """A metric with ``durationMs`` per call; ``timed`` keeps FastAPI's view of the signature."""
    await asyncio.sleep(0.005)
    return {"item": item, "price": 12.5}


async def charge_card(last4: str) -> None:
    await asyncio.sleep(0.002)
    raise PaymentDeclinedError(f"card ending {last4} was declined")


@app.get("/payments")
@timed("Payments.charge", logger=logger, metadata={"provider": "stripe"})
async def charge() -> dict[str, object]:
    """Raises inside ``timed``: an error event with the traceback, then the usual 500."""
    await charge_card("4242")
    return {"charged": True}


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    args = parser.parse_args()
    # log_config=None: uvicorn's own dictConfig would close the handlers configured above.
    uvicorn.run(app, host=args.host, port=args.port, log_config=None)


if __name__ == "__main__":
    main()
