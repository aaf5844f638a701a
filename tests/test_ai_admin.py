"""Admin > AI (/admin/ai): the instance's AI settings form, Test connection against the Gemini stub, each
team's switch and budget, the prompts with their use counts, and that only the instance administrator gets in."""
import pytest

from app import settings
from app.ai import costs
from app.ai import generate
from app.ai import prompts
from app.models import AiGeneration
from app.models import InstanceSetting
from app.models import Team
from tests.accounts_support import make_member
from tests.conftest import free_port
from tests.conftest import soup

SECRET_KEY = "AIzaSyTest-secret-key-9f3d"


def valid_form(**changes):
    form = {"ai_provider": "gemini", "ai_model": "gemini-2.5-flash", "ai_base_url": "",
            "ai_default_monthly_budget_usd": "10", "ai_user_requests_per_hour": "60",
            "price.0.model": "gemini-2.5-flash", "price.0.input": "0.3", "price.0.output": "2.5"}
    form.update(changes)
    return form


def stored(key):
    row = InstanceSetting.get_or_none(InstanceSetting.key == key)
    return None if row is None else row.value


def current(app, key):
    with app.app_context():
        return settings.get_setting(key)


def test_the_page_shows_the_defaults_and_no_key(web, admin):
    page = soup(web.get("/admin/ai"))
    assert page.select_one("#f-ai_provider option[selected]")["value"] == "gemini"
    assert page.select_one("#f-ai_model")["value"] == "gemini-2.5-flash"
    assert page.select_one("#f-ai_api_key")["type"] == "password"
    assert "No API key is saved" in page.select_one("#ai-settings").text
    models = [tag["value"] for tag in page.select("#ai-prices input[name$='.model']")]
    assert models == sorted(costs.default_prices())  # the provider's public prices until changed
    flash = models.index("gemini-2.5-flash")
    assert page.select_one(f"#f-price-{flash}-input")["value"] == "0.3"
    assert page.select_one(f"#f-price-{flash}-output")["value"] == "2.5"
    assert page.select_one("nav.tabs a[aria-current=page]").text == "AI"


def test_each_field_is_saved_and_the_key_is_stored_encrypted(app, web, admin):
    response = web.post("/admin/ai", valid_form(
        ai_api_key=SECRET_KEY, ai_model="gemini-2.5-pro", ai_base_url="https://ai-proxy.example.com/",
        ai_default_monthly_budget_usd="25.5", ai_user_requests_per_hour="0",
        **{"price.1.model": "gemini-2.5-pro", "price.1.input": "1.25", "price.1.output": "10"}))
    assert response.status_code == 302
    assert SECRET_KEY not in stored("ai_api_key") and stored("ai_api_key")  # the raw row holds ciphertext
    assert current(app, "ai_api_key") == SECRET_KEY
    assert current(app, "ai_model") == "gemini-2.5-pro"
    assert current(app, "ai_base_url") == "https://ai-proxy.example.com"
    assert current(app, "ai_default_monthly_budget_usd") == 25.5
    assert current(app, "ai_user_requests_per_hour") == 0  # no limit
    assert current(app, "ai_prices") == {
        "gemini-2.5-flash": {"input_per_million": 0.3, "output_per_million": 2.5},
        "gemini-2.5-pro": {"input_per_million": 1.25, "output_per_million": 10.0}}
    page = soup(web.get("/admin/ai"))
    text = page.select_one("#ai-settings").text
    assert "A key is saved (ends in …9f3d)" in text
    assert SECRET_KEY not in web.get("/admin/ai").get_data(as_text=True)  # never shown back
    assert page.select_one("label[for=f-ai_api_key]").text.strip() == "Replace the API key"


def test_a_blank_key_field_keeps_the_stored_key_and_remove_clears_it(app, web, admin):
    web.post("/admin/ai", valid_form(ai_api_key=SECRET_KEY))
    ciphertext = stored("ai_api_key")
    assert web.post("/admin/ai", valid_form(ai_api_key="", ai_model="gemini-2.0-flash")).status_code == 302
    assert stored("ai_api_key") == ciphertext and current(app, "ai_api_key") == SECRET_KEY
    assert current(app, "ai_model") == "gemini-2.0-flash"

    assert web.post("/admin/ai", valid_form(ai_api_key_remove="1")).status_code == 302
    assert stored("ai_api_key") == "" and current(app, "ai_api_key") == ""
    assert "No API key is saved" in soup(web.get("/admin/ai")).select_one("#ai-settings").text
    with app.app_context():
        assert not generate.status(Team.get()).enabled


def test_prices_equal_to_the_defaults_follow_the_provider_and_a_row_can_be_added_and_removed(app, web, admin):
    defaults = costs.default_prices()
    form = valid_form()
    for i, (model, price) in enumerate(sorted(defaults.items())):
        form.update({f"price.{i}.model": model, f"price.{i}.input": str(price["input_per_million"]),
                     f"price.{i}.output": str(price["output_per_million"])})
    assert web.post("/admin/ai", form).status_code == 302
    assert stored("ai_prices") == {}  # stored as "the defaults", so a new default list applies

    added = web.post("/admin/ai", dict(form, add_price_row="1"), htmx=True)  # "Add a row": nothing saved
    assert added.status_code == 200
    rows = soup(added).select("#ai-prices .ai-price-row")
    assert len(rows) == len(defaults) + 1 and rows[-1].select_one("input[name$='.model']")["value"] == ""
    assert stored("ai_prices") == {}

    form[f"price.{len(defaults)}.model"] = "my-model"
    form[f"price.{len(defaults)}.input"] = "0"
    form[f"price.{len(defaults)}.output"] = "0.5"
    form["price.0.model"] = ""  # an emptied model removes its row
    form["price.0.input"] = form["price.0.output"] = ""
    assert web.post("/admin/ai", form).status_code == 302
    saved = stored("ai_prices")
    assert saved["my-model"] == {"input_per_million": 0.0, "output_per_million": 0.5}
    assert sorted(defaults)[0] not in saved and len(saved) == len(defaults)


@pytest.mark.parametrize("changes, field, words", [
    ({"price.0.input": "-1"}, "price.0.input", "a number of 0 or more"),
    ({"price.0.output": "cheap"}, "price.0.output", "a number of 0 or more"),
    ({"price.0.model": ""}, "price.0.model", "Name the model"),
    ({"ai_base_url": "ftp://files.example.com"}, "ai_base_url", "starting with https://"),
    ({"ai_base_url": "https://user:pw@ai.example.com"}, "ai_base_url", "no user name or password"),
    ({"ai_base_url": "not a url"}, "ai_base_url", "starting with https://"),
    ({"ai_default_monthly_budget_usd": "ten"}, "ai_default_monthly_budget_usd", "a number of 0 or more"),
    ({"ai_default_monthly_budget_usd": "nan"}, "ai_default_monthly_budget_usd", "a number of 0 or more"),
    ({"ai_user_requests_per_hour": "-1"}, "ai_user_requests_per_hour", "whole number"),
    ({"ai_user_requests_per_hour": "2.5"}, "ai_user_requests_per_hour", "whole number"),
    ({"ai_model": "gemini 2.5/../x?"}, "ai_model", "model's name"),
    ({"ai_provider": "nobody"}, "ai_provider", "Choose one of the providers"),
    ({"ai_api_key": "two words"}, "ai_api_key", "without spaces"),
])
def test_bad_input_is_refused_at_its_field_and_nothing_is_saved(app, web, admin, changes, field, words):
    before = list(InstanceSetting.select().tuples())
    response = web.post("/admin/ai", valid_form(ai_api_key_remove="", **changes), htmx=True)
    assert response.status_code == 422
    page = soup(response)
    key = field.replace(".", "-")
    assert words in page.select_one(f"#e-{key}").text
    assert page.select_one(f"#f-{key}")["aria-invalid"] == "true"
    assert list(InstanceSetting.select().tuples()) == before
    if field != "ai_api_key":  # what was typed comes back (never a key)
        shown = page.select_one(f"#f-{key}")
        assert shown.name == "select" or shown.get("value") == changes[field]


def test_test_connection_shows_the_providers_answer(web, admin, gemini):
    gemini.reply(text="Hello from the stub")
    response = web.post("/admin/ai/test", htmx=True)
    assert response.status_code == 200
    assert "Connection works." in response.get_data(as_text=True)
    assert "Hello from the stub" in soup(response).text
    assert len(gemini.requests) == 1 and gemini.requests[0]["headers"].get("x-goog-api-key") == "test-key"


def test_test_connection_says_the_key_was_refused(web, admin, gemini):
    gemini.fail(403, message="API key not valid.")
    response = web.post("/admin/ai/test", htmx=True)
    assert response.status_code == 422
    assert "Test failed." in soup(response).text and "refused the API key" in soup(response).text


def test_test_connection_says_it_could_not_reach_a_server_that_is_down(app, web, admin, gemini):
    app.config["GEMINI_BASE_URL"] = f"http://127.0.0.1:{free_port()}"
    response = web.post("/admin/ai/test", htmx=True)
    assert response.status_code == 422
    assert "Could not reach" in soup(response).text


def test_test_connection_without_a_key_says_how_to_turn_ai_on(web, admin):
    response = web.post("/admin/ai/test")
    assert response.status_code == 422
    assert "Admin > AI" in soup(response).select_one(".flash-error").text


def test_only_the_instance_admin_gets_in(app, web, admin):
    team = Team.get()
    _, team_admin = make_member(app, team, "admin", "teamadmin@example.com")
    for method, path in (("get", "/admin/ai"), ("post", "/admin/ai"), ("post", "/admin/ai/test"),
                         ("post", f"/admin/ai/teams/{team.id}")):
        response = getattr(team_admin, method)(path, **({} if method == "get" else {"data": valid_form()}))
        assert response.status_code == 403, (method, path)
    assert InstanceSetting.select().where(InstanceSetting.key.startswith("ai_")).count() == 0
    assert Team.get_by_id(team.id).ai_enabled


def test_a_team_row_turns_ai_off_and_generate_refuses_with_the_words(app, web, admin, gemini):
    team = Team.get()
    response = web.post(f"/admin/ai/teams/{team.id}", {"ai_monthly_budget_usd": "4.5"}, htmx=True)  # unchecked
    assert response.status_code == 200
    row = soup(response).select_one(f"tr#ai-team-{team.id}")
    assert "Saved." in row.text and not row.select_one("input[name=ai_enabled]").has_attr("checked")
    team = Team.get_by_id(team.id)
    assert team.ai_enabled is False and team.ai_monthly_budget_usd == 4.5
    with app.app_context():
        with pytest.raises(generate.AiError) as refused:
            generate.generate(team, admin, "subject_lines", {"brief": "Spring sale"})
    assert refused.value.message == generate.TEAM_OFF
    assert gemini.requests == []

    web.post(f"/admin/ai/teams/{team.id}", {"ai_enabled": "1", "ai_monthly_budget_usd": ""})
    team = Team.get_by_id(team.id)
    assert team.ai_enabled is True and team.ai_monthly_budget_usd is None  # empty = the instance default


def test_a_bad_team_budget_is_refused_in_its_row_and_nothing_changes(web, admin):
    team = Team.get()
    response = web.post(f"/admin/ai/teams/{team.id}", {"ai_monthly_budget_usd": "-3"}, htmx=True)
    assert response.status_code == 422
    assert "a number of 0 or more" in soup(response).select_one(f"#e-ai-team-{team.id}-budget").text
    team = Team.get_by_id(team.id)
    assert team.ai_enabled is True and team.ai_monthly_budget_usd is None
    full = web.post(f"/admin/ai/teams/{team.id}", {"ai_enabled": "1", "ai_monthly_budget_usd": "lots"})
    assert full.status_code == 422 and soup(full).select_one(f"#e-ai-team-{team.id}-budget")


def test_a_team_that_does_not_exist_is_not_found(web, admin):
    missing = Team.select().order_by(Team.id.desc()).first().id + 100
    assert web.post(f"/admin/ai/teams/{missing}", {"ai_enabled": "1"}).status_code == 404


def test_every_team_is_listed_with_what_it_spent_this_month(app, web, admin):
    acme = Team.get()
    other = Team.create(name="Zeta Works", ai_monthly_budget_usd=2.0)
    for team, micros in ((acme, 1_250_000), (acme, 250_000), (other, 40_000)):
        AiGeneration.create(team=team, prompt="subject_lines", version="v1", model="gemini-2.5-flash",
                            input_hash="h", inputs={}, output={}, cost_micros=micros)
    page = soup(web.get("/admin/ai"))
    acme_row, other_row = page.select_one(f"#ai-team-{acme.id}"), page.select_one(f"#ai-team-{other.id}")
    assert "$1.50" in acme_row.text and "of $10.00" in acme_row.text
    assert "$0.04" in other_row.text and "of $2.00" in other_row.text
    assert other_row.select_one("input[name=ai_monthly_budget_usd]")["value"] == "2"


def test_the_prompts_are_listed_with_their_versions_and_use_counts(app, web, admin):
    with app.app_context():
        every = prompts.all_prompts()
    assert every, "no prompt files found"
    first = every[0]
    AiGeneration.create(team=Team.get(), prompt=first.name, version=first.version, model="gemini-2.5-flash",
                        input_hash="h", inputs={}, output={}, cache_hits=2)
    rows = soup(web.get("/admin/ai")).select("#ai-prompts tbody tr")
    assert len(rows) == len(every)
    cells = [cell.text.strip() for cell in rows[0].select("th, td")]
    assert cells[0] == first.name and cells[1] == first.version and cells[-1] == "3"  # one call + two cache hits
    assert cells[3] == first.description


def test_a_key_from_the_environment_is_named_and_can_be_replaced(app, web, admin, gemini):
    page = soup(web.get("/admin/ai"))
    assert "comes from the server's LOFT_GEMINI_API_KEY" in page.select_one("#ai-settings").text
    assert page.select_one("#f-ai_api_key_remove") is None  # nothing saved here to remove
    web.post("/admin/ai", valid_form(ai_api_key=SECRET_KEY, ai_base_url=gemini.base_url))
    assert current(app, "ai_api_key") == SECRET_KEY
    assert "A key is saved (ends in …9f3d)" in soup(web.get("/admin/ai")).select_one("#ai-settings").text


def test_a_model_without_a_price_is_saved_with_a_warning(app, web, admin):
    response = web.post("/admin/ai", valid_form(ai_model="gemini-3-ultra"), follow_redirects=True)
    assert current(app, "ai_model") == "gemini-3-ultra"
    warning = soup(response).select_one("#flashes .flash-warning")
    assert "no row for gemini-3-ultra" in warning.text
    priced = web.post("/admin/ai", valid_form(), follow_redirects=True)
    assert soup(priced).select_one("#flashes .flash-warning") is None


def test_a_large_team_budget_is_shown_as_typed(web, admin):
    team = Team.get()
    web.post(f"/admin/ai/teams/{team.id}", {"ai_enabled": "1", "ai_monthly_budget_usd": "250000.5"})
    row = soup(web.get("/admin/ai")).select_one(f"#ai-team-{team.id}")
    assert row.select_one("input[name=ai_monthly_budget_usd]")["value"] == "250000.5"
    assert "of $250,000.50" in row.text


def test_a_provider_outage_is_words_not_a_500(web, admin, gemini):
    gemini.fail(500, message="Internal error encountered.")
    response = web.post("/admin/ai/test", htmx=True)
    assert response.status_code == 422
    failure = soup(response).select_one(".flash-error")
    assert failure.text.startswith("Test failed.") and len(failure.text) > len("Test failed. ")


def test_team_names_are_shown_as_text(web, admin):
    hostile = Team.create(name='<img src=x onerror="alert(1)">')
    response = web.get("/admin/ai")
    assert '<img src=x onerror="alert(1)">' not in response.get_data(as_text=True)
    assert soup(response).select_one(f"#ai-team-{hostile.id} th").text == hostile.name
