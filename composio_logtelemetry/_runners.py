"""Job runners whose workers end with ``os._exit``, which skips ``atexit``: Celery's prefork
children, RQ's work horses, billiard's processes.

As the established error reporters do, we hook each runner's own job and worker-exit points
and drain there, within the exit budget (``shutdown_timeout``), so that tasks need no code of
ours. The hooks are installed when a pipeline starts in a process (once per process), for the
runners already imported then: a runner's worker imports the runner long before a task logs,
so this finds it, and costs three dictionary lookups where no runner is used. Installing a
hook again (in a forked child, or a second pipeline) changes nothing.

A child that ends with ``os._exit`` where no runner offers a hook: call
``logging.shutdown()`` just before, as a normal exit would (see README.rst).
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable
from typing import Any

from . import _diagnostics

Drain = Callable[[], None]

# The methods an RQ work horse runs once its job is over; os._exit follows. perform_job ends
# them all, but a pipeline first started by the job (its module imported in the horse) is
# already inside it: the handle_job_* it calls next are looked up on the class then.
RQ_JOB_ENDS = ("handle_job_success", "handle_job_failure", "handle_job_retry", "perform_job")
_HOOKED = "_composio_logtelemetry_drains"


def hook_runners(drain: Drain) -> None:
    """Makes the runners imported in this process call ``drain`` where their workers end."""
    for module, hook in (
        ("billiard", _finalize_billiard_child),
        ("celery", _drain_celery_children),
        ("rq", _drain_rq_horses),
    ):
        if module in sys.modules:
            try:
                hook(_quiet(drain))
            except Exception as exc:  # a runner version we don't know: say so, never raise
                _diagnostics.warn(
                    f"runner-hook-{module}",
                    f"could not hook {module}'s worker exit ({exc!r}): telemetry its workers "
                    "log just before they end may be lost",
                )


def _module(name: str) -> Any:
    """The runners are optional and untyped: imported by name, only once they are in use."""
    return importlib.import_module(name)


def _quiet(drain: Drain) -> Drain:
    def drain_quietly() -> None:
        try:
            drain()
        except Exception as exc:
            _diagnostics.warn("runner-drain", f"telemetry drain at a worker's exit failed: {exc!r}")

    return drain_quietly


def _finalize_billiard_child(drain: Drain) -> None:
    """billiard shares multiprocessing's finalizers and after-fork hooks, so the drain that
    the pipeline registers for multiprocessing children runs in billiard's too, except in a
    child where the pipeline first starts: multiprocessing does not know it is a child."""
    process, util = _module("billiard.process"), _module("billiard.util")
    if getattr(process.current_process(), "_parent_pid", None) is not None:
        util.Finalize(None, drain, exitpriority=10)


def _drain_celery_children(drain: Drain) -> None:
    """A prefork child ends with ``os._exit``, whether recycled (``worker_max_tasks_per_child``,
    ``--max-memory-per-child``) or at a warm shutdown; ``worker_process_shutdown`` is sent in
    the child just before. The solo and threads pools end through a normal exit."""
    signals = _module("celery.signals")

    def drain_before_exit(**_: Any) -> None:
        drain()

    signals.worker_process_shutdown.connect(
        drain_before_exit, weak=False, dispatch_uid="composio_logtelemetry.drain"
    )


def _drain_rq_horses(drain: Drain) -> None:
    """A work horse (forked or spawned per job) ends with ``os._exit`` once the job is over.
    SimpleWorker runs jobs in the worker itself, which ends through a normal exit."""
    worker_class = _module("rq.worker").Worker
    for name in RQ_JOB_ENDS:
        method = getattr(worker_class, name, None)
        if callable(method) and not getattr(method, _HOOKED, False):
            setattr(worker_class, name, _then_drain_in_horse(method, drain))


def _then_drain_in_horse(method: Callable[..., Any], drain: Drain) -> Callable[..., Any]:
    @functools.wraps(method)
    def run_then_drain(worker: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(worker, *args, **kwargs)
        finally:
            if getattr(worker, "is_horse", False):
                drain()

    setattr(run_then_drain, _HOOKED, True)
    return run_then_drain
