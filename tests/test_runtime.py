"""The process-wide runtime: a platform without fork, and threads started while logging's
module lock is held."""

from __future__ import annotations

import json
import subprocess

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


GARBAGE_IN_A_NEW_THREAD = """
import gc, logging, threading
from composio_logtelemetry import _runtime

main = threading.main_thread()

def like_remove_handler_ref(phase, info):
    # What logging's weakref callback does when a collection frees a handler.
    if phase == "start" and threading.current_thread() is not main:
        with logging._lock:
            pass

done = threading.Event()
with logging._lock:  # as dictConfig holds it while it closes the handlers it replaces
    gc.callbacks.append(like_remove_handler_ref)
    gc.set_threshold(1)  # the new thread's first allocations collect
    _runtime.run_outside_logging_lock(done.set, "test")
print("closed on its own thread:", done.wait(10))
"""


def test_a_close_under_logging_lock_starts_its_thread_without_deadlock() -> None:
    """dictConfig closes handlers holding logging's lock; the close runs on a thread of its
    own, whose start-up must not collect garbage (a handler's weakref callback needs that
    lock, and the starting thread waits for the new one). Seen once on CI as a hang."""
    try:
        result = run_python(GARBAGE_IN_A_NEW_THREAD, timeout=30.0)
    except subprocess.TimeoutExpired:
        raise AssertionError("deadlocked: the close thread never started") from None
    assert result.returncode == 0, result.stderr
    assert "closed on its own thread: True" in result.stdout
