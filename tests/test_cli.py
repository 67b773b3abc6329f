"""The command line, run as users run it: in a subprocess."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from typing import Any

import pytest
import requests

from composio_logtelemetry._spool import Spool
from conftest import FaultyEndpoint, closed_port


def cli(*args: str, timeout: float = 60.0) -> Any:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "composio_logtelemetry", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    result.elapsed = time.monotonic() - started  # type: ignore[attr-defined]
    return result


def test_demo_runs_offline_and_reports_what_arrived() -> None:
    result = cli("demo")
    assert result.returncode == 0, result.stderr
    assert "201 events received" in result.stdout
    assert "all delivered: True" in result.stdout
    for name in ("Tools.execute", "Toolkits.list", "Triggers.subscribe", "Connections.get"):
        assert name in result.stdout
    assert "p50 ms" in result.stdout and "p95 ms" in result.stdout
    assert "error event: LookupError: Toolkit version not specified." in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_dev_commands_without_the_dev_extra_say_what_to_install(command: str) -> None:
    """``None`` in ``sys.modules`` makes the import fail as if fastjsonschema were not installed."""
    code = (
        "import sys; sys.modules['fastjsonschema'] = None;"
        f" from composio_logtelemetry.cli import main; sys.exit(main([{command!r}]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"error: composio-logtelemetry {command} needs the dev extra"
        " (fastjsonschema is not installed): pip install 'composio-logtelemetry[dev]'\n"
    )
    assert result.stdout == ""


def test_send_metric_and_error(endpoint: FaultyEndpoint) -> None:
    result = cli(
        "send",
        "--function-name",
        "Check.ping",
        "--duration-ms",
        "3.5",
        "--endpoint",
        endpoint.base_url,
    )
    assert result.returncode == 0, result.stderr
    assert "HTTP 200" in result.stdout
    result = cli(
        "send",
        "--function-name",
        "Check.ping",
        "--error",
        "ToolError:it broke",
        "--endpoint",
        endpoint.base_url,
    )
    assert result.returncode == 0, result.stderr
    [metric] = endpoint.of_kind("metric")
    assert metric["durationMs"] == 3.5 and metric["source"]["language"] == "python"
    [error] = endpoint.of_kind("error")
    assert error["error"] == {"name": "ToolError", "message": "it broke"}


def test_send_reports_an_unreachable_endpoint_in_one_line() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    result = cli("send", "--function-name", "Check.ping", "--endpoint", url)
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and url in result.stderr
    assert "Traceback" not in result.stderr


def test_send_reports_a_failing_endpoint(endpoint: FaultyEndpoint) -> None:
    endpoint.script = lambda kind: ("status", 500, {})
    result = cli("send", "--function-name", "Check.ping", "--endpoint", endpoint.base_url)
    assert result.returncode == 1
    assert "HTTP 500" in result.stderr


def test_send_gives_up_on_a_stalled_endpoint_within_the_timeout(endpoint: FaultyEndpoint) -> None:
    """The endpoint stalls for 30 s; the bound is the given timeout plus the interpreter's
    start on a loaded machine, below the 2 s default plus that start."""
    endpoint.script = lambda kind: ("stall",)
    result = cli(
        "send", "--function-name", "Check.ping", "--timeout", "0.5", "--endpoint", endpoint.base_url
    )
    assert result.returncode == 1
    assert f"no reply from 127.0.0.1:{endpoint.port} within timeout=0.5 s" in result.stderr
    assert result.elapsed < 0.5 + 1.5


def test_send_refuses_plain_http_to_another_host() -> None:
    result = cli("send", "--function-name", "Check.ping", "--endpoint", "http://example.com/v1")
    assert result.returncode == 2
    assert "refusing plain http" in result.stderr


def test_spool_stats_replay_clear(endpoint: FaultyEndpoint, tmp_path: Any) -> None:
    path = str(tmp_path / "spool.sqlite3")
    spool = Spool(path)
    spool.add(
        "metric", [json.dumps({"functionName": "Old", "props": {"n": n}}) for n in range(250)]
    )
    spool.add("error", [json.dumps({"functionName": "Old", "error": {"name": "E"}})])
    spool.close()
    stats = cli("spool", "stats", "--path", path)
    assert stats.returncode == 0 and "events: 251" in stats.stdout
    replay = cli("spool", "replay", "--path", path, "--endpoint", endpoint.base_url)
    assert replay.returncode == 0, replay.stderr
    assert replay.stdout.splitlines()[0] == "replayed 100/251"  # whole lines in a log
    assert replay.stdout.splitlines()[-1].startswith("replayed 251/251 event(s) to http://")
    assert len(endpoint.events) == 251
    assert "events: 0" in cli("spool", "stats", "--path", path).stdout
    Spool(path).add("metric", ['{"functionName": "X"}'])
    cleared = cli("spool", "clear", "--path", path)
    assert "cleared 1 event" in cleared.stdout


def test_spool_commands_find_the_spool_of_an_endpoint_however_it_is_spelt(
    tmp_path: Any, monkeypatch: Any
) -> None:
    from composio_logtelemetry import TelemetryHandler

    down = f"http://127.0.0.1:{closed_port()}/v1/"  # the trailing slash of a copied URL
    handler = TelemetryHandler(endpoint=down, max_retries=0)
    logging.getLogger("spelt").addHandler(handler)
    try:
        logging.getLogger("spelt").warning("x", extra={"telemetry": {"functionName": "Spelt"}})
    finally:
        logging.getLogger("spelt").removeHandler(handler)
        handler.close()
    monkeypatch.setenv("COMPOSIO_TELEMETRY_URL", down)
    assert "events: 1" in cli("spool", "stats").stdout
    monkeypatch.setenv("COMPOSIO_TELEMETRY_URL", down.rstrip("/"))
    assert "events: 1" in cli("spool", "stats").stdout


def test_spool_replay_sends_smaller_requests_to_an_endpoint_with_a_body_limit(
    endpoint: FaultyEndpoint, tmp_path: Any
) -> None:
    path = str(tmp_path / "spool.sqlite3")
    bodies = [json.dumps({"functionName": "Old", "props": {"n": n}}) for n in range(250)]
    bodies.insert(7, json.dumps({"functionName": "Huge", "props": {"blob": "x" * 3000}}))
    Spool(path).add("metric", bodies)
    endpoint.max_body_bytes = 2000
    replay = cli("spool", "replay", "--path", path, "--endpoint", endpoint.base_url)
    assert replay.returncode == 1  # one event could not be delivered, and the user is told
    assert "replayed 250/251" in replay.stdout
    assert "rejected 1 event(s) with HTTP 413" in replay.stderr
    assert sorted(event["props"]["n"] for _, event in endpoint.events) == list(range(250))
    assert Spool(path).stats()["events"] == 0


def test_spool_replay_says_once_what_the_endpoint_rejected(
    endpoint: FaultyEndpoint, tmp_path: Any
) -> None:
    path = str(tmp_path / "spool.sqlite3")
    Spool(path).add("metric", [json.dumps({"functionName": "Old", "n": n}) for n in range(250)])
    endpoint.script = lambda kind: ("status", 400, {})
    replay = cli("spool", "replay", "--path", path, "--endpoint", endpoint.base_url)
    assert replay.returncode == 1
    assert "replayed 0/250" in replay.stdout
    assert replay.stderr.count("with HTTP 400") == 1  # the cause, said once
    assert "rejected 250 event(s) in all; they are dropped" in replay.stderr
    assert Spool(path).stats()["events"] == 0


def test_spool_replay_stops_cleanly_when_the_endpoint_is_down(tmp_path: Any) -> None:
    path = str(tmp_path / "spool.sqlite3")
    Spool(path).add("metric", ['{"functionName": "X"}'])
    url = f"http://127.0.0.1:{closed_port()}/v1"
    result = cli("spool", "replay", "--path", path, "--endpoint", url)
    assert result.returncode == 1 and "replay stopped" in result.stderr
    assert Spool(path).stats()["events"] == 1  # kept for later


def test_serve_stores_prints_and_lists_events(tmp_path: Any) -> None:
    db = str(tmp_path / "events.sqlite3")
    server = subprocess.Popen(
        [
            sys.executable,
            "-u",
            "-m",
            "composio_logtelemetry",
            "serve",
            "--port",
            "0",
            "--db",
            db,
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()
        port = int(banner.split("http://127.0.0.1:", 1)[1].split("/", 1)[0])
        assert f"endpoint http://127.0.0.1:{port}/v1" in banner
        body = [{"functionName": "Served.call", "durationMs": 7.0}]
        reply = requests.post(
            f"http://127.0.0.1:{port}/v1/metrics/invocations", json=body, timeout=5
        )
        assert reply.status_code == 200
        bad = requests.post(
            f"http://127.0.0.1:{port}/v1/errors", json={"functionName": "X"}, timeout=5
        )
        assert bad.status_code == 400
        assert bad.json() == {"error": "data.error is required"}
        listed = requests.get(f"http://127.0.0.1:{port}/v1/events", timeout=5).json()
        assert [e["event"]["functionName"] for e in listed["events"]] == ["Served.call"]
        lines = [server.stdout.readline() for _ in range(2)]
        assert any("Served.call" in line for line in lines)
    finally:
        server.terminate()
        server.wait(10)
