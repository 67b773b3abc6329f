"""Delivery through real network conditions: TLS from a private CA, tinyproxy, nginx, drips.

Transport is used directly where a test is about one request; the real pipeline, or an
application in a subprocess that logs and simply exits, where it is about delivery.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from composio_logtelemetry import TelemetryHandler, TelemetryQueueHandler
from composio_logtelemetry._spool import Spool
from composio_logtelemetry._transport import Outcome, Transport
from composio_logtelemetry.devtools.receiver import Receiver
from conftest import closed_port, run_python

if TYPE_CHECKING:
    from netservers import Certificates, Endpoint, Nginx, ServerProcess

# The fixtures; imported by pytest only, so that it rewrites their asserts.
pytest_plugins = ("netservers",)

MARGIN = 1.5  # seconds a loaded machine may add to a bound
BODY = b'[{"functionName": "Net.check"}]'


def _post(url: str, *, timeout: float = 2.0) -> tuple[Outcome, float]:
    transport = Transport(url, timeout=timeout, max_retries=0, retry_backoff=0.0, pool_size=1)
    started = time.monotonic()
    try:
        return transport.post("metric", BODY), time.monotonic() - started
    finally:
        transport.close()


@pytest.fixture
def ca_bundle(monkeypatch: pytest.MonkeyPatch, certificates: Certificates) -> Path:
    """The private CA named the way users name theirs: REQUESTS_CA_BUNDLE."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificates.ca_file))
    return certificates.ca_file


@pytest.fixture(autouse=True)
def _no_proxy_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)


# -- timeout bounds the whole request ------------------------------------------------------------


@pytest.mark.parametrize("reply", ["drip-body", "drip-headers", "stall"])
def test_timeout_bounds_the_whole_request(
    make_endpoint: Callable[..., Endpoint], reply: str
) -> None:
    endpoint = make_endpoint(reply=reply)
    outcome, elapsed = _post(endpoint.base_url, timeout=1.0)
    assert not outcome.delivered
    assert outcome.error == f"no reply from 127.0.0.1:{endpoint.port} within timeout=1 s"
    assert not outcome.lasting
    # A byte every 0.4 s for 100 bytes would hold a per-read timeout for 40 s.
    assert 0.9 < elapsed < 1.0 + MARGIN


def test_a_request_after_a_cut_off_one_gets_a_fresh_connection(
    make_endpoint: Callable[..., Endpoint],
) -> None:
    endpoint = make_endpoint(reply="drip-body")
    transport = Transport(
        endpoint.base_url, timeout=0.5, max_retries=0, retry_backoff=0.0, pool_size=1
    )
    try:
        assert not transport.post("metric", BODY).delivered
        endpoint.reply = "ok"
        assert transport.post("metric", BODY).delivered
    finally:
        transport.close()
    assert endpoint.wait_for(1)


def test_flush_comes_back_in_about_timeout_from_a_dripping_endpoint(
    make_endpoint: Callable[..., Endpoint], tmp_path: Path
) -> None:
    endpoint = make_endpoint(reply="drip-body")
    handler = TelemetryHandler(
        endpoint=endpoint.base_url,
        timeout=1.0,
        max_retries=0,
        spool_path=str(tmp_path / "spool.sqlite3"),
    )
    queue_handler = TelemetryQueueHandler(handlers=[handler])
    logger = logging.getLogger(f"net.drip.{id(queue_handler)}")
    logger.propagate = False
    logger.addHandler(queue_handler)
    try:
        logger.warning("x", extra={"telemetry": {"functionName": "Net.drip"}})
        started = time.monotonic()
        assert not queue_handler.flush(timeout=20)
        elapsed = time.monotonic() - started
    finally:
        logger.removeHandler(queue_handler)
        queue_handler.shutdown(2.0)
    assert elapsed < 1.0 + 1.0 + MARGIN  # the flush interval, then one request of `timeout`
    assert handler.stats()["spooled"] == 1


# -- causes in plain words -----------------------------------------------------------------------


def test_a_refused_connection_names_host_and_port() -> None:
    port = closed_port()
    outcome, _ = _post(f"http://127.0.0.1:{port}/v1")
    assert outcome.error == f"connection refused by 127.0.0.1:{port}"
    assert not outcome.lasting


def test_a_name_that_does_not_resolve_is_said() -> None:
    outcome, _ = _post("https://telemetry.invalid/v1")
    assert outcome.error == "the name telemetry.invalid does not resolve"


def test_an_http_status_names_where_and_hides_secrets(
    make_endpoint: Callable[..., Endpoint],
) -> None:
    endpoint = make_endpoint(reply="503")
    outcome, _ = _post(f"http://user:hunter2@127.0.0.1:{endpoint.port}/v1?token=s3cret")
    assert outcome.status == 503
    assert not outcome.lasting
    assert outcome.cause == f"HTTP 503 from http://127.0.0.1:{endpoint.port}/v1/metrics/invocations"


def test_https_to_a_plain_http_port_says_it_does_not_speak_tls(
    make_endpoint: Callable[..., Endpoint],
) -> None:
    endpoint = make_endpoint()
    outcome, _ = _post(f"https://127.0.0.1:{endpoint.port}/v1")
    assert (
        outcome.error == f"127.0.0.1:{endpoint.port} does not speak TLS (is the endpoint http://?)"
    )
    assert outcome.lasting


def test_an_untrusted_certificate_says_how_to_name_the_ca(
    make_endpoint: Callable[..., Endpoint], certificates: Certificates
) -> None:
    endpoint = make_endpoint(certificates.server_context())
    outcome, _ = _post(endpoint.base_url)
    assert outcome.error is not None
    assert outcome.error.startswith("the certificate of 127.0.0.1 does not verify")
    assert "REQUESTS_CA_BUNDLE=/path/ca.pem" in outcome.error
    assert outcome.lasting  # no retry will make it verify
    assert endpoint.requests == 0


def test_a_certificate_trusted_through_requests_ca_bundle_delivers(
    make_endpoint: Callable[..., Endpoint], certificates: Certificates, ca_bundle: Path
) -> None:
    endpoint = make_endpoint(certificates.server_context())
    outcome, _ = _post(endpoint.base_url)
    assert outcome.delivered, outcome.cause
    assert endpoint.wait_for(1)


def test_a_proxy_that_is_down_is_named_without_its_password(
    monkeypatch: pytest.MonkeyPatch, make_endpoint: Callable[..., Endpoint]
) -> None:
    port = closed_port()
    monkeypatch.setenv("HTTPS_PROXY", f"http://user:hunter2@127.0.0.1:{port}")
    outcome, _ = _post("https://telemetry.example/v1")
    assert outcome.error == (
        f"the proxy http://127.0.0.1:{port} refused the connection (is HTTPS_PROXY right?)"
    )
    assert outcome.lasting


# -- delivery through TLS, a forward proxy and a reverse proxy ----------------------------------

APP = """
import logging, os
from composio_logtelemetry import TelemetryHandler, TelemetryQueueHandler
handler = TelemetryHandler(
    endpoint=os.environ["TEST_ENDPOINT"], spool_path=os.environ["TEST_SPOOL"], timeout=2.0
)
queue_handler = TelemetryQueueHandler(handlers=[handler], shutdown_timeout={shutdown_timeout})
log = logging.getLogger("app")
log.setLevel(logging.INFO)
log.addHandler(queue_handler)
for number in range({count}):
    log.info("tick", extra={{"telemetry": {{"functionName": "Net.tick", "durationMs": number}}}})
"""


def _run_app(endpoint: str, spool: Path, count: int, shutdown_timeout: float, **env: str) -> Any:
    app = APP.format(count=count, shutdown_timeout=shutdown_timeout)
    result = run_python(app, env={"TEST_ENDPOINT": endpoint, "TEST_SPOOL": str(spool), **env})
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


@pytest.fixture
def log_through(
    tmp_path: Path,
) -> Iterator[Callable[..., tuple[TelemetryHandler, TelemetryQueueHandler]]]:
    """Logs ``count`` events through a real pipeline to ``endpoint``; returns it, unflushed."""
    made: list[tuple[logging.Logger, TelemetryQueueHandler]] = []

    def log(
        endpoint: str, count: int, pad: str = ""
    ) -> tuple[TelemetryHandler, TelemetryQueueHandler]:
        handler = TelemetryHandler(
            endpoint=endpoint, spool_path=str(tmp_path / "spool.sqlite3"), retry_backoff=0.05
        )
        queue_handler = TelemetryQueueHandler(handlers=[handler])
        logger = logging.getLogger(f"net.{id(queue_handler)}")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        logger.addHandler(queue_handler)
        made.append((logger, queue_handler))
        for number in range(count):
            props = {"n": number, "pad": pad}
            logger.info("x", extra={"telemetry": {"functionName": "Net.tick", "props": props}})
        return handler, queue_handler

    yield log
    for logger, queue_handler in made:
        logger.removeHandler(queue_handler)
        queue_handler.shutdown(2.0)


def test_https_with_a_private_ca_named_in_requests_ca_bundle(
    make_endpoint: Callable[..., Endpoint],
    certificates: Certificates,
    ca_bundle: Path,
    log_through: Callable[..., Any],
) -> None:
    endpoint = make_endpoint(certificates.server_context())
    handler, queue_handler = log_through(endpoint.base_url, 300)
    assert queue_handler.flush(10.0)
    assert len(endpoint.events) == 300
    assert handler.stats()["sent"] == 300


def test_an_untrusted_certificate_spools_at_exit_on_time_and_a_trusting_run_delivers(
    make_endpoint: Callable[..., Endpoint], certificates: Certificates, tmp_path: Path
) -> None:
    endpoint = make_endpoint(certificates.server_context())
    spool = tmp_path / "spool.sqlite3"
    untrusting = _run_app(endpoint.base_url, spool, 50, shutdown_timeout=3.0)
    assert untrusting.elapsed < 3.0 + MARGIN
    assert Spool(str(spool)).stats()["events"] == 50
    assert endpoint.requests == 0

    trusting = _run_app(
        endpoint.base_url,
        spool,
        1,
        shutdown_timeout=5.0,
        REQUESTS_CA_BUNDLE=str(certificates.ca_file),
    )
    assert trusting.elapsed < 5.0 + MARGIN
    assert len(endpoint.events) == 51  # the spool replayed what the first run could not send
    assert Spool(str(spool)).stats()["events"] == 0


def test_https_proxy_tunnels_by_connect_through_tinyproxy(
    monkeypatch: pytest.MonkeyPatch,
    tinyproxy: ServerProcess,
    make_endpoint: Callable[..., Endpoint],
    certificates: Certificates,
    ca_bundle: Path,
    log_through: Callable[..., Any],
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{tinyproxy.port}")
    endpoint = make_endpoint(certificates.server_context())
    _, queue_handler = log_through(endpoint.base_url, 300)
    assert queue_handler.flush(10.0)
    assert len(endpoint.events) == 300
    assert f"CONNECT 127.0.0.1:{endpoint.port}" in tinyproxy.log.read_text()


def test_no_proxy_bypasses_the_proxy(
    monkeypatch: pytest.MonkeyPatch,
    make_endpoint: Callable[..., Endpoint],
    certificates: Certificates,
    ca_bundle: Path,
    log_through: Callable[..., Any],
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    endpoint = make_endpoint(certificates.server_context())
    _, queue_handler = log_through(endpoint.base_url, 100)
    assert queue_handler.flush(10.0)
    assert len(endpoint.events) == 100


def test_a_proxy_that_is_down_is_said_and_the_events_spooled_at_exit(
    make_endpoint: Callable[..., Endpoint], certificates: Certificates, tmp_path: Path
) -> None:
    endpoint = make_endpoint(certificates.server_context())
    spool = tmp_path / "spool.sqlite3"
    port = closed_port()
    result = _run_app(
        endpoint.base_url,
        spool,
        50,
        shutdown_timeout=3.0,
        HTTPS_PROXY=f"http://127.0.0.1:{port}",
        REQUESTS_CA_BUNDLE=str(certificates.ca_file),
    )
    assert result.elapsed < 3.0 + MARGIN
    assert Spool(str(spool)).stats()["events"] == 50
    assert endpoint.requests == 0


def test_the_exit_line_names_an_untrusted_certificate(
    make_endpoint: Callable[..., Endpoint], certificates: Certificates, tmp_path: Path
) -> None:
    endpoint = make_endpoint(certificates.server_context())
    result = _run_app(endpoint.base_url, tmp_path / "spool.sqlite3", 5, shutdown_timeout=3.0)
    assert "the certificate of 127.0.0.1 does not verify" in result.stderr
    assert "REQUESTS_CA_BUNDLE=/path/ca.pem" in result.stderr


def test_the_exit_line_names_a_proxy_that_is_down(
    make_endpoint: Callable[..., Endpoint], certificates: Certificates, tmp_path: Path
) -> None:
    endpoint = make_endpoint(certificates.server_context())
    port = closed_port()
    result = _run_app(
        endpoint.base_url,
        tmp_path / "spool.sqlite3",
        5,
        shutdown_timeout=3.0,
        HTTPS_PROXY=f"http://127.0.0.1:{port}",
    )
    assert f"the proxy http://127.0.0.1:{port} refused the connection" in result.stderr


def test_nginx_terminates_tls_and_its_early_413_splits_batches(
    nginx: Callable[[int], Nginx], ca_bundle: Path, log_through: Callable[..., Any]
) -> None:
    with Receiver() as receiver:
        proxy = nginx(receiver.port)
        # About 1.6 KB an event: a batch of 100 is 160 KB, past nginx's 64 KiB.
        handler, queue_handler = log_through(proxy.base_url, 300, pad="p" * 1500)
        assert queue_handler.flush(20.0)
        assert receiver.count() == 300
    assert 413 in proxy.statuses()
    assert handler.stats()["rejected"] == 0


def test_nginx_502s_before_the_upstream_starts_are_retried(
    nginx: Callable[[int], Nginx], ca_bundle: Path, log_through: Callable[..., Any]
) -> None:
    upstream_port = closed_port()  # free for now: nginx answers 502 until it is taken
    proxy = nginx(upstream_port)
    _, queue_handler = log_through(proxy.base_url, 200)
    deadline = time.monotonic() + 10
    while 502 not in proxy.statuses():  # nginx writes its log; no event tells us sooner
        assert time.monotonic() < deadline, "nginx never answered 502"
        time.sleep(0.05)
    with Receiver(port=upstream_port) as receiver:
        assert queue_handler.flush(20.0)
        assert receiver.count() == 200


DRIP_APP = """
import logging, os, time
from composio_logtelemetry import TelemetryHandler, TelemetryQueueHandler
handler = TelemetryHandler(
    endpoint=os.environ["TEST_ENDPOINT"], spool_path=os.environ["TEST_SPOOL"],
    timeout=1.0, max_retries=0,
)
queue_handler = TelemetryQueueHandler(handlers=[handler], shutdown_timeout=30.0)
log = logging.getLogger("app")
log.setLevel(logging.INFO)
log.addHandler(queue_handler)
for number in range(50):
    log.info("tick", extra={"telemetry": {"functionName": "Net.drip", "durationMs": number}})
started = time.monotonic()
flushed = queue_handler.flush(timeout=20)
print(flushed, time.monotonic() - started, flush=True)
"""


def test_an_application_facing_a_dripping_endpoint_flushes_and_exits_in_about_timeout(
    make_endpoint: Callable[..., Endpoint], tmp_path: Path
) -> None:
    endpoint = make_endpoint(reply="drip-body")
    spool = tmp_path / "spool.sqlite3"
    result = run_python(
        DRIP_APP, env={"TEST_ENDPOINT": endpoint.base_url, "TEST_SPOOL": str(spool)}
    )
    assert result.returncode == 0, result.stderr
    flushed, flush_seconds = result.stdout.split()
    assert flushed == "False"
    # One request of timeout=1 s after at most flush_interval=1 s, not the 20 s of the flush.
    assert float(flush_seconds) < 1.0 + 1.0 + MARGIN
    # Then the exit: again about one request, not shutdown_timeout=30 s.
    assert result.elapsed < float(flush_seconds) + 2 * 1.0 + MARGIN
    assert Spool(str(spool)).stats()["events"] == 50
