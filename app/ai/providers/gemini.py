"""Gemini through the official google-genai client: one attempt per call, every failure in words.

One genai.Client per (key, base URL, timeout), kept for the life of the process: building one sets
up an HTTP connection pool, far slower than a request. The client's own retries stay off (no
HttpRetryOptions means "never retry" in google-genai 3.x; we pass attempts=1 to say so out loud),
so app/ai/providers.generate_with_retries is the only retry policy.
"""
import json
import re
import threading
import time

from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from app.ai.providers.base import BAD_KEY_MESSAGE
from app.ai.providers.base import AiRequest
from app.ai.providers.base import AiResult
from app.ai.providers.base import ProviderConfig
from app.ai.providers.base import ProviderError
from app.ai.providers.base import answer_data
from app.ai.providers.base import connection_test_request
from app.ai.providers.base import host_of
from app.ai.providers.base import seconds_from_retry_after
from app.ai.providers.base import shorten
from app.ai.providers.base import timeout_message
from app.ai.providers.base import without_secret

PUBLIC_ENDPOINT = "https://generativelanguage.googleapis.com"
# v1beta is the version Google documents for system instructions, JSON schemas and thinking settings.
API_VERSION = "v1beta"

FINISH_REASONS = {"STOP": "stop", "MAX_TOKENS": "max_tokens", "SAFETY": "safety",
                  "PROHIBITED_CONTENT": "safety", "BLOCKLIST": "safety", "SPII": "safety",
                  "IMAGE_SAFETY": "safety", "IMAGE_PROHIBITED_CONTENT": "safety"}
BLOCK_REASONS = {
    "SAFETY": "its safety filters",
    "PROHIBITED_CONTENT": "a rule against prohibited content",
    "BLOCKLIST": "a term on its block list",
    "SPII": "sensitive personal information",
    "JAILBREAK": "what looked like an attempt to override its instructions",
    "MODEL_ARMOR": "its content protection",
    "IMAGE_SAFETY": "its image safety filters",
}

# The JSON-schema keywords Gemini's Schema understands (types.Schema); anything else, such as
# additionalProperties (refused by the Gemini API outside Vertex) or $schema, is left out.
SCHEMA_KEYWORDS = {"description", "enum", "format", "nullable", "title", "minItems", "maxItems",
                   "minLength", "maxLength", "minimum", "maximum", "minProperties", "maxProperties",
                   "required", "propertyOrdering"}
GEMINI_FORMATS = {"STRING": {"enum", "date-time"}, "INTEGER": {"int32", "int64"},
                  "NUMBER": {"float", "double"}}

# Each configuration the admin tried keeps a client; a few are plenty (the settings page changes them rarely).
LARGEST_CLIENT_CACHE = 8
_clients = {}
_clients_lock = threading.Lock()
# Models that answered "thinking is not supported" once: asked without the setting from then on.
_models_without_thinking = set()


def client_for(api_key, base_url, timeout_seconds):
    """The Gemini API client for this configuration (vertexai=False: a GOOGLE_GENAI_USE_VERTEXAI left in the
    server's environment must not send the key to another service). An evicted client is not closed: another
    thread may be mid-request on it; it closes itself when collected."""
    key = (api_key, base_url, timeout_seconds)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = genai.Client(vertexai=False, api_key=api_key, http_options=types.HttpOptions(
                base_url=base_url or PUBLIC_ENDPOINT, api_version=API_VERSION,
                timeout=int(timeout_seconds * 1000), retry_options=types.HttpRetryOptions(attempts=1)))
            if len(_clients) >= LARGEST_CLIENT_CACHE:
                _clients.pop(next(iter(_clients)))
            _clients[key] = client
        return client


def gemini_schema(schema):
    """Our JSON schema as Gemini's Schema accepts it: upper-case types, a nullable flag instead of a
    "null" type, only the keywords it knows, object properties kept in the order they were written."""
    if not isinstance(schema, dict):
        return schema
    converted = {}
    kind = schema.get("type")
    if isinstance(kind, list):
        converted["nullable"] = "null" in kind
        kind = next((name for name in kind if name != "null"), None)
    if kind:
        converted["type"] = str(kind).upper()
    for keyword, value in schema.items():
        if keyword in SCHEMA_KEYWORDS:
            converted[keyword] = value
    if "const" in schema:
        converted["enum"] = [schema["const"]]
        converted.setdefault("type", "STRING")
    if "enum" in converted:
        converted["enum"] = [str(value) for value in converted["enum"]]
    if "format" in converted and converted["format"] not in GEMINI_FORMATS.get(converted.get("type"), ()):
        del converted["format"]
    if isinstance(schema.get("properties"), dict):
        converted["properties"] = {name: gemini_schema(sub) for name, sub in schema["properties"].items()}
        converted.setdefault("propertyOrdering", list(schema["properties"]))
    if isinstance(schema.get("items"), dict):
        converted["items"] = gemini_schema(schema["items"])
    if isinstance(schema.get("anyOf"), list):
        converted["anyOf"] = [gemini_schema(sub) for sub in schema["anyOf"]]
    return converted


def thinking_for(model):
    """The least thinking each model family allows: thinking costs output tokens and seconds, and
    a subject line does not need it. Older models get no setting at all (they refuse one)."""
    name = model.rsplit("/", 1)[-1]
    if name in _models_without_thinking:
        return None
    if name.startswith("gemini-2.5-pro"):
        return types.ThinkingConfig(thinking_budget=128)
    if name.startswith("gemini-2.5-flash"):
        return types.ThinkingConfig(thinking_budget=0)
    if name.startswith("gemini-3"):
        level = types.ThinkingLevel.LOW if "pro" in name else types.ThinkingLevel.MINIMAL
        return types.ThinkingConfig(thinking_level=level)
    return None


def seconds_from_retry_info(body):
    """The retryDelay ("36s") of a google.rpc.RetryInfo detail in a Google error body."""
    error = body.get("error", body) if isinstance(body, dict) else {}
    for detail in error.get("details") or () if isinstance(error, dict) else ():
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            match = re.fullmatch(r"(\d+(?:\.\d+)?)s", str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def _mentions_invalid_key(body):
    text = json.dumps(body) if body is not None else ""
    return "API_KEY_INVALID" in text or "API key not valid" in text


def error_from_api(error, model, api_key):
    """A google-genai APIError as a ProviderError in words."""
    code = error.code or 0
    message = shorten(without_secret(error.message or error.status or "", api_key))
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None) or {}
    if code in (401, 403) or (code == 400 and _mentions_invalid_key(error.details)):
        return ProviderError(BAD_KEY_MESSAGE, kind="bad_key", status=code)
    if code == 404:
        return ProviderError(f"Model “{model}” not found at the AI provider; choose another model under "
                             "Admin > AI.", kind="bad_request", status=code)
    if code == 429:
        retry_after = seconds_from_retry_after(headers.get("retry-after"))
        if retry_after is None:
            retry_after = seconds_from_retry_info(error.details)
        return ProviderError("The AI provider is receiving too many requests right now (it answered 429)"
                             + (f": {message}" if message else "."), kind="rate_limited",
                             retry_after=retry_after, status=code)
    if code == 408 or code == 504:
        return ProviderError("The AI provider took too long to answer; try again in a moment.",
                             kind="timeout", status=code)
    if code >= 500:
        retry_after = seconds_from_retry_after(headers.get("retry-after"))
        return ProviderError(f"The AI provider is unavailable right now (it answered {code}); "
                             "try again in a moment.", kind="unavailable", retry_after=retry_after, status=code)
    return ProviderError(f"The AI provider refused the request ({code}): {message or 'no reason given'}",
                         kind="bad_request", status=code)


def error_from_transport(error, base_url, timeout_seconds):
    """A network failure below the HTTP layer (httpx/httpx2, whichever google-genai uses) in words."""
    names = {cls.__name__ for cls in type(error).__mro__}
    if names & {"TimeoutException", "TimeoutError", "timeout"}:
        return ProviderError(timeout_message(timeout_seconds), kind="timeout")
    return ProviderError(f"Could not reach the AI provider at {host_of(base_url or PUBLIC_ENDPOINT)}.",
                         kind="unavailable")


def _is_transport_error(error):
    names = {cls.__name__ for cls in type(error).__mro__}
    return bool(names & {"TransportError", "RequestError", "HTTPError", "TimeoutException", "OSError"}) \
        and not isinstance(error, genai_errors.APIError)


def _value(enum_or_text):
    return getattr(enum_or_text, "value", enum_or_text) or ""


class GeminiProvider:
    name = "gemini"

    def __init__(self, config: ProviderConfig):
        self.config = config

    def generate(self, request: AiRequest) -> AiResult:
        if not self.config.api_key:
            raise ProviderError("No API key is set for Gemini: add one under Admin > AI.", kind="bad_key")
        timeout = min(request.timeout_seconds, self.config.timeout_seconds)
        started = time.monotonic()
        try:
            response = self._call(request, timeout, thinking=thinking_for(request.model))
        except ProviderError as error:
            thinking = thinking_for(request.model)
            if not (error.kind == "bad_request" and thinking and "thinking" in str(error).lower()):
                raise
            _models_without_thinking.add(request.model.rsplit("/", 1)[-1])
            response = self._call(request, timeout, thinking=None)
        latency_ms = int((time.monotonic() - started) * 1000)
        return self._result(request, response, latency_ms)

    def test_connection(self) -> str:
        result = self.generate(connection_test_request(self.config.model))
        return shorten(result.text, 200) or "(an empty answer)"

    def _call(self, request, timeout, thinking):
        client = client_for(self.config.api_key, self.config.base_url, self.config.timeout_seconds)
        options = dict(system_instruction=request.system or None, temperature=request.temperature,
                       max_output_tokens=request.max_output_tokens, thinking_config=thinking,
                       http_options=types.HttpOptions(timeout=int(timeout * 1000)))
        if request.schema is not None:
            options.update(response_mime_type="application/json", response_schema=gemini_schema(request.schema))
        try:
            config = types.GenerateContentConfig(**options)
        except ValueError as error:
            raise ProviderError(f"The prompt's output schema is not one Gemini accepts: {shorten(error, 200)}",
                                kind="bad_request") from error
        try:
            return client.models.generate_content(model=request.model, contents=request.user, config=config)
        except genai_errors.APIError as error:
            raise error_from_api(error, request.model, self.config.api_key) from None
        except (genai_errors.UnknownApiResponseError, json.JSONDecodeError):
            raise ProviderError("The AI provider's answer was not JSON; check the base URL under Admin > AI.",
                                kind="malformed") from None
        except ValueError as error:  # the client's own checks, or an answer its types cannot hold
            raise ProviderError("The AI provider's answer could not be read: "
                                f"{shorten(without_secret(str(error), self.config.api_key), 200)}",
                                kind="malformed") from None
        except Exception as error:  # a network failure from the client's HTTP library, named below
            if not _is_transport_error(error):
                raise
            raise error_from_transport(error, self.config.base_url, timeout) from None

    def _result(self, request, response, latency_ms):
        usage = response.usage_metadata
        input_tokens = (usage.prompt_token_count or 0) if usage else 0
        output_tokens = ((usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)) if usage else 0
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason:
            reason = _value(feedback.block_reason)
            words = BLOCK_REASONS.get(reason, "a reason it did not give")
            raise ProviderError(f"The AI provider refused the request because of {words}; rephrase the "
                                "brief and try again.", kind="blocked")
        candidate = (response.candidates or [None])[0]
        if candidate is None:
            raise ProviderError("The AI provider sent back no answer; try again.", kind="malformed")
        raw_finish = _value(candidate.finish_reason)
        finish = FINISH_REASONS.get(raw_finish, "stop" if not raw_finish else "other")
        parts = (candidate.content.parts if candidate.content else None) or []
        text = "".join(part.text for part in parts if part.text and not part.thought)
        if finish == "safety":
            raise ProviderError("The AI provider stopped its answer for safety reasons "
                                f"({raw_finish.replace('_', ' ').lower()}); rephrase the brief and try again.",
                                kind="blocked")
        data = answer_data(text, finish, output_tokens, request.schema)
        return AiResult(text=text, data=data, input_tokens=input_tokens, output_tokens=output_tokens,
                        model=response.model_version or request.model, latency_ms=latency_ms,
                        finish_reason=finish)
