"""AI generation (app/ai/generate.py, app/ai/costs.py) against the Gemini stand-in spoken to by the real
google-genai client: the checks in their order, the cache, the budget, the per-user rate limit, the record
and its cost, the settings it reads; and that no contact's data ever reaches the provider."""
import ast
import datetime
import os
import subprocess
import sys

import pytest

from app import security
from app import settings as instance_settings
from app.ai import costs
from app.ai import generate as ai
from app.ai import providers
from app.config import ROOT
from app.content.text import html_to_text
from app.models import AiGeneration
from app.models import Campaign
from app.models import Contact
from app.models import CustomField
from app.models import InstanceSetting
from app.models import Team
from app.models import User
from app.models import utcnow

BRIEF = "Our spring garden workshop on 12 April: pruning roses and planting bulbs."
ITEMS = [{"subject": f"Spring in the garden, take {n}", "preheader": f"Roses and bulbs, part {n}"}
         for n in range(1, 6)]


@pytest.fixture
def acme(ctx, gemini, monkeypatch):
    waits = []
    monkeypatch.setattr(providers, "sleep", waits.append)
    team = Team.create(name="Acme")
    user = User.create(email="writer@example.com", name="Wren", password_hash="x")
    return team, user


def settings(**values):
    instance_settings.save_settings(values)


def test_an_answer_is_recorded_with_its_prompt_version_model_tokens_and_cost(acme, gemini):
    team, user = acme
    gemini.reply(data={"items": ITEMS}, input_tokens=1234, output_tokens=567)
    generation = ai.generate(team, user, "subject_lines", {"brief": BRIEF})
    assert generation.prompt == "subject_lines@v1" and generation.model == "gemini-2.5-flash"
    assert generation.data == {"items": ITEMS} and not generation.cached and generation.finish_reason == "stop"
    assert (generation.input_tokens, generation.output_tokens) == (1234, 567)
    # $0.30 and $2.50 per million tokens: 1234 x 0.30 + 567 x 2.50 = 1787.7 millionths of a dollar
    assert generation.cost_usd == pytest.approx(0.001788)
    row = AiGeneration.get_by_id(generation.record_id)
    assert (row.team_id, row.user_id, row.prompt, row.version, row.model) == \
        (team.id, user.id, "subject_lines", "v1", "gemini-2.5-flash")
    assert row.cost_micros == 1788 and row.inputs == {"brief": BRIEF, "content": "", "language": "", "count": "5"}
    assert row.output["data"] == {"items": ITEMS}
    assert row.input_hash == ai.input_hash(ai.prompts.get("subject_lines"), "gemini-2.5-flash", row.inputs)
    sent = gemini.requests[0]
    assert sent["path"].startswith("/v1beta/models/gemini-2.5-flash:generateContent")
    assert "subject lines for an email newsletter" in sent["raw"] and BRIEF in sent["raw"]
    assert sent["body"]["generationConfig"]["temperature"] == pytest.approx(0.8)
    assert ai.as_json(generation) == {"prompt": "subject_lines@v1", "model": "gemini-2.5-flash", "items": ITEMS,
                                      "input_tokens": 1234, "output_tokens": 567, "cost_usd": 0.001788,
                                      "cached": False}


def test_a_second_identical_request_comes_from_the_cache_without_a_call(acme, gemini):
    team, user = acme
    first = ai.generate(team, user, "subject_lines", {"brief": BRIEF})
    assert not first.cached and len(first.data["items"]) == 5
    assert len(gemini.requests) == 1
    # the same inputs, typed with other spacing around them, are the same request
    again = ai.generate(team, user, "subject_lines", {"brief": f"  {BRIEF}\n", "count": "5"})
    assert again.cached and again.record_id == first.record_id and again.data == first.data
    assert again.cost_usd == 0.0 and ai.as_json(again)["cached"] is True
    assert len(gemini.requests) == 1
    assert AiGeneration.get_by_id(first.record_id).cache_hits == 1
    assert AiGeneration.select().count() == 1


def test_regenerate_asks_again_and_the_fresh_answer_is_cached_next(acme, gemini):
    team, user = acme
    first = ai.generate(team, user, "subject_lines", {"brief": BRIEF})
    fresh = ai.generate(team, user, "subject_lines", {"brief": BRIEF}, regenerate=True)
    assert not fresh.cached and fresh.record_id != first.record_id and len(gemini.requests) == 2
    third = ai.generate(team, user, "subject_lines", {"brief": BRIEF})
    assert third.cached and third.record_id == fresh.record_id and len(gemini.requests) == 2


def test_other_inputs_another_team_or_another_model_miss_the_cache(acme, gemini):
    team, user = acme
    ai.generate(team, user, "subject_lines", {"brief": BRIEF})
    assert not ai.generate(team, user, "subject_lines", {"brief": BRIEF, "language": "German"}).cached
    assert not ai.generate(team, user, "subject_lines", {"brief": BRIEF + " Bring gloves."}).cached
    other = Team.create(name="Globex")
    assert not ai.generate(other, None, "subject_lines", {"brief": BRIEF}).cached
    settings(ai_model="gemini-2.5-flash-lite")
    lite = ai.generate(team, user, "subject_lines", {"brief": BRIEF})
    assert not lite.cached and lite.model == "gemini-2.5-flash-lite"
    assert "gemini-2.5-flash-lite:generateContent" in gemini.requests[-1]["path"]
    assert len(gemini.requests) == 5


def test_the_input_hash_is_canonical_and_names_prompt_version_and_model(ctx):
    prompt = ai.prompts.get("subject_lines")
    one = ai.input_hash(prompt, "gemini-2.5-flash", {"brief": "a", "content": "b"})
    assert one == ai.input_hash(prompt, "gemini-2.5-flash", {"content": "b", "brief": "a"})
    assert one != ai.input_hash(prompt, "gemini-2.5-pro", {"brief": "a", "content": "b"})
    assert one != ai.input_hash(prompt, "gemini-2.5-flash", {"brief": "a", "content": "c"})
    assert len(one) == 64 and int(one, 16) >= 0


def test_a_used_up_budget_refuses_in_words_and_sends_nothing(acme, gemini):
    team, user = acme
    team.ai_monthly_budget_usd = 0.01
    team.save()
    gemini.reply(input_tokens=2000, output_tokens=4000)  # $0.0006 + $0.01: over the budget in one call
    ai.generate(team, user, "subject_lines", {"brief": BRIEF})
    assert costs.spent_this_month(team) == pytest.approx(0.0106)
    with pytest.raises(ai.AiError) as refused:
        ai.generate(team, user, "subject_lines", {"brief": "Another brief"})
    now, renews = costs.month_start(), costs.next_month_start()
    assert refused.value.kind == "budget"
    assert refused.value.message == (f"This team has used its $0.01 AI budget for {now:%B}; it renews on "
                                     f"1 {renews:%B}, or an instance administrator raises it.")
    assert len(gemini.requests) == 1 and AiGeneration.select().count() == 1
    # an answer already given costs nothing, so the cache still serves it
    assert ai.generate(team, user, "subject_lines", {"brief": BRIEF}).cached


def test_the_instance_default_budget_holds_for_a_team_without_its_own_and_zero_means_no_limit(acme, gemini):
    team, user = acme
    assert costs.budget_usd(team) == 10.0
    settings(ai_default_monthly_budget_usd=0.001)
    ai.generate(team, user, "subject_lines", {"brief": BRIEF})  # 120 and 80 tokens: $0.000236
    gemini.reply(input_tokens=4000, output_tokens=4000)
    ai.generate(team, user, "subject_lines", {"brief": "Second"})
    with pytest.raises(ai.AiError, match=r"used its \$0\.0010 AI budget"):
        ai.generate(team, user, "subject_lines", {"brief": "Third"})
    team.ai_monthly_budget_usd = 0  # the team's own: no limit
    team.save()
    assert costs.budget_usd(team) is None
    assert not ai.generate(team, user, "subject_lines", {"brief": "Third"}).cached


def test_last_months_spending_does_not_count_against_this_months_budget(acme, gemini):
    team, user = acme
    team.ai_monthly_budget_usd = 0.01
    team.save()
    last_month = costs.month_start() - datetime.timedelta(days=3)
    AiGeneration.create(team=team, prompt="subject_lines", version="v1", model="gemini-2.5-flash",
                        input_hash="x" * 64, cost_micros=50_000, created_at=last_month)
    assert costs.spent_this_month(team) == 0
    assert not ai.generate(team, user, "subject_lines", {"brief": BRIEF}).cached


def test_the_per_user_rate_limit_refuses_the_next_request_in_the_hour(acme, gemini):
    team, user = acme
    settings(ai_user_requests_per_hour=2)
    ai.generate(team, user, "subject_lines", {"brief": "One"})
    ai.generate(team, user, "subject_lines", {"brief": "Two"})
    with pytest.raises(ai.AiError) as refused:
        ai.generate(team, user, "subject_lines", {"brief": "Three"})
    assert refused.value.kind == "rate_limited" and "2 AI requests in the last hour" in refused.value.message
    assert len(gemini.requests) == 2
    assert ai.generate(team, user, "subject_lines", {"brief": "One"}).cached  # a cache hit is not charged
    colleague = User.create(email="colleague@example.com", password_hash="x")
    assert not ai.generate(team, colleague, "subject_lines", {"brief": "Three"}).cached
    assert not ai.generate(team, None, "subject_lines", {"brief": "Four"}).cached  # the CLI: no user
    assert len(gemini.requests) == 4


def test_without_a_key_ai_is_off_and_says_how_to_turn_it_on(acme, gemini, app):
    team, user = acme
    app.config["GEMINI_API_KEY"] = ""
    instance_settings.forget()
    state = ai.status(team)
    assert not state.enabled and state.kind == "no_key"
    assert state.reason == ("An instance administrator turns AI on under Admin > AI (a Gemini API key), "
                            "or sets LOFT_GEMINI_API_KEY.")
    with pytest.raises(ai.AiError) as refused:
        ai.generate(team, user, "subject_lines", {"brief": BRIEF})
    assert refused.value.kind == "no_key" and refused.value.message == state.reason
    with pytest.raises(ai.AiError, match="turns AI on under Admin > AI"):
        ai.test_connection()
    assert gemini.requests == []


def test_a_team_switched_off_is_refused_with_the_words_and_nothing_is_sent(acme, gemini):
    team, user = acme
    team.ai_enabled = False
    team.save()
    assert ai.status(team) == ai.AiStatus(False, "AI is turned off for this team: ask an instance administrator.",
                                          "gemini-2.5-flash", "off")
    with pytest.raises(ai.AiError, match="AI is turned off for this team: ask an instance administrator.") as refused:
        ai.generate(team, user, "subject_lines", {"brief": BRIEF})
    assert refused.value.kind == "off" and gemini.requests == []
    assert ai.status(Team.create(name="Globex")).enabled


def test_inputs_are_checked_before_anything_else_and_name_their_field(acme, gemini):
    team, user = acme
    team.ai_enabled = False  # the input refusal comes first, at the field
    team.save()
    with pytest.raises(ai.AiError) as refused:
        ai.generate(team, user, "subject_lines", {"brief": "x" * 2001})
    assert refused.value.kind == "input" and refused.value.field == "brief"
    assert refused.value.message == "Brief is 2,001 characters long; at most 2,000 fit. Shorten it by 1."
    with pytest.raises(ai.AiError) as refused:
        ai.generate(team, user, "subject_lines", {"content": "y" * 8001})
    assert refused.value.field == "content" and "8,001" in refused.value.message
    with pytest.raises(ai.AiError) as refused:
        ai.generate(team, user, "subject_lines", {"brief": " ", "content": ""})
    assert refused.value.field == "brief" and "brief or the campaign content" in refused.value.message
    with pytest.raises(ai.AiError) as refused:
        ai.generate(team, user, "subject_lines", {"brief": BRIEF, "contact_email": "a@example.com"})
    assert refused.value.field == "contact_email"
    with pytest.raises(ai.AiError) as refused:
        ai.generate(team, user, "subject_lines", {"brief": BRIEF, "count": "50"})
    assert refused.value.field == "count" and "one of: 5" in refused.value.message
    with pytest.raises(ai.AiError) as refused:
        ai.generate(team, user, "no_such_prompt", {"brief": BRIEF})
    assert "no prompt called “no_such_prompt”" in refused.value.message
    with pytest.raises(ai.AiError, match="has no version v7"):
        ai.generate(team, user, "subject_lines", {"brief": BRIEF}, version="v7")
    assert gemini.requests == [] and AiGeneration.select().count() == 0


@pytest.mark.parametrize("failure, words", [
    (lambda stub: stub.fail(403, message="API key not valid."), "refused the API key"),
    (lambda stub: stub.block(), "safety filters"),
    (lambda stub: stub.truncate(), "cut off"),
    (lambda stub: stub.malformed(), "try again"),
])
def test_a_provider_failure_is_an_ai_error_in_words_and_nothing_is_recorded(acme, gemini, failure, words):
    team, user = acme
    failure(gemini)
    with pytest.raises(ai.AiError) as refused:
        ai.generate(team, user, "subject_lines", {"brief": BRIEF})
    assert refused.value.kind == "provider" and refused.value.message
    assert words.lower() in refused.value.message.lower()
    assert refused.value.provider_kind in ("bad_key", "blocked", "truncated", "malformed")
    assert AiGeneration.select().count() == 0
    assert not ai.generate(team, user, "subject_lines", {"brief": BRIEF}).cached  # the next try asks again


def test_a_rate_limited_provider_is_retried_after_its_retry_after(acme, gemini, monkeypatch):
    team, user = acme
    waits = []
    monkeypatch.setattr(providers, "sleep", waits.append)
    gemini.fail(429, retry_after=3)
    generation = ai.generate(team, user, "subject_lines", {"brief": BRIEF})
    assert not generation.cached and waits == [3] and len(gemini.requests) == 2


def test_no_contact_data_reaches_the_provider(acme, gemini):
    team, user = acme
    CustomField.create(team=team, key="company", label="Company")
    CustomField.create(team=team, key="member_number", label="Member number", type="number")
    people = [("zebulon.quixote@example.com", "Zebulon Quixote", {"company": "Xylophonic Widgets", "member_number": 918273645}),
              ("marguerite.vlasic@example.org", "Marguerite Vlasic", {"company": "Pemberton-Okafor", "member_number": 564738291})]
    for email, name, attributes in people:
        Contact.create(team=team, email=email, domain=email.split("@")[1], name=name, attributes=attributes)
    campaign = Campaign.create(
        team=team, name="April news", subject="News for {{ contact.name }}",
        body="<h1>Hello {{ contact.name }}</h1><p>How is everyone at {{ contact.company }}? "
             "Our spring workshop is on 12 April.</p><p>{{ contact.email }}</p>")
    content = html_to_text(campaign.body)
    generation = ai.generate(team, user, "subject_lines", {"content": content})
    assert not generation.cached
    sent = gemini.bodies_text()
    assert "contact.company" in sent and "spring workshop" in sent  # the tag names and the text go
    for email, name, attributes in people:
        for value in (email, name, *name.split(), email.split("@")[0], *map(str, attributes.values())):
            assert value not in sent, value
    record = AiGeneration.get_by_id(generation.record_id)
    assert record.inputs["content"] == content.strip()


def test_test_connection_answers_with_the_providers_words(acme, gemini):
    assert ai.test_connection()
    assert len(gemini.requests) == 1
    gemini.fail(403, message="API key not valid.")
    with pytest.raises(ai.AiError, match="refused the API key") as refused:
        ai.test_connection()
    assert refused.value.kind == "provider"


def test_cost_follows_the_instance_price_table_and_an_unknown_model_costs_nothing(acme, gemini):
    team, user = acme
    settings(ai_prices={"gemini-2.5-flash": {"input_per_million": 1.0, "output_per_million": 4.0}})
    gemini.reply(input_tokens=1000, output_tokens=500)
    assert ai.generate(team, user, "subject_lines", {"brief": "A"}).cost_usd == pytest.approx(0.003)
    settings(ai_prices={}, ai_model="mystery-model-9")
    assert not costs.is_priced("mystery-model-9")
    gemini.reply(input_tokens=1000, output_tokens=500)
    unknown = ai.generate(team, user, "subject_lines", {"brief": "B"})
    assert unknown.model == "mystery-model-9" and unknown.cost_usd == 0.0
    assert AiGeneration.get_by_id(unknown.record_id).output_tokens == 500
    # an alias the table does not list is priced as the model version the provider says answered
    settings(ai_model="gemini-flash-latest")
    gemini.reply(input_tokens=1000, output_tokens=500, model_version="gemini-2.5-flash-preview-09-2025")
    alias = ai.generate(team, user, "subject_lines", {"brief": "C"})
    assert alias.model == "gemini-flash-latest" and alias.cost_usd == pytest.approx(0.00155)


def test_the_price_table_and_cost_arithmetic(ctx):
    prices = costs.default_prices()
    assert prices["gemini-2.5-flash"] == {"input_per_million": 0.30, "output_per_million": 2.50}
    assert prices["gemini-2.5-flash-lite"] == {"input_per_million": 0.10, "output_per_million": 0.40}
    assert prices["gemini-2.5-pro"] == {"input_per_million": 1.25, "output_per_million": 10.00}
    assert prices["gemini-2.0-flash"] == {"input_per_million": 0.10, "output_per_million": 0.40}
    assert costs.cost_usd("gemini-2.5-pro", 1_000_000, 1_000_000) == pytest.approx(11.25)
    assert costs.cost_micros("gemini-2.5-flash", 1, 1) == 3  # 0.3 + 2.5 rounds to 3 millionths
    # a dated name takes its family's row; flash-lite is not priced as flash
    assert costs.price_for("gemini-2.5-flash-preview-09-2025") == prices["gemini-2.5-flash"]
    assert costs.price_for("models/gemini-2.5-flash-lite") == prices["gemini-2.5-flash-lite"]
    assert costs.cost_usd("gpt-unknown", 10**6, 10**6) == 0.0
    assert costs.usd(10) == "$10.00" and costs.usd(0.0028) == "$0.0028" and costs.usd(1234.5) == "$1,234.50"
    costs.default_prices()["gemini-2.5-flash"]["input_per_million"] = 99
    assert costs.default_prices()["gemini-2.5-flash"]["input_per_million"] == 0.30


def test_month_costs_group_each_months_generations_oldest_first(acme):
    team, user = acme
    other = Team.create(name="Globex")
    now = utcnow()
    this_month = costs.month_start(now)
    last_month = costs.month_start(this_month - datetime.timedelta(days=1))
    long_ago = this_month - datetime.timedelta(days=800)

    def row(owner, micros, at):
        AiGeneration.create(team=owner, prompt="subject_lines", version="v1", model="gemini-2.5-flash",
                            input_hash="h" * 64, cost_micros=micros, created_at=at)

    row(team, 1_500_000, this_month + datetime.timedelta(hours=1))
    row(team, 250_000, this_month)
    row(team, 40_000, last_month + datetime.timedelta(days=2))
    row(team, 999_000_000, long_ago)
    row(other, 7_000_000, this_month)
    months = costs.month_costs(team)
    assert len(months) == 12 and months[-1][0] == f"{now:%Y-%m}" and months[-2][0] == f"{last_month:%Y-%m}"
    assert months[-1] == (f"{now:%Y-%m}", pytest.approx(1.75), 2)
    assert months[-2] == (f"{last_month:%Y-%m}", pytest.approx(0.04), 1)
    assert all(usd == 0 and count == 0 for _, usd, count in months[:-2])
    assert [key for key, _, _ in months] == sorted(key for key, _, _ in months)
    assert costs.spent_this_month(team) == pytest.approx(1.75)
    assert costs.spent_this_month(other) == pytest.approx(7.0)
    assert costs.month_costs(team, months=0) == []


def test_prompt_use_counts_add_calls_and_cache_hits(acme, gemini):
    team, user = acme
    ai.generate(team, user, "subject_lines", {"brief": "One"})
    ai.generate(team, user, "subject_lines", {"brief": "One"})
    ai.generate(team, user, "subject_lines", {"brief": "One"})
    ai.generate(team, user, "subject_lines", {"brief": "Two"})
    other = Team.create(name="Globex")
    ai.generate(other, None, "subject_lines", {"brief": "One"})
    assert costs.prompt_use_counts() == {("subject_lines", "v1"): 5}
    assert costs.prompt_use_counts(team) == {("subject_lines", "v1"): 4}
    assert len(gemini.requests) == 3


def test_the_api_key_is_stored_encrypted_and_a_blank_one_falls_back_to_the_environment(acme, gemini, app):
    secret = "AIzaSyExampleKey-0123456789abcdef"
    settings(ai_api_key=security.encrypt(secret))
    assert secret not in str(InstanceSetting.get(InstanceSetting.key == "ai_api_key").value)
    assert instance_settings.get_setting("ai_api_key") == secret
    assert ai.provider_config().api_key == secret
    team, user = acme
    ai.generate(team, user, "subject_lines", {"brief": BRIEF})
    assert gemini.requests[-1]["headers"].get("x-goog-api-key") == secret
    settings(ai_api_key="")  # removed in Admin > AI: LOFT_GEMINI_API_KEY again
    assert ai.provider_config().api_key == "test-key"
    app.config["GEMINI_API_KEY"] = ""
    instance_settings.forget()
    assert ai.provider_config().api_key == "" and not ai.status(team).enabled


def test_provider_config_follows_the_settings(acme, gemini):
    config = ai.provider_config()
    assert (config.name, config.api_key, config.base_url, config.model) == \
        ("gemini", "test-key", gemini.base_url, "gemini-2.5-flash")
    settings(ai_provider="openai", ai_base_url="http://127.0.0.1:9/v1", ai_model="small-model")
    config = ai.provider_config()
    assert (config.name, config.base_url, config.model) == ("openai", "http://127.0.0.1:9/v1", "small-model")


def test_the_gemini_settings_come_from_the_environment():
    code = ("from app.config import Config; "
            "print(Config.GEMINI_API_KEY, Config.GEMINI_BASE_URL, Config.GEMINI_MODEL)")
    env = {**os.environ, "LOFT_DOTENV": "0", "LOFT_GEMINI_API_KEY": "key-from-env",
           "LOFT_GEMINI_BASE_URL": "http://127.0.0.1:8089", "LOFT_GEMINI_MODEL": "gemini-2.5-pro"}
    shown = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert shown.stdout.split() == ["key-from-env", "http://127.0.0.1:8089", "gemini-2.5-pro"]
    env = {key: value for key, value in env.items() if not key.startswith("LOFT_GEMINI_")}
    shown = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert shown.stdout.split() == ["gemini-2.5-flash"]


def test_a_plain_text_prompt_answers_text_and_a_cut_off_answer_is_not_served_again(acme, gemini, tmp_path,
                                                                                  monkeypatch):
    folder = tmp_path / "tagline"
    folder.mkdir()
    (folder / "v1.md").write_text('+++\ndescription = "A tagline."\n[inputs.topic]\nmax = 100\nrequired = true\n'
                                  '+++\nYou write taglines.\n===\nA tagline about {{ topic }}.\n')
    monkeypatch.setattr(ai.prompts, "PROMPTS_DIR", tmp_path)
    team, user = acme
    gemini.reply(text="Roses, the long way", finish_reason="MAX_TOKENS")
    cut = ai.generate(team, user, "tagline", {"topic": "roses"})
    assert (cut.text, cut.data, cut.finish_reason) == ("Roses, the long way", None, "max_tokens")
    assert ai.as_json(cut)["items"] == "Roses, the long way" and ai.as_json(cut)["prompt"] == "tagline@v1"
    assert "responseSchema" not in gemini.requests[0]["body"].get("generationConfig", {})
    gemini.reply(text="Roses, grown slowly")
    whole = ai.generate(team, user, "tagline", {"topic": "roses"})
    assert not whole.cached and whole.text == "Roses, grown slowly" and len(gemini.requests) == 2
    assert ai.generate(team, user, "tagline", {"topic": "roses"}).record_id == whole.record_id
    assert len(gemini.requests) == 2


def test_the_generation_service_imports_no_model_about_people():
    """The structural half of the promise: the modules that build and send a request cannot read a contact,
    because they import no model that holds one (only AiGeneration and the settings)."""
    for module in ("app/ai/generate.py", "app/ai/prompts.py", "app/ai/costs.py"):
        tree = ast.parse((ROOT / module).read_text())
        models = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                  and node.module == "app.models" for alias in node.names}
        assert models <= {"AiGeneration", "utcnow"}, (module, models)
        assert not any(isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(
            ("app.contacts", "app.segments", "app.consent.lists", "app.events")) for node in ast.walk(tree)), module
