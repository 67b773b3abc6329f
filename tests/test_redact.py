"""Redaction of the secrets users carry: provider tokens, env-style names, keys, URLs.

Every fake secret is generated at run time in its provider's format (random alphabet and
length, the documented prefix): no token is committed as a literal, so neither a reader nor a
push-protection scanner ever sees one.
"""

from __future__ import annotations

import json
import logging
import random
import string
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from composio_logtelemetry import _redact
from composio_logtelemetry._redact import MASK, redact_text
from conftest import FaultyEndpoint

ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "_-"
BASE64 = ALNUM + "+/"
HEX = string.hexdigits[:16]
UPPER = string.ascii_uppercase + string.digits
DIGITS = string.digits
BECH32 = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"


class Fake:
    """One generated secret: the ``text`` as it appears, and the ``cores``, its random parts,
    none of which may survive redaction (a kept prefix such as ``ghp_`` is not secret)."""

    def __init__(self, provider: str, text: str, *cores: str) -> None:
        self.provider = provider
        self.text = text
        self.cores = cores or (text,)

    def leaked_in(self, received: str) -> bool:
        return any(core in received for core in self.cores)


def _r(rng: random.Random, alphabet: str, length: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


def _prefixed(provider: str, prefix: str, alphabet: str, length: int) -> Callable[..., Fake]:
    def make(rng: random.Random) -> Fake:
        core = _r(rng, alphabet, length)
        return Fake(provider, prefix + core, core)

    return make


def _openai_legacy(rng: random.Random) -> Fake:
    core = f"{_r(rng, ALNUM, 20)}T3BlbkFJ{_r(rng, ALNUM, 20)}"
    return Fake("OpenAI", f"sk-{core}", core)


def _anthropic(rng: random.Random) -> Fake:
    core = f"{_r(rng, URLSAFE, 93)}AA"
    return Fake("Anthropic", f"sk-ant-api03-{core}", core)


def _github_fine_grained(rng: random.Random) -> Fake:
    core = f"{_r(rng, ALNUM, 22)}_{_r(rng, ALNUM, 59)}"
    return Fake("GitHub", f"github_pat_{core}", core)


def _pypi(rng: random.Random) -> Fake:
    core = _r(rng, URLSAFE, 70)
    return Fake("PyPI", f"pypi-AgEIcHlwaS5vcmc{core}", core)


def _slack_bot(rng: random.Random) -> Fake:
    core = f"{_r(rng, DIGITS, 11)}-{_r(rng, DIGITS, 12)}-{_r(rng, ALNUM, 24)}"
    return Fake("Slack", f"xoxb-{core}", core)


def _slack_user(rng: random.Random) -> Fake:
    core = f"{_r(rng, DIGITS, 11)}-{_r(rng, DIGITS, 11)}-{_r(rng, DIGITS, 12)}-{_r(rng, HEX, 32)}"
    return Fake("Slack", f"xoxp-{core}", core)


def _slack_webhook(rng: random.Random) -> Fake:
    core = f"T{_r(rng, UPPER, 10)}/B{_r(rng, UPPER, 10)}/{_r(rng, ALNUM, 24)}"
    return Fake("Slack", f"https://hooks.slack.com/services/{core}", core)


def _aws_secret(rng: random.Random) -> Fake:
    core = _r(rng, BASE64, 40)
    return Fake("AWS", f"aws_secret_access_key = {core}", core)


def _azure_storage(rng: random.Random) -> Fake:
    core = f"{_r(rng, BASE64, 86)}=="
    text = f"DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={core};EndpointSuffix=x"
    return Fake("Azure", text, core)


def _azure_service_bus(rng: random.Random) -> Fake:
    core = f"{_r(rng, BASE64, 43)}="
    text = f"Endpoint=sb://acme.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey={core}"
    return Fake("Azure", text, core)


def _azure_ad(rng: random.Random) -> Fake:
    text = f"{_r(rng, ALNUM, 3)}{rng.choice(DIGITS)}Q~{_r(rng, ALNUM + '_~.-', 34)}"
    return Fake("Azure", text)


def _pem(rng: random.Random) -> Fake:
    kind = rng.choice(["RSA ", "EC ", "OPENSSH ", "", "ENCRYPTED "])
    lines = [_r(rng, BASE64, 64) for _ in range(rng.randint(3, 12))]
    body = "\n".join(lines)
    text = f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----"
    return Fake("PEM private key", text, *lines)


def _stripe(rng: random.Random) -> Fake:
    prefix = rng.choice(["sk_live_", "rk_live_", "sk_test_"])
    core = _r(rng, ALNUM, rng.randint(24, 99))
    return Fake("Stripe", prefix + core, core)


def _sendgrid(rng: random.Random) -> Fake:
    core = f"{_r(rng, URLSAFE, 22)}.{_r(rng, URLSAFE, 43)}"
    return Fake("SendGrid", f"SG.{core}", core)


def _jwt(rng: random.Random) -> Fake:
    text = f"eyJ{_r(rng, URLSAFE, 30)}.eyJ{_r(rng, URLSAFE, 60)}.{_r(rng, URLSAFE, 43)}"
    return Fake("JWT", text)


def _discord_bot(rng: random.Random) -> Fake:
    text = f"{rng.choice('MNO')}{_r(rng, URLSAFE, 25)}.{_r(rng, URLSAFE, 6)}.{_r(rng, URLSAFE, 38)}"
    return Fake("Discord", text)


def _discord_webhook(rng: random.Random) -> Fake:
    core = f"{_r(rng, DIGITS, 18)}/{_r(rng, URLSAFE, 68)}"
    return Fake("Discord", f"https://discord.com/api/webhooks/{core}", core)


def _telegram(rng: random.Random) -> Fake:
    core = f"{_r(rng, DIGITS, 10)}:AA{_r(rng, URLSAFE, 33)}"
    return Fake("Telegram", core)


def _langsmith(rng: random.Random) -> Fake:
    core = f"{_r(rng, HEX, 32)}_{_r(rng, HEX, 10)}"
    return Fake("LangSmith", f"lsv2_pt_{core}", core)


def _notion(rng: random.Random) -> Fake:
    core = f"{_r(rng, DIGITS, 11)}{_r(rng, ALNUM, 35)}"
    return Fake("Notion", f"ntn_{core}", core)


def _postman(rng: random.Random) -> Fake:
    core = f"{_r(rng, HEX, 24)}-{_r(rng, HEX, 34)}"
    return Fake("Postman", f"PMAK-{core}", core)


def _grafana(rng: random.Random) -> Fake:
    core = f"{_r(rng, ALNUM, 32)}_{_r(rng, HEX, 8)}"
    return Fake("Grafana", f"glsa_{core}", core)


def _airtable(rng: random.Random) -> Fake:
    core = f"{_r(rng, ALNUM, 14)}.{_r(rng, HEX, 64)}"
    return Fake("Airtable", f"pat{core}", core)


def _mapbox(rng: random.Random) -> Fake:
    core = f"eyJ{_r(rng, URLSAFE, 60)}.{_r(rng, URLSAFE, 22)}"
    return Fake("Mapbox", f"sk.{core}", core)


def _env(provider: str, name: str, alphabet: str = ALNUM) -> Callable[..., Fake]:
    def make(rng: random.Random) -> Fake:
        core = _r(rng, alphabet, rng.randint(16, 48))
        return Fake(provider, f"{name}{core}", core)

    return make


# Each entry makes one fake of one format; ``PROVIDER`` is who issues it.
GENERATORS: list[Callable[[random.Random], Fake]] = [
    _prefixed("OpenAI", "sk-proj-", URLSAFE, 156),
    _prefixed("OpenAI", "sk-svcacct-", URLSAFE, 120),
    _openai_legacy,
    _anthropic,
    _prefixed("Hugging Face", "hf_", string.ascii_letters, 34),
    *(_prefixed("GitHub", f"gh{kind}_", ALNUM, 36) for kind in "pousr"),
    _github_fine_grained,
    _prefixed("GitLab", "glpat-", URLSAFE, 20),
    _prefixed("npm", "npm_", ALNUM, 36),
    _pypi,
    _slack_bot,
    _slack_user,
    _slack_webhook,
    _prefixed("AWS", "AKIA", UPPER, 16),
    _prefixed("AWS", "ASIA", UPPER, 16),
    _aws_secret,
    _prefixed("Google", "AIza", URLSAFE, 35),
    _prefixed("Google", "GOCSPX-", URLSAFE, 28),
    _prefixed("Google", "ya29.", URLSAFE, 120),
    _azure_storage,
    _azure_service_bus,
    _azure_ad,
    _pem,
    _stripe,
    _prefixed("Stripe", "whsec_", ALNUM, 32),
    _sendgrid,
    _jwt,
    _prefixed("Twilio", "SK", HEX, 32),
    _prefixed("Mailgun", "key-", HEX, 32),
    _prefixed("Shopify", "shpat_", HEX, 32),
    _prefixed("Shopify", "shpss_", HEX, 32),
    _discord_bot,
    _discord_webhook,
    _telegram,
    _prefixed("DigitalOcean", "dop_v1_", HEX, 64),
    _prefixed("Databricks", "dapi", HEX, 32),
    _prefixed("Groq", "gsk_", ALNUM, 52),
    _prefixed("Replicate", "r8_", ALNUM, 37),
    _prefixed("Perplexity", "pplx-", ALNUM, 48),
    _prefixed("xAI", "xai-", ALNUM, 80),
    _prefixed("Tavily", "tvly-", ALNUM, 32),
    _prefixed("Pinecone", "pcsk_", ALNUM + "_", 70),
    _langsmith,
    _prefixed("Firecrawl", "fc-", HEX, 32),
    _prefixed("E2B", "e2b_", HEX, 40),
    _prefixed("Linear", "lin_api_", ALNUM, 40),
    _notion,
    _prefixed("Atlassian", "ATATT3", URLSAFE + "=", 180),
    _airtable,
    _postman,
    _prefixed("Doppler", "dp.pt.", ALNUM, 43),
    _prefixed("HashiCorp Vault", "hvs.", URLSAFE, 90),
    _prefixed("Sentry", "sntryu_", HEX, 64),
    _prefixed("Square", "EAAA", URLSAFE, 60),
    _prefixed("Heroku", "HRKU-AA", URLSAFE, 58),
    _prefixed("Supabase", "sbp_", HEX, 40),
    _prefixed("Figma", "figd_", URLSAFE, 40),
    _prefixed("Docker Hub", "dckr_pat_", URLSAFE, 27),
    _grafana,
    _prefixed("New Relic", "NRAK-", UPPER, 27),
    _prefixed("age", "AGE-SECRET-KEY-1", BECH32, 58),
    _mapbox,
    _env("Composio", "COMPOSIO_API_KEY="),
    _env("OpenAI", "OPENAI_API_KEY="),
    _env("GitHub", "GITHUB_TOKEN="),
    _env("Postgres", "DATABASE_PASSWORD="),
    _env("GPG", "GPG_PASSPHRASE="),
    _env("Azure", "AZURE_CLIENT_SECRET: "),
    _env("env", "export STRIPE_SECRET_KEY="),
    _env("JSON", '"client_secret": "'),
    _env("repr", "'apiKey': '"),
    _env("HTTP", "Authorization: Bearer ", URLSAFE + "."),
    _env("HTTP", "Proxy-Authorization: Basic ", BASE64),
    _env("URL", "https://api.example.test/v1/items?page=2&signature=", HEX),
]


def _fakes(rng: random.Random) -> list[Fake]:
    return [make(rng) for make in GENERATORS]


def _url_password(rng: random.Random) -> Fake:
    core = _r(rng, ALNUM, 20)
    return Fake("URL", f"postgresql://app:{core}@db.internal:5432/app", core)


GENERATORS.append(_url_password)

ORDINARY = [
    "github",
    "gpt-4o",
    "claude-3-5-sonnet-20241022",
    "Tools.execute",
    "GITHUB_CREATE_AN_ISSUE",
    "123e4567-e89b-12d3-a456-426614174000",
    "3f786850e387550fdab836ed7e6dc881de23001b",
    "/home/runner/work/app/src/app/tools/github.py",
    "C:\\Users\\dev\\AppData\\Local\\app\\main.py",
    "https://api.github.com/repos/composiohq/composio/issues",
    "2026-12-04T16:05:52.123456+00:00",
    "42",
    "3.14159",
    "-17",
    "1.2.3",
    "127.0.0.1:8080",
    "user@example.com",
    "The quick brown fox jumps over the lazy dog.",
    "prompt_tokens: 812",
    "max_tokens=4096",
    "monkey=banana",
    "keyboard: dvorak",
    "primary_key=id",
    "desk-lamp-with-a-rather-long-name",
    "task-reassignment-for-the-team",
    "Traceback (most recent call last):",
    '  File "/app/agent.py", line 12, in <module>',
    "    token = get_token()",
    '    api_key = os.environ["OPENAI_API_KEY"]',
    "KeyError: 'token'",
    "ValueError: invalid literal for int() with base 10: 'abc'",
    "requests.exceptions.HTTPError: 404 Client Error: Not Found for url: https://x.test/a/b",
    "signal received: SIGTERM",
    "design assignment",
    "SKU-2291 DISK TASK",
    "pathlib.PosixPath('/tmp/pattern')",
    "Ünïcödé ✓ 漢字 🚀",
    "",
]


# -- formats ----------------------------------------------------------------------------------


@pytest.mark.parametrize("make", GENERATORS, ids=lambda make: getattr(make, "__name__", "fake"))
@pytest.mark.parametrize(
    "context",
    [
        "{}",
        "error: {} rejected",
        "value={}",
        "{{'config': {{'nested': '{}'}}}}",
        '{{"detail": "{}"}}',
        "line one\\n{}\\nline two",
        "[{}]",
        "(url={}, retry=3)",
    ],
)
def test_each_format_is_masked_wherever_it_stands(make: Callable[..., Fake], context: str) -> None:
    fake = make(random.Random())
    masked = redact_text(context.format(fake.text))
    assert not fake.leaked_in(masked), masked
    assert MASK in masked


def test_provider_prefixes_stay_visible() -> None:
    rng = random.Random()
    assert redact_text(f"got ghp_{_r(rng, ALNUM, 36)}") == f"got ghp_{MASK}"
    assert redact_text(f"AKIA{_r(rng, UPPER, 16)} denied") == f"AKIA{MASK} denied"
    assert redact_text(f"OPENAI_API_KEY={_r(rng, ALNUM, 30)}") == f"OPENAI_API_KEY={MASK}"


def test_a_private_key_block_is_masked_across_its_lines_and_what_follows_is_kept() -> None:
    fake = _pem(random.Random())
    masked = redact_text(f"loading key\n{fake.text}\nthen failed: boom")
    assert masked.startswith("loading key\n-----BEGIN ")
    assert masked.endswith(f"PRIVATE KEY-----{MASK}\nthen failed: boom")


def test_an_unterminated_private_key_is_masked_to_the_end() -> None:
    fake = _pem(random.Random())
    cut = fake.text[: len(fake.text) // 2]  # a stack cut in the middle of the block
    masked = redact_text(f"before\n{cut}")
    assert masked.startswith("before\n-----BEGIN ")
    assert masked.endswith(f"PRIVATE KEY-----{MASK}")


def test_table_covers_at_least_25_providers() -> None:
    assert len({fake.provider for fake in _fakes(random.Random())}) >= 25
    assert len(_redact.PROVIDER_TOKENS) >= 40


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_is_kept(text: str) -> None:
    assert redact_text(text) == text


def test_todays_patterns_still_apply() -> None:
    assert redact_text("Authorization: Bearer abc.def.ghi") == f"Authorization: Bearer {MASK}"
    assert redact_text("login with password: hunter2") == f"login with password: {MASK}"
    assert redact_text("GET https://h.test/p?a=1&b=2 ok") == f"GET https://h.test/p?{MASK} ok"
    assert redact_text("postgres://admin:pw@db/app") == f"postgres://admin:{MASK}@db/app"


# -- properties -------------------------------------------------------------------------------

_words = st.from_regex(r"[a-z]{1,12}", fullmatch=True)
_ordinary_values = st.one_of(
    st.uuids().map(str),
    st.binary(min_size=20, max_size=20).map(bytes.hex),
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.datetimes().map(lambda moment: moment.isoformat()),
    st.lists(_words, min_size=1, max_size=6).map(lambda parts: "/" + "/".join(parts) + ".py"),
    st.lists(_words, min_size=1, max_size=4).map(lambda parts: "https://" + ".".join(parts)),
    st.lists(_words, min_size=1, max_size=10).map(" ".join),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_ordinary_values, min_size=1, max_size=5).map(" ".join))
def test_ordinary_values_never_change(text: str) -> None:
    assert redact_text(text) == text


_separators = st.sampled_from([" ", "\n", "\t", "'", '"', "=", ": ", ",", "(", "[", "{", "/"])


@settings(max_examples=300, deadline=None)
@given(
    make=st.sampled_from(GENERATORS),
    rng=st.randoms(use_true_random=False),
    before=st.text(max_size=40),
    after=st.text(max_size=40),
    left=_separators,
    right=_separators,
)
def test_a_secret_anywhere_in_random_text_is_masked(
    make: Callable[..., Fake],
    rng: random.Random,
    before: str,
    after: str,
    left: str,
    right: str,
) -> None:
    fake = make(rng)
    masked = redact_text(f"{before}{left}{fake.text}{right}{after}")
    assert not fake.leaked_in(masked), masked


# -- end to end -------------------------------------------------------------------------------


def _received(endpoint: FaultyEndpoint) -> str:
    """Every body as text, and once more with its JSON strings decoded."""
    with endpoint.changed:
        raw = [body.decode("utf-8") for body in endpoint.raw_bodies]
    return "\n".join(raw + [json.dumps(json.loads(body), ensure_ascii=False) for body in raw])


def _call_tool(fakes: list[Fake]) -> None:
    half = len(fakes) // 2
    inner = "; ".join(fake.text for fake in fakes[:half])
    raise ConnectionError(f"tool call failed: {inner} config={ {'cfg': [f.text for f in fakes]} }")


def _run_agent(fakes: list[Fake]) -> None:
    try:
        _call_tool(fakes)
    except ConnectionError as exc:
        outer = " | ".join(fake.text for fake in fakes[len(fakes) // 2 :])
        raise RuntimeError(f"agent step failed after retry: {outer}") from exc


def _log_corpus(logger: logging.Logger, fakes: list[Fake], chunk: int) -> int:
    """Logs the fakes a chunk at a time, as errors and as metrics; returns the events logged."""
    logged = 0
    for start in range(0, len(fakes), chunk):
        part = fakes[start : start + chunk]
        props = {
            "notes": [fake.text for fake in part],
            "detail": " ".join(fake.text for fake in part),
            "context": {"request": {"headers": {"X-Custom": part[0].text}}, "body": part[-1].text},
            "snapshot": repr({"settings": {f"v{n}": fake.text for n, fake in enumerate(part)}}),
            "ordinary": ORDINARY,
        }
        try:
            _run_agent(part)
        except RuntimeError:
            logger.exception(
                "step failed", extra={"telemetry": {"functionName": "Agent.step", "props": props}}
            )
        logger.info("step", extra={"telemetry": {"functionName": "Agent.metric", "props": props}})
        logged += 2
    return logged


def test_generated_secrets_never_reach_the_endpoint(
    endpoint: FaultyEndpoint, pipeline: Callable[..., Any]
) -> None:
    seed = random.randrange(2**32)
    fakes = _fakes(random.Random(seed))
    assert len(fakes) >= 40
    assert len({fake.provider for fake in fakes}) >= 25
    logger, queue_handler = pipeline(endpoint=endpoint.base_url)
    logged = _log_corpus(logger, fakes, chunk=6)
    assert queue_handler.flush(10.0)
    events = [event for _, event in endpoint.events]
    assert len(events) == logged  # nothing dropped: each one was searched
    received = _received(endpoint)
    leaked = [f"{fake.provider}: {fake.text[:12]}" for fake in fakes if fake.leaked_in(received)]
    assert leaked == [], f"seed {seed}"
    errors = [event for event in events if "error" in event]
    assert len(errors) == logged // 2
    for error in errors:
        assert "_call_tool" in error["error"]["stack"]  # the traceback stays useful
        assert "ConnectionError" in error["error"]["stack"]  # with its chained cause
        assert MASK in error["error"]["message"]
    for event in events:
        assert event["props"]["ordinary"] == ORDINARY


def test_with_redaction_off_the_same_secrets_arrive(
    endpoint: FaultyEndpoint, pipeline: Callable[..., Any]
) -> None:
    """Shows the test above would see a leak."""
    fakes = _fakes(random.Random())
    logger, queue_handler = pipeline(endpoint=endpoint.base_url, redact=False)
    _log_corpus(logger, fakes, chunk=6)
    assert queue_handler.flush(10.0)
    received = _received(endpoint)
    assert [fake.provider for fake in fakes if not fake.leaked_in(received)] == []


@pytest.mark.parametrize(
    ("prefix", "rest"),
    [
        (prefix, rest)
        for _provider, prefixes, rest, _marks in _redact.PROVIDER_TOKENS
        for prefix in _redact._prefixes(prefixes)
    ],
)
def test_every_row_of_the_table_is_reached_by_the_quick_check(prefix: str, rest: str) -> None:
    """Any string a row matches carries one of the row's marks, or it would skip redaction."""

    @settings(max_examples=30, deadline=None)
    @given(st.from_regex(f"{prefix}{rest}", fullmatch=True))
    def masked(token: str) -> None:
        assert redact_text(f"got {token} ;").startswith("got ")
        assert MASK in redact_text(f"got {token} ;")

    masked()
