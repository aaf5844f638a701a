"""Secrets out of error messages and task arguments before they are stored or shown on the queue page.

An exception's text often quotes what it was given: a connection URL with its password, a header with a
bearer token, a key=value pair from a config. What looks like one is replaced by "***"; a long random-looking
word (an API key, a signed token) too. Over-masking an id is harmless; leaking a password is not."""
import re

MASK = "***"
LIMIT = 2000  # characters kept of one message

_SECRET_NAMES = (r"pass(?:word|wd|phrase)?|pwd|secret|token|api[_-]?key|apikey|access[_-]?key"
                 r"|auth(?:orization)?|credentials?|private[_-]?key|client[_-]?secret|session|cookie")
_PATTERNS = (
    # scheme://user:password@host -> scheme://***@host (also user@ alone: an account name is personal)
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@"), r"\1" + MASK + "@"),
    # Authorization: Bearer abc / Basic abc
    (re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{6,}"), r"\1 " + MASK),
    # password=..., "api_key": "...", token: ...  (the name kept, the value masked)
    (re.compile(r"(?i)([\"']?\b[\w-]*(?:" + _SECRET_NAMES + r")[\w-]*[\"']?\s*[:=]\s*)"
                r"(\"[^\"]*\"|'[^']*'|[^\s,;&)}\]]+)"), r"\1" + MASK),
    # Loft's own API keys, and any long random-looking word (keys, tokens, signatures)
    (re.compile(r"\bloft_[A-Za-z0-9_-]{8,}"), MASK),
    # random-looking: mixed case and digits (base64url keys), or long hex (digests, tokens); a path or a
    # snake_case name is neither
    (re.compile(r"(?<![\w.-])(?=[\w-]*\d)(?=[\w-]*[a-z])(?=[\w-]*[A-Z])[\w-]{24,}"), MASK),
    (re.compile(r"\b[0-9a-fA-F]{32,}\b"), MASK),
)


def scrub(text, limit=LIMIT):
    """`text` with anything that looks like a password, key, token or a URL's userinfo replaced by ***."""
    text = str(text or "")
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text if len(text) <= limit else text[:limit - 1] + "…"
