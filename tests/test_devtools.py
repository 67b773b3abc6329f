"""The logging pipeline stays free of the dev tooling (receiver, demo, validator, their extra)."""

from __future__ import annotations

import json

from conftest import FaultyEndpoint, run_python

PIPELINE = """
import json, logging, logging.config, sys
import composio_logtelemetry, composio_logtelemetry.cli
logging.config.dictConfig({
    "version": 1,
    "handlers": {
        "telemetry": {"class": "composio_logtelemetry.TelemetryQueueHandler",
                      "handlers": ["composio"]},
        "composio": {"class": "composio_logtelemetry.TelemetryHandler",
                     "endpoint": %r, "spool": False},
    },
    "loggers": {"app": {"handlers": ["telemetry"], "level": "INFO"}},
})
logger = logging.getLogger("app")
logger.info("ran", extra={"telemetry": {"functionName": "Tools.execute", "durationMs": 1.0}})
delivered = logger.handlers[0].flush(10.0)
dev = [name for name in sys.modules
       if name.startswith("composio_logtelemetry.devtools")
       or name.partition(".")[0] in ("fastjsonschema", "jsonschema")]
print(json.dumps({"delivered": delivered, "dev_modules": sorted(dev)}))
"""


def test_the_logging_pipeline_imports_no_dev_tooling(endpoint: FaultyEndpoint) -> None:
    result = run_python(PIPELINE % endpoint.base_url)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"delivered": True, "dev_modules": []}
    assert endpoint.wait_for(1)
