"""One POST against endpoints whose replies misbehave: memory and connections stay bounded."""

from __future__ import annotations

import threading
import tracemalloc
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from composio_logtelemetry._transport import Transport
from composio_logtelemetry.devtools.receiver import Receiver

FLOOD_BYTES = 64 * 1024 * 1024


class _FloodingEndpoint(BaseHTTPRequestHandler):
    """Accepts the body, then answers 200 with a reply of 64 MiB."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", str(FLOOD_BYTES))
        self.end_headers()
        chunk = b"x" * (1024 * 1024)
        try:
            for _ in range(FLOOD_BYTES // len(chunk)):
                self.wfile.write(chunk)
        except OSError:  # the client hung up, as it should
            pass


@pytest.fixture
def flooding_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FloodingEndpoint)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()
    thread.join()


def _transport(url: str) -> Transport:
    return Transport(url, timeout=2.0, max_retries=0, retry_backoff=0.0, pool_size=1)


def test_a_flooding_reply_costs_its_connection_not_memory(flooding_url: str) -> None:
    transport = _transport(flooding_url)
    tracemalloc.start()
    try:
        outcome = transport.post("metric", b'[{"functionName": "Flooded"}]')
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        transport.close()
    assert outcome.delivered
    assert peak < 4 * 1024 * 1024  # the 64 MiB reply was cut off, not read


def test_posts_share_one_connection() -> None:
    with Receiver() as receiver:
        transport = _transport(receiver.base_url)
        try:
            outcomes = [transport.post("metric", b'[{"functionName": "Again"}]') for _ in range(20)]
        finally:
            transport.close()
        assert all(outcome.delivered for outcome in outcomes)
        assert receiver.count() == 20
        assert receiver.connections_accepted == 1  # the reply was read, the connection reused
