"""Delivery under real network trouble: retries, spool, bounded exit, bounded memory."""

from __future__ import annotations

import collections
import email.utils
import json
import sys
import threading
import time
from typing import Any

import pytest

from composio_logtelemetry._spool import Spool
from conftest import FaultyEndpoint, closed_port, run_python

# What a loaded 2-core CI machine adds to a configured budget when a test times a whole
# subprocess: starting the interpreter, importing requests, thread scheduling.
MARGIN = 2.0
DEFAULT_SHUTDOWN_TIMEOUT = 5.0  # SPEC: the queue handler's default exit budget


def _numbers(events: list[dict[str, Any]]) -> collections.Counter[int]:
    return collections.Counter(event["props"]["n"] for event in events)


def test_flaky_endpoint_loses_nothing(endpoint: FaultyEndpoint, pipeline: Any) -> None:
    endpoint.flaky(failure_rate=0.30, reset_rate=0.10)
    logger, handler = pipeline(batch_size=100, max_retries=10)
    for number in range(3000):
        logger.info("x", extra={"telemetry": {"functionName": "Flaky", "props": {"n": number}}})
    assert handler.flush(60.0), handler.stats()
    # These resets and statuses all come before a batch is accepted, so each event arrives
    # exactly once; a reply lost after acceptance is the next test's.
    assert _numbers(endpoint.of_kind("metric")) == collections.Counter(range(3000))
    stats = handler.stats()
    assert stats["retried"] > 0 and stats["spooled"] == 0 and stats["dropped"] == 0
    assert sum(endpoint.batches) / len(endpoint.batches) > 20  # many events per POST
    assert endpoint.violations == []


def test_a_reply_lost_after_acceptance_is_retried_and_the_receiver_sees_each_event(
    endpoint: FaultyEndpoint, pipeline: Any
) -> None:
    """The endpoint keeps the batch, then the connection dies before the reply: the sender
    cannot tell, so it sends again. At-least-once: duplicates, never a gap. (Two resets
    before acceptance come next, whose batches only a retry delivers.)"""
    requests = {"seen": 0}
    lock = threading.Lock()

    def script(kind: str) -> tuple[Any, ...]:
        with lock:
            requests["seen"] += 1
            seen = requests["seen"]
        if seen <= 3:
            return ("accept-then-reset",)
        return ("reset",) if seen <= 5 else ("ok",)

    endpoint.script = script
    logger, handler = pipeline(batch_size=50, max_retries=10)
    for number in range(200):
        logger.info("x", extra={"telemetry": {"functionName": "Lost", "props": {"n": number}}})
    assert handler.flush(30.0), handler.stats()
    seen = _numbers(endpoint.of_kind("metric"))
    assert set(seen) == set(range(200))  # none lost
    assert sum(seen.values()) > 200  # the batches whose reply was lost arrived again
    stats = handler.stats()
    assert stats["retried"] >= 5 and stats["spooled"] == 0 and stats["dropped"] == 0
    assert endpoint.violations == []


def test_client_errors_are_rejected_not_retried(endpoint: FaultyEndpoint, pipeline: Any) -> None:
    calls = []

    def script(kind: str) -> tuple[Any, ...]:
        calls.append(kind)
        return ("status", 400, {})

    endpoint.script = script
    logger, handler = pipeline()
    logger.info("x", extra={"telemetry": {"functionName": "Rejected"}})
    assert not handler.flush(5.0)
    assert handler.stats()["rejected"] == 1
    assert handler.stats()["retried"] == 0
    assert calls == ["metric"]


def test_a_batch_too_large_for_the_endpoint_goes_again_in_halves(
    endpoint: FaultyEndpoint, pipeline: Any
) -> None:
    endpoint.max_body_bytes = 2000  # about ten events
    logger, handler = pipeline(batch_size=100)
    for number in range(250):
        logger.info("x", extra={"telemetry": {"functionName": "Big", "props": {"n": number}}})
    assert handler.flush(20.0), handler.stats()
    seen = _numbers(endpoint.of_kind("metric"))
    assert seen == collections.Counter(range(250))  # each event once
    assert max(endpoint.batches) < 20
    stats = handler.stats()
    assert stats["sent"] == 250 and stats["rejected"] == 0 and stats["retried"] > 0
    refused = endpoint.requests - len(endpoint.batches)
    for number in range(250, 500):
        logger.info("x", extra={"telemetry": {"functionName": "Big", "props": {"n": number}}})
    assert handler.flush(20.0), handler.stats()
    assert endpoint.requests - len(endpoint.batches) == refused  # later batches start small
    assert set(_numbers(endpoint.of_kind("metric"))) == set(range(500))


def test_an_event_too_large_by_itself_is_rejected_alone(
    endpoint: FaultyEndpoint, pipeline: Any
) -> None:
    endpoint.max_body_bytes = 2000
    logger, handler = pipeline(batch_size=100, flush_interval=60.0)
    for number in range(9):
        props = {"n": number, "blob": "x" * 3000 if number == 4 else ""}
        logger.info("x", extra={"telemetry": {"functionName": "Big", "props": props}})
    assert not handler.flush(20.0)  # one event did not make it
    assert sorted(_numbers(endpoint.of_kind("metric"))) == [0, 1, 2, 3, 5, 6, 7, 8]
    stats = handler.stats()
    assert stats["sent"] == 8 and stats["rejected"] == 1 and stats["spooled"] == 0


def test_a_redirect_is_not_followed_and_the_warning_says_where_to(
    endpoint: FaultyEndpoint, pipeline: Any, capfd: Any
) -> None:
    moved = "https://elsewhere.example/v1/metrics/invocations?token=secret123"
    endpoint.script = lambda kind: ("status", 308, {"Location": moved})
    logger, handler = pipeline()
    logger.info("x", extra={"telemetry": {"functionName": "Moved"}})
    assert not handler.flush(5.0)
    assert handler.stats()["rejected"] == 1
    warning = capfd.readouterr().err
    assert "HTTP 308 redirecting to https://elsewhere.example/v1/metrics/invocations" in warning
    assert "secret123" not in warning


def test_an_endpoint_query_stays_a_query_and_never_reaches_stderr(
    endpoint: FaultyEndpoint, pipeline: Any, capfd: Any
) -> None:
    """``?api_key=...`` (a proxy's token, say) goes with both paths; messages never print it,
    nor a user:password."""
    host = endpoint.base_url.replace("http://", "http://user:PWSECRET@")
    logger, handler = pipeline(endpoint=f"{host}?api_key=SECRET123")
    logger.info("x", extra={"telemetry": {"functionName": "Query"}})
    try:
        _failing_with("boom")
    except RuntimeError:
        logger.exception("failed")
    assert handler.flush(5.0)
    assert len(endpoint.of_kind("metric")) == len(endpoint.of_kind("error")) == 1
    assert endpoint.queries == {"api_key=SECRET123"}
    endpoint.script = lambda kind: ("status", 401, {})
    logger.info("x", extra={"telemetry": {"functionName": "Query"}})
    assert not handler.flush(5.0)
    warning = capfd.readouterr().err
    assert "rejected 1 event(s) with HTTP 401 (http://127.0.0.1:" in warning
    assert "SECRET123" not in warning and "PWSECRET" not in warning


def _failing_with(message: str) -> None:
    raise RuntimeError(message)


def test_an_unreadable_retry_after_means_the_usual_backoff(
    endpoint: FaultyEndpoint, pipeline: Any, capfd: Any
) -> None:
    answers = iter(
        [("status", 429, {"Retry-After": "soon"}), ("status", 503, {"Retry-After": "-5"})]
    )
    endpoint.script = lambda kind: next(answers, ("ok",))
    logger, handler = pipeline(retry_backoff=0.05)
    logger.info("x", extra={"telemetry": {"functionName": "Soon"}})
    assert handler.flush(10.0)
    assert [e["functionName"] for e in endpoint.of_kind("metric")] == ["Soon"]
    stats = handler.stats()
    assert stats["sent"] == 1 and stats["retried"] == 2 and stats["spooled"] == 0
    assert "error" not in capfd.readouterr().err


def test_retry_after_is_honoured(endpoint: FaultyEndpoint, pipeline: Any) -> None:
    answered_at: list[float] = []

    def script(kind: str) -> tuple[Any, ...]:
        answered_at.append(time.monotonic())
        if len(answered_at) == 1:
            return ("status", 429, {"Retry-After": "1"})
        if len(answered_at) == 2:
            retry_date = email.utils.formatdate(time.time() + 3, usegmt=True)
            return ("status", 503, {"Retry-After": retry_date})
        return ("ok",)

    endpoint.script = script
    logger, handler = pipeline(retry_backoff=0.01)
    logger.info("x", extra={"telemetry": {"functionName": "Patient"}})
    assert handler.flush(10.0)
    assert answered_at[1] - answered_at[0] >= 0.9  # waited the seconds asked
    assert answered_at[2] - answered_at[1] >= 1.5  # and the HTTP-date (1 s resolution)
    assert handler.stats()["retried"] == 2


@pytest.mark.parametrize("max_body_bytes", [None, 2000], ids=["any-size", "body-limit"])
def test_outage_spools_then_replays_when_the_endpoint_answers_again(
    endpoint: FaultyEndpoint, pipeline: Any, tmp_path: Any, max_body_bytes: int | None
) -> None:
    down = threading.Event()
    down.set()
    endpoint.script = lambda kind: ("status", 503, {}) if down.is_set() else ("ok",)
    logger, handler = pipeline(max_retries=1, flush_interval=0.1)
    for number in range(300):
        logger.info("x", extra={"telemetry": {"functionName": "Outage", "props": {"n": number}}})
    assert not handler.flush(10.0)  # not delivered: spooled
    assert handler.stats()["spooled"] == 300
    assert Spool(tmp_path / "spool.sqlite3").stats()["events"] == 300
    endpoint.max_body_bytes = max_body_bytes  # with a limit, replays go in halves (413)
    down.clear()
    logger.info("x", extra={"telemetry": {"functionName": "Outage", "props": {"n": 300}}})
    assert endpoint.wait_for(301, timeout=20.0)  # the new event, and the spool replayed
    assert set(_numbers(endpoint.of_kind("metric"))) == set(range(301))
    assert handler.flush(5.0)
    assert handler.stats()["replayed"] == 300
    assert Spool(tmp_path / "spool.sqlite3").stats()["events"] == 0


def test_queue_full_drops_and_counts_without_blocking(
    endpoint: FaultyEndpoint, pipeline: Any, capfd: Any
) -> None:
    gate = threading.Event()
    endpoint.script = lambda kind: ("stall",) if not gate.is_set() else ("ok",)
    request_timeout = 20.0  # a log call that waited for the stalled request would take this
    logger, handler = pipeline(queue_options={"maxsize": 50}, timeout=request_timeout)
    started = time.monotonic()
    for number in range(5000):
        logger.info("x", extra={"telemetry": {"functionName": "Full", "props": {"n": number}}})
    assert time.monotonic() - started < request_timeout / 4  # never waits for the endpoint
    dropped = handler.stats()["dropped_queue_full"]
    assert dropped > 1000
    err = capfd.readouterr().err
    assert err.count("telemetry queue is full") == 1  # one line, not one per record
    assert "Traceback" not in err
    gate.set()
    endpoint.release_stalls.set()


def test_each_request_stays_under_the_byte_cap(endpoint: FaultyEndpoint, pipeline: Any) -> None:
    sizes: list[int] = []
    original_accept = endpoint.accept

    def measuring_accept(kind: str, body: bytes) -> None:
        sizes.append(len(body))
        original_accept(kind, body)

    endpoint.accept = measuring_accept  # type: ignore[method-assign]
    logger, handler = pipeline(batch_size=100)
    blob = {f"k{i}": "x" * 4000 for i in range(7)}  # ~28 KiB of props per event
    for number in range(100):
        logger.info(
            "x", extra={"telemetry": {"functionName": "Big", "props": {**blob, "n": number}}}
        )
    assert handler.flush(20.0)
    assert len(endpoint.of_kind("metric")) == 100
    assert max(sizes) <= 1024 * 1024
    assert len(sizes) >= 3


EXIT_APP = """
import logging, logging.config, sys
logging.config.dictConfig({{
    "version": 1,
    "handlers": {{
        "telemetry": {{"class": "composio_logtelemetry.TelemetryQueueHandler",
                       "handlers": ["composio"], ".": {{"shutdown_timeout": {timeout}}}}},
        "composio": {{"class": "composio_logtelemetry.TelemetryHandler", "endpoint": {url!r},
                     "spool_path": {spool!r}, "timeout": 2.0}},
    }},
    "root": {{"handlers": ["telemetry"], "level": "INFO"}},
}})
log = logging.getLogger("app")
for i in range({first}, {first} + {count}):
    log.info("tick", extra={{"telemetry": {{"functionName": "Exit.tick", "props": {{"n": i}}}}}})
"""


def test_exit_with_endpoint_down_is_bounded_and_the_next_run_delivers(
    endpoint: FaultyEndpoint, tmp_path: Any
) -> None:
    spool = str(tmp_path / "shared.sqlite3")
    down_url = f"http://127.0.0.1:{closed_port()}/v1"
    first = run_python(EXIT_APP.format(timeout=2.0, url=down_url, spool=spool, first=0, count=2000))
    assert first.returncode == 0, first.stderr
    assert first.elapsed < 2.0 + MARGIN
    assert "2000 saved to the spool" in first.stderr
    assert "Traceback" not in first.stderr
    assert Spool(spool).stats()["events"] == 2000

    second = run_python(
        EXIT_APP.format(timeout=5.0, url=endpoint.base_url, spool=spool, first=2000, count=1)
    )
    assert second.returncode == 0, second.stderr
    assert set(_numbers(endpoint.of_kind("metric"))) == set(range(2001))
    assert Spool(spool).stats()["events"] == 0


def test_stalled_endpoint_does_not_stretch_the_exit(
    endpoint: FaultyEndpoint, tmp_path: Any
) -> None:
    endpoint.script = lambda kind: ("stall",)
    spool = str(tmp_path / "stalled.sqlite3")
    app = EXIT_APP.format(timeout=1.5, url=endpoint.base_url, spool=spool, first=0, count=500)
    # A request timeout beyond the bound: an exit that waited for the request would fail.
    result = run_python(app.replace('"timeout": 2.0', '"timeout": 10.0'))
    assert result.returncode == 0, result.stderr
    assert result.elapsed < 1.5 + MARGIN
    assert Spool(spool).stats()["events"] == 500  # nothing lost: all spooled for next time


@pytest.mark.skipif(sys.version_info < (3, 12), reason="dictConfig builds the listener on 3.12+")
def test_the_stdlib_recipe_keeps_the_exit_bounded_with_a_stalled_endpoint(
    endpoint: FaultyEndpoint, tmp_path: Any
) -> None:
    """``atexit.register(handler.listener.stop)`` runs before our own exit drain: stopping
    the listener that way is the drain, bounded the same, and says what was spooled."""
    endpoint.script = lambda kind: ("stall",)
    spool = str(tmp_path / "recipe.sqlite3")
    app = EXIT_APP.format(timeout=1.5, url=endpoint.base_url, spool=spool, first=0, count=0)
    app = app.replace('"timeout": 2.0', '"timeout": 10.0')  # a wait for it would show
    app += "import atexit\n"
    app += "handler = logging.getHandlerByName('telemetry')\n"
    app += "handler.listener.start()\n"
    app += "atexit.register(handler.listener.stop)\n"
    app += "for i in range(2000):\n"
    app += "    log.info('x', extra={'telemetry': {'functionName': 'Recipe', 'props': {'n': i}}})\n"
    result = run_python(app)
    assert result.returncode == 0, result.stderr
    assert result.elapsed < 1.5 + MARGIN
    assert "2000 saved to the spool" in result.stderr
    assert Spool(spool).stats()["events"] == 2000


HOOKED_APP = """
import atexit, logging, logging.config, sys
def report():
    logging.getLogger("app").info("bye", extra={{"telemetry": {{"functionName": "Exit.hook"}}}})
{early}
logging.config.dictConfig({{
    "version": 1,
    "handlers": {{
        "telemetry": {{"class": "composio_logtelemetry.TelemetryQueueHandler",
                       "handlers": ["composio"]}},
        "composio": {{"class": "composio_logtelemetry.TelemetryHandler", "endpoint": {url!r},
                     "spool_path": {spool!r}}},
    }},
    "root": {{"handlers": ["telemetry"], "level": "INFO"}},
}})
{late}
for i in range({count}):
    logging.getLogger("app").info("tick", extra={{"telemetry": {{"functionName": "Exit.tick"}}}})
"""


@pytest.mark.parametrize("logged_before_exit", [100, 0])
def test_an_exit_hook_registered_after_configuring_has_its_telemetry_sent(
    endpoint: FaultyEndpoint, tmp_path: Any, logged_before_exit: int
) -> None:
    """The exit drain is registered when logging is configured, so a hook registered later
    runs before it. Where no thread may start at exit (3.12), a hook's telemetry that would
    start the pipeline is spooled for the next run instead, with a line that says so."""
    spool = str(tmp_path / "hooked.sqlite3")
    app = HOOKED_APP.format(
        early="",
        late="atexit.register(report)",
        url=endpoint.base_url,
        spool=spool,
        count=logged_before_exit,
    )
    result = run_python(app)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    names = [event["functionName"] for event in endpoint.of_kind("metric")]
    assert names.count("Exit.tick") == logged_before_exit
    spooled = Spool(spool).stats()["events"]
    assert names.count("Exit.hook") + spooled == 1
    if logged_before_exit:
        assert spooled == 0
    if spooled:  # 3.12 refuses the threads (3.10, 3.11 and 3.13 start them)
        assert f"saved to the spool ({spool})" in result.stderr


def test_telemetry_logged_after_the_exit_drain_is_spooled_and_said(
    endpoint: FaultyEndpoint, tmp_path: Any
) -> None:
    """A hook registered before logging was configured runs after the drain: its telemetry
    can no longer be sent in this run, so it is kept for the next one, never lost in silence."""
    spool = str(tmp_path / "late.sqlite3")
    app = HOOKED_APP.format(
        early="atexit.register(report)", late="", url=endpoint.base_url, spool=spool, count=10
    )
    first = run_python(app)
    assert first.returncode == 0 and "Traceback" not in first.stderr, first.stderr
    assert f"saved to the spool ({spool}) for the next run" in first.stderr
    assert [event["functionName"] for event in endpoint.of_kind("metric")] == ["Exit.tick"] * 10
    assert Spool(spool).stats()["events"] == 1

    second = run_python(app.replace("range(10)", "range(1)"))
    assert second.returncode == 0, second.stderr
    names = [event["functionName"] for event in endpoint.of_kind("metric")]
    assert names.count("Exit.hook") >= 1  # the first run's, replayed (and this run's, spooled)


def test_the_exit_line_counts_what_is_left_not_what_came_back(
    endpoint: FaultyEndpoint, tmp_path: Any
) -> None:
    """Batches spooled during the drain and replayed by it are delivered: no line."""
    answers = iter([("status", 500, {})] * 3)
    endpoint.script = lambda kind: next(answers, ("ok",))
    spool = str(tmp_path / "flaky.sqlite3")
    result = run_python(
        EXIT_APP.format(timeout=5.0, url=endpoint.base_url, spool=spool, first=0, count=500)
    )
    assert result.returncode == 0, result.stderr
    assert set(_numbers(endpoint.of_kind("metric"))) == set(range(500))
    assert Spool(spool).stats()["events"] == 0
    assert "saved to the spool" not in result.stderr


def test_the_exit_line_totals_rejections_and_evictions(
    endpoint: FaultyEndpoint, tmp_path: Any
) -> None:
    endpoint.script = lambda kind: ("status", 401, {})
    refused = run_python(
        EXIT_APP.format(timeout=2.0, url=endpoint.base_url, spool="", first=0, count=300)
    )
    assert "at exit, telemetry not delivered: 300 rejected by the endpoint" in refused.stderr
    down = f"http://127.0.0.1:{closed_port()}/v1"
    small = str(tmp_path / "small.sqlite3")
    app = EXIT_APP.format(timeout=2.0, url=down, spool=small, first=0, count=500)
    full = run_python(app.replace('"timeout": 2.0', '"timeout": 2.0, "spool_max_bytes": 20000'))
    kept = Spool(small).stats()["events"]
    assert 0 < kept < 500
    assert "is full (spool_max_bytes=20000)" in full.stderr
    assert f"{500 - kept} evicted from the full spool" in full.stderr


def test_an_outage_is_said_once_while_events_go_to_the_spool(
    pipeline: Any, capfd: Any, tmp_path: Any
) -> None:
    down = f"http://127.0.0.1:{closed_port()}/v1"
    logger, handler = pipeline(endpoint=down, max_retries=0)
    for number in range(300):
        logger.info("x", extra={"telemetry": {"functionName": "Down", "props": {"n": number}}})
    assert not handler.flush(10.0)
    assert handler.stats()["spooled"] == 300
    lines = [line for line in capfd.readouterr().err.splitlines() if "saved to the spool" in line]
    assert len(lines) == 1
    assert "connection refused by 127.0.0.1:" in lines[0]
    assert "to be sent when the endpoint answers again" in lines[0]


RECONFIGURED_APP = """
import logging, logging.config, time
def configure():
    logging.config.dictConfig({{
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {{
            "telemetry": {{"class": "composio_logtelemetry.TelemetryQueueHandler",
                           "handlers": ["composio"]}},
            "composio": {{"class": "composio_logtelemetry.TelemetryHandler",
                         "endpoint": {url!r}, "spool_path": {spool!r}}},
        }},
        "root": {{"handlers": ["telemetry"], "level": "INFO"}},
    }})
def log(n):
    telemetry = {{"functionName": "Reconfigured", "props": {{"n": n}}}}
    logging.getLogger("app").info("x", extra={{"telemetry": telemetry}})
configure()
for n in range(10):
    log(n)
started = time.monotonic()
configure()  # a second configuration closes the first pipeline
print(f"{{time.monotonic() - started:.2f}}")
log(10)
"""


def test_configuring_logging_again_is_quick_and_sends_each_event_once(
    endpoint: FaultyEndpoint, tmp_path: Any
) -> None:
    """dictConfig closes the old handlers holding logging's lock, which our senders need."""
    spool = str(tmp_path / "reconfigured.sqlite3")
    result = run_python(RECONFIGURED_APP.format(url=endpoint.base_url, spool=spool))
    assert result.returncode == 0 and result.stderr == "", result.stderr
    # The old pipeline has nothing left to send: closing it must not wait for its budget.
    assert float(result.stdout) < DEFAULT_SHUTDOWN_TIMEOUT / 2
    assert _numbers(endpoint.of_kind("metric")) == collections.Counter(range(11))
    assert Spool(spool).stats()["events"] == 0


def test_two_processes_replaying_one_spool_deliver_each_event_once(
    endpoint: FaultyEndpoint, tmp_path: Any
) -> None:
    import subprocess
    import sys

    spool_path = str(tmp_path / "workers.sqlite3")
    spool = Spool(spool_path)
    bodies = [json.dumps({"functionName": "Spooled", "props": {"n": n}}) for n in range(3000)]
    spool.add("metric", bodies)
    spool.close()
    code = EXIT_APP.format(timeout=20.0, url=endpoint.base_url, spool=spool_path, first=0, count=0)
    code += "log.info('go', extra={'telemetry': {'functionName': 'Worker'}})\n"
    workers = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(2)]
    assert [worker.wait(60) for worker in workers] == [0, 0]
    seen = _numbers([e for e in endpoint.of_kind("metric") if e["functionName"] == "Spooled"])
    assert set(seen) == set(range(3000))
    assert max(seen.values()) == 1  # no event replayed twice
    assert Spool(spool_path).stats()["events"] == 0


MEMORY_APP = """
import logging, os, sys
from composio_logtelemetry import TelemetryHandler, TelemetryQueueHandler
handler = TelemetryHandler(endpoint={url!r}, spool=False, max_retries=1)
queue_handler = TelemetryQueueHandler(handlers=[handler], shutdown_timeout=1.0)
log = logging.getLogger("app")
log.propagate = False
log.addHandler(queue_handler)
log.setLevel(logging.INFO)
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page
marks = {{}}
for i in range(200_000):
    log.info("tick", extra={{"telemetry": {{"functionName": "Mem.tick", "props": {{"n": i}}}}}})
    if i in (50_000, 199_999):
        marks[i] = rss()
stats = queue_handler.stats()
print(marks[50_000], marks[199_999], stats["dropped"] + stats["dropped_queue_full"])
"""


def test_memory_stays_flat_with_the_endpoint_down_and_no_spool() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    result = run_python(MEMORY_APP.format(url=url), timeout=120)
    assert result.returncode == 0, result.stderr
    # That no log call waits on the network is timed against a stalled endpoint (queue full
    # test above); the cost of one call is benchmarks/bench_emit.py's.
    rss_early, rss_late, lost = result.stdout.split()
    assert int(rss_late) - int(rss_early) < 8 * 2**20
    assert int(lost) > 0  # and what could not be kept is counted
    assert "lost" in result.stderr  # and said once at exit


# -- the exit drain on an endpoint that makes progress ----------------------------------------

FLAKY_EXIT_APP = """
import logging, logging.config
logging.config.dictConfig({{
    "version": 1,
    "handlers": {{
        "telemetry": {{"class": "composio_logtelemetry.TelemetryQueueHandler",
                       "handlers": ["composio"], ".": {{"shutdown_timeout": {budget}}}}},
        "composio": {{"class": "composio_logtelemetry.TelemetryHandler", "endpoint": {url!r},
                     "spool_path": {spool!r}, "retry_backoff": 0.05}},
    }},
    "root": {{"handlers": ["telemetry"], "level": "INFO"}},
}})
log = logging.getLogger("app")
for i in range({count}):
    log.info("tick", extra={{"telemetry": {{"functionName": "Flaky.tick", "props": {{"n": i}}}}}})
"""


def test_a_flaky_endpoint_at_exit_gets_everything_within_the_budget(
    endpoint: FaultyEndpoint, tmp_path: Any
) -> None:
    """30% of requests answered 500/503/429 and 10% reset: the drain keeps working while
    requests go through, instead of leaving the rest in the spool for a later run."""
    endpoint.flaky(failure_rate=0.3, reset_rate=0.1, seed=7)
    spool = str(tmp_path / "spool.sqlite3")
    budget = 30.0
    result = run_python(
        FLAKY_EXIT_APP.format(budget=budget, url=endpoint.base_url, spool=spool, count=3000)
    )
    assert result.returncode == 0, result.stderr
    received = {event["props"]["n"] for _, event in endpoint.events}
    assert received == set(range(3000))  # at least once: a reset may have doubled some
    assert Spool(spool).stats()["events"] == 0
    assert result.elapsed < budget  # done when everything is delivered, not at the deadline
    assert "Traceback" not in result.stderr


def test_a_refused_endpoint_at_exit_is_given_up_at_once(tmp_path: Any) -> None:
    spool = str(tmp_path / "spool.sqlite3")
    down = f"http://127.0.0.1:{closed_port()}/v1"
    budget = 10.0
    result = run_python(FLAKY_EXIT_APP.format(budget=budget, url=down, spool=spool, count=500))
    assert result.returncode == 0, result.stderr
    assert result.elapsed < 2.0 + MARGIN  # far from the 10 s budget
    assert Spool(spool).stats()["events"] == 500
    assert "500 saved to the spool" in result.stderr
    assert "last cause: connection refused by 127.0.0.1" in result.stderr


# -- flush() tells the truth --------------------------------------------------------------------


def test_flush_is_false_after_records_were_dropped_for_a_full_queue(
    endpoint: FaultyEndpoint, pipeline: Any
) -> None:
    endpoint.script = lambda kind: ("stall",)  # the listener's senders hold everything up
    logger, handler = pipeline(queue_options={"maxsize": 50}, timeout=0.5, max_retries=0)
    for number in range(2000):
        logger.info("x", extra={"telemetry": {"functionName": "Full", "props": {"n": number}}})
    assert handler.stats()["dropped_queue_full"] > 0
    endpoint.script = lambda kind: ("ok",)
    endpoint.release_stalls.set()
    assert handler.flush(20.0) is False  # some of what was logged before it is gone
    logger.info("y", extra={"telemetry": {"functionName": "Full.after"}})
    assert handler.flush(20.0) is True  # nothing lost since the last flush
