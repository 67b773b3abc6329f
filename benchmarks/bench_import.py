"""Import time: ``import composio_logtelemetry`` against the stdlib logging it builds on (issue 16).

Every CLI that configures logging pays the import at start-up, even one that never sends; so
``requests`` (most of what the library used to cost) is imported with the first event sent.

Each figure is the median over fresh interpreters of the time one ``import`` statement takes
(interpreter start-up excluded), the sides interleaved run by run:

- baseline: ``import logging.handlers, json``, what any logging configuration imports anyway;
- ours: ``import composio_logtelemetry``;
- ours with requests: ``import composio_logtelemetry, requests``, what the import cost when it
  brought ``requests`` in (and what the first event sent still costs once).

Target: after ``import composio_logtelemetry`` and README's dictConfig, neither ``requests``
nor ``urllib3`` is in ``sys.modules``.

Run: ``python benchmarks/bench_import.py``
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

import _common

RUNS = 15
SIDES = {
    "baseline": "import logging.handlers, json",
    "ours": "import composio_logtelemetry",
    "ours with requests": "import composio_logtelemetry, requests",
}
TIMED = """
import time
started = time.perf_counter()
{statement}
print(time.perf_counter() - started)
"""

README_CONFIGURED = """
import json, logging, logging.config, sys
import composio_logtelemetry

logging.config.dictConfig({
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {
        "telemetry": {
            "class": "composio_logtelemetry.TelemetryQueueHandler",
            "handlers": ["composio"],
            ".": {"shutdown_timeout": 5.0, "maxsize": 10000},
        },
        "composio": {
            "class": "composio_logtelemetry.TelemetryHandler",
            "source": {"service": "sdk", "version": "1.0.0"},
            "metadata": {"provider": "openai"},
        },
    },
    "root": {"handlers": ["telemetry"], "level": "INFO"},
})
print(json.dumps([name for name in ("requests", "urllib3") if name in sys.modules]))
"""


def run_child(code: str, env: dict[str, str], cwd: str) -> str:
    child = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd, timeout=60
    )
    if child.returncode != 0:
        raise RuntimeError(f"the child failed: {child.stderr.strip()[-500:]}")
    return child.stdout.strip().splitlines()[-1]


def main() -> int:
    env = _common.child_env()
    env["COMPOSIO_TELEMETRY_URL"] = f"http://127.0.0.1:{_common.free_port()}/v1"
    with tempfile.TemporaryDirectory(prefix="bench-import-") as cwd:
        env["XDG_CACHE_HOME"] = cwd  # a spool, if any, lands here
        _common.heading(f"import time, median of {RUNS} fresh interpreters per side")
        seconds: dict[str, list[float]] = {name: [] for name in SIDES}
        for run_number in range(RUNS + 1):  # the first round warms the file system caches
            order = list(SIDES.items())
            if run_number % 2:
                order.reverse()
            for name, statement in order:
                taken = float(run_child(TIMED.format(statement=statement), env, cwd))
                if run_number:
                    seconds[name].append(taken)
        medians = {name: _common.median(values) for name, values in seconds.items()}
        for name, statement in SIDES.items():
            ratio = medians[name] / medians["baseline"]
            print(f"  {name:<20} {medians[name] * 1000:7.1f} ms  {ratio:5.1f}x  ({statement})")
        print(
            f"  the import is {medians['ours'] / medians['ours with requests']:.2f}x what it "
            "was with requests"
        )

        _common.heading("README's dictConfig")
        loaded = json.loads(run_child(README_CONFIGURED, env, cwd))
    _common.verdict(
        not loaded,
        "after import composio_logtelemetry and README's dictConfig, sys.modules holds "
        f"{', '.join(loaded) or 'neither requests nor urllib3'} (target: neither)",
    )
    return _common.exit_code()


if __name__ == "__main__":
    sys.exit(main())
