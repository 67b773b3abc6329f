"""``composio-logtelemetry demo``: the whole pipeline against an embedded receiver.

It is the quickest proof that an installation works: no network, no configuration, and
the same ``dictConfig`` a user would write.

The logging configuration here repeats the canonical one in README.rst ("Configure with
dictConfig") so that this file can be copied alone; change that one first.
"""

from __future__ import annotations

import logging
import logging.config
import random
import sys
import time
from typing import Any, TextIO, cast

from .. import TelemetryQueueHandler, timed
from .receiver import Receiver, percentile

TOOLS = ("Tools.execute", "Toolkits.list", "Triggers.subscribe", "Connections.get")


def logging_config(endpoint: str) -> dict[str, Any]:
    """The dictConfig a user writes; the same form works on Python 3.10 to 3.13."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "telemetry": {
                "class": "composio_logtelemetry.TelemetryQueueHandler",
                "handlers": ["composio"],
                ".": {"shutdown_timeout": 5.0},
            },
            "composio": {
                "class": "composio_logtelemetry.TelemetryHandler",
                "endpoint": endpoint,
                "spool": False,
                "source": {"environment": "development", "version": "demo"},
            },
        },
        "loggers": {"demo": {"handlers": ["telemetry"], "level": "INFO", "propagate": False}},
    }


def _workload(logger: logging.Logger, calls: int) -> None:
    rng = random.Random(7)
    for number in range(calls):
        tool = TOOLS[number % len(TOOLS)]
        with timed(tool, logger=logger, props={"call": number}, metadata={"provider": "openai"}):
            time.sleep(rng.uniform(0.0002, 0.002))
    try:
        with timed("Tools.execute", logger=logger, metadata={"provider": "openai"}):
            raise LookupError("Toolkit version not specified.")
    except LookupError:
        pass


def run(out: TextIO = sys.stdout, calls: int = 200) -> int:
    with Receiver() as receiver:
        logging.config.dictConfig(logging_config(receiver.base_url))
        logger = logging.getLogger("demo")
        handler = cast(TelemetryQueueHandler, logger.handlers[0])
        started = time.perf_counter()
        _workload(logger, calls)
        delivered = handler.flush(10.0)
        elapsed = time.perf_counter() - started
        events = receiver.events()
        out.write(
            f"demo: {calls + 1} tool calls logged, {len(events)} events received by "
            f"{receiver.base_url} in {elapsed:.2f} s (all delivered: {delivered})\n\n"
        )
        out.write(f"{'functionName':<22}{'count':>7}{'errors':>8}{'p50 ms':>9}{'p95 ms':>9}\n")
        for name in sorted({item["event"]["functionName"] for item in events}):
            mine = [item for item in events if item["event"]["functionName"] == name]
            durations = [item["event"].get("durationMs", 0.0) for item in mine]
            errors = sum(1 for item in mine if item["kind"] == "error")
            p50, p95 = percentile(durations, 50) or 0.0, percentile(durations, 95) or 0.0
            out.write(f"{name:<22}{len(mine):>7}{errors:>8}{p50:>9.2f}{p95:>9.2f}\n")
        failed = [item["event"] for item in events if item["kind"] == "error"]
        for event in failed:
            error = event["error"]
            out.write(f"\nerror event: {error['name']}: {error.get('message', '')}\n")
        logging.getLogger("demo").removeHandler(handler)
        handler.close()
        return 0 if delivered and len(events) == calls + 1 else 1
