"""Fork safety: forked workers get their own queue, listener and session, and deliver.

Each scenario runs in a fresh interpreter, so that forking never involves pytest's own threads;
the endpoint lives in the test process and counts what every worker delivered.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import subprocess
import sys
from typing import Any

import pytest
import requests
from urllib3.util.retry import Retry

from conftest import FaultyEndpoint, run_python

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

PER_WORKER = 200

PIPELINE = """
import json, logging, os, signal, sys, threading
from composio_logtelemetry import TelemetryHandler, TelemetryQueueHandler

handler = TelemetryHandler(endpoint=os.environ["TEST_ENDPOINT"], spool=False)
queue_handler = TelemetryQueueHandler(handlers=[handler], maxsize=1_000_000)
log = logging.getLogger("app")
log.setLevel(logging.INFO)
log.propagate = False
log.addHandler(queue_handler)
PER_WORKER = int(os.environ["TEST_PER_WORKER"])

def send(who, number):
    props = {"who": who, "n": number, "pid": os.getpid()}
    log.info("event", extra={"telemetry": {"functionName": "Fork.event", "props": props}})

class Hung(Exception):
    pass

def raise_hung(signum, frame):
    raise Hung()

def wait_for_workers(pids, timeout):
    \"\"\"Exit codes of the workers; kills them all if any is still running after ``timeout``.\"\"\"
    signal.signal(signal.SIGALRM, raise_hung)
    signal.alarm(timeout)
    try:
        return [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    except Hung:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        print(json.dumps({"hung": True}))
        sys.exit(3)
    finally:
        signal.alarm(0)
"""

WORKERS_WHILE_PARENT_LOGS = (
    PIPELINE
    + """
send("parent", 0)
assert queue_handler.flush(10)  # the parent's listener, senders and session exist before the forks
parent_listener = queue_handler.listener
chatting = threading.Event()
stop = threading.Event()
parent_sent = [1]

def chatter():
    while not stop.is_set():
        send("parent", parent_sent[0])
        parent_sent[0] += 1
        chatting.set()

thread = threading.Thread(target=chatter)
thread.start()
chatting.wait(10)
workers = []
for worker in range(4):
    pid = os.fork()
    if pid == 0:
        for number in range(PER_WORKER):
            send(f"worker-{worker}", number)
        EXIT_AT_ONCE
    workers.append(pid)
stop.set()
thread.join()
codes = wait_for_workers(workers, 30)
print(json.dumps({
    "codes": codes,
    "parent_sent": parent_sent[0],
    "parent_flushed": queue_handler.flush(10),
    "same_parent_listener": queue_handler.listener is parent_listener,
    "stats": queue_handler.stats(),
}))
"""
)


def _received_by_sender(endpoint: FaultyEndpoint) -> dict[str, list[int]]:
    numbers: dict[str, list[int]] = collections.defaultdict(list)
    for _kind, event in endpoint.events:
        numbers[event["props"]["who"]].append(event["props"]["n"])
    return numbers


def _run(code: str, endpoint: FaultyEndpoint, per_worker: int = PER_WORKER) -> dict[str, Any]:
    result = run_python(
        code, env={"TEST_ENDPOINT": endpoint.base_url, "TEST_PER_WORKER": str(per_worker)}
    )
    assert result.returncode == 0, (result.stdout, result.stderr)
    report: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return report


def test_four_forked_workers_deliver_everything_while_the_parent_logs(
    endpoint: FaultyEndpoint,
) -> None:
    """A thread logs in the parent at the moment of each fork: no worker deadlocks."""
    code = WORKERS_WHILE_PARENT_LOGS.replace(
        "EXIT_AT_ONCE", "os._exit(0 if queue_handler.flush(10) else 1)"
    )
    report = _run(code, endpoint)
    assert report["codes"] == [0, 0, 0, 0]
    received = _received_by_sender(endpoint)
    for worker in range(4):
        assert sorted(received[f"worker-{worker}"]) == list(range(PER_WORKER)), worker
    # the parent is unaffected: same listener, and everything it logged arrived once
    assert report["same_parent_listener"] is True
    assert report["parent_flushed"] is True
    assert sorted(received["parent"]) == list(range(report["parent_sent"]))
    assert report["stats"]["dropped_queue_full"] == 0
    pids = {event["props"]["pid"] for _kind, event in endpoint.events}
    assert len(pids) == 5
    assert endpoint.violations == []


@pytest.mark.parametrize("per_worker", [3, PER_WORKER])
def test_forked_workers_that_exit_normally_deliver_at_exit(
    endpoint: FaultyEndpoint, per_worker: int
) -> None:
    """Like gunicorn workers: they log, then ``sys.exit``; the exit drain runs in each worker
    (with 3 events, not even a batch was due before the interpreter began to shut down)."""
    code = WORKERS_WHILE_PARENT_LOGS.replace("EXIT_AT_ONCE", "sys.exit(0)")
    report = _run(code, endpoint, per_worker)
    assert report["codes"] == [0, 0, 0, 0]
    received = _received_by_sender(endpoint)
    for worker in range(4):
        assert sorted(received[f"worker-{worker}"]) == list(range(per_worker)), worker
    assert endpoint.violations == []


MULTIPROCESSING_WORKERS = (
    PIPELINE
    + """
import multiprocessing

def work(worker):
    for number in range(PER_WORKER):
        send(f"worker-{worker}", number)
    # returning ends the child with os._exit: atexit does not run here

if __name__ == "__main__":
    if os.environ["TEST_PARENT_LOGS_FIRST"] == "1":
        send("parent", 0)
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=work, args=(worker,)) for worker in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(30)
    hung = [process.pid for process in processes if process.exitcode is None]
    for process in processes:
        if process.exitcode is None:
            process.kill()
    codes = [process.exitcode for process in processes]
    print(json.dumps({"codes": codes, "flushed": queue_handler.flush(10)}))
"""
)


@pytest.mark.parametrize("parent_logs_first", [True, False], ids=["started", "unstarted"])
def test_multiprocessing_children_are_drained_despite_os_exit(
    endpoint: FaultyEndpoint, parent_logs_first: bool
) -> None:
    result = run_python(
        MULTIPROCESSING_WORKERS,
        env={
            "TEST_ENDPOINT": endpoint.base_url,
            "TEST_PER_WORKER": "25",
            "TEST_PARENT_LOGS_FIRST": "1" if parent_logs_first else "0",
        },
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report == {"codes": [0, 0, 0, 0], "flushed": True}
    received = _received_by_sender(endpoint)
    for worker in range(4):
        assert sorted(received[f"worker-{worker}"]) == list(range(25)), (worker, result.stderr)
    assert received.get("parent", []) == ([0] if parent_logs_first else [])
    assert endpoint.violations == []


IMPORTING_CHILDREN = """
import logging, multiprocessing, os, sys
from composio_logtelemetry import TelemetryHandler, TelemetryQueueHandler

log = logging.getLogger("app")
log.setLevel(logging.INFO)
handler = TelemetryHandler(endpoint=os.environ["TEST_ENDPOINT"], spool=False)
log.addHandler(TelemetryQueueHandler(handlers=[handler]))

def send(who):
    log.info("x", extra={"telemetry": {"functionName": "Child", "props": {"who": who, "n": 0}}})

send(f"import-{multiprocessing.parent_process() is None}")  # logs as the module is imported

def work(worker):
    send(f"worker-{worker}")  # returning ends the child with os._exit: atexit does not run

if __name__ == "__main__":
    context = multiprocessing.get_context(sys.argv[1])
    processes = [context.Process(target=work, args=(worker,)) for worker in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(30)
    print([process.exitcode for process in processes])
"""


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_children_that_import_the_main_module_and_log_there_are_drained(
    endpoint: FaultyEndpoint, tmp_path: Any, method: str
) -> None:
    """A spawned or forkserver child imports the main module, which may log at once, before
    multiprocessing has made it a child (and cleared its finalizers)."""
    script = tmp_path / "importing_children.py"
    script.write_text(IMPORTING_CHILDREN)
    result = subprocess.run(
        [sys.executable, str(script), method],
        env={**os.environ, "TEST_ENDPOINT": endpoint.base_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout.strip() == "[0, 0]", result.stderr
    received = _received_by_sender(endpoint)
    assert received["worker-0"] == received["worker-1"] == [0]
    # the parent's, and each child's, logged as it imported the module: none lost
    assert received["import-True"] == [0, 0, 0]


def test_a_child_gets_its_own_listener_and_session(endpoint: FaultyEndpoint) -> None:
    code = (
        PIPELINE
        + """
send("parent", 0)
assert queue_handler.flush(10)
parent = {
    "queue": id(queue_handler.queue),
    "listener": id(queue_handler.listener),
    "session": id(handler._engine().transport._current_session()[0]),
}
read_end, write_end = os.pipe()
pid = os.fork()
if pid == 0:
    send("child", 0)
    flushed = queue_handler.flush(10)
    child = {
        "queue": id(queue_handler.queue),
        "listener": id(queue_handler.listener),
        "session": id(handler._engine().transport._current_session()[0]),
        "threads": sorted(t.name for t in threading.enumerate()),
        "flushed": flushed,
    }
    os.write(write_end, json.dumps(child).encode())
    os._exit(0)
os.close(write_end)
codes = wait_for_workers([pid], 30)
with os.fdopen(read_end) as pipe:
    child = json.loads(pipe.read())
print(json.dumps({"parent": parent, "child": child, "codes": codes}))
"""
    )
    report = _run(code, endpoint)
    parent, child = report["parent"], report["child"]
    assert report["codes"] == [0]
    assert child["flushed"] is True
    for part in ("queue", "listener", "session"):
        assert child[part] != parent[part], part
    assert "composio-telemetry-listener" in child["threads"]
    assert sorted(_received_by_sender(endpoint)) == ["child", "parent"]


GUNICORN_APP = """
import logging, os
from composio_logtelemetry import TelemetryHandler, TelemetryQueueHandler

handler = TelemetryHandler(endpoint=os.environ["TEST_ENDPOINT"], spool=False)
queue_handler = TelemetryQueueHandler(handlers=[handler])
log = logging.getLogger("app")
log.setLevel(logging.INFO)
log.addHandler(queue_handler)
log.info("loaded", extra={"telemetry": {"functionName": "App.preload"}})  # in the arbiter

def app(environ, start_response):
    props = {"pid": os.getpid()}
    log.info("hit", extra={"telemetry": {"functionName": "App.hit", "props": props}})
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
"""


def test_gunicorn_preload_workers_deliver(endpoint: FaultyEndpoint, tmp_path: Any) -> None:
    """The pipeline is built (and started) in the arbiter, then forked into the workers."""
    pytest.importorskip("gunicorn")
    (tmp_path / "telemetry_app.py").write_text(GUNICORN_APP)
    # gunicorn serves a socket we bound to port 0 (fd://): no other process can take the port
    # between choosing it and listening on it.
    listening = socket.create_server(("127.0.0.1", 0))
    address = f"127.0.0.1:{listening.getsockname()[1]}"
    bind = f"fd://{listening.fileno()}"
    command = [sys.executable, "-m", "gunicorn", "--preload", "--workers", "2", "--bind", bind]
    with listening:
        server = subprocess.Popen(
            [*command, "--graceful-timeout", "10", "telemetry_app:app"],
            cwd=tmp_path,
            env={**os.environ, "TEST_ENDPOINT": endpoint.base_url},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            pass_fds=[listening.fileno()],
        )
    try:
        with requests.Session() as session:
            # connection refused until gunicorn listens: a bounded wait, not a sleep
            waiting = Retry(connect=40, backoff_factor=0.05, backoff_max=0.25)
            session.mount("http://", requests.adapters.HTTPAdapter(max_retries=waiting))
            answers = [
                session.get(f"http://{address}/", timeout=5, headers={"Connection": "close"})
                for _ in range(20)
            ]
    finally:
        server.send_signal(signal.SIGTERM)  # graceful: each worker exits through sys.exit
        _out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    received = collections.Counter(event["functionName"] for _kind, event in endpoint.events)
    assert received == {"App.preload": 1, "App.hit": 20}, err
    hit_pids = collections.Counter(
        str(event["props"]["pid"])
        for event in endpoint.of_kind("metric")
        if event["functionName"] == "App.hit"
    )
    assert hit_pids == collections.Counter(answer.text for answer in answers)
    assert endpoint.violations == []
