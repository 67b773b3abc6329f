"""Runs every benchmark, one process each, and exits non-zero if any verdict is FAIL.

Run: ``python benchmarks/run_all.py`` (about 1 to 2 minutes). Each benchmark also runs alone:
``python benchmarks/bench_emit.py`` and so on.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

BENCHMARKS = (
    "bench_emit.py",
    "bench_throughput.py",
    "bench_exit.py",
    "bench_memory.py",
    "bench_burst.py",
    "bench_redact.py",
    "bench_import.py",
)
HERE = os.path.dirname(os.path.abspath(__file__))


def run(script: str) -> tuple[list[str], int]:
    """Streams one benchmark's output; returns its verdict lines and exit code."""
    verdicts: list[str] = []
    process = subprocess.Popen(
        [sys.executable, os.path.join(HERE, script)],
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    assert process.stdout is not None
    for line in process.stdout:
        print(line, end="", flush=True)
        if line.startswith(("PASS: ", "FAIL: ")):
            verdicts.append(f"{script}: {line.strip()}")
    return verdicts, process.wait()


def main() -> int:
    started = time.perf_counter()
    verdicts: list[str] = []
    crashed: list[str] = []
    for script in BENCHMARKS:
        print(f"\n######## {script}", flush=True)
        lines, code = run(script)
        verdicts += lines
        if code != 0 or not lines:
            crashed.append(f"{script}: exited {code} with {len(lines)} verdict(s)")
    print(f"\n######## summary ({time.perf_counter() - started:.0f} s)")
    for line in verdicts + crashed:
        print(line)
    passed = [line for line in verdicts if ": PASS: " in line]
    failed = len(verdicts) - len(passed) + len(crashed)
    print(f"{len(passed)} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
