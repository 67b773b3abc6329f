"""Celery tasks that send telemetry, logging configured when the module is imported.

Run it (from a fresh virtualenv; the filesystem broker needs no server)::

    pip install '.[samples]'                        # from the repository root
    composio-logtelemetry serve                     # terminal 1: a local receiver on :8787
    export COMPOSIO_TELEMETRY_URL=http://127.0.0.1:8787/v1
    cd samples
    python celery_app.py 20                         # queues 20 tasks
    celery -A celery_app worker -c 2 --max-tasks-per-child 2 -l INFO   # Ctrl-C once when done

What you should see: the receiver prints ``metric Shop.charge`` 20 times, with the pid of the
child that ran it in ``props``. Each child is recycled after 2 tasks and ends with ``os._exit``
(skipping ``atexit``): the library drains its telemetry first, within ``shutdown_timeout``,
with no code of ours in the tasks. Ctrl-C (or SIGTERM) is a warm shutdown: the last children
deliver too. Set ``CELERY_BROKER_URL=redis://127.0.0.1:6379/0`` to use Redis instead.

The canonical dictConfig is in README.rst, "Configure with dictConfig".
"""

from __future__ import annotations

import logging
import logging.config
import os
import sys
import tempfile

from celery import Celery

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,  # keep Celery's own loggers
    "handlers": {
        "telemetry": {
            "class": "composio_logtelemetry.TelemetryQueueHandler",
            "handlers": ["composio"],
            ".": {"shutdown_timeout": 5.0},
        },
        # The endpoint comes from COMPOSIO_TELEMETRY_URL when not given here.
        "composio": {
            "class": "composio_logtelemetry.TelemetryHandler",
            "metadata": {"provider": "celery"},
        },
    },
    "loggers": {"shop": {"handlers": ["telemetry"], "level": "INFO"}},
}

logging.config.dictConfig(LOGGING)
logger = logging.getLogger("shop")

BROKER_FOLDER = os.path.join(tempfile.gettempdir(), "composio-celery-sample")
os.makedirs(BROKER_FOLDER, exist_ok=True)
app = Celery("celery_app", broker=os.environ.get("CELERY_BROKER_URL", "filesystem://"))
app.conf.broker_transport_options = {
    "data_folder_in": BROKER_FOLDER,
    "data_folder_out": BROKER_FOLDER,
}
app.conf.broker_connection_retry_on_startup = True


@app.task
def charge(order: int) -> None:
    props = {"order": order, "pid": os.getpid()}
    logger.info("charged", extra={"telemetry": {"functionName": "Shop.charge", "props": props}})


if __name__ == "__main__":
    for order in range(int(sys.argv[1]) if len(sys.argv) > 1 else 20):
        charge.delay(order)
