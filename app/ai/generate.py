"""One AI generation for a team: the checks, the cache, the provider call, the record and its cost.

generate(team, user, prompt_name, inputs) runs, in this order:
  1. the prompt exists (app.ai.prompts, a repository file at a version);
  2. the inputs are the ones the prompt declares, each within its limit (a refusal names the field);
  3. AI is on: the instance has an API key (Admin > AI or LOFT_GEMINI_API_KEY) and the team is not
     switched off;
  4. the cache: the same prompt version, model and inputs asked by the same team before returns the
     stored answer (a whole one: not cut off at the token limit), with no call, no cost, no budget or rate charge ("from cache"); regenerate=True
     skips it and stores a fresh answer;
  5. the team's monthly budget (app.ai.costs.budget_usd) is not used up;
  6. the user's requests per hour (the instance setting ai_user_requests_per_hour; the CLI, with no user,
     is an operator's tool and has no per-user limit);
  7. the provider, through generate_with_retries (timeouts, 429 with Retry-After and outages retried);
  8. an AiGeneration row with tokens and cost.

Personal data: the inputs are only what the writer typed or what is in the campaign they are writing (its
text, where merge tags are names such as {{ first_name }}, never a contact's value). This module reads no
contact, list, event or any other row about a person, and nothing here fills merge tags in, so no contact's
data can reach a provider (docs/ai.md says what is sent).
"""
import hashlib
import json
from dataclasses import dataclass

from app import settings as instance_settings
from app.ai import costs
from app.ai import prompts
from app.ai import providers
from app.ai.prompts import AiError
from app.ai.providers.base import AiRequest
from app.ai.providers.base import ProviderConfig
from app.ai.providers.base import ProviderError
from app.consent import ratelimit
from app.metrics import definitions as metrics
from app.models import AiGeneration

__all__ = ["AiError", "AiStatus", "Generation", "as_json", "generate", "input_hash", "provider_config", "status",
           "test_connection"]

RATE_BUCKET = "ai"
RATE_WINDOW_SECONDS = 3600
NO_KEY = ("An instance administrator turns AI on under Admin > AI (a Gemini API key), "
          "or sets LOFT_GEMINI_API_KEY.")
TEAM_OFF = "AI is turned off for this team: ask an instance administrator."


@dataclass(frozen=True)
class AiStatus:
    enabled: bool
    reason: str     # words on how to turn AI on; "" when it is on
    model: str      # the instance's model
    kind: str = ""  # "no_key" | "off" | "" (on)


@dataclass
class Generation:
    prompt: str            # "subject_lines@v1"
    model: str
    text: str
    data: dict | list | None
    input_tokens: int
    output_tokens: int
    cost_usd: float        # what this request cost: 0.0 when it came from the cache
    cached: bool
    finish_reason: str
    record_id: int         # the AiGeneration row


def provider_config():
    """The provider, key, endpoint and model the instance settings (or LOFT_GEMINI_*) say."""
    settings = instance_settings.get_settings()
    return ProviderConfig(name=settings["ai_provider"] or "gemini", api_key=settings["ai_api_key"] or "",
                          base_url=settings["ai_base_url"] or "", model=settings["ai_model"])


def status(team):
    """Whether the team can use AI now, and if not, the words on how it is turned on."""
    config = provider_config()
    if not config.api_key:
        return AiStatus(False, NO_KEY, config.model, "no_key")
    if not team.ai_enabled:
        return AiStatus(False, TEAM_OFF, config.model, "off")
    return AiStatus(True, "", config.model)


def test_connection():
    """The provider's short answer to a tiny request with the saved settings (Admin > AI's button);
    AiError with the provider's words when it fails."""
    config = provider_config()
    if not config.api_key:
        raise AiError(NO_KEY, kind="no_key")
    try:
        return providers.provider_for(config).test_connection()
    except ProviderError as error:
        raise _provider_refusal(error) from error


def model_for(prompt, config=None):
    """The model a prompt runs on: its own, or the instance's when it says "default"."""
    return (config or provider_config()).model if prompt.model == "default" else prompt.model


def input_hash(prompt, model, inputs):
    """sha256 hex of the canonical JSON (sorted keys) of the inputs, prompt@version and model: the cache key."""
    canonical = json.dumps({"inputs": inputs, "prompt": prompt.ref, "model": model},
                           sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def generate(team, user, prompt_name, inputs, *, regenerate=False, version=None):
    """The prompt's answer for these inputs (see the module docstring for the checks, in order).
    Raises AiError with words for the writer; `kind` says which check refused."""
    prompt = prompts.get(prompt_name, version)
    cleaned = prompts.clean_inputs(prompt, inputs)
    state = status(team)
    if not state.enabled:
        raise AiError(state.reason, kind=state.kind)
    config = provider_config()
    model = model_for(prompt, config)
    digest = input_hash(prompt, model, cleaned)
    if not regenerate:
        stored = _cached(team, prompt, model, digest)
        if stored is not None:
            (AiGeneration.update(cache_hits=AiGeneration.cache_hits + 1)
             .where(AiGeneration.id == stored.id).execute())
            return _generation(stored, cached=True)
    _check_budget(team)
    _check_rate(user)
    system, user_text = prompts.render(prompt, cleaned)
    request = AiRequest(prompt=prompt.name, version=prompt.version, model=model, system=system, user=user_text,
                        temperature=prompt.temperature, max_output_tokens=prompt.max_output_tokens,
                        schema=prompt.schema, timeout_seconds=config.timeout_seconds)
    try:
        result = providers.generate_with_retries(providers.provider_for(config), request)
    except ProviderError as error:
        raise _provider_refusal(error) from error
    # Priced as the model asked for; an alias the table does not list is priced as the version that answered.
    priced_as = model if costs.is_priced(model) else result.model
    record = AiGeneration.create(
        team=team, user=user, prompt=prompt.name, version=prompt.version, model=model, input_hash=digest,
        inputs=cleaned, output={"text": result.text, "data": result.data},
        input_tokens=result.input_tokens, output_tokens=result.output_tokens,
        cost_micros=costs.cost_micros(priced_as, result.input_tokens, result.output_tokens),
        latency_ms=result.latency_ms, finish_reason=result.finish_reason)
    metrics.AI_TOKENS.labels("input").inc(result.input_tokens or 0)
    metrics.AI_TOKENS.labels("output").inc(result.output_tokens or 0)
    metrics.AI_COST.inc(record.cost_micros / costs.MICROS_PER_USD)
    return _generation(record, cached=False)


def _provider_refusal(error):
    refusal = AiError(error.message, kind="provider")
    refusal.provider_kind = error.kind
    return refusal


def _cached(team, prompt, model, digest):
    # Only a whole answer is served again: one cut off at the token limit is asked for afresh.
    return (AiGeneration.select()
            .where((AiGeneration.team == team) & (AiGeneration.prompt == prompt.name)
                   & (AiGeneration.version == prompt.version) & (AiGeneration.model == model)
                   & (AiGeneration.input_hash == digest) & (AiGeneration.finish_reason == "stop"))
            .order_by(AiGeneration.id.desc())
            .first())


def _generation(record, cached):
    output = record.output or {}
    return Generation(prompt=f"{record.prompt}@{record.version}", model=record.model,
                      text=output.get("text") or "", data=output.get("data"),
                      input_tokens=record.input_tokens, output_tokens=record.output_tokens,
                      cost_usd=0.0 if cached else record.cost_micros / costs.MICROS_PER_USD,
                      cached=cached, finish_reason=record.finish_reason, record_id=record.id)


def _check_budget(team):
    budget = costs.budget_usd(team)
    if budget is None:
        return
    if costs.spent_this_month(team) >= budget:
        now = costs.month_start()
        renews = costs.next_month_start()
        raise AiError(f"This team has used its {costs.usd(budget)} AI budget for {now:%B}; it renews on "
                      f"{renews.day} {renews:%B}, or an instance administrator raises it.", kind="budget")


def _check_rate(user):
    if user is None:
        return
    limit = int(instance_settings.get_setting("ai_user_requests_per_hour") or 0)
    if limit <= 0:
        return
    if not ratelimit.hit(RATE_BUCKET, f"user:{getattr(user, 'id', user)}", limit, RATE_WINDOW_SECONDS):
        raise AiError(f"You have made {limit:,} AI requests in the last hour, the most this instance allows; "
                      "try again later (answers already given are still free from the cache).",
                      kind="rate_limited")


def as_json(generation):
    """The CLI's shape: {"prompt", "model", "items", "input_tokens", "output_tokens", "cost_usd", "cached"};
    "items" is data["items"] when the answer has them, else the data, else the text."""
    data = generation.data
    if isinstance(data, dict) and "items" in data:
        items = data["items"]
    elif data is not None:
        items = data
    else:
        items = generation.text
    return {"prompt": generation.prompt, "model": generation.model, "items": items,
            "input_tokens": generation.input_tokens, "output_tokens": generation.output_tokens,
            "cost_usd": round(generation.cost_usd, 6), "cached": generation.cached}
