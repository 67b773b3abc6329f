"""A plain script that sends Composio telemetry through ``logging.config.dictConfig``.

Run it (from a fresh virtualenv)::

    pip install '.[samples]'                        # from the repository root
    composio-logtelemetry serve                     # terminal 1: a local receiver on :8787
    export COMPOSIO_TELEMETRY_URL=http://127.0.0.1:8787/v1
    python samples/plain_script.py                  # terminal 2

What you should see: this script prints its log lines (and one traceback) and exits at once;
the receiver prints one line per event: three ``metric Rows.fetch`` lines with their
``durationMs``, and one ``error  Reports.parse ... ValueError: report 'q3' has no rows``.
Events leave in the background and the last ones are delivered when the script exits.

The same ``LOGGING`` dict works unchanged on Python 3.10 to 3.13; the comments say why.

The logging configuration here repeats the canonical one in README.rst ("Configure with
dictConfig") so that this file can be copied alone; change that one first.
"""

from __future__ import annotations

import logging
import logging.config
import random
import time

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        # The handler on the application thread: it only puts records on a queue.
        #
        # Python 3.12+: dictConfig sees a QueueHandler subclass with "handlers", resolves those
        # names itself, builds the queue and a QueueListener, and calls the class with nothing
        # but the queue. Other keys would be lost, so our options go in ".", which dictConfig
        # sets as attributes after construction.
        #
        # Python 3.10/3.11: dictConfig knows nothing about queue handlers and passes "handlers"
        # (a list of names) to the class as a keyword argument. TelemetryQueueHandler takes it
        # and looks the names up when the first record arrives, so the order of the handlers
        # in this dict does not matter. "." works the same way there.
        #
        # Either way the listener thread starts by itself on the first telemetry record, and
        # what is still queued at exit is delivered within shutdown_timeout seconds.
        "telemetry": {
            "class": "composio_logtelemetry.TelemetryQueueHandler",
            "handlers": ["composio"],
            ".": {"shutdown_timeout": 5.0, "maxsize": 10_000},
        },
        # The handler on the listener thread: batches, retries, spools. Its options are plain
        # keys on every Python. The endpoint comes from COMPOSIO_TELEMETRY_URL when not given.
        "composio": {
            "class": "composio_logtelemetry.TelemetryHandler",
            "source": {"environment": "development", "version": "1.0.0"},
            "metadata": {"provider": "samples"},
        },
    },
    "root": {"handlers": ["console", "telemetry"], "level": "INFO"},
}

logger = logging.getLogger("samples.plain_script")


def fetch_rows(table: str) -> list[int]:
    """Stands in for real work, and reports how long it took as a metric."""
    started = time.perf_counter()
    time.sleep(random.uniform(0.005, 0.02))
    rows = list(range(random.randint(1, 50)))
    logger.info(
        "fetched %d rows from %s",
        len(rows),
        table,
        extra={
            "telemetry": {
                "function_name": "Rows.fetch",
                "duration_ms": (time.perf_counter() - started) * 1000,
                "props": {"table": table, "rows": len(rows)},
            }
        },
    )
    return rows


def parse_report(name: str, rows: list[int]) -> float:
    """Fails, to show how an exception becomes an error event."""
    if name == "q3":
        raise ValueError(f"report {name!r} has no rows")
    return sum(rows) / len(rows)


def main() -> None:
    logging.config.dictConfig(LOGGING)
    for table in ("users", "orders", "invoices"):
        fetch_rows(table)
    try:
        parse_report("q3", [])
    except ValueError:
        # logger.exception is enough: the exception's name, message and full traceback go
        # into the error event. The telemetry extra only names it; without one, functionName
        # would be this function's name ("main").
        logger.exception(
            "could not parse the report", extra={"telemetry": {"functionName": "Reports.parse"}}
        )
    logger.info("a record without telemetry goes to the console only")


if __name__ == "__main__":
    main()
