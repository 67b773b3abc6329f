"""Cost of redaction on the listener thread (issue 19: the hot path's quick check stays quick).

Every props string and every error message and stack goes through ``redact_text``. Sides, all
measured in this run and interleaved sample by sample:

- ``noop``: returning the string unchanged, the floor;
- ``before``: the redaction this project shipped before the provider table (copied below as it
  was: a case-insensitive trigger search, then four substitutions);
- ``now``: ``composio_logtelemetry._redact.redact_text``.

Verdicts: on ordinary short strings (props of a metric with nothing secret-looking) ``now``
costs at most what ``before`` did (target <= 1.0x). Strings that carry secrets, and a whole
traceback, are printed for information: errors are rate-limited and may pay more.

Run: ``python benchmarks/bench_redact.py``
"""

from __future__ import annotations

import random
import re
import string
import sys
import time
from collections.abc import Callable

import _common

from composio_logtelemetry._redact import redact_text

ITERATIONS = 2_000
SAMPLES = 9

# -- the redaction as it was before (the baseline) ------------------------------------------
_BEFORE_MASK = "[REDACTED]"
_BEFORE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{4,}"), rf"\1\2{_BEFORE_MASK}"),
    (
        re.compile(
            r"""(?ix)
            \b((?:x[-_])?api[-_]?key|apikey|access[-_]?token|refresh[-_]?token|auth[-_]?token
               |token|secret|client[-_]?secret|password|passwd|pwd|authorization|cookie)
            (["']?\s*[=:]\s*["']?)
            (?!\[REDACTED\]|(?:bearer|basic)\s)[^\s"'&,;)}\]]+"""
        ),
        rf"\1\2{_BEFORE_MASK}",
    ),
    (
        re.compile(r"(?i)\b((?:https?|wss?|ftp)://[^\s?#\"'<>]+)\?[^\s#\"'<>]+"),
        rf"\1?{_BEFORE_MASK}",
    ),
    (
        re.compile(r"(?i)\b((?:[a-z][a-z0-9+.-]*)://[^\s:/@\"']+):[^\s@/\"']+@"),
        rf"\1:{_BEFORE_MASK}@",
    ),
)
_BEFORE_TRIGGER = re.compile(r"(?i)bearer|basic|key|token|secret|passw|pwd|auth|cookie|://")


def redact_before(text: str) -> str:
    if _BEFORE_TRIGGER.search(text) is None:
        return text
    for pattern, replacement in _BEFORE_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


# -- inputs ----------------------------------------------------------------------------------
ORDINARY = [
    "github",
    "gpt-4o",
    "Tools.execute",
    "GITHUB_CREATE_AN_ISSUE",
    "eu-west-1",
    "123e4567-e89b-12d3-a456-426614174000",
    "3f786850e387550fdab836ed7e6dc881de23001b",
    "/home/runner/work/app/src/app/tools/github.py",
    "2026-12-04T16:05:52.123456+00:00",
    "The quick brown fox jumps over the lazy dog.",
    "claude-3-5-sonnet-20241022",
    "completed in 412 ms",
]


def _secret_strings() -> list[str]:
    rng = random.Random(19)
    alnum = string.ascii_letters + string.digits

    def pick(length: int) -> str:
        return "".join(rng.choice(alnum) for _ in range(length))

    return [
        f"401 from api.openai.com: invalid key sk-proj-{pick(120)}",
        f"GitHub said Bad credentials for ghp_{pick(36)}",
        f"env: OPENAI_API_KEY={pick(40)} GITHUB_TOKEN={pick(30)}",
        f"Authorization: Bearer {pick(60)}",
        f"POST https://hooks.slack.com/services/T{pick(8)}/B{pick(10)}/{pick(24)} failed",
        f"{{'aws_access_key_id': 'AKIA{pick(16).upper()}', 'region': 'us-east-1'}}",
    ]


def _traceback(last_line: str) -> str:
    frames = "".join(
        f'  File "/app/src/agent/step_{n}.py", line {n * 7}, in run_step_{n}\n'
        f"    result = tools.execute(action, params)\n"
        for n in range(40)
    )
    return f"Traceback (most recent call last):\n{frames}{last_line}"


def sampler(redact: Callable[[str], str], texts: list[str]) -> _common.Sampler:
    def sample(iterations: int) -> int:
        started = time.perf_counter_ns()
        for _ in range(iterations):
            for text in texts:
                redact(text)
        return time.perf_counter_ns() - started

    return sample


def compare(title: str, texts: list[str], iterations: int) -> dict[str, float]:
    _common.heading(title)
    medians = _common.interleaved_medians(
        {
            "noop": sampler(lambda text: text, texts),
            "before": sampler(redact_before, texts),
            "now": sampler(redact_text, texts),
        },
        iterations=iterations,
        samples=SAMPLES,
    )
    per_string = {name: value / len(texts) for name, value in medians.items()}
    for name, value in per_string.items():
        print(f"  {name:<8}{value:9.0f} ns/string")
    print(f"  now / before = {per_string['now'] / per_string['before']:.2f}x")
    return per_string


def main() -> int:
    ordinary = compare("ordinary short strings (a metric's props)", ORDINARY, ITERATIONS)
    ratio = ordinary["now"] / ordinary["before"]
    _common.verdict(
        ratio <= 1.0,
        f"redact_text on ordinary strings costs {ratio:.2f}x the previous redaction "
        "(target <= 1.0x)",
    )
    compare("strings that carry a secret (errors: information only)", _secret_strings(), 500)
    plain = _traceback("ConnectionError: connection reset by peer")
    compare("a 40-frame traceback, nothing secret-looking (information only)", [plain], 200)
    marked = _traceback("PermissionError: token expired, log in again")
    compare("the same traceback with one word that needs a look (information only)", [marked], 50)
    return _common.exit_code()


if __name__ == "__main__":
    code = main()
    print(f"bench_redact: {'all PASS' if code == 0 else 'some FAIL'}")
    sys.exit(0)
