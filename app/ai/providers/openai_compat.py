"""An OpenAI-compatible provider (`POST {base_url}/v1/chat/completions`): the worked example of adding
a provider as one module registered by name (docs/ai.md, "Adding a provider").

Plain standard-library HTTP: one request per attempt, no retries of its own (generate_with_retries
does that), every failure in the same words as the Gemini provider's.
"""
import json
import socket
import time
import urllib.error
import urllib.request

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

PUBLIC_ENDPOINT = "https://api.openai.com"
FINISH_REASONS = {"stop": "stop", "length": "max_tokens", "content_filter": "safety"}
LARGEST_ANSWER_BYTES = 4 * 1024 * 1024


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """urllib would follow a redirect carrying the Authorization header to wherever it points; a
    redirect is answered as the HTTP error it is instead, so the key only ever goes to the base URL."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def strict_schema(schema):
    """OpenAI's strict json_schema mode wants every object closed and every property required."""
    if not isinstance(schema, dict):
        return schema
    converted = dict(schema)
    if isinstance(schema.get("properties"), dict):
        converted["properties"] = {name: strict_schema(sub) for name, sub in schema["properties"].items()}
        converted["required"] = list(schema["properties"])
        converted["additionalProperties"] = False
    if isinstance(schema.get("items"), dict):
        converted["items"] = strict_schema(schema["items"])
    return converted


class OpenAiCompatibleProvider:
    name = "openai"

    def __init__(self, config: ProviderConfig):
        self.config = config
        self.base_url = (config.base_url or PUBLIC_ENDPOINT).rstrip("/")
        # Vendors document their base URL both with and without the /v1; either works here.
        self.completions_path = "/chat/completions" if self.base_url.endswith("/v1") else "/v1/chat/completions"

    def generate(self, request: AiRequest) -> AiResult:
        if not self.config.api_key:
            raise ProviderError("No API key is set for the AI provider: add one under Admin > AI.", kind="bad_key")
        body = {"model": request.model, "temperature": request.temperature,
                "max_tokens": request.max_output_tokens,
                "messages": [{"role": "system", "content": request.system}, {"role": "user", "content": request.user}]}
        if request.schema is not None:
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": request.prompt, "strict": True, "schema": strict_schema(request.schema)}}
        timeout = min(request.timeout_seconds, self.config.timeout_seconds)
        started = time.monotonic()
        answer = self._post(self.completions_path, body, timeout, request.model)
        latency_ms = int((time.monotonic() - started) * 1000)
        return self._result(request, answer, latency_ms)

    def test_connection(self) -> str:
        result = self.generate(connection_test_request(self.config.model))
        return shorten(result.text, 200) or "(an empty answer)"

    def _post(self, path, body, timeout, model):
        http_request = urllib.request.Request(
            self.base_url + path, data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.config.api_key}"})
        try:
            with _opener.open(http_request, timeout=timeout) as response:
                raw = response.read(LARGEST_ANSWER_BYTES + 1)
        except urllib.error.HTTPError as error:
            raise self._http_error(error, model) from None
        except (TimeoutError, socket.timeout) as error:
            raise ProviderError(timeout_message(timeout), kind="timeout") from error
        except urllib.error.URLError as error:
            if isinstance(error.reason, (TimeoutError, socket.timeout)):
                raise ProviderError(timeout_message(timeout), kind="timeout") from None
            raise ProviderError(f"Could not reach the AI provider at {host_of(self.base_url)}.",
                                kind="unavailable") from None
        except OSError:
            raise ProviderError(f"Could not reach the AI provider at {host_of(self.base_url)}.",
                                kind="unavailable") from None
        if len(raw) > LARGEST_ANSWER_BYTES:
            raise ProviderError("The AI provider's answer was too large to read.", kind="malformed")
        try:
            return json.loads(raw)
        except ValueError:
            raise ProviderError("The AI provider's answer was not JSON; check the base URL under Admin > AI.",
                                kind="malformed") from None

    def _http_error(self, error, model):
        code = error.code
        try:
            detail = json.loads(error.read(65536) or b"{}")
            message = detail.get("error", {}).get("message", "") if isinstance(detail, dict) else ""
        except (ValueError, AttributeError, OSError):
            message = ""
        message = shorten(without_secret(str(message or error.reason or ""), self.config.api_key))
        retry_after = seconds_from_retry_after(error.headers.get("Retry-After") if error.headers else None)
        if code in (401, 403):
            return ProviderError(BAD_KEY_MESSAGE, kind="bad_key", status=code)
        if 300 <= code < 400:
            return ProviderError(f"The AI provider at {host_of(self.base_url)} answered with a redirect ({code}); "
                                 "set the base URL under Admin > AI to the address it redirects to.",
                                 kind="bad_request", status=code)
        if code == 404:
            return ProviderError(f"Model “{model}” not found at the AI provider; choose another model under "
                                 "Admin > AI.", kind="bad_request", status=code)
        if code == 429:
            return ProviderError("The AI provider is receiving too many requests right now (it answered 429)"
                                 + (f": {message}" if message else "."), kind="rate_limited",
                                 retry_after=retry_after, status=code)
        if code in (408, 504):
            return ProviderError("The AI provider took too long to answer; try again in a moment.",
                                 kind="timeout", status=code)
        if code >= 500:
            return ProviderError(f"The AI provider is unavailable right now (it answered {code}); "
                                 "try again in a moment.", kind="unavailable", retry_after=retry_after, status=code)
        return ProviderError(f"The AI provider refused the request ({code}): {message or 'no reason given'}",
                             kind="bad_request", status=code)

    def _result(self, request, answer, latency_ms):
        usage = answer.get("usage") or {} if isinstance(answer, dict) else {}
        output_tokens = int(usage.get("completion_tokens") or 0)
        choices = answer.get("choices") if isinstance(answer, dict) else None
        if not choices:
            raise ProviderError("The AI provider sent back no answer; try again.", kind="malformed")
        choice = choices[0] or {}
        raw_finish = choice.get("finish_reason") or ""
        finish = FINISH_REASONS.get(raw_finish, "other")
        message = choice.get("message") or {}
        text = message.get("content") or ""
        if finish == "safety" or message.get("refusal"):
            raise ProviderError("The AI provider refused to answer for safety reasons; rephrase the brief and "
                                "try again.", kind="blocked")
        data = answer_data(text, finish, output_tokens, request.schema)
        return AiResult(text=text, data=data, input_tokens=int(usage.get("prompt_tokens") or 0),
                        output_tokens=output_tokens, model=answer.get("model") or request.model,
                        latency_ms=latency_ms, finish_reason=finish)
