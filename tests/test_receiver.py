"""The local receiver, over real HTTP on loopback."""

from __future__ import annotations

import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from composio_logtelemetry.devtools.receiver import MAX_BODY_BYTES, Receiver, percentile, serve

METRIC = {
    "functionName": "Tools.execute",
    "timestamp": 1737012345.123456,
    "props": {},
    "source": {"environment": "development", "language": "python", "service": "sdk"},
    "metadata": {"provider": "openai"},
    "durationMs": 412.34,
}
ERROR = {
    "functionName": "Tools.execute",
    "timestamp": 1737012345.123456,
    "source": {"language": "python", "service": "sdk"},
    "error": {
        "name": "ToolVersionRequiredError",
        "message": "Toolkit version not specified.",
        "stack": "Traceback (most recent call last):\n  ...\nToolVersionRequiredError\n",
    },
    "durationMs": 231.05,
}


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def post_metrics(session: requests.Session, receiver: Receiver, body: Any) -> requests.Response:
    return session.post(f"{receiver.base_url}/metrics/invocations", json=body, timeout=10)


def post_error(session: requests.Session, receiver: Receiver, body: Any) -> requests.Response:
    return session.post(f"{receiver.base_url}/errors", json=body, timeout=10)


def test_base_url_points_at_the_bound_port(receiver: Receiver) -> None:
    assert receiver.port > 0
    assert receiver.base_url == f"http://127.0.0.1:{receiver.port}/v1"
    assert receiver.url == f"http://127.0.0.1:{receiver.port}/"


def test_accepts_a_metric_array(receiver: Receiver, session: requests.Session) -> None:
    response = post_metrics(session, receiver, [METRIC])
    assert response.status_code == 200
    assert response.json() == {"accepted": 1}
    assert response.headers["Content-Type"] == "application/json"
    [stored] = receiver.events()
    assert stored["kind"] == "metric"
    assert stored["event"] == METRIC
    assert isinstance(stored["id"], int)
    assert abs(stored["received_at"] - time.time()) < 60
    assert receiver.count() == receiver.count("metric") == 1
    assert receiver.count("error") == 0
    assert receiver.requests_received == 1


def test_each_element_of_a_batch_is_one_event(
    receiver: Receiver, session: requests.Session
) -> None:
    batch = [{**METRIC, "durationMs": float(index)} for index in range(5)]
    assert post_metrics(session, receiver, batch).json() == {"accepted": 5}
    assert [stored["event"]["durationMs"] for stored in receiver.events()] == [0, 1, 2, 3, 4]
    assert receiver.requests_received == 1


def test_accepts_an_error_object(receiver: Receiver, session: requests.Session) -> None:
    response = post_error(session, receiver, ERROR)
    assert response.status_code == 200
    assert response.json() == {"accepted": 1}
    assert [stored["event"] for stored in receiver.events("error")] == [ERROR]
    assert receiver.events("metric") == []
    assert receiver.count("error") == 1


@pytest.mark.parametrize("json_in_sqlite", [True, False], ids=["sqlite-json", "python-rows"])
def test_both_ways_of_storing_keep_the_events_as_sent(
    receiver: Receiver, session: requests.Session, json_in_sqlite: bool
) -> None:
    receiver._json_in_sqlite = json_in_sqlite  # an SQLite built without JSON functions
    cafe = {"functionName": "Caf\u00e9 \u2615", "durationMs": 3, "props": {"n": [1, None]}}
    batch = [METRIC, cafe]
    assert post_metrics(session, receiver, batch).json() == {"accepted": 2}
    assert post_error(session, receiver, ERROR).json() == {"accepted": 1}
    assert [stored["event"] for stored in receiver.events()] == [*batch, ERROR]
    summary = session.get(f"{receiver.base_url}/events", timeout=10).json()["summary"]
    assert summary["Caf\u00e9 \u2615"] == {"count": 1, "errors": 0, "p50": 3.0, "p95": 3.0}
    assert summary["Tools.execute"]["count"] == 2


def test_odd_but_valid_bodies_are_stored_and_listed(
    receiver: Receiver, session: requests.Session
) -> None:
    bodies = [
        b'[{"functionName": "lone \\ud800 surrogate", "durationMs": 1}]',
        b'[{"functionName": "huge", "durationMs": 1' + b"0" * 400 + b"}]",
        b'[{"functionName": null, "functionName": "dup"}]',
    ]
    for body in bodies:
        response = session.post(
            f"{receiver.base_url}/metrics/invocations",
            data=body,
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        assert response.json() == {"accepted": 1}
    names = [stored["event"]["functionName"] for stored in receiver.events()]
    assert names == ["lone \ud800 surrogate", "huge", "dup"]
    page = session.get(f"{receiver.base_url}/events", timeout=10)
    assert page.status_code == 200
    summary = page.json()["summary"]
    assert summary["lone \ud800 surrogate"]["p50"] == 1.0  # named as the event is, never an error
    assert summary["huge"]["p50"] is None  # no double holds it
    assert summary["dup"]["count"] == 1  # a duplicated key means its last value, as in the event
    assert set(summary) == {"lone \ud800 surrogate", "huge", "dup"}


@pytest.mark.parametrize(
    ("route", "body", "expected"),
    [
        (
            "metrics/invocations",
            [{**METRIC, "durationMs": -1}],
            "data[0].durationMs must be bigger than or equal to 0",
        ),
        ("metrics/invocations", [METRIC, {"durationMs": 1}], "data[1].functionName is required"),
        ("metrics/invocations", [{**METRIC, "function_name": "x"}], "data[0].function_name is not"),
        ("metrics/invocations", [{**METRIC, "durationMs": True}], "data[0].durationMs must be num"),
        ("metrics/invocations", METRIC, "data must be array"),
        ("metrics/invocations", [], "data must contain at least 1 items"),
        ("errors", [ERROR], "data must be object"),
        ("errors", {**ERROR, "error": None}, "data.error must be object"),
        ("errors", {"functionName": "f"}, "data.error is required"),
        ("errors", {**ERROR, "source": {"service": "cli"}}, "data.source.service must be one of"),
    ],
)
def test_schema_violations_get_400_naming_the_field(
    receiver: Receiver, session: requests.Session, route: str, body: Any, expected: str
) -> None:
    response = session.post(f"{receiver.base_url}/{route}", json=body, timeout=10)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"].startswith(expected)
    assert receiver.count() == 0
    assert receiver.requests_received == 0


@pytest.mark.parametrize(
    ("raw_body", "expected"),
    [
        (b"", "body is not valid JSON: Expecting value at line 1 column 1"),
        (b'[{"functionName": "f"', "body is not valid JSON"),
        (b'[{"functionName": "f", "durationMs": NaN}]', "NaN is not a JSON number"),
        (b'[{"functionName": "f", "durationMs": Infinity}]', "Infinity is not a JSON number"),
        (b'[{"functionName": "f", "durationMs": 1e999}]', "1e999 is out of the range"),
        (b'[{"functionName": "\xff"}]', "body is not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "body is"),
    ],
)
def test_malformed_json_gets_400(
    receiver: Receiver, session: requests.Session, raw_body: bytes, expected: str
) -> None:
    response = session.post(
        f"{receiver.base_url}/metrics/invocations",
        data=raw_body,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400
    assert expected in response.json()["error"]
    assert receiver.count() == 0
    # The connection is still good for the next request.
    assert post_metrics(session, receiver, [METRIC]).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/metrics"), ("POST", "/v1/error"), ("GET", "/v2/events"), ("GET", "/x")],
)
def test_unknown_paths_get_404(
    receiver: Receiver, session: requests.Session, method: str, path: str
) -> None:
    url = receiver.url.rstrip("/") + path
    response = session.request(method, url, json=[METRIC], timeout=10)
    assert response.status_code == 404
    assert "no such endpoint" in response.json()["error"]
    assert receiver.count() == 0
    # The unread body must not be taken for the next request on this keep-alive connection.
    assert post_metrics(session, receiver, [METRIC]).status_code == 200
    assert receiver.connections_accepted == 1


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v1/metrics/invocations", "POST"),
        ("PUT", "/v1/errors", "POST"),
        ("DELETE", "/v1/errors", "POST"),
        ("POST", "/v1/events", "GET, HEAD"),
        ("PATCH", "/", "GET, HEAD"),
    ],
)
def test_wrong_methods_get_405(
    receiver: Receiver, session: requests.Session, method: str, path: str, allow: str
) -> None:
    url = receiver.url.rstrip("/") + path
    response = session.request(method, url, json={}, timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == allow
    assert "accepts" in response.json()["error"]


def _raw_request(receiver: Receiver, headers: dict[str, str]) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
    connection.putrequest("POST", "/v1/metrics/invocations")
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.endheaders()
    return connection.getresponse()


def test_oversized_body_gets_413_without_being_read(receiver: Receiver) -> None:
    response = _raw_request(receiver, {"Content-Length": str(MAX_BODY_BYTES + 1)})
    assert response.status == 413
    assert "exceeds the limit" in json.loads(response.read())["error"]
    assert response.getheader("Connection") == "close"


def test_body_of_exactly_the_limit_is_read(receiver: Receiver, session: requests.Session) -> None:
    padding = MAX_BODY_BYTES - len(json.dumps([{"functionName": "f", "props": {"p": ""}}]))
    body = json.dumps([{"functionName": "f", "props": {"p": "x" * padding}}]).encode()
    assert len(body) == MAX_BODY_BYTES
    response = session.post(f"{receiver.base_url}/metrics/invocations", data=body, timeout=30)
    assert response.status_code == 200


def _expect_100_continue(receiver: Receiver, length: int) -> tuple[socket.socket, bytes]:
    """Send only the headers of a POST that asks to continue, and read the first reply line."""
    connection = socket.create_connection(("127.0.0.1", receiver.port), timeout=10)
    connection.sendall(
        b"POST /v1/metrics/invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {length}\r\nExpect: 100-continue\r\n\r\n".encode()
    )
    reply = connection.makefile("rb")
    status_line = reply.readline()
    reply.close()
    return connection, status_line


def test_expect_100_continue_is_answered_before_the_body(receiver: Receiver) -> None:
    body = json.dumps([METRIC]).encode()
    connection, status_line = _expect_100_continue(receiver, len(body))
    with connection:
        assert status_line == b"HTTP/1.1 100 Continue\r\n"
        connection.sendall(body)
        assert receiver.wait_for(1, timeout=10)


def test_expect_100_continue_with_an_oversized_body_gets_413(receiver: Receiver) -> None:
    connection, status_line = _expect_100_continue(receiver, MAX_BODY_BYTES + 1)
    with connection:
        assert status_line.startswith(b"HTTP/1.1 413 ")


def test_missing_content_length_gets_411(receiver: Receiver) -> None:
    response = _raw_request(receiver, {})
    assert response.status == 411
    assert "Content-Length" in json.loads(response.read())["error"]


def test_events_endpoint_lists_newest_first_with_a_summary(
    receiver: Receiver, session: requests.Session
) -> None:
    post_metrics(
        session, receiver, [{"functionName": "A", "durationMs": d} for d in range(100, 0, -1)]
    )
    post_metrics(session, receiver, [{"functionName": "B"}])
    post_error(session, receiver, {"functionName": "B", "durationMs": 7, "error": {"name": "E"}})
    response = session.get(f"{receiver.base_url}/events", timeout=10)
    assert response.status_code == 200
    page = response.json()
    assert len(page["events"]) == 102
    assert [item["id"] for item in page["events"]] == list(range(102, 0, -1))
    assert page["events"][0]["kind"] == "error"
    assert page["events"][0]["event"]["error"] == {"name": "E"}
    assert page["latest_id"] == 102
    assert page["summary"] == {
        "A": {"count": 100, "errors": 0, "p50": 50.0, "p95": 95.0},
        "B": {"count": 2, "errors": 1, "p50": 7.0, "p95": 7.0},
    }


def test_events_endpoint_limit_and_since(receiver: Receiver, session: requests.Session) -> None:
    post_metrics(session, receiver, [{"functionName": f"f{index}"} for index in range(300)])
    events_url = f"{receiver.base_url}/events"
    default_page = session.get(events_url, timeout=10).json()
    assert len(default_page["events"]) == 200
    assert default_page["events"][0]["event"]["functionName"] == "f299"
    assert len(default_page["summary"]) == 300
    page = session.get(events_url, params={"limit": 2}, timeout=10).json()
    assert [item["id"] for item in page["events"]] == [300, 299]
    page = session.get(events_url, params={"since": 297}, timeout=10).json()
    assert [item["id"] for item in page["events"]] == [300, 299, 298]
    page = session.get(events_url, params={"since": 300}, timeout=10).json()
    assert page["events"] == []
    assert page["latest_id"] == 300
    assert len(page["summary"]) == 300
    for bad in ({"limit": "-1"}, {"limit": "x"}, {"since": "-5"}, {"limit": "1000000"}):
        response = session.get(events_url, params=bad, timeout=10)
        assert response.status_code == 400
        assert next(iter(bad)) in response.json()["error"]


def test_summary_of_functions_without_durations(
    receiver: Receiver, session: requests.Session
) -> None:
    post_metrics(session, receiver, [{"functionName": "nodur"}])
    summary = session.get(f"{receiver.base_url}/events", timeout=10).json()["summary"]
    assert summary == {"nodur": {"count": 1, "errors": 0, "p50": None, "p95": None}}


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 95) == 3.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(reversed(values), 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 100.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 51) == 3.0
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile(values, 101)


def test_wait_for_wakes_when_events_arrive(receiver: Receiver) -> None:
    def send_later() -> None:
        with requests.Session() as session:
            post_metrics(session, receiver, [METRIC, METRIC])
            post_error(session, receiver, ERROR)

    sender = threading.Thread(target=send_later)
    sender.start()
    try:
        assert receiver.wait_for(3, timeout=30)
        assert receiver.wait_for(1, timeout=30, kind="error")
        assert receiver.wait_for(2, timeout=30, kind="metric")
    finally:
        sender.join()
    assert receiver.count() == 3


def test_wait_for_times_out(receiver: Receiver) -> None:
    started = time.monotonic()
    assert not receiver.wait_for(1, timeout=0.05)
    assert time.monotonic() - started < 5
    assert receiver.wait_for(0, timeout=0)


def test_file_database_persists_across_receivers(tmp_path: Path) -> None:
    db_path = str(tmp_path / "events.sqlite3")
    with requests.Session() as session:
        first = Receiver(db_path=db_path).start()
        try:
            post_metrics(session, first, [METRIC])
            post_error(session, first, ERROR)
        finally:
            first.close()
        second = Receiver(db_path=Path(db_path)).start()
        try:
            assert second.count() == 2
            assert second.count("error") == 1
            assert [stored["event"] for stored in second.events()] == [METRIC, ERROR]
            assert second.wait_for(2, timeout=0)
            post_metrics(session, second, [{"functionName": "later"}])
            assert [stored["id"] for stored in second.events()] == [1, 2, 3]
            summary = session.get(f"{second.base_url}/events", timeout=10).json()["summary"]
            assert summary == {  # rebuilt from the file
                "Tools.execute": {"count": 2, "errors": 1, "p50": 231.05, "p95": 412.34},
                "later": {"count": 1, "errors": 0, "p50": None, "p95": None},
            }
        finally:
            second.close()


def test_a_session_reuses_one_connection(receiver: Receiver, session: requests.Session) -> None:
    for _ in range(20):
        assert post_metrics(session, receiver, [METRIC]).status_code == 200
    assert session.get(f"{receiver.base_url}/events", timeout=10).status_code == 200
    assert receiver.requests_received == 20
    assert receiver.connections_accepted == 1


def test_keep_alive_on_one_http_connection(receiver: Receiver) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=10)
    try:
        for index in range(3):
            body = json.dumps([{"functionName": f"f{index}"}])
            connection.request(
                "POST",
                "/v1/metrics/invocations",
                body=body,
                headers={"Content-Type": "application/json"},
            )
            response = connection.getresponse()
            assert response.status == 200
            assert response.getheader("Content-Length") == str(len(response.read()))
            assert response.getheader("Connection") != "close"
            if index == 0:
                first_socket = connection.sock
            assert connection.sock is first_socket
    finally:
        connection.close()
    assert receiver.connections_accepted == 1


def test_stop_drops_keep_alive_connections(session: requests.Session) -> None:
    receiver = Receiver().start()
    try:
        assert post_metrics(session, receiver, [METRIC]).status_code == 200
        receiver.stop()
        with pytest.raises(requests.ConnectionError):
            post_metrics(session, receiver, [METRIC])
        assert receiver.count() == 1  # still readable after stop()
        with pytest.raises(RuntimeError, match="cannot be started again"):
            receiver.start()
    finally:
        receiver.close()


def test_context_manager_starts_and_stops(session: requests.Session) -> None:
    with Receiver() as receiver:
        assert post_metrics(session, receiver, [METRIC]).status_code == 200
    with pytest.raises(requests.ConnectionError):
        session.get(f"{receiver.base_url}/events", timeout=10)
    assert receiver.count() == 1
    receiver.close()


def test_echo_prints_one_line_per_event(session: requests.Session) -> None:
    echo = io.StringIO()
    with Receiver(echo=echo) as receiver:
        post_metrics(session, receiver, [METRIC, {"functionName": "no.duration"}])
        post_error(
            session,
            receiver,
            {**ERROR, "error": {"name": "Boom", "message": "first line\n\x1b[31msecond"}},
        )
    receiver.close()
    lines = echo.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].endswith(" metric Tools.execute 412.34ms")
    assert lines[1].endswith(" metric no.duration -")
    assert lines[2].endswith(" error  Tools.execute 231.05ms Boom: first line")
    assert "\x1b" not in echo.getvalue()


def test_a_broken_echo_stream_does_not_fail_requests(session: requests.Session) -> None:
    echo = io.StringIO()
    with Receiver(echo=echo) as receiver:
        echo.close()
        assert post_metrics(session, receiver, [METRIC]).status_code == 200
        assert post_metrics(session, receiver, [METRIC]).status_code == 200
        assert receiver.count() == 2
    receiver.close()


def test_ipv6_loopback(session: requests.Session) -> None:
    try:
        receiver = Receiver(host="::1")
    except OSError as error:
        pytest.skip(f"no IPv6 loopback here: {error}")
    with receiver:
        assert receiver.base_url == f"http://[::1]:{receiver.port}/v1"
        assert post_error(session, receiver, ERROR).json() == {"accepted": 1}
    receiver.close()


def test_wildcard_host_gives_a_loopback_url(session: requests.Session) -> None:
    with Receiver(host="0.0.0.0") as receiver:
        assert receiver.base_url == f"http://127.0.0.1:{receiver.port}/v1"
        assert session.get(f"{receiver.base_url}/events", timeout=10).status_code == 200
    receiver.close()


def test_latency_delays_each_post_reply(session: requests.Session) -> None:
    with Receiver(latency=0.2) as receiver:
        started = time.monotonic()
        assert post_metrics(session, receiver, [METRIC]).status_code == 200
        assert time.monotonic() - started >= 0.2
    receiver.close()
    with pytest.raises(ValueError, match="latency"):
        Receiver(latency=-1)


def test_live_page_is_served(receiver: Receiver, session: requests.Session) -> None:
    response = session.get(receiver.url, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert 'id="events"' in response.text
    assert "innerHTML" not in response.text
    head = session.head(receiver.url, timeout=10)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(response.content))
    assert head.content == b""


def test_busy_port_raises_oserror(receiver: Receiver) -> None:
    with pytest.raises(OSError):
        Receiver(port=receiver.port)


def test_serve_returns_1_on_a_busy_port(
    receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    assert serve("127.0.0.1", receiver.port, None) == 1
    assert "cannot listen" in capsys.readouterr().err


def test_serve_returns_1_on_an_unusable_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert serve("127.0.0.1", 0, str(tmp_path)) == 1
    assert "cannot use" in capsys.readouterr().err


def test_serve_runs_in_the_foreground_until_interrupted(session: requests.Session) -> None:
    repo_root = str(Path(__file__).resolve().parents[1])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([repo_root, os.environ.get("PYTHONPATH", "")]),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from composio_logtelemetry.devtools.receiver import serve;"
            " sys.exit(serve('127.0.0.1', 0, None))",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert "endpoint http://127.0.0.1:" in banner
        base_url = banner.split("endpoint ", 1)[1].split()[0]
        process.stdout.readline()
        response = session.post(f"{base_url}/metrics/invocations", json=[METRIC], timeout=10)
        assert response.status_code == 200
        assert process.stdout.readline().rstrip().endswith("metric Tools.execute 412.34ms")
        session.close()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
