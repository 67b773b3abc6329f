"""The pipeline when its spool cannot be read or written: the cause is said, the app goes on.

Each case is an application in a fresh interpreter that logs 500 events to an endpoint that
refuses connections, so every event heads for the spool, and then exits. Whatever the spool
does, the application sees no exception, finishes its own work, and stderr says which file
failed and why, and how many events were lost.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from conftest import FaultyEndpoint, closed_port, run_python

EVENTS = 500

APP = """
import logging, sys
{before}
from composio_logtelemetry import TelemetryHandler, TelemetryQueueHandler
handler = TelemetryHandler(endpoint={url!r}, spool_path={spool!r}, max_retries=0)
queue_handler = TelemetryQueueHandler(handlers=[handler], shutdown_timeout=2.0)
log = logging.getLogger("app")
log.addHandler(queue_handler)
log.setLevel(logging.INFO)
log.propagate = False
for n in range({events}):
    log.info("x", extra={{"telemetry": {{"functionName": "App.work", "props": {{"n": n}}}}}})
queue_handler.flush(5.0)
print("app done")
"""

# The whole process may write at most this many bytes to any file: the spool's first pages
# fit, the 500 events do not (SIGXFSZ ignored, so a write past it fails with EFBIG).
FULL_DISK = """
import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))
"""


def run_app(
    spool: pathlib.Path, before: str = "", url: str | None = None
) -> subprocess.CompletedProcess[str]:
    url = url or f"http://127.0.0.1:{closed_port()}/v1"
    result: subprocess.CompletedProcess[str] = run_python(
        APP.format(before=before, url=url, spool=str(spool), events=EVENTS)
    )
    return result


def assert_said_and_survived(result: subprocess.CompletedProcess[str], said: str) -> None:
    assert result.returncode == 0, result.stderr
    assert result.stdout == "app done\n", result.stderr  # the app's own work went on
    assert "Traceback" not in result.stderr
    assert said in result.stderr
    assert f"telemetry not delivered: {EVENTS} lost" in result.stderr


@contextlib.contextmanager
def read_only(folder: pathlib.Path) -> Iterator[None]:
    """No file can be created in ``folder``, even by root (the CI runs as root): mode 0500,
    and as root the immutable attribute, which root's privileges do not override."""
    folder.chmod(0o500)
    immutable = os.geteuid() == 0
    try:
        if immutable:
            chattr = shutil.which("chattr")
            if chattr is None:
                pytest.skip("chattr (e2fsprogs) is not installed: root ignores file modes")
            subprocess.run([chattr, "+i", str(folder)], check=True, capture_output=True)
        with pytest.raises(OSError):
            (folder / "probe").touch()  # the fault is real, or this test proves nothing
        yield
    finally:
        if immutable and shutil.which("chattr"):
            subprocess.run(["chattr", "-i", str(folder)], check=False, capture_output=True)
        folder.chmod(0o700)


def test_a_read_only_directory(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "read-only"
    folder.mkdir()
    spool = folder / "spool.sqlite3"
    with read_only(folder):
        result = run_app(spool)
    assert_said_and_survived(result, f"cannot write the spool {spool}: ")
    assert not spool.exists()


def test_a_directory_where_the_spool_file_should_be(tmp_path: pathlib.Path) -> None:
    spool = tmp_path / "spool.sqlite3"
    spool.mkdir()
    result = run_app(spool)
    assert_said_and_survived(result, f"cannot write the spool {spool}: [Errno 21] Is a directory")
    assert spool.is_dir() and not any(spool.iterdir())


def test_a_spool_file_that_is_not_a_database(tmp_path: pathlib.Path) -> None:
    spool = tmp_path / "spool.sqlite3"
    garbage = b"not an SQLite file, whatever wrote it " * 4
    spool.write_bytes(garbage)
    result = run_app(spool)
    assert_said_and_survived(result, f"cannot write the spool {spool}: file is not a database")
    assert spool.read_bytes() == garbage  # someone's file: never overwritten


def test_a_spool_that_cannot_be_read_while_the_endpoint_answers(
    tmp_path: pathlib.Path, endpoint: FaultyEndpoint
) -> None:
    """An answering endpoint is the moment to replay: the unreadable spool is said, and the
    run's own events are delivered all the same."""
    spool = tmp_path / "spool.sqlite3"
    garbage = b"not an SQLite file, whatever wrote it " * 4
    spool.write_bytes(garbage)
    result = run_app(spool, url=endpoint.base_url)
    assert result.returncode == 0 and result.stdout == "app done\n", result.stderr
    assert f"cannot read the spool {spool}: file is not a database" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(endpoint.of_kind("metric")) == EVENTS
    assert spool.read_bytes() == garbage


def test_a_full_disk(tmp_path: pathlib.Path) -> None:
    spool = tmp_path / "spool.sqlite3"
    result = run_app(spool, before=FULL_DISK)
    assert_said_and_survived(result, f"cannot write the spool {spool}: ")
    assert spool.stat().st_size <= 8192  # the limit held: the fault was real
