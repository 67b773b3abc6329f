"""Real servers for network tests: TLS from a private CA, a dripping endpoint, tinyproxy, nginx.

Each runs in the foreground on 127.0.0.1 from a temporary configuration and is stopped by the
fixture that started it. A binary or package that is missing fails the test under CI (the
``CI`` variable) and skips it elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

STARTUP_SECONDS = 10.0


def require(what: str, present: bool) -> None:
    """Missing test equipment is a failure in CI, where it must be installed, and a skip here."""
    if present:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing (CI installs it: see .ci/run)")
    pytest.skip(f"{what} is not installed")


def binary(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    require(f"the {name} binary", path is not None)
    assert path is not None
    return path


def free_port() -> int:
    """A loopback port free a moment ago; servers that take it must retry if it is gone."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- a private CA ------------------------------------------------------------------------------


@dataclass
class Certificates:
    """A private CA (``ca_file``, for REQUESTS_CA_BUNDLE) and a certificate it issued to us."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    try:
        import trustme
    except ImportError:
        require("the trustme package", False)
        raise
    folder = tmp_path_factory.mktemp("certificates")
    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1", "localhost")
    made = Certificates(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    authority.cert_pem.write_to_path(str(made.ca_file))
    issued.cert_chain_pems[0].write_to_path(str(made.cert_file))
    for extra in issued.cert_chain_pems[1:]:
        extra.write_to_path(str(made.cert_file), append=True)
    issued.private_key_pem.write_to_path(str(made.key_file))
    return made


# -- endpoints in this process -----------------------------------------------------------------


class Endpoint:
    """A Composio-compatible endpoint over http or https that counts the events it accepts.

    ``reply`` sets how it answers once it has read a POST: ``"ok"`` (200), ``"drip-body"``
    (headers, then one body byte every ``drip_every`` s), ``"drip-headers"`` (a header byte
    every ``drip_every`` s), ``"stall"`` (nothing until the endpoint closes), or a status code
    such as ``"503"``.
    """

    def __init__(self, context: ssl.SSLContext | None = None, reply: str = "ok") -> None:
        self.reply = reply
        self.drip_every = 0.4
        self.events: list[dict[str, Any]] = []
        self.requests = 0
        self.changed = threading.Condition()
        self.closing = threading.Event()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with endpoint.changed:
                    endpoint.requests += 1
                if endpoint.reply == "stall":
                    endpoint.closing.wait(30)
                    self.close_connection = True
                elif endpoint.reply.startswith("drip"):
                    self._drip(endpoint.reply == "drip-headers")
                elif endpoint.reply.isdigit():
                    self.send_response(int(endpoint.reply))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    endpoint.accept(self.path, body)
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")

            def _drip(self, in_headers: bool) -> None:
                head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
                if not in_headers:
                    self.wfile.write(head)
                    head = b"x" * 100
                self.close_connection = True
                for byte in head:
                    if endpoint.closing.wait(endpoint.drip_every):
                        return
                    try:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                    except OSError:  # the client gave up, as it should
                        return

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self) -> tuple[socket.socket, Any]:
                sock, address = super().get_request()
                if context is not None:  # the handshake happens on the handler's thread
                    sock = context.wrap_socket(
                        sock, server_side=True, do_handshake_on_connect=False
                    )
                return sock, address

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that rejects our certificate is what some tests want

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port: int = self.server.server_address[1]
        scheme = "https" if context is not None else "http"
        self.base_url = f"{scheme}://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def accept(self, path: str, body: bytes) -> None:
        payload = json.loads(body)
        with self.changed:
            self.events.extend(payload if isinstance(payload, list) else [payload])
            self.changed.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: len(self.events) >= count, timeout)

    def close(self) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def make_endpoint() -> Iterator[Callable[..., Endpoint]]:
    started: list[Endpoint] = []

    def make(context: ssl.SSLContext | None = None, reply: str = "ok") -> Endpoint:
        started.append(Endpoint(context, reply))
        return started[-1]

    yield make
    for endpoint in started:
        endpoint.close()


# -- servers in their own process --------------------------------------------------------------


class ServerProcess:
    """A server binary run in the foreground; ``log`` collects what it writes."""

    def __init__(self, command: list[str], port: int, log: Path) -> None:
        self.port = port
        self.log = log
        with log.open("wb") as output:
            self.process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)

    def wait_until_listening(self) -> bool:
        """True once the port takes connections, False if the server exited (port taken?)."""
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return True
            except OSError:
                self.process.poll()
                time.sleep(0.02)  # polling a port the server is still opening; no event exists
        raise AssertionError(f"not listening after {STARTUP_SECONDS} s: {self.log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_on_free_port(start: Callable[[int], ServerProcess]) -> ServerProcess:
    """``start(port)`` on a free port, again on another one if someone took it meanwhile."""
    for _ in range(5):
        server = start(free_port())
        if server.wait_until_listening():
            return server
        server.stop()
    raise AssertionError(f"could not start a server: {server.log.read_text()}")


@pytest.fixture
def tinyproxy(tmp_path: Path) -> Iterator[ServerProcess]:
    """Debian's tinyproxy, a forward proxy that tunnels https by CONNECT."""
    program = binary("tinyproxy")

    def start(port: int) -> ServerProcess:
        config = tmp_path / f"tinyproxy-{port}.conf"
        config.write_text(
            f"Port {port}\nListen 127.0.0.1\nTimeout 10\nMaxClients 20\nLogLevel Connect\n"
        )
        return ServerProcess([program, "-d", "-c", str(config)], port, tmp_path / "tinyproxy.log")

    server = start_on_free_port(start)
    yield server
    server.stop()


NGINX_CONFIG = """
daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 64; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        client_max_body_size 64k;
        location / {{
            proxy_pass http://127.0.0.1:{upstream_port};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


class Nginx(ServerProcess):
    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/v1"

    def statuses(self) -> list[int]:
        """The status of each request answered so far, from the access log."""
        log = self.log.parent / "access.log"
        return [int(line.split('" ')[1].split()[0]) for line in log.read_text().splitlines()]


@pytest.fixture
def nginx(tmp_path: Path, certificates: Certificates) -> Iterator[Callable[[int], Nginx]]:
    """Debian's nginx terminating TLS in front of ``upstream_port``, bodies up to 64 KiB."""
    program = binary("nginx")
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    started: list[ServerProcess] = []

    def make(upstream_port: int) -> Nginx:
        def start(port: int) -> ServerProcess:
            config = prefix / "nginx.conf"
            config.write_text(
                NGINX_CONFIG.format(
                    prefix=prefix,
                    port=port,
                    cert=certificates.cert_file,
                    key=certificates.key_file,
                    upstream_port=upstream_port,
                )
            )
            command = [program, "-c", str(config), "-p", str(prefix), "-e", "stderr"]
            return Nginx(command, port, prefix / "nginx.log")

        started.append(start_on_free_port(start))
        server = started[-1]
        assert isinstance(server, Nginx)
        return server

    yield make
    for server in started:
        server.stop()
