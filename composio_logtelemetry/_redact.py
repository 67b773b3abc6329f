"""Mask secrets before an event leaves the process.

Composio users connect agents to code hosts, chat, clouds, payment and model providers, and
the exceptions their tools raise quote those services' tokens, headers, connection strings and
environment. The formats below are public facts (the providers' documentation, gitleaks' rules,
GitHub's secret scanning list); the table and its regexes are ours.

Cost: most strings hold none of the literal marks a secret needs (``ghp_``, ``sk-``, ``token``,
``://`` ...), so one search for those marks, compiled as a trie of literals, settles them faster
than the single case-insensitive search this module used to make. Only a string that has a mark
is rewritten, by one pass for credentials and tokens and two for URLs.
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict

MASK = "[REDACTED]"

# Provider tokens: (who issues it, kept prefixes separated by |, masked rest, the marks the
# trigger looks for: regexes that start with a literal character, that every match contains).
# The prefix stays visible ("ghp_[REDACTED]") so a reader knows which kind of secret was there.
PROVIDER_TOKENS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("Anthropic", r"sk-ant-", r"[A-Za-z0-9_-]{20,}", ("sk-",)),
    ("OpenAI, OpenRouter", r"sk-(?:proj|svcacct|admin|or-v1)-", r"[A-Za-z0-9_-]{20,}", ("sk-",)),
    ("OpenAI (legacy), DeepSeek, other sk- keys", r"sk-", r"[A-Za-z0-9]{32,}", ("sk-",)),
    ("Hugging Face", r"hf_|api_org_", r"[A-Za-z0-9]{30,}", ("hf_", "api_org_")),
    ("GitHub", r"gh[pousr]_", r"[A-Za-z0-9]{36,}", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")),
    ("GitHub fine-grained", r"github_pat_", r"[A-Za-z0-9_]{22,}", ("github_pat_",)),
    (
        "GitLab",
        r"gl(?:pat|dt|ptt|rt|ft|cbt|imt|oas|soat|agent|ffct)-",
        r"[A-Za-z0-9_-]{20,}",
        (r"gl(?:pat|dt|ptt|rt|ft|cbt|imt|oas|soat|agent|ffct)-",),
    ),
    ("GitLab runner registration", r"GR1348941", r"[A-Za-z0-9_-]{20,}", ("GR1348941",)),
    ("npm", r"npm_", r"[A-Za-z0-9]{36,}", ("npm_",)),
    ("PyPI", r"pypi-", r"AgE[A-Za-z0-9_-]{50,}", ("pypi-",)),
    ("Slack", r"xox[abposre]-", r"[A-Za-z0-9-]{10,}", ("xox",)),
    ("Slack app", r"xapp-", r"[0-9]-[A-Za-z0-9-]{10,}", ("xapp-",)),
    (
        "Slack webhook",
        r"hooks\.slack\.com/(?:services|workflows|triggers)/",
        r"[A-Za-z0-9/_+-]{20,}",
        (r"hooks\.slack\.com",),
    ),
    (
        "Discord webhook",
        r"discord(?:app)?\.com/api/webhooks/",
        r"[0-9]{5,}/[A-Za-z0-9_-]{20,}",
        ("discord",),
    ),
    (
        "Discord bot",
        r"",
        r"[MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,40}",
        (r"\.[A-Za-z0-9_-]{6}\.",),
    ),
    ("Telegram bot", r"bot|", r"[0-9]{5,16}:A[A-Za-z0-9_-]{34}", (":A",)),
    (
        "AWS access key id",
        r"AKIA|ASIA|ABIA|ACCA",
        r"[A-Z0-9]{16}",
        ("AKIA", "ASIA", "ABIA", "ACCA"),
    ),
    ("Google API key", r"AIza", r"[A-Za-z0-9_-]{35}", ("AIza",)),
    ("Google OAuth", r"GOCSPX-|ya29\.", r"[A-Za-z0-9_-]{20,}", ("GOCSPX-", r"ya29\.")),
    (
        "Azure AD client secret",
        r"",
        r"[A-Za-z0-9_~.][A-Za-z0-9_~.]{2}[0-9]Q~[A-Za-z0-9_~.-]{31,34}",
        ("Q~",),
    ),
    (
        "PEM private key",
        r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----",
        r"(?:[\s\S]*?-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|[\s\S]*)",
        ("-----BEGIN",),
    ),
    (
        "Stripe",
        r"sk_(?:live|test|prod)_|rk_(?:live|test|prod)_",
        r"[A-Za-z0-9]{10,}",
        ("sk_", "rk_"),
    ),
    ("Stripe webhook", r"whsec_", r"[A-Za-z0-9]{24,}", ("whsec_",)),
    ("SendGrid", r"SG\.", r"[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}", (r"SG\.",)),
    ("JWT", r"", r"eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*", ("eyJ",)),
    ("Mapbox secret", r"sk\.", r"eyJ[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}", (r"sk\.",)),
    ("Twilio API key", r"SK", r"[0-9a-fA-F]{32}", (r"SK[0-9a-fA-F]{32}",)),
    ("Mailgun", r"key-|pubkey-", r"[0-9a-f]{32}", ("key-",)),
    ("Shopify", r"shp(?:at|ca|pa|ss)_", r"[a-fA-F0-9]{32}", ("shp",)),
    ("DigitalOcean", r"do[opr]_v1_", r"[a-f0-9]{64}", ("dop_", "doo_", "dor_")),
    ("Databricks", r"dapi", r"[a-f0-9]{32}(?:-[0-9])?", ("dapi",)),
    ("Groq", r"gsk_", r"[A-Za-z0-9]{32,}", ("gsk_",)),
    ("Replicate", r"r8_", r"[A-Za-z0-9]{30,}", ("r8_",)),
    ("Perplexity", r"pplx-", r"[A-Za-z0-9]{40,}", ("pplx-",)),
    ("xAI", r"xai-", r"[A-Za-z0-9]{60,}", ("xai-",)),
    ("Tavily", r"tvly-(?:dev-|prod-)?", r"[A-Za-z0-9]{20,}", ("tvly-",)),
    ("Pinecone", r"pcsk_", r"[A-Za-z0-9_]{40,}", ("pcsk_",)),
    ("LangSmith", r"lsv2_(?:pt|sk)_", r"[a-f0-9]{32}_[a-f0-9]{10}", ("lsv2_",)),
    ("Firecrawl", r"fc-", r"[a-f0-9]{32}", ("fc-",)),
    ("E2B", r"e2b_", r"[a-f0-9]{40}", ("e2b_",)),
    ("Linear", r"lin_api_", r"[A-Za-z0-9]{40}", ("lin_api_",)),
    ("Notion", r"ntn_|secret_", r"[A-Za-z0-9]{40,}", ("ntn_", "secret_")),
    ("Atlassian", r"ATATT3", r"[A-Za-z0-9_=-]{50,}", ("ATATT3",)),
    ("Airtable", r"pat", r"[A-Za-z0-9]{14}\.[a-f0-9]{64}", (r"pat[A-Za-z0-9]{14}\.",)),
    ("Postman", r"PMAK-", r"[a-f0-9]{24}-[a-f0-9]{34}", ("PMAK-",)),
    ("Doppler", r"dp\.(?:pt|st|sa|ct|scim|audit)\.", r"[A-Za-z0-9]{40,}", (r"dp\.",)),
    ("HashiCorp Vault", r"hv[sb]\.", r"[A-Za-z0-9_-]{24,}", (r"hvs\.", r"hvb\.")),
    ("Sentry", r"sntry[su]_", r"[A-Za-z0-9+/=_]{40,}", ("sntry",)),
    ("Square", r"sq0atp-|sq0csp-|EAAA", r"[A-Za-z0-9_-]{22,}", ("sq0", "EAAA")),
    ("Heroku", r"HRKU-", r"[A-Za-z0-9_-]{50,}", ("HRKU-",)),
    ("Supabase", r"sbp_|sb_secret_", r"[A-Za-z0-9_-]{30,}", ("sbp_", "sb_secret_")),
    ("Figma", r"figd_", r"[A-Za-z0-9_-]{40,}", ("figd_",)),
    ("Docker Hub", r"dckr_pat_", r"[A-Za-z0-9_-]{20,}", ("dckr_pat_",)),
    ("Grafana", r"glc_|glsa_", r"[A-Za-z0-9+/_]{32,}={0,2}", ("glc_", "glsa_")),
    ("New Relic", r"NRAK-", r"[A-Z0-9]{27}", ("NRAK-",)),
    ("age", r"AGE-SECRET-KEY-1", r"[0-9A-Z]{58}", ("AGE-SECRET-KEY-",)),
)

# A name that says its value is secret: ``api_key``, ``OPENAI_API_KEY``, ``GITHUB_TOKEN``,
# ``DATABASE_PASSWORD``, ``SecretAccessKey``, ``AccountKey``, ``x-api-key``. The word starts
# after a separator or at a camelCase hump, so ``monkey`` or ``prompt_tokens`` are not names.
_KEY_KINDS = "access|secret|private|account|storage|signing|master|encryption|client|app"
_KEY_KINDS += "|service|subscription|license|webhook|session|auth"
_SECRET_NAME_WORDS = (
    r"api[-_. ]?key",
    *(rf"{kind}[-_.]?key" for kind in _KEY_KINDS.split("|")),
    *("token", "secret", "password", "passwd", "passphrase", "pwd", "credentials?"),
    *("authorization", "cookie", "signature", "auth"),
)
# ...whose value is masked, unless it is already masked, a Bearer/Basic header (masked by its
# own rule), a literal, a container's opening, or code in a traceback line: a dotted or
# snake_case name called or indexed after `` = `` (``token = get_token()``,
# ``key = os.environ["KEY"]``), which a random secret is not.
_SECRET_VALUE = (
    r"(?!\[REDACTED\]|(?i:bearer|basic)\s|(?:None|True|False|null)\b|[\[{(<]"
    r"|(?<== )(?=\w*[._])[A-Za-z_][\w.]*[(\[])[^\s\"'&,;)}\]]+"
)

# Authorization: Bearer abc / Basic dXNlcjpwYXNz
_HEADER_SCHEME = r"[Bb](?i:earer|asic)\s+"
_HEADER_VALUE = r"[A-Za-z0-9._~+/=-]{4,}"


def _prefixes(alternation: str) -> list[str]:
    """The top-level alternatives of ``alternation`` (``hf_|api_org_``)."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(alternation):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "|" and depth == 0:
            parts.append(alternation[start:index])
            start = index + 1
    return [*parts, alternation[start:]]


def _secret_names() -> list[str]:
    """The name rule split by first letter (``[Aa](?i:pi[-_. ]?key|ccess[-_.]?key|...)``), so
    that, like the token rules, each starts with a character the engine checks first."""
    by_first: dict[str, list[str]] = defaultdict(list)
    for word in _SECRET_NAME_WORDS:
        by_first[word[0]].append(word[1:])
    return [
        rf"[{first.upper()}{first}](?i:(?:{'|'.join(tails)})(?![a-z0-9]))[\"']?\s*[=:]\s*[\"']?"
        for first, tails in by_first.items()
    ]


_RULES = [
    (_HEADER_SCHEME, _HEADER_VALUE),
    *((name, _SECRET_VALUE) for name in _secret_names()),
    *(
        (prefix, rest)
        for _provider, prefixes, rest, _marks in PROVIDER_TOKENS
        for prefix in _prefixes(prefixes)
    ),
]
# One pass finds them all. Each rule starts with a literal where it can, which the regex
# engine checks before trying the rule, and the start condition is tested once for all: after
# a non-alphanumeric, at a camelCase hump (``dbPassword``), after an escape (``\n`` in a repr)
# or a percent-encoded byte (``%3D`` in a query).
_CREDENTIALS = re.compile(
    r"(?:(?<![A-Za-z0-9])|(?<=[a-z0-9])(?=[A-Z])|(?<=\\[nrt])|(?<=%[0-9A-Fa-f]{2}))"
    f"(?:{'|'.join(kept + masked for kept, masked in _RULES)})"
)
# What stays visible of a match: the header scheme, the name, or the token's prefix.
_KEPT = re.compile("|".join(f"{kept}(?={masked})" for kept, masked in _RULES))
# the query string of any URL: https://host/path?key=value
_URL_QUERY = re.compile(r"(?i)\b((?:https?|wss?|ftp)://[^\s?#\"'<>]+)\?[^\s#\"'<>]+")
# user:password@ in URLs
_URL_PASSWORD = re.compile(r"(?i)\b((?:[a-z][a-z0-9+.-]*)://[^\s:/@\"']+):[^\s@/\"']+@")


def _trie(marks: list[str]) -> str:
    """One alternation per first character: the regex engine checks a literal first character
    before entering an alternative, so a trie of literals costs far less per position than a
    flat list or a case-insensitive search."""
    by_first: dict[str, set[str]] = defaultdict(set)
    for mark in marks:
        head_length = 2 if mark.startswith("\\") else 1
        by_first[mark[:head_length]].add(mark[head_length:])
    branches = []
    for head, tails in sorted(by_first.items()):
        if "" in tails:
            branches.append(head)  # the head alone is a mark: the longer tails add nothing
        else:
            branches.append(f"{head}(?:{'|'.join(sorted(tails))})")
    return "|".join(branches)


_WORD_MARKS = (
    *("bearer", "basic", "key", "token", "secret", "passw", "pwd", "auth", "cookie"),
    *("passphrase", "credential", "signature"),
)
# Every rule above needs one of these marks; most strings have none and skip the rewriting.
# Words are looked for in lower, Capitalised and UPPER case (``Bearer``, ``apiKey``, ``TOKEN``).
_TRIGGER = re.compile(
    _trie(
        [
            *(form for word in _WORD_MARKS for form in (word, word.capitalize(), word.upper())),
            "://",
            *(mark for *_rest, marks in PROVIDER_TOKENS for mark in marks),
        ]
    )
)


def _masked(match: re.Match[str]) -> str:
    kept = _KEPT.match(match[0])
    return f"{kept[0] if kept else ''}{MASK}"


def redact_text(text: str) -> str:
    """``text`` with tokens, credential pairs, private keys and URL query strings masked."""
    if len(text) <= _REMEMBERED_LENGTH:
        return _redacted_short(text)
    return _redacted(text)


_REMEMBERED_LENGTH = 64


@functools.lru_cache(maxsize=4096)
def _redacted_short(text: str) -> str:
    """Short props values repeat (a toolkit, a model, a status): each is scanned once."""
    return _redacted(text)


def _redacted(text: str) -> str:
    if _TRIGGER.search(text) is None:
        return text
    text = _CREDENTIALS.sub(_masked, text)
    text = _URL_QUERY.sub(rf"\1?{MASK}", text)
    return _URL_PASSWORD.sub(rf"\1:{MASK}@", text)


_KEY_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
# A key is secret when it names one of these (``api_key``, ``authToken``, ``Cookie``)...
_SECRET_LAST_WORDS = frozenset(
    {
        *("key", "token", "secret", "password", "passwd", "pwd", "passphrase", "apikey"),
        *("auth", "authorization", "cookie", "cookies", "credential", "credentials"),
        *("signature", "sessionid"),
    }
)
# ...or mentions one of these anywhere (``password_hint``, ``cookie_jar``); counts such as
# ``prompt_tokens`` or ``token_count`` are telemetry, not secrets.
_SECRET_ANY_WORDS = frozenset(
    ["password", "passwd", "secret", "authorization", "cookie", "credential", "credentials"]
)


@functools.lru_cache(maxsize=1024)
def is_secret_key(key: str) -> bool:
    words = [word.lower() for word in _KEY_WORDS.findall(key)]
    if not words:
        return False
    if words[-1] in _SECRET_LAST_WORDS or not _SECRET_ANY_WORDS.isdisjoint(words):
        return True
    return words[-2:] == ["session", "id"]
