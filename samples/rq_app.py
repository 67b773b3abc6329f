"""RQ jobs that send telemetry, logging configured when the module is imported.

Run it (from a fresh virtualenv, with a Redis server on 127.0.0.1:6379)::

    pip install '.[samples]'                        # from the repository root
    composio-logtelemetry serve                     # terminal 1: a local receiver on :8787
    export COMPOSIO_TELEMETRY_URL=http://127.0.0.1:8787/v1
    cd samples
    python rq_app.py 10                             # queues 10 jobs
    rq worker --burst                               # runs them, then exits

What you should see: the receiver prints ``metric Shop.ship`` 10 times, each with a different
pid in ``props``: ``rq worker`` forks a work horse per job, which imports this module (so
logging is configured there) and ends with ``os._exit`` (skipping ``atexit``). The library
drains the horse's telemetry first, within ``shutdown_timeout``, with no code of ours in the
jobs. ``rq worker -w rq.SimpleWorker`` runs the jobs in the worker itself: it delivers at exit.

The canonical dictConfig is in README.rst, "Configure with dictConfig".
"""

from __future__ import annotations

import logging
import logging.config
import os
import sys

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,  # keep RQ's own loggers
    "handlers": {
        "telemetry": {
            "class": "composio_logtelemetry.TelemetryQueueHandler",
            "handlers": ["composio"],
            ".": {"shutdown_timeout": 5.0},
        },
        # The endpoint comes from COMPOSIO_TELEMETRY_URL when not given here.
        "composio": {
            "class": "composio_logtelemetry.TelemetryHandler",
            "metadata": {"provider": "rq"},
        },
    },
    "loggers": {"shop": {"handlers": ["telemetry"], "level": "INFO"}},
}

logging.config.dictConfig(LOGGING)
logger = logging.getLogger("shop")


def ship(order: int) -> None:
    props = {"order": order, "pid": os.getpid()}
    logger.info("shipped", extra={"telemetry": {"functionName": "Shop.ship", "props": props}})


if __name__ == "__main__":
    from redis import Redis
    from rq import Queue

    queue = Queue(connection=Redis.from_url(os.environ.get("RQ_REDIS_URL", "redis://127.0.0.1")))
    for order in range(int(sys.argv[1]) if len(sys.argv) > 1 else 10):
        queue.enqueue("rq_app.ship", order)  # by name: the horse imports this module
