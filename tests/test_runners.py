"""Job runners whose workers end with ``os._exit``: Celery's prefork children and RQ's work horses.

The real runners run in subprocesses, with logging configured by dictConfig when the tasks
module is imported, as a user would write it, and nothing of ours in the tasks. A partial batch
waits ``flush_interval`` (here a minute) before it leaves on its own, so every event that
arrives was sent by a drain at a worker's exit.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import closed_port

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the runners fork workers")

WORKER_TIMEOUT = 60.0
SHUTDOWN_TIMEOUT = 1.0  # the exit budget when the endpoint is down
EXIT_MARGIN = 1.5

TASKS = """
import json, logging.config, os, time

logging.config.dictConfig({
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {
        "telemetry": {
            "class": "composio_logtelemetry.TelemetryQueueHandler",
            "handlers": ["composio"],
            ".": {"shutdown_timeout": float(os.environ["TEST_SHUTDOWN_TIMEOUT"])},
        },
        "composio": {
            "class": "composio_logtelemetry.TelemetryHandler",
            "endpoint": os.environ["TEST_ENDPOINT"],
            "spool_path": os.environ["TEST_SPOOL"],
            "flush_interval": 60.0,
            "timeout": 1.0,
        },
    },
    "loggers": {"jobs": {"handlers": ["telemetry"], "level": "INFO"}},
})
log = logging.getLogger("jobs")


def log_one(number):
    props = {"n": number, "pid": os.getpid()}
    log.info("done", extra={"telemetry": {"functionName": "Jobs.log_one", "props": props}})
    with open(os.path.join(os.environ["TEST_DONE"], str(number)), "w") as done:
        done.write(str(os.getpid()))
"""

CELERY_TASKS = (
    TASKS
    + """
from celery import Celery, signals

app = Celery("tasks", broker=os.environ["TEST_BROKER"])
if app.conf.broker_url.startswith("filesystem"):
    folder = os.environ["TEST_BROKER_DIR"]
    app.conf.broker_transport_options = {
        "data_folder_in": folder, "data_folder_out": folder, "polling_interval": 0.05,
    }
app.conf.broker_connection_retry_on_startup = True
log_one = app.task(log_one)


def exit_started(**_):
    record_exit("start")


def record_exit(moment, **_):
    path = os.path.join(os.environ["TEST_EXITS"], f"{os.getpid()}-{moment}")
    with open(path, "w") as mark:
        mark.write(repr(time.time()))


# connected now, before the pipeline starts: runs before the library's drain
signals.worker_process_shutdown.connect(exit_started, weak=False)


@signals.task_postrun.connect
def connect_exit_end(**_):
    # connected after the first task logged: runs after the library's drain
    signals.worker_process_shutdown.connect(
        lambda **_: record_exit("end"), weak=False, dispatch_uid="test-exit-end"
    )
"""
)


def _require(module: str) -> None:
    """Skips without the package; with CI set, a missing real part fails instead."""
    try:
        __import__(module)
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is not installed (CI must test the real runner)")
        pytest.skip(f"{module} not installed: pip install '.[samples]'")


class Run:
    """Files of one runner's run: the tasks module, the spool, the marks the tasks leave."""

    def __init__(self, folder: Path, endpoint: str, module: str, source: str) -> None:
        self.folder = folder
        self.done = folder / "done"
        self.exits = folder / "exits"
        self.spool = folder / "spool.sqlite3"
        for made in (self.done, self.exits, folder / "broker"):
            made.mkdir()
        (folder / f"{module}.py").write_text(source)
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(folder), os.environ.get("PYTHONPATH")])
            ),
            "PYTHONDONTWRITEBYTECODE": "1",
            "TEST_ENDPOINT": endpoint,
            "TEST_SPOOL": str(self.spool),
            "TEST_DONE": str(self.done),
            "TEST_EXITS": str(self.exits),
            "TEST_BROKER_DIR": str(folder / "broker"),
            "TEST_SHUTDOWN_TIMEOUT": str(SHUTDOWN_TIMEOUT),
        }

    def python(self, code: str) -> None:
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=WORKER_TIMEOUT,
        )
        assert result.returncode == 0, result.stderr

    def wait_done(self, count: int, worker: subprocess.Popen[str]) -> None:
        """Bounded: until every task has left its mark, or the worker has died."""
        deadline = time.monotonic() + WORKER_TIMEOUT
        while len(os.listdir(self.done)) < count:
            assert worker.poll() is None, worker.communicate()
            assert time.monotonic() < deadline, f"{len(os.listdir(self.done))} of {count} done"
            time.sleep(0.05)

    def spooled(self) -> int:
        if not self.spool.exists():
            return 0
        with sqlite3.connect(self.spool) as spool:
            tables = [row[0] for row in spool.execute("SELECT name FROM sqlite_master")]
            assert "events" in tables, tables
            count: int = spool.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        return count


def _numbers(receiver: Any) -> list[int]:
    return sorted(row["event"]["props"]["n"] for row in receiver.events())


# -- a real redis-server -------------------------------------------------------------------------


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A redis-server on 127.0.0.1 and a free port, in the foreground, stopped after the test."""
    _require("redis")
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed (CI apt-installs it)")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    import redis

    port = closed_port()
    folder = tmp_path / "redis"
    folder.mkdir()
    server = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder), "--save", ""],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert server.poll() is None, server.communicate()[0]
                assert time.monotonic() < deadline, "redis-server did not answer in 10 s"
                time.sleep(0.02)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.communicate(timeout=10)


# -- Celery --------------------------------------------------------------------------------------


def _celery_worker(run: Run, *options: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--loglevel", "WARNING"]
    command += ["--without-heartbeat", "--without-mingle", "--without-gossip", *options]
    return subprocess.Popen(
        command,
        cwd=run.folder,
        env=run.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run_celery(
    run: Run, broker: str, tasks: int, *options: str, stop: signal.Signals = signal.SIGTERM
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Queues ``tasks`` tasks, runs a worker until they are done, then stops it (SIGTERM: a
    warm shutdown; SIGQUIT: a cold one)."""
    run.env["TEST_BROKER"] = broker
    run.python(f"import tasks\nfor n in range({tasks}): tasks.log_one.delay(n)")
    worker = _celery_worker(run, *options)
    try:
        run.wait_done(tasks, worker)
    finally:
        stopping = time.monotonic()
        worker.send_signal(stop)
        out, err = worker.communicate(timeout=WORKER_TIMEOUT)
    stopped = time.monotonic() - stopping
    return subprocess.CompletedProcess(worker.args, worker.returncode, out, err), stopped


PREFORK_RECYCLED = ("--pool", "prefork", "--concurrency", "2", "--max-tasks-per-child", "2")


@pytest.mark.parametrize("broker", ["filesystem", "redis"])
def test_celery_recycled_prefork_children_deliver_every_event(
    receiver: Any, tmp_path: Path, request: pytest.FixtureRequest, broker: str
) -> None:
    """2 children, each recycled after 2 tasks (they end with os._exit), then a warm shutdown."""
    _require("celery")
    url = "filesystem://" if broker == "filesystem" else request.getfixturevalue("redis_url")
    run = Run(tmp_path, receiver.base_url, "tasks", CELERY_TASKS)
    result, _stopped = _run_celery(run, url, 20, *PREFORK_RECYCLED)
    assert result.returncode == 0, result.stderr
    assert _numbers(receiver) == list(range(20)), result.stderr
    pids = {row["event"]["props"]["pid"] for row in receiver.events()}
    assert len(pids) >= 6, pids  # children were recycled: each ran 2 tasks at most
    assert run.spooled() == 0


def test_celery_cold_shutdown_drains_the_children_it_terminates(
    receiver: Any, tmp_path: Path
) -> None:
    """A cold shutdown (SIGQUIT) terminates the prefork children with SIGTERM, whose action
    Celery set back to the default in each child: the pipeline, started in the child, takes
    SIGTERM there and drains before the child dies of it."""
    _require("celery")
    run = Run(tmp_path, receiver.base_url, "tasks", CELERY_TASKS)
    options = ("--pool", "prefork", "--concurrency", "2")
    result, stopped = _run_celery(run, "filesystem://", 10, *options, stop=signal.SIGQUIT)
    assert _numbers(receiver) == list(range(10)), result.stderr
    assert run.spooled() == 0
    assert stopped < SHUTDOWN_TIMEOUT + WORKER_TIMEOUT


def test_celery_children_recycled_for_their_memory_deliver_every_event(
    receiver: Any, tmp_path: Path
) -> None:
    """--max-memory-per-child 1 (KiB): every child is over it after its first task, and is
    replaced through the same os._exit as a child recycled after a number of tasks."""
    _require("celery")
    run = Run(tmp_path, receiver.base_url, "tasks", CELERY_TASKS)
    options = ("--pool", "prefork", "--concurrency", "2", "--max-memory-per-child", "1")
    result, _stopped = _run_celery(run, "filesystem://", 6, *options)
    assert result.returncode == 0, result.stderr
    assert _numbers(receiver) == list(range(6)), result.stderr
    pids = {row["event"]["props"]["pid"] for row in receiver.events()}
    assert len(pids) >= 3, pids  # children were replaced
    assert run.spooled() == 0


@pytest.mark.parametrize("pool", ["solo", "threads"])
def test_celery_pools_without_children_deliver_at_exit(
    receiver: Any, tmp_path: Path, pool: str
) -> None:
    _require("celery")
    run = Run(tmp_path, receiver.base_url, "tasks", CELERY_TASKS)
    result, _stopped = _run_celery(run, "filesystem://", 5, "--pool", pool)
    assert result.returncode == 0, result.stderr
    assert _numbers(receiver) == list(range(5)), result.stderr


def test_celery_recycled_child_exit_is_bounded_when_the_endpoint_is_down(tmp_path: Path) -> None:
    """Each child's drain gives up within shutdown_timeout; its events wait in the spool."""
    _require("celery")
    run = Run(tmp_path, f"http://127.0.0.1:{closed_port()}/v1", "tasks", CELERY_TASKS)
    options = ("--pool", "prefork", "--concurrency", "2", "--max-tasks-per-child", "1")
    result, stopped = _run_celery(run, "filesystem://", 4, *options)
    assert result.returncode == 0, result.stderr
    drains = []
    for end in run.exits.glob("*-end"):  # the children that ran a task
        start = end.with_name(end.name.replace("-end", "-start"))
        drains.append(float(end.read_text()) - float(start.read_text()))
    assert len(drains) == 4, sorted(os.listdir(run.exits))
    print(f"child drains with the endpoint down: {sorted(round(d, 2) for d in drains)} s")
    assert max(drains) < SHUTDOWN_TIMEOUT + EXIT_MARGIN, drains
    assert stopped < 2 * (SHUTDOWN_TIMEOUT + EXIT_MARGIN) + 5, stopped
    assert run.spooled() == 4
    assert "saved to the spool" in result.stderr, result.stderr


# -- RQ ------------------------------------------------------------------------------------------


QUICK_TEARDOWN = """
import rq

def unsubscribe(worker):
    # rq 3.0 expects PubSubWorkerThread.stop() not to wait; redis-py 8 joins the thread there,
    # which may wait out its 60 s poll: a race in rq's teardown, not in the jobs' telemetry
    if worker.pubsub_thread:
        worker.pubsub.unsubscribe()
        worker.pubsub_thread._running.clear()
        worker.pubsub_thread.join(timeout=1)
        worker.pubsub.close()

class Worker(rq.Worker):
    unsubscribe = unsubscribe

class SimpleWorker(rq.SimpleWorker):
    unsubscribe = unsubscribe
"""


def _run_rq(run: Run, url: str, jobs: int, *options: str) -> subprocess.CompletedProcess[str]:
    import redis
    import rq

    with redis.Redis.from_url(url) as connection:
        queue = rq.Queue("default", connection=connection)
        for number in range(jobs):
            queue.enqueue("rq_jobs.log_one", number)
    return subprocess.run(
        [sys.executable, "-m", "rq.cli", "worker", "--burst", "--url", url, *options],
        cwd=run.folder,
        env=run.env,
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT,
    )


@pytest.mark.parametrize("worker_class", ["Worker", "SimpleWorker"])
def test_rq_work_horses_deliver_every_event(
    receiver: Any, tmp_path: Path, redis_url: str, worker_class: str
) -> None:
    """rq.Worker forks a work horse per job, which ends with os._exit; SimpleWorker does not."""
    _require("rq")
    run = Run(tmp_path, receiver.base_url, "rq_jobs", TASKS)
    (tmp_path / "quick_teardown.py").write_text(QUICK_TEARDOWN)
    result = _run_rq(run, redis_url, 10, "--worker-class", f"quick_teardown.{worker_class}")
    assert result.returncode == 0, result.stderr
    assert _numbers(receiver) == list(range(10)), result.stderr
    pids = {row["event"]["props"]["pid"] for row in receiver.events()}
    assert len(pids) == (10 if worker_class == "Worker" else 1)
