"""The process-wide runtime: a platform without fork."""

from __future__ import annotations

import json

from composio_logtelemetry.devtools.receiver import Receiver
from conftest import run_python

WITHOUT_FORK = """
import os
del os.fork, os.register_at_fork  # what Windows looks like to the library
import logging, logging.config, sys
logging.config.dictConfig({{
    "version": 1,
    "handlers": {{
        "telemetry": {{"class": "composio_logtelemetry.TelemetryQueueHandler",
                       "handlers": ["composio"]}},
        "composio": {{"class": "composio_logtelemetry.TelemetryHandler",
                      "endpoint": {endpoint!r}, "spool": False}},
    }},
    "root": {{"handlers": ["telemetry"], "level": "INFO"}},
}})
import composio_logtelemetry
from composio_logtelemetry import _runtime
assert not _runtime.CAN_FORK
logger = logging.getLogger("app")
for number in range(3):
    logger.info("ran", extra={{"telemetry": {{"functionName": "Tool.run", "durationMs": 1.0}}}})
try:
    raise ValueError("boom")
except ValueError:
    logger.exception("failed")
print(json.dumps(logging.getLogger().handlers[0].flush(10.0)))
"""


def test_the_pipeline_runs_where_the_platform_cannot_fork(receiver: Receiver) -> None:
    result = run_python("import json\n" + WITHOUT_FORK.format(endpoint=receiver.base_url))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) is True
    assert receiver.wait_for(4, timeout=10.0)
    assert receiver.count("metric") == 3
    assert receiver.count("error") == 1
    assert "Traceback" not in result.stderr
