"""The offline spool, on real SQLite files: bounds, expiry, leases, threads, fork and processes."""

from __future__ import annotations

import json
import multiprocessing
import os
import pathlib
import sqlite3
import stat
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from composio_logtelemetry._spool import Claim, Spool, default_spool_path

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes and fork")


def _backdate(path: pathlib.Path, column: str, seconds: float) -> None:
    """Ages rows in the file itself, so that ttl and lease are tested without waiting."""
    with sqlite3.connect(path) as connection:
        connection.execute(
            f"UPDATE events SET {column} = {column} - ? WHERE {column} IS NOT NULL", (seconds,)
        )
    connection.close()


def _row_ids(path: pathlib.Path) -> list[int]:
    connection = sqlite3.connect(path)
    try:
        return [row_id for (row_id,) in connection.execute("SELECT id FROM events ORDER BY id")]
    finally:
        connection.close()


def _mode(path: pathlib.Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def spool(tmp_path: pathlib.Path) -> Iterator[Spool]:
    opened = Spool(tmp_path / "spool.sqlite3")
    yield opened
    opened.close()


def test_round_trip(spool: Spool) -> None:
    assert spool.add("metric", ['{"functionName":"a"}', '{"functionName":"é"}']) == 0
    claim = spool.claim(10)
    assert claim is not None
    assert claim.kind == "metric"
    assert claim.bodies == ('{"functionName":"a"}', '{"functionName":"é"}')
    assert len(claim.ids) == 2
    assert spool.claim(10) is None  # held by the live claim
    stats = spool.stats()
    assert stats["events"] == 2
    assert stats["claimed"] == 2
    assert stats["bytes"] == 2 * len('{"functionName":"a"}') + 1  # é is two UTF-8 bytes
    spool.settle(claim, delivered=True)
    assert spool.claim(10) is None
    assert spool.stats()["events"] == 0


def test_stats_describe_the_file(spool: Spool) -> None:
    spool.add("metric", ["m1", "m2"])
    spool.add("error", ["e1"])
    stats = spool.stats()
    assert stats["path"] == str(spool.path)
    assert stats["exists"] is True
    assert stats["events"] == 3
    assert stats["bytes"] == 6
    assert stats["by_kind"] == {"error": 1, "metric": 2}
    assert isinstance(stats["oldest_age_s"], float)
    assert stats["oldest_age_s"] >= 0.0
    assert stats["claimed"] == 0
    assert spool.clear() == 3
    assert spool.stats()["events"] == 0
    assert spool.stats()["by_kind"] == {}


def test_missing_file_is_fine_and_creates_nothing(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "not" / "yet"
    spool = Spool(folder / "spool.sqlite3")
    assert spool.exists() is False
    assert spool.claim(100) is None
    assert spool.claim(100, kind="error") is None
    assert spool.clear() == 0
    spool.settle(Claim("metric", (1, 2), ("a", "b")), delivered=True)
    assert spool.add("metric", []) == 0
    assert spool.expired_count_and_reset() == 0
    stats = spool.stats()
    assert stats["exists"] is False
    assert stats["events"] == 0
    assert stats["oldest_age_s"] is None
    spool.close()
    assert not (tmp_path / "not").exists()


def test_add_creates_folder_and_file(tmp_path: pathlib.Path) -> None:
    spool = Spool(tmp_path / "a" / "b" / "spool.sqlite3")
    spool.add("error", ["{}"])
    assert spool.exists()
    assert spool.stats()["by_kind"] == {"error": 1}
    spool.close()


@posix_only
def test_file_and_folder_modes(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / "cache"
    spool = Spool(folder / "spool.sqlite3")
    spool.add("metric", ["x"] * 100)
    claim = spool.claim(5)
    assert claim is not None
    assert _mode(folder) == 0o700
    assert _mode(spool.path) == 0o600
    companions = [pathlib.Path(f"{spool.path}{suffix}") for suffix in ("-wal", "-shm")]
    assert any(path.exists() for path in companions)  # WAL mode, connection open
    for path in companions:
        if path.exists():
            assert _mode(path) == 0o600, path
    spool.close()


def test_file_is_in_wal_mode(spool: Spool) -> None:
    spool.add("metric", ["x"])
    connection = sqlite3.connect(spool.path)
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        connection.close()


def test_eviction_removes_the_oldest_and_counts(tmp_path: pathlib.Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite3", max_bytes=1000)
    assert spool.add("metric", [f"{i:0100d}" for i in range(10)]) == 0  # exactly at the bound
    assert spool.add("error", [f"{i:0100d}" for i in range(10, 13)]) == 3
    assert spool.stats()["bytes"] == 1000
    assert _row_ids(spool.path) == list(range(4, 14))
    # An add larger than the bound loses its own oldest bodies too.
    assert spool.add("metric", ["y" * 300] * 5) == 10 + 2
    assert _row_ids(spool.path) == [16, 17, 18]
    claim = spool.claim(10)
    assert claim is not None
    assert claim.bodies == ("y" * 300,) * 3
    spool.close()


def test_a_body_larger_than_the_bound_is_evicted(tmp_path: pathlib.Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite3", max_bytes=10)
    assert spool.add("metric", ["x" * 11]) == 1
    assert spool.stats()["events"] == 0
    spool.close()


@settings(max_examples=40, deadline=None)
@given(
    max_bytes=st.integers(min_value=0, max_value=400),
    adds=st.lists(st.lists(st.integers(min_value=0, max_value=120), max_size=8), max_size=8),
)
def test_eviction_bounds(max_bytes: int, adds: list[list[int]]) -> None:
    """After every add, the file holds the longest run of newest bodies that fits."""
    with tempfile.TemporaryDirectory() as folder:
        spool = Spool(pathlib.Path(folder) / "spool.sqlite3", max_bytes=max_bytes)
        sizes: list[int] = []  # every body ever added, oldest first
        kept = 0
        for batch in adds:
            sizes.extend(batch)
            evicted = spool.add("metric", ["x" * size for size in batch])
            fitting, total = 0, 0
            for size in reversed(sizes):
                if total + size > max_bytes:
                    break
                total += size
                fitting += 1
            # Eviction never goes back past rows that were already gone.
            fitting = min(fitting, kept + len(batch))
            assert evicted == kept + len(batch) - fitting
            kept = fitting
            stats = spool.stats()
            assert stats["events"] == kept
            assert stats["bytes"] == sum(sizes[len(sizes) - kept :])
            assert isinstance(stats["bytes"], int)
            assert stats["bytes"] <= max_bytes
        spool.close()


def test_ttl_expiry(tmp_path: pathlib.Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite3", ttl=3600.0)
    spool.add("metric", ["old-1", "old-2"])
    _backdate(spool.path, "created", 3601.0)
    spool.add("metric", ["new"])
    claim = spool.claim(10)
    assert claim is not None
    assert claim.bodies == ("new",)
    assert spool.expired_count_and_reset() == 2
    assert spool.expired_count_and_reset() == 0
    assert spool.stats()["events"] == 1


def test_ttl_spares_rows_of_a_live_claim(tmp_path: pathlib.Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite3", ttl=3600.0)
    spool.add("metric", ["a", "b"])
    claim = spool.claim(10)
    assert claim is not None
    _backdate(spool.path, "created", 3601.0)
    spool.add("metric", ["c"])  # expiry runs here too
    assert spool.stats()["events"] == 3
    spool.settle(claim, delivered=False)
    assert spool.claim(10) is not None
    assert spool.expired_count_and_reset() == 2


def test_lease_expiry_makes_a_claim_reclaimable(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "spool.sqlite3"
    crashed, survivor = Spool(path, lease=60.0), Spool(path, lease=60.0)
    crashed.add("error", ["e1", "e2", "e3"])
    lost = crashed.claim(2)
    assert lost is not None
    assert lost.bodies == ("e1", "e2")
    other = survivor.claim(10)
    assert other is not None
    assert other.bodies == ("e3",)  # live claims never share rows
    assert survivor.claim(10) is None
    _backdate(path, "claimed_at", 61.0)
    # other's lease ran out too; both of its claims' rows are claimable again, oldest first
    taken = survivor.claim(10)
    assert taken is not None
    assert taken.ids == (*lost.ids, *other.ids)
    # A late settle of the stale claims touches nothing: the rows are held by `taken`.
    crashed.settle(lost, delivered=True)
    survivor.settle(other, delivered=False)
    assert survivor.stats()["events"] == 3
    assert survivor.stats()["claimed"] == 3
    survivor.settle(taken, delivered=True)
    assert survivor.stats()["events"] == 0
    crashed.close()
    survivor.close()


def test_kinds_are_never_mixed(spool: Spool) -> None:
    spool.add("metric", ["m1", "m2", "m3"])
    spool.add("error", ["e1", "e2"])
    spool.add("metric", ["m4"])
    claims = []
    while (claim := spool.claim(100)) is not None:
        claims.append((claim.kind, claim.bodies))
    assert claims == [("metric", ("m1", "m2", "m3", "m4")), ("error", ("e1", "e2"))]


def test_claim_by_kind(spool: Spool) -> None:
    spool.add("metric", ["m1"])
    spool.add("error", ["e1", "e2", "e3"])
    claim = spool.claim(2, kind="error")
    assert claim is not None
    assert (claim.kind, claim.bodies) == ("error", ("e1", "e2"))
    assert spool.claim(5, kind="metric") is not None
    assert spool.claim(5, kind="metric") is None


def test_settle_not_delivered_releases(spool: Spool) -> None:
    spool.add("metric", ["a", "b", "c"])
    first = spool.claim(2)
    assert first is not None
    spool.settle(first, delivered=False)
    assert spool.stats()["claimed"] == 0
    again = spool.claim(5)
    assert again is not None
    assert again.ids[:2] == first.ids
    assert again.bodies == ("a", "b", "c")


def test_hand_built_claim_settles_its_ids(spool: Spool) -> None:
    spool.add("metric", ["a", "b"])
    ids = tuple(_row_ids(spool.path))
    spool.settle(Claim("metric", ids[:1], ("a",)), delivered=True)
    assert _row_ids(spool.path) == list(ids[1:])


def test_arguments_are_checked(tmp_path: pathlib.Path) -> None:
    spool = Spool(tmp_path / "spool.sqlite3")
    with pytest.raises(ValueError, match="kind"):
        spool.add("trace", ["x"])
    with pytest.raises(TypeError):
        spool.add("metric", "not a list")
    with pytest.raises(ValueError, match="limit"):
        spool.claim(0)
    with pytest.raises(ValueError, match="kind"):
        spool.claim(1, kind="trace")
    with pytest.raises(ValueError, match="lease"):
        Spool(tmp_path / "x", lease=0)
    assert not spool.exists()


def test_a_corrupt_file_raises_sqlite_errors(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "spool.sqlite3"
    path.write_bytes(b"this is not a database, just some bytes " * 100)
    spool = Spool(path)
    with pytest.raises(sqlite3.DatabaseError):
        spool.add("metric", ["x"])
    with pytest.raises(sqlite3.DatabaseError):
        spool.claim(1)
    spool.close()


def test_reopens_after_close(spool: Spool) -> None:
    spool.add("metric", ["a"])
    spool.close()
    spool.close()
    claim = spool.claim(1)
    assert claim is not None
    spool.settle(claim, delivered=True)


def test_threads_deliver_every_row_once(spool: Spool) -> None:
    writers, batches, batch_size = 4, 40, 5
    writing_done = threading.Event()
    delivered: list[str] = []
    errors: list[BaseException] = []

    def write(writer: int) -> None:
        try:
            for batch in range(batches):
                kind = ("metric", "error")[batch % 2]
                bodies = [f"{writer}-{batch}-{i}" for i in range(batch_size)]
                spool.add(kind, bodies)
        except BaseException as exc:
            errors.append(exc)

    def read() -> None:
        try:
            claims = 0
            while True:
                finished = writing_done.is_set()
                claim = spool.claim(7)
                if claim is None:
                    if finished:
                        return
                    continue
                claims += 1
                if claims % 5 == 0:
                    spool.settle(claim, delivered=False)
                    continue
                delivered.extend(claim.bodies)
                spool.settle(claim, delivered=True)
        except BaseException as exc:
            errors.append(exc)

    writer_threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    reader_threads = [threading.Thread(target=read) for _ in range(3)]
    for thread in writer_threads + reader_threads:
        thread.start()
    for thread in writer_threads:
        thread.join()
    writing_done.set()
    for thread in reader_threads:
        thread.join()
    assert errors == []
    expected = {f"{w}-{b}-{i}" for w in range(writers) for b in range(batches) for i in range(5)}
    assert len(delivered) == len(expected)
    assert set(delivered) == expected
    assert spool.stats()["events"] == 0


def _fork_and_run(child: Callable[[], bool]) -> int:
    """Runs ``child()`` in a forked process; returns its exit status (0 when it returned True)."""
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            status = 0 if child() else 2
        finally:
            os._exit(status)
    _, wait_status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(wait_status)


@posix_only
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_child_opens_its_own_connection(spool: Spool) -> None:
    spool.add("metric", ["from-parent"])
    parent_connection = spool._connection
    assert parent_connection is not None

    def child() -> bool:
        spool.add("error", ["from-child"])
        claim = spool.claim(10, kind="metric")
        if claim is None or claim.bodies != ("from-parent",):
            return False
        spool.settle(claim, delivered=True)
        return spool._connection is not None and spool._connection is not parent_connection

    assert _fork_and_run(child) == 0
    assert spool.stats()["by_kind"] == {"error": 1}
    assert spool.clear() == 1


@posix_only
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_while_a_thread_holds_the_spool(spool: Spool) -> None:
    """The child drops the inherited connection (unclosed) and does not inherit the held lock."""
    spool.add("metric", ["a", "b"])
    inherited = spool._connection
    assert inherited is not None
    with spool._lock:  # as if another thread were inside the spool at fork time

        def child() -> bool:
            claim = spool.claim(1)
            if claim is None:
                return False
            spool.settle(claim, delivered=True)
            spool.close()
            return True

        status = _fork_and_run(child)
    assert status == 0
    assert spool._connection is inherited  # the parent's connection survived the fork
    claim = spool.claim(10)
    assert claim is not None
    assert claim.bodies == ("b",)
    spool.settle(claim, delivered=True)


def _deliver_from(path: str, report: str, meet: Any) -> None:
    """A process that replays the spool: it delivers what it claims, releasing one claim in five."""
    spool = Spool(path)
    meet.wait(timeout=60)
    claim = spool.claim(25)
    # Both processes hold a live claim at this point: neither can starve the other out of the run.
    meet.wait(timeout=60)
    delivered: list[int] = []
    claims = 0
    while claim is not None:
        claims += 1
        if claims % 5 == 0:
            spool.settle(claim, delivered=False)
        else:
            delivered.extend(claim.ids)
            spool.settle(claim, delivered=True)
        claim = spool.claim(25)
    spool.close()
    pathlib.Path(report).write_text(json.dumps(delivered))


def test_processes_share_one_file_and_deliver_every_row_once(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "spool.sqlite3"
    seeding = Spool(path)
    for start in range(0, 5000, 500):
        kind = ("metric", "error")[start // 500 % 2]
        seeding.add(kind, [json.dumps({"n": n}) for n in range(start, start + 500)])
    seeding.close()
    all_ids = set(_row_ids(path))
    assert len(all_ids) == 5000

    context = multiprocessing.get_context("spawn")
    meet = context.Barrier(2)
    reports = [tmp_path / f"delivered-{n}.json" for n in range(2)]
    processes = [
        context.Process(target=_deliver_from, args=(str(path), str(report), meet))
        for report in reports
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=100)
        assert process.exitcode == 0
    first, second = (set(json.loads(report.read_text())) for report in reports)
    assert first and second, "both processes took part"
    assert first | second == all_ids
    assert first & second == set()
    assert Spool(path).stats()["events"] == 0


def test_default_spool_path(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path))
    one = default_spool_path("https://telemetry.composio.dev/v1")
    assert one == default_spool_path("https://telemetry.composio.dev/v1")
    assert one != default_spool_path("http://127.0.0.1:8787/v1")
    assert one.parent.name == "composio-logtelemetry"
    assert one.name.startswith("spool-")
    assert one.name.endswith(".sqlite3")
    assert len(one.name) == len("spool-") + 12 + len(".sqlite3")
    if sys.platform.startswith("linux") or sys.platform == "win32":
        assert one.parent.parent == tmp_path
    if sys.platform.startswith("linux"):
        monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
        assert default_spool_path("x").parent.parent == pathlib.Path.home() / ".cache"


def test_constructing_touches_nothing(tmp_path: pathlib.Path) -> None:
    Spool(tmp_path / "deep" / "spool.sqlite3", max_bytes=1, ttl=1.0, lease=1.0)
    assert list(tmp_path.iterdir()) == []


def test_a_removed_file_is_created_again(spool: Spool) -> None:
    spool.add("metric", ["a"])
    for path in spool.path.parent.iterdir():
        path.unlink()
    spool.add("metric", ["b"])
    assert spool.exists()
    claim = spool.claim(10)
    assert claim is not None
    assert claim.bodies == ("b",)
