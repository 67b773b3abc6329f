"""A one-file Django project whose ``LOGGING`` setting sends Composio telemetry.

Run it (from a fresh virtualenv)::

    pip install '.[samples]'                        # from the repository root
    composio-logtelemetry serve                     # terminal 1: a local receiver on :8787
    export COMPOSIO_TELEMETRY_URL=http://127.0.0.1:8787/v1
    python samples/django_app/app.py runserver 127.0.0.1:8001 --noreload
    curl http://127.0.0.1:8001/orders/              # a metric: "metric orders.place 3.10ms"
    curl http://127.0.0.1:8001/reports/             # a 500, and an error event

What you should see: for each ``/orders/`` request the receiver prints a ``metric orders.place``
line; for ``/reports/`` Django answers 500, prints the traceback, and the receiver prints
``error  reports.export - ReportError: the reports database is read-only``. Stop the server
with Ctrl-C: what is still queued is delivered before it exits.

Django logs an unhandled exception on the ``django.request`` logger, from its own function
``log_response``; ``ViewTelemetry`` names that error event after the view's URL name instead.

The logging configuration here repeats the canonical one in README.rst ("Configure with
dictConfig") so that this file can be copied alone; change that one first.
"""

from __future__ import annotations

import logging
import sys
import time

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import path


class ViewTelemetry(logging.Filter):
    """Names the error event of an unhandled exception after the view that raised it."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        if request is not None and getattr(record, "telemetry", None) is None:
            match = getattr(request, "resolver_match", None)
            record.telemetry = {
                "functionName": match.view_name if match else request.path,
                "props": {
                    "method": request.method,
                    "path": request.path,
                    "status": getattr(record, "status_code", None),
                },
            }
        return True


LOGGING = {
    "version": 1,
    # Django configures its own loggers first; keep them working.
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s"}},
    "filters": {"view_telemetry": {"()": ViewTelemetry}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        # Options of the queue handler go in "."; the same dict works on Python 3.10 to 3.13
        # (see samples/plain_script.py for why).
        "telemetry": {
            "class": "composio_logtelemetry.TelemetryQueueHandler",
            "handlers": ["composio"],
            "filters": ["view_telemetry"],
            ".": {"shutdown_timeout": 5.0},
        },
        # The endpoint comes from COMPOSIO_TELEMETRY_URL when not given here.
        "composio": {
            "class": "composio_logtelemetry.TelemetryHandler",
            "source": {"version": "1.0.0"},
            "metadata": {"provider": "django"},
        },
    },
    # On the root logger, so that django.request's error records reach it.
    "root": {"handlers": ["console", "telemetry"], "level": "INFO"},
}


settings.configure(
    DEBUG=False,
    SECRET_KEY="samples-only-not-secret",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[],
    MIDDLEWARE=[],
    LOGGING=LOGGING,
)

logger = logging.getLogger("shop.views")


class ReportError(Exception):
    """What ``render_report`` raises; its name becomes ``error.name`` in the event."""


def place_order(request: HttpRequest) -> JsonResponse:
    """Does some work and logs how long it took as a metric."""
    started = time.perf_counter()
    items = 3
    time.sleep(0.003)
    logger.info(
        "order placed",
        extra={
            "telemetry": {
                "functionName": "orders.place",
                "durationMs": (time.perf_counter() - started) * 1000,
                "props": {"items": items},
            }
        },
    )
    return JsonResponse({"placed": True, "items": items})


def render_report() -> bytes:
    raise ReportError("the reports database is read-only")


def export_report(request: HttpRequest) -> JsonResponse:
    """Raises: Django answers 500 and logs the exception on django.request."""
    return JsonResponse({"size": len(render_report())})


urlpatterns = [
    path("orders/", place_order, name="orders.place"),
    path("reports/", export_report, name="reports.export"),
]


if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
