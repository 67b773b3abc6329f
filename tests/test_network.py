"""Delivery through real network conditions: TLS from a private CA, tinyproxy, nginx, drips.

Transport is used directly where a test is about one request; the real pipeline, or an
application in a subprocess that logs and simply exits, where it is about delivery.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from composio_logtelemetry import TelemetryHandler, TelemetryQueueHandler
from composio_logtelemetry._transport import Outcome, Transport

from .conftest import closed_port
from .netservers import Certificates, Endpoint

pytest_plugins = ("tests.netservers",)

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
