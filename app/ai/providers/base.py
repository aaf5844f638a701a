"""What every AI provider takes and gives back, so the service above never sees a vendor's types.

A provider makes ONE attempt per `generate` and turns every failure into a ProviderError whose
message is plain words for the writer or the admin; retrying is `generate_with_retries`'s job
(app/ai/providers/__init__.py), so there is exactly one retry policy whatever the vendor.
"""
import email.utils
import json
import re
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone
from typing import Protocol
from urllib.parse import urlsplit

from app.content.text import html_to_text
from app.errors import Problem

# Kinds worth another attempt: the provider may answer next time. The others would fail the same way.
RETRYABLE_KINDS = frozenset({"timeout", "rate_limited", "unavailable"})
KINDS = RETRYABLE_KINDS | {"bad_key", "bad_request", "blocked", "truncated", "malformed"}
FINISH_REASONS = ("stop", "max_tokens", "safety", "other")
BAD_KEY_MESSAGE = "The provider refused the API key: check it under Admin > AI."
LONGEST_PROVIDER_MESSAGE = 300


@dataclass(frozen=True)
class AiRequest:
    prompt: str                 # "subject_lines"
    version: str                # "v1"
    model: str                  # "gemini-2.5-flash"
    system: str                 # the system instruction, rendered
    user: str                   # the user message, rendered
    temperature: float = 0.7
    max_output_tokens: int = 1024
    schema: dict | None = None  # JSON schema of the output; None asks for plain text
    timeout_seconds: float = 30.0


@dataclass
class AiResult:
    text: str                   # the raw answer text
    data: dict | list | None    # the parsed JSON when the request had a schema, else None
    input_tokens: int
    output_tokens: int
    model: str                  # the model version the provider reports (or the requested one)
    latency_ms: int
    finish_reason: str          # one of FINISH_REASONS


class ProviderError(Problem):
    """A provider's refusal or failure in words; `kind` says whether trying again can help."""

    def __init__(self, message, kind, retry_after=None, status=None):
        assert kind in KINDS, kind
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after
        self.status = status

    def __reduce__(self):
        # Rebuilt with its kind when it crosses a process boundary (a huey result, a pickled job).
        return (type(self), (self.message, self.kind, self.retry_after, self.status))

    @property
    def retryable(self):
        return self.kind in RETRYABLE_KINDS


@dataclass(frozen=True)
class ProviderConfig:
    name: str = "gemini"
    api_key: str = ""
    base_url: str = ""          # "" = the provider's public endpoint
    model: str = "gemini-2.5-flash"
    timeout_seconds: float = 30.0


class Provider(Protocol):
    name: str

    def generate(self, request: AiRequest) -> AiResult:
        """One attempt; raises ProviderError."""

    def test_connection(self) -> str:
        """A short answer text from the provider; raises ProviderError."""


def connection_test_request(model):
    """The tiny request every provider's "Test connection" sends: cheap, and its answer shows the model works."""
    return AiRequest(prompt="connection_test", version="v1", model=model,
                     system="You answer in at most five words.", user="Say hello to the Loft admin.",
                     temperature=0.0, max_output_tokens=32, timeout_seconds=15.0)


def shorten(text, limit=LONGEST_PROVIDER_MESSAGE):
    """A provider's own message, on one line and short enough for a form; a proxy's HTML error page loses
    its tags."""
    text = str(text or "")
    if "<" in text:
        text = re.sub(r"(?m)^#+ ", "", html_to_text(text))  # without the heading marks the text version adds
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def without_secret(text, secret):
    """`text` with the API key blanked out: some providers echo the key back in their error messages."""
    if secret and text:
        text = text.replace(secret, "[API key]")
    return text


def host_of(url):
    """The host[:port] of a base URL, for "could not reach" messages (never the path or a query with a key)."""
    parts = urlsplit(url or "")
    return parts.netloc.rsplit("@", 1)[-1] or url


NOT_IN_SHAPE = "The AI provider's answer was not in the shape asked for; try again."


def truncated_message(output_tokens):
    return (f"The answer was cut off after {output_tokens} tokens; try a shorter brief or ask for less.")


def timeout_message(seconds):
    return f"The AI provider did not answer within {seconds:g} seconds; try again in a moment."


def seconds_from_retry_after(value, now=None):
    """Retry-After as seconds: either a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - (now or datetime.now(timezone.utc))).total_seconds())


def parse_json_answer(text):
    """The JSON in an answer; some models wrap it in a ```json fence even when asked for JSON alone."""
    stripped = text.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", stripped, re.DOTALL)
    return json.loads(fenced.group(1) if fenced else stripped)


def _shape_matches(schema, data):
    kind = str(schema.get("type", "")).lower()
    return {"object": isinstance(data, dict), "array": isinstance(data, list)}.get(kind, True)


def answer_data(text, finish, output_tokens, schema):
    """The parsed answer of a request with an output schema (None without one), or ProviderError in words.

    Every provider ends the same way once it has the answer's text and normalised finish reason: an empty
    answer, a cut-off one and one not in the shape asked for are told apart here, so the words are the same
    whichever provider answered."""
    if not text.strip():
        if finish == "max_tokens":
            raise ProviderError(truncated_message(output_tokens), kind="truncated")
        raise ProviderError("The AI provider sent back an empty answer; try again.", kind="malformed")
    if schema is None:
        return None
    try:
        data = parse_json_answer(text)
    except ValueError:
        if finish == "max_tokens":
            raise ProviderError(truncated_message(output_tokens), kind="truncated") from None
        raise ProviderError(NOT_IN_SHAPE, kind="malformed") from None
    if not _shape_matches(schema, data):
        raise ProviderError(NOT_IN_SHAPE, kind="malformed")
    return data
