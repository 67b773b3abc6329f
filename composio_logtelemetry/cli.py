"""The ``composio-logtelemetry`` command: serve, demo, send, spool."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

from ._batch import Job
from ._delivery import Delivery
from ._endpoint import DEFAULT_ENDPOINT, check_endpoint, normalize_endpoint, shown_url
from ._event import make_event
from ._runtime import register_library_thread
from ._spool import Spool, default_spool_path
from ._stats import Counters
from ._transport import Transport
from ._version import __version__
from .formatter import TelemetryFormatter

REPLAY_CLAIM_SIZE = 100


def _endpoint(args: argparse.Namespace) -> str:
    return str(args.endpoint or os.environ.get("COMPOSIO_TELEMETRY_URL") or DEFAULT_ENDPOINT)


def _transport(endpoint: str, timeout: float) -> Transport:
    return Transport(endpoint, timeout=timeout, max_retries=0, retry_backoff=0.0, pool_size=1)


def _send(args: argparse.Namespace) -> int:
    try:
        endpoint = check_endpoint(_endpoint(args), args.allow_insecure)
        payload: dict[str, object] = {"functionName": args.function_name}
        if args.duration_ms is not None:
            payload["durationMs"] = args.duration_ms
        if args.error:
            name, _, message = args.error.partition(":")
            payload["error"] = {"name": name, "message": message} if message else {"name": name}
        event_type, data = make_event("error" if args.error else "metric", payload)
    except (TypeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    formatter = TelemetryFormatter()
    event_type, data = formatter.checked(data, event_type)
    job = Job(event_type, [formatter.serialize(data)])
    transport = _transport(endpoint, args.timeout)
    started = time.perf_counter()
    outcome = transport.post(event_type, job.payload())
    elapsed_ms = (time.perf_counter() - started) * 1000
    url = shown_url(transport.urls[event_type])
    if outcome.delivered:
        print(f"sent 1 {event_type} event to {url}: {outcome.describe()} in {elapsed_ms:.0f} ms")
        return 0
    print(
        f"error: {event_type} event not delivered to {url}: {outcome.describe()}", file=sys.stderr
    )
    return 1


def _spool_command(args: argparse.Namespace) -> int:
    endpoint = _endpoint(args)
    spool = Spool(args.path or default_spool_path(normalize_endpoint(endpoint)))
    if args.action == "stats":
        for key, value in spool.stats().items():
            print(f"{key}: {value}")
        return 0
    if args.action == "clear":
        print(f"cleared {spool.clear()} event(s) from {spool.path}")
        return 0
    return _replay(spool, check_endpoint(endpoint, args.allow_insecure), args.timeout)


def _replay(spool: Spool, endpoint: str, timeout: float) -> int:
    """The delivery engine's replay, on this thread, with progress: whole lines in a log."""
    total = int(str(spool.stats().get("events", 0)))
    terminal = sys.stdout.isatty()
    counters = Counters()
    delivery = Delivery(
        _transport(endpoint, timeout),
        spool,
        counters,
        batch_size=REPLAY_CLAIM_SIZE,
        flush_interval=1.0,
        background=False,
        thread_registry=register_library_thread,
    )
    shown = 0
    while delivery.replay_now():
        if not delivery.healthy:
            print(f"\nerror: replay stopped: {delivery.last_cause}", file=sys.stderr)
            return 1
        replayed = counters.snapshot()["replayed"]
        if terminal:
            print(f"\rreplayed {replayed}/{total}", end="", flush=True)
        elif total and replayed * 10 // total > shown * 10 // total:  # a log: every tenth
            print(f"replayed {replayed}/{total}", flush=True)
            shown = replayed
    stats = counters.snapshot()
    done = f"replayed {stats['replayed']}/{total} event(s) to {shown_url(endpoint)}"
    print(f"\r{done}" if terminal else done)
    if stats["rejected"]:
        print(
            f"error: the endpoint rejected {stats['rejected']} event(s) in all; they are dropped",
            file=sys.stderr,
        )
    return 1 if stats["rejected"] else 0


DEV_EXTRA_INSTALL = "pip install 'composio-logtelemetry[dev]'"


def _dev_command(args: argparse.Namespace) -> int:
    """``serve`` and ``demo`` are dev tooling, imported here only: they need the ``dev`` extra."""
    try:
        from .devtools import demo, receiver
    except ModuleNotFoundError as error:
        if (error.name or "").startswith("composio_logtelemetry"):
            raise
        print(
            f"error: composio-logtelemetry {args.command} needs the dev extra"
            f" ({error.name} is not installed): {DEV_EXTRA_INSTALL}",
            file=sys.stderr,
        )
        return 2
    if args.command == "serve":
        return receiver.serve(args.host, args.port, args.db)
    return demo.run()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="composio-logtelemetry", description="Composio telemetry through Python logging."
    )
    parser.add_argument("--version", action="version", version=__version__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run a local Composio-compatible receiver")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8787)
    serve.add_argument("--db", default=None, help="SQLite file to store events (default: memory)")

    commands.add_parser("demo", help="run the pipeline against an embedded receiver")

    def connection_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--endpoint", help="base URL (default: $COMPOSIO_TELEMETRY_URL)")
        command.add_argument("--timeout", type=float, default=2.0, help="seconds per request")
        command.add_argument("--allow-insecure", action="store_true", help="allow plain http")

    send = commands.add_parser("send", help="send one event now and print the HTTP outcome")
    send.add_argument("--function-name", required=True)
    send.add_argument("--duration-ms", type=float)
    send.add_argument("--error", metavar="NAME:MESSAGE", help="send an error event")
    connection_options(send)

    spool = commands.add_parser("spool", help="inspect, replay or clear the offline spool")
    spool.add_argument("action", choices=("stats", "replay", "clear"))
    spool.add_argument("--path", help="spool file (default: the endpoint's in the user cache)")
    connection_options(spool)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command in ("serve", "demo"):
            return _dev_command(args)
        if args.command == "send":
            return _send(args)
        return _spool_command(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
