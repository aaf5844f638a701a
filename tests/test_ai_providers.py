"""AI providers over real HTTP: the real google-genai client against the Gemini stub on loopback
(tests/gemini_stub.py), the OpenAI-compatible provider against its stub, and the one retry policy."""
import json
import pickle
from datetime import datetime
from datetime import timezone

import pytest

from app.ai import prompts
from app.ai import providers
from app.ai.providers import gemini as gemini_provider
from app.ai.providers.base import AiRequest
from app.ai.providers.base import ProviderConfig
from app.ai.providers.base import ProviderError
from app.ai.providers.base import seconds_from_retry_after
from tests.gemini_stub import DEFAULT_TEXT
from tests.gemini_stub import GeminiStub
from tests.gemini_stub import OpenAiStub

KEY = "test-key-5f2b9c"
SUBJECT_LINES = {
    "type": "object", "additionalProperties": False, "required": ["items"],
    "properties": {"items": {"type": "array", "minItems": 5, "maxItems": 5, "items": {
        "type": "object", "additionalProperties": False, "required": ["subject", "preheader"],
        "properties": {"subject": {"type": "string", "maxLength": 120},
                       "preheader": {"type": "string", "maxLength": 160}}}}}}


def ask(schema=None, model="gemini-2.5-flash", timeout_seconds=30.0, **changes):
    return AiRequest(prompt="subject_lines", version="v1", model=model, system="You write subject lines.",
                     user="Spring sale on garden tools.", temperature=0.4, max_output_tokens=512, schema=schema,
                     timeout_seconds=timeout_seconds, **changes)


def provider(stub, name="gemini", api_key=KEY):
    return providers.provider_for(ProviderConfig(name=name, api_key=api_key, base_url=stub.base_url))


def refusal(stub, request=None, api_key=KEY):
    with pytest.raises(ProviderError) as caught:
        provider(stub, api_key=api_key).generate(request or ask(SUBJECT_LINES))
    return caught.value


@pytest.fixture
def waits(monkeypatch):
    """The seconds generate_with_retries would have slept, recorded instead of slept."""
    recorded = []
    monkeypatch.setattr(providers, "sleep", recorded.append)
    return recorded


# --- what is sent ----------------------------------------------------------------------------------------

def test_the_fixture_turns_ai_on_against_the_stub(app, gemini):
    assert app.config["GEMINI_API_KEY"] == "test-key"
    assert app.config["GEMINI_BASE_URL"] == gemini.base_url.rstrip("/")


def test_request_carries_instructions_settings_and_schema_and_the_key_only_in_its_header(gemini):
    provider(gemini).generate(ask(SUBJECT_LINES))

    [sent] = gemini.requests
    assert sent["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent["headers"]["x-goog-api-key"] == KEY
    assert KEY not in sent["path"] and KEY not in sent["raw"]
    body = sent["body"]
    assert body["systemInstruction"]["parts"][0]["text"] == "You write subject lines."
    assert body["contents"][0]["parts"][0]["text"] == "Spring sale on garden tools."
    config = body["generationConfig"]
    assert config["temperature"] == 0.4
    assert config["maxOutputTokens"] == 512
    assert config["responseMimeType"] == "application/json"
    schema = config["responseSchema"]
    assert schema["type"] == "OBJECT"
    assert schema["properties"]["items"]["type"] == "ARRAY"
    assert schema["properties"]["items"]["items"]["properties"]["subject"]["type"] == "STRING"
    assert "additionalProperties" not in sent["raw"], "the Gemini API refuses additionalProperties"


def test_plain_text_request_asks_for_no_json(gemini):
    result = provider(gemini).generate(ask())

    config = gemini.requests[0]["body"]["generationConfig"]
    assert "responseMimeType" not in config and "responseSchema" not in config
    assert result.text == DEFAULT_TEXT and result.data is None and result.finish_reason == "stop"


def test_flash_models_are_asked_not_to_think_and_older_models_get_no_setting(gemini):
    provider(gemini).generate(ask(model="gemini-2.5-flash"))
    provider(gemini).generate(ask(model="gemini-2.0-flash"))

    flash, older = (sent["body"]["generationConfig"] for sent in gemini.requests)
    assert flash["thinkingConfig"] == {"thinking_budget": 0} or flash["thinkingConfig"] == {"thinkingBudget": 0}
    assert "thinkingConfig" not in older


def test_a_model_refusing_the_thinking_setting_is_asked_again_without_it(gemini, monkeypatch):
    monkeypatch.setattr(gemini_provider, "_models_without_thinking", set())
    gemini.fail(400, message="Thinking is not supported for this model.")

    result = provider(gemini).generate(ask(SUBJECT_LINES, model="gemini-2.5-flash-preview"))

    assert len(result.data["items"]) == 5
    first, second = (sent["body"]["generationConfig"] for sent in gemini.requests)
    assert "thinkingConfig" in first and "thinkingConfig" not in second


def test_our_json_schema_becomes_one_gemini_accepts():
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
              "additionalProperties": False, "required": ["tone"],
              "properties": {"tone": {"const": "friendly"}, "email": {"type": "string", "format": "email"},
                             "when": {"type": ["string", "null"], "format": "date-time"},
                             "count": {"type": "integer", "minimum": 1, "enum": [1, 2]}}}

    converted = gemini_provider.gemini_schema(schema)

    assert converted == {
        "type": "OBJECT", "required": ["tone"], "propertyOrdering": ["tone", "email", "when", "count"],
        "properties": {"tone": {"type": "STRING", "enum": ["friendly"]}, "email": {"type": "STRING"},
                       "when": {"type": "STRING", "nullable": True, "format": "date-time"},
                       "count": {"type": "INTEGER", "minimum": 1, "enum": ["1", "2"]}}}


# --- what comes back -------------------------------------------------------------------------------------

def test_default_answer_conforms_to_the_schema(gemini):
    result = provider(gemini).generate(ask(SUBJECT_LINES))

    items = result.data["items"]
    assert len(items) == 5
    assert items[0] == {"subject": "Sample subject 1", "preheader": "Sample preheader 1"}
    assert all(set(item) == {"subject", "preheader"} and all(isinstance(v, str) for v in item.values())
               for item in items)
    assert json.loads(result.text) == result.data


def test_queued_reply_gives_its_data_tokens_and_model_version(gemini):
    gemini.reply(data={"items": [{"subject": "Dig in", "preheader": "Tools for spring"}]},
                 input_tokens=321, output_tokens=45, model_version="gemini-2.5-flash-001")

    result = provider(gemini).generate(ask(SUBJECT_LINES))

    assert result.data == {"items": [{"subject": "Dig in", "preheader": "Tools for spring"}]}
    assert (result.input_tokens, result.output_tokens) == (321, 45)
    assert result.model == "gemini-2.5-flash-001"
    assert result.latency_ms >= 0


@pytest.mark.parametrize("raw, normalised", [("STOP", "stop"), ("MAX_TOKENS", "max_tokens"),
                                             ("RECITATION", "other"), ("OTHER", "other")])
def test_finish_reasons_are_normalised(gemini, raw, normalised):
    gemini.reply(text="Garden tools, 20% off", finish_reason=raw)

    assert provider(gemini).generate(ask()).finish_reason == normalised


@pytest.mark.parametrize("raw", ["SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII"])
def test_an_answer_stopped_for_safety_is_blocked_in_words(gemini, raw):
    gemini.reply(text="", finish_reason=raw)

    error = refusal(gemini)

    assert error.kind == "blocked"
    assert "safety" in error.message and "rephrase" in error.message


def test_a_blocked_prompt_says_why(gemini):
    gemini.block("PROHIBITED_CONTENT")

    error = refusal(gemini)

    assert error.kind == "blocked"
    assert "prohibited content" in error.message


def test_a_cut_off_json_answer_is_truncated_with_the_token_count(gemini):
    gemini.truncate(output_tokens=512)

    error = refusal(gemini)

    assert error.kind == "truncated"
    assert error.message == "The answer was cut off after 512 tokens; try a shorter brief or ask for less."


def test_an_answer_that_is_not_json_is_malformed(gemini):
    gemini.malformed()

    error = refusal(gemini)

    assert error.kind == "malformed"
    assert "shape" in error.message


def test_no_candidates_and_no_reason_is_malformed(gemini):
    gemini.empty()

    error = refusal(gemini)

    assert error.kind == "malformed" and "no answer" in error.message


@pytest.mark.parametrize("body", ["<html>Welcome to nginx!</html>", '{"candidates": "none today"}'])
def test_a_200_that_is_not_the_api_is_malformed(gemini, body):
    gemini.raw(body)

    error = refusal(gemini)

    assert error.kind == "malformed" and "answer" in error.message


def test_a_page_that_is_not_json_points_at_the_base_url(gemini):
    gemini.raw("<html>Welcome to nginx!</html>")

    assert refusal(gemini).message == "The AI provider's answer was not JSON; check the base URL under Admin > AI."


def test_json_of_the_wrong_shape_is_malformed(gemini):
    gemini.reply(text='["just", "a", "list"]')

    assert refusal(gemini).kind == "malformed"


def test_a_json_answer_in_a_code_fence_is_read(gemini):
    gemini.reply(text='```json\n{"items": []}\n```')

    assert provider(gemini).generate(ask(SUBJECT_LINES)).data == {"items": []}


def conforms(schema, value, where="answer"):
    """The places `value` breaks a JSON schema's type, required, enum and item-count rules ([] = it conforms)."""
    kinds = {"object": dict, "array": list, "string": str, "integer": int, "number": (int, float), "boolean": bool}
    kind = schema.get("type")
    if kind and not isinstance(value, kinds[kind]):
        return [f"{where} is not {kind}"]
    broken = [f"{where} is not one of {schema['enum']}"] if "enum" in schema and value not in schema["enum"] else []
    if isinstance(value, dict):
        broken += [f"{where}.{name} is missing" for name in schema.get("required", []) if name not in value]
        for name, sub in (schema.get("properties") or {}).items():
            if name in value:
                broken += conforms(sub, value[name], f"{where}.{name}")
    if isinstance(value, list):
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
            broken.append(f"{where} has {len(value)} items")
        for number, item in enumerate(value):
            broken += conforms(schema.get("items") or {}, item, f"{where}[{number}]")
    return broken


def test_every_prompt_schema_is_accepted_and_the_default_answer_conforms_to_it(gemini):
    with_schema = [prompt for prompt in prompts.all_prompts() if prompt.schema]
    assert with_schema, "no prompt asks for structured output"

    for prompt in with_schema:
        result = provider(gemini).generate(ask(prompt.schema, model="gemini-2.5-flash"))
        assert conforms(prompt.schema, result.data) == [], f"{prompt.name}@{prompt.version}"


def test_the_conformance_check_can_fail():
    assert conforms(SUBJECT_LINES, {"items": [{"subject": "Only one"}]}) == [
        "answer.items has 1 items", "answer.items[0].preheader is missing"]


# --- HTTP failures ---------------------------------------------------------------------------------------

def test_400_is_a_bad_request_with_the_providers_message(gemini):
    gemini.fail(400, message="Invalid value at 'generation_config.temperature' (TYPE_FLOAT), \"hot\"")

    error = refusal(gemini)

    assert (error.kind, error.status) == ("bad_request", 400)
    assert "generation_config.temperature" in error.message


def test_a_long_or_html_message_is_shortened_to_words(gemini):
    gemini.fail(400, message="<html><body><h1>Bad request</h1><p>" + "The proxy said no. " * 40 + "</p></body></html>")

    error = refusal(gemini)

    assert "<" not in error.message and error.message.startswith("The AI provider refused the request (400): Bad")
    assert len(error.message) < 400 and error.message.endswith("…")


@pytest.mark.parametrize("status", [401, 403])
def test_401_and_403_say_the_key_was_refused(gemini, status):
    gemini.fail(status, message="Method doesn't allow unregistered callers")

    error = refusal(gemini)

    assert (error.kind, error.status) == ("bad_key", status)
    assert error.message == "The provider refused the API key: check it under Admin > AI."


def test_googles_invalid_key_400_is_a_bad_key():
    stub = GeminiStub(api_key="the-right-key")
    try:
        error = refusal(stub, api_key="a-wrong-key")
    finally:
        stub.stop()

    assert error.kind == "bad_key"
    assert "a-wrong-key" not in error.message


def test_404_names_the_model(gemini):
    gemini.fail(404, message="models/gemini-9-ultra is not found for API version v1beta")

    error = refusal(gemini, ask(model="gemini-9-ultra"))

    assert error.kind == "bad_request"
    assert "Model “gemini-9-ultra” not found" in error.message


def test_429_reads_retry_after_in_seconds(gemini):
    gemini.fail(429, retry_after=7, message="Resource has been exhausted (e.g. check quota).")

    error = refusal(gemini)

    assert (error.kind, error.status, error.retry_after) == ("rate_limited", 429, 7.0)


def test_429_reads_retry_after_as_an_http_date(gemini):
    gemini.fail(429, retry_after="Wed, 21 Oct 2037 07:28:00 GMT")

    error = refusal(gemini)

    assert error.kind == "rate_limited" and error.retry_after > 60


def test_429_reads_the_retry_delay_in_googles_error_body(gemini):
    gemini.fail(429, retry_delay=36)

    assert refusal(gemini).retry_after == 36.0


def test_retry_after_as_a_date_counts_from_now():
    now = datetime(2030, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert seconds_from_retry_after("Tue, 01 Jan 2030 12:00:30 GMT", now=now) == 30.0
    assert seconds_from_retry_after("Tue, 01 Jan 2030 11:00:00 GMT", now=now) == 0.0
    assert seconds_from_retry_after("12", now=now) == 12.0
    assert seconds_from_retry_after("soon", now=now) is None


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_unavailable(gemini, status):
    gemini.fail(status, message="Internal error encountered.")

    error = refusal(gemini)

    assert (error.kind, error.status) == ("unavailable", status)
    assert "unavailable" in error.message


@pytest.mark.parametrize("status", [408, 504])
def test_a_gateway_timeout_is_a_timeout(gemini, status):
    gemini.fail(status, message="Deadline expired before operation could complete.")

    error = refusal(gemini)

    assert (error.kind, error.status) == ("timeout", status)


def test_a_refused_connection_names_the_host():
    stub = GeminiStub()
    stub.stop()  # its port is now closed

    error = refusal(stub)

    assert error.kind == "unavailable"
    assert error.message == f"Could not reach the AI provider at 127.0.0.1:{stub.port}."


def test_an_unknown_host_is_unavailable():
    config = ProviderConfig(api_key=KEY, base_url="http://ai-provider.invalid")
    with pytest.raises(ProviderError) as caught:
        providers.provider_for(config).generate(ask())

    assert caught.value.kind == "unavailable"
    assert "ai-provider.invalid" in caught.value.message


def test_a_hung_provider_times_out(gemini):
    gemini.hang(10)

    error = refusal(gemini, ask(SUBJECT_LINES, timeout_seconds=1.0))

    assert error.kind == "timeout"
    assert "did not answer within 1 seconds" in error.message
    assert len(gemini.requests) == 1


def test_the_client_does_not_retry_on_its_own(gemini):
    gemini.fail(503)

    refusal(gemini)

    assert len(gemini.requests) == 1


def test_an_error_never_carries_the_api_key(gemini):
    gemini.fail(400, message=f"API key {KEY} is not allowed for this project")

    error = refusal(gemini)

    assert KEY not in error.message and KEY not in str(error)
    assert "[API key]" in error.message


def test_no_key_is_refused_without_a_call(gemini):
    error = refusal(gemini, api_key="")

    assert error.kind == "bad_key" and "Admin > AI" in error.message
    assert gemini.requests == []


def test_test_connection_returns_the_answer(gemini):
    gemini.reply(text="Hello, Loft admin!")

    assert provider(gemini).test_connection() == "Hello, Loft admin!"
    assert "responseSchema" not in gemini.requests[0]["raw"]


def test_one_client_per_configuration(gemini):
    first = gemini_provider.client_for(KEY, gemini.base_url, 30.0)
    assert gemini_provider.client_for(KEY, gemini.base_url, 30.0) is first
    assert gemini_provider.client_for(KEY, gemini.base_url, 10.0) is not first


# --- retries ---------------------------------------------------------------------------------------------

def test_429_waits_what_retry_after_asks_then_succeeds(gemini, waits):
    gemini.fail(429, retry_after=2)

    result = providers.generate_with_retries(provider(gemini), ask(SUBJECT_LINES))

    assert len(result.data["items"]) == 5
    assert waits == [2.0]
    assert len(gemini.requests) == 2


def test_500_twice_backs_off_then_succeeds(gemini, waits):
    gemini.fail(500)
    gemini.fail(500)

    result = providers.generate_with_retries(provider(gemini), ask())

    assert result.text == DEFAULT_TEXT
    assert waits == [1.0, 2.0]
    assert len(gemini.requests) == 3


def test_retries_stop_after_the_attempts(gemini, waits):
    for _ in range(3):
        gemini.fail(503)

    with pytest.raises(ProviderError) as caught:
        providers.generate_with_retries(provider(gemini), ask(), attempts=3)

    assert caught.value.kind == "unavailable"
    assert waits == [1.0, 2.0]
    assert len(gemini.requests) == 3


def test_a_timeout_is_retried(gemini, waits):
    gemini.hang(10)

    result = providers.generate_with_retries(provider(gemini), ask(timeout_seconds=1.0))

    assert result.text == DEFAULT_TEXT
    assert waits == [1.0]
    assert len(gemini.requests) == 2


@pytest.mark.parametrize("status, kind", [(400, "bad_request"), (403, "bad_key"), (404, "bad_request")])
def test_refusals_are_not_retried(gemini, waits, status, kind):
    gemini.fail(status)

    with pytest.raises(ProviderError) as caught:
        providers.generate_with_retries(provider(gemini), ask())

    assert caught.value.kind == kind
    assert waits == [] and len(gemini.requests) == 1


@pytest.mark.parametrize("queue", [lambda stub: stub.block(), lambda stub: stub.truncate(),
                                   lambda stub: stub.malformed()])
def test_bad_answers_are_not_retried(gemini, waits, queue):
    queue(gemini)

    with pytest.raises(ProviderError):
        providers.generate_with_retries(provider(gemini), ask(SUBJECT_LINES))

    assert waits == [] and len(gemini.requests) == 1


def test_a_long_retry_after_gives_up_at_once_in_words(gemini, waits):
    gemini.fail(429, retry_after=60)

    with pytest.raises(ProviderError) as caught:
        providers.generate_with_retries(provider(gemini), ask())

    assert caught.value.message == "The provider asks to wait 60 seconds; try again later."
    assert caught.value.kind == "rate_limited" and caught.value.retry_after == 60.0
    assert waits == [] and len(gemini.requests) == 1


def test_a_long_retry_after_on_the_last_attempt_is_still_said_in_words(gemini, waits):
    gemini.fail(503)
    gemini.fail(429, retry_delay=45)

    with pytest.raises(ProviderError) as caught:
        providers.generate_with_retries(provider(gemini), ask(), attempts=2)

    assert caught.value.message == "The provider asks to wait 45 seconds; try again later."
    assert waits == [1.0] and len(gemini.requests) == 2


def test_backoff_doubles_and_is_capped():
    assert [providers.backoff_seconds(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


# --- the registry ----------------------------------------------------------------------------------------

def test_built_in_providers_are_registered():
    assert {"gemini", "openai"} <= set(providers.names())


def test_an_unknown_provider_is_refused_in_words():
    with pytest.raises(ProviderError) as caught:
        providers.provider_for(ProviderConfig(name="claude-by-carrier-pigeon", api_key=KEY))

    assert caught.value.kind == "bad_request"
    assert "There is no AI provider called “claude-by-carrier-pigeon”" in caught.value.message
    assert "gemini" in caught.value.message and "openai" in caught.value.message


def test_a_registered_provider_is_found_by_name(monkeypatch):
    monkeypatch.setattr(providers, "_factories", dict(providers._factories))

    class Echo:
        name = "echo"

        def __init__(self, config):
            self.config = config

    providers.register("echo", Echo)

    made = providers.provider_for(ProviderConfig(name="echo", api_key=KEY))
    assert isinstance(made, Echo) and made.config.api_key == KEY
    assert "echo" in providers.names()


# --- the OpenAI-compatible provider ----------------------------------------------------------------------

@pytest.fixture
def openai_stub():
    stub = OpenAiStub()
    yield stub
    stub.stop()


def test_openai_provider_sends_a_json_schema_and_reads_usage(openai_stub):
    result = provider(openai_stub, "openai").generate(ask(SUBJECT_LINES, model="gpt-4o-mini"))

    [sent] = openai_stub.requests
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["authorization"] == f"Bearer {KEY}"
    body = sent["body"]
    assert body["model"] == "gpt-4o-mini" and body["max_tokens"] == 512 and body["temperature"] == 0.4
    assert body["messages"] == [{"role": "system", "content": "You write subject lines."},
                                {"role": "user", "content": "Spring sale on garden tools."}]
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True
    assert len(result.data["items"]) == 5
    assert (result.input_tokens, result.output_tokens, result.finish_reason) == (100, 50, "stop")
    assert result.model == "gpt-4o-mini"


@pytest.mark.parametrize("raw, normalised", [("stop", "stop"), ("length", "max_tokens"), ("tool_calls", "other")])
def test_openai_finish_reasons(openai_stub, raw, normalised):
    openai_stub.reply(content="Spring is here", finish_reason=raw)

    assert provider(openai_stub, "openai").generate(ask()).finish_reason == normalised


def test_openai_content_filter_is_blocked(openai_stub):
    openai_stub.reply(content="", finish_reason="content_filter")

    with pytest.raises(ProviderError) as caught:
        provider(openai_stub, "openai").generate(ask())
    assert caught.value.kind == "blocked"


def test_openai_cut_off_json_is_truncated(openai_stub):
    openai_stub.reply(content='{"items": [{"subj', completion_tokens=512, finish_reason="length")

    with pytest.raises(ProviderError) as caught:
        provider(openai_stub, "openai").generate(ask(SUBJECT_LINES))
    assert caught.value.kind == "truncated" and "512 tokens" in caught.value.message


@pytest.mark.parametrize("status, kind", [(401, "bad_key"), (429, "rate_limited"), (500, "unavailable"),
                                          (400, "bad_request")])
def test_openai_http_errors(openai_stub, status, kind):
    openai_stub.fail(status, retry_after=3 if status == 429 else None, message=f"no, key {KEY}")

    with pytest.raises(ProviderError) as caught:
        provider(openai_stub, "openai").generate(ask())
    assert (caught.value.kind, caught.value.status) == (kind, status)
    assert KEY not in caught.value.message
    if status == 429:
        assert caught.value.retry_after == 3.0


def test_openai_timeout_and_retry(openai_stub, waits):
    openai_stub.hang(10)

    result = providers.generate_with_retries(provider(openai_stub, "openai"), ask(timeout_seconds=1.0))

    assert result.text == DEFAULT_TEXT
    assert waits == [1.0] and len(openai_stub.requests) == 2


def test_a_provider_error_survives_pickling():
    error = ProviderError("The provider asks to wait 60 seconds; try again later.", kind="rate_limited",
                          retry_after=60.0, status=429)

    copy = pickle.loads(pickle.dumps(error))

    assert (copy.message, copy.kind, copy.retry_after, copy.status) == (error.message, "rate_limited", 60.0, 429)


def test_openai_base_url_may_end_in_v1(openai_stub):
    config = ProviderConfig(name="openai", api_key=KEY, base_url=openai_stub.base_url + "/v1/")

    providers.provider_for(config).generate(ask())

    assert openai_stub.requests[0]["path"] == "/v1/chat/completions"


def test_openai_redirect_is_not_followed_with_the_key(openai_stub):
    elsewhere = OpenAiStub()
    try:
        openai_stub.fail(302, message="moved")
        openai_stub.redirect_to = elsewhere.base_url + "/v1/chat/completions"

        with pytest.raises(ProviderError) as caught:
            provider(openai_stub, "openai").generate(ask())

        assert caught.value.kind == "bad_request" and "redirect" in caught.value.message
        assert elsewhere.requests == []
    finally:
        elsewhere.stop()
