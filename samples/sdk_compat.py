"""``create_event``/``push_event`` used exactly as the Composio Python SDK's ``_telemetry.py``.

The SDK wraps every public method of its resources (``Tools.execute``, ``Toolkits.list``...)
so that each call is timed and pushed as a metric, or, when it raises, as an error event with
the exception's name, message and stack. Code written against the SDK's module keeps working
when it imports these names from ``composio_logtelemetry`` instead, and gains batching,
retries and the offline spool.

Run it (from a fresh virtualenv)::

    pip install '.[samples]'                        # from the repository root
    composio-logtelemetry serve                     # terminal 1: a local receiver on :8787
    export COMPOSIO_TELEMETRY_URL=http://127.0.0.1:8787/v1
    python samples/sdk_compat.py                    # or: --endpoint http://127.0.0.1:8787/v1

What you should see: the script prints what each call returned or raised, then
``flush: all events delivered``. The receiver prints ``metric Tools.execute``,
``metric Toolkits.list`` and ``error  Tools.execute ... ToolVersionRequiredError: Toolkit
version not specified.``
"""

from __future__ import annotations

import argparse
import functools
import os
import time
import traceback
from collections.abc import Callable
from typing import Any

from composio_logtelemetry import Event, create_event, flush, push_event, setup

VERSION = "1.0.0"
ENVIRONMENT = os.getenv("ENVIRONMENT", "development")


def trace_method(method: Callable[..., Any], name: str) -> Callable[..., Any]:
    """Times one resource method and pushes a metric, or an error event if it raises."""

    @functools.wraps(method)
    def trace_wrapper(self: Resource, *args: Any, **kwargs: Any) -> Any:
        started = time.time()
        # As in the SDK: the event is made before the call, then completed in place.
        event: Event = create_event(
            type="metric",
            functionName=name,
            timestamp=time.time(),
            props={},
            source={
                "environment": ENVIRONMENT,
                "language": "python",
                "service": "sdk",
                "version": VERSION,
            },
            metadata={"provider": self.provider},
        )
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            _, payload = event
            payload["error"] = {
                "name": exc.__class__.__name__,
                "message": str(exc),
                "stack": traceback.format_exc(),
            }
            event = ("error", payload)
            raise
        finally:
            event[1]["durationMs"] = (time.time() - started) * 1000
            push_event(event=event)

    return trace_wrapper


class ResourceMeta(type):
    """Wraps every public method of a resource class with ``trace_method``, as the SDK does."""

    def __init__(cls, name: str, bases: tuple[type, ...], attrs: dict[str, Any]) -> None:
        super().__init__(name, bases, attrs)
        for attr, value in attrs.items():
            if not attr.startswith("_") and callable(value):
                setattr(cls, attr, trace_method(value, f"{name}.{attr}"))


class Resource(metaclass=ResourceMeta):
    def __init__(self, provider: str) -> None:
        self.provider = provider


class ToolVersionRequiredError(Exception):
    """Raised like the SDK's error of the same name."""


class Tools(Resource):
    def execute(self, slug: str, arguments: dict[str, Any], version: str | None = None) -> dict:
        _check_version(version)
        time.sleep(0.01)
        return {"successful": True, "slug": slug, "data": arguments}


def _check_version(version: str | None) -> None:
    if version is None:
        raise ToolVersionRequiredError("Toolkit version not specified.")


class Toolkits(Resource):
    def list(self) -> list[str]:
        time.sleep(0.002)
        return ["github", "gmail", "slack"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--endpoint", help="telemetry base URL (default: $COMPOSIO_TELEMETRY_URL, else Composio's)"
    )
    args = parser.parse_args()
    # Optional: push_event builds the same pipeline on first use, with the endpoint from
    # COMPOSIO_TELEMETRY_URL. setup() is where options go; call it before the first event.
    setup(endpoint=args.endpoint, source={"version": VERSION})

    tools, toolkits = Tools(provider="openai"), Toolkits(provider="openai")
    print("Tools.execute ->", tools.execute("GITHUB_STAR_REPO", {"repo": "x/y"}, version="2025"))
    print("Toolkits.list ->", toolkits.list())
    try:
        tools.execute("GITHUB_STAR_REPO", {"repo": "x/y"})
    except ToolVersionRequiredError as exc:
        print("Tools.execute raised", type(exc).__name__, "-", exc)

    # The SDK waits for its queue at exit; here exit drains too (bounded), and flush() lets a
    # script or a test know that everything it pushed so far has been delivered.
    delivered = flush(timeout=10.0)
    print("flush:", "all events delivered" if delivered else "some events not delivered yet")
    return 0 if delivered else 1


if __name__ == "__main__":
    raise SystemExit(main())
