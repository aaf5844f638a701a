"""The team's AI usage page (/ai/usage): this month's cost against the budget, twelve months of cost, the
prompts used this month, why AI is off when it is, and only the current team's generations counted."""
import datetime

from app.ai import generate
from app.models import AiGeneration
from app.models import Team
from app.models import utcnow
from tests.accounts_support import make_member
from tests.conftest import soup


def add_generation(team, micros, created_at=None, prompt="subject_lines", version="v1", cache_hits=0):
    return AiGeneration.create(team=team, prompt=prompt, version=version, model="gemini-2.5-flash",
                               input_hash=f"h{micros}", inputs={}, output={}, cost_micros=micros,
                               cache_hits=cache_hits, created_at=created_at or utcnow())


def months_ago(count):
    first = utcnow().replace(day=15, hour=12, minute=0, second=0, microsecond=0)
    for _ in range(count):
        first = (first.replace(day=1) - datetime.timedelta(days=1)).replace(day=15)
    return first


def test_no_use_yet_says_what_to_try(web, admin, gemini):
    page = soup(web.get("/ai/usage"))
    assert "No AI use yet: try Suggest subject lines in a campaign" in page.select_one("#ai-empty").text
    assert page.select_one("#ai-empty a")["href"] == "/campaigns/"
    meter = page.select_one("meter#ai-budget-meter")
    assert meter["value"] == "0.0" and meter["max"] == "10.0"
    assert page.select_one("label[for=ai-budget-meter]")
    assert "$0.00 of $10.00 spent (0%)" in page.select_one("#ai-budget-text").text
    assert page.select_one("#ai-off") is None


def test_the_numbers_come_from_the_teams_generations(app, web, admin, gemini):
    team = Team.get()
    gemini.reply(data={"items": [{"subject": f"Subject {i}", "preheader": "Read on"} for i in range(5)]},
                 input_tokens=1_000_000, output_tokens=400_000)  # 0.30 + 1.00 = $1.30 at the default prices
    with app.app_context():
        made = generate.generate(team, admin, "subject_lines", {"brief": "Our spring sale starts Monday"})
        again = generate.generate(team, admin, "subject_lines", {"brief": "Our spring sale starts Monday"})
    assert made.cost_usd == 1.3 and again.cached and len(gemini.requests) == 1
    add_generation(team, 2_000_000, created_at=months_ago(2))
    add_generation(team, 500_000, created_at=months_ago(13))  # older than the twelve months shown

    page = soup(web.get("/ai/usage"))
    assert "$1.30 of $10.00 spent (13%)" in page.select_one("#ai-budget-text").text
    assert page.select_one("meter#ai-budget-meter")["value"] == "1.3"
    months = [[cell.text.strip() for cell in row.select("th, td")] for row in page.select("#ai-months tbody tr")]
    assert len(months) == 12
    assert months[-1] == [utcnow().strftime("%Y-%m"), "$1.30", "1"]
    assert months[-3] == [months_ago(2).strftime("%Y-%m"), "$2.00", "1"]
    assert sum(row[1] != "$0.00" for row in months) == 2
    chart = page.select_one("#ai-months svg.chart")
    assert len(chart.select("rect.chart-bar")) == 2
    assert "$3.30 in total" in chart.select_one("desc").text
    prompt_rows = [[cell.text.strip() for cell in row.select("th, td")]
                   for row in page.select("#ai-prompts-used tbody tr")]
    assert prompt_rows == [[f"subject_lines@{made.prompt.split('@')[1]}", "1", "1", "$1.30"]]


def test_another_teams_generations_are_never_counted(app, web, admin, gemini):
    other = Team.create(name="Other")
    add_generation(other, 7_000_000)
    add_generation(other, 1_000_000, created_at=months_ago(3))
    add_generation(Team.get(Team.name == "Acme"), 10_000)
    page = soup(web.get("/ai/usage"))
    assert "$0.01 of $10.00" in page.select_one("#ai-budget-text").text
    costs_shown = [row.select("td")[0].text for row in page.select("#ai-months tbody tr")]
    assert costs_shown.count("$0.00") == 11 and "$7.00" not in costs_shown and "$1.00" not in costs_shown
    assert [row.select("td")[0].text for row in page.select("#ai-prompts-used tbody tr")] == ["1"]

    _, outsider = make_member(app, other, "guest", "outsider@example.com")
    theirs = soup(outsider.get("/ai/usage"))
    assert "$7.00 of $10.00" in theirs.select_one("#ai-budget-text").text


def test_a_reached_budget_and_no_limit_are_said_in_words(web, admin, gemini):
    team = Team.get()
    team.ai_monthly_budget_usd = 1.0
    team.save()
    add_generation(team, 1_500_000)
    page = soup(web.get("/ai/usage"))
    meter = page.select_one("meter#ai-budget-meter")
    assert meter["value"] == "1.0" and meter["max"] == "1.0"  # the meter stops at full
    assert "$1.50 of $1.00 spent (100%)" in page.select_one("#ai-budget-text").text
    assert "The budget is reached" in page.select_one("#ai-budget").text

    team.ai_monthly_budget_usd = 0  # 0 = no limit
    team.save()
    page = soup(web.get("/ai/usage"))
    assert page.select_one("meter") is None
    assert "This team has no monthly limit" in page.select_one("#ai-budget-text").text


def test_when_ai_is_off_the_page_says_why_and_what_to_do(app, web, admin):
    page = soup(web.get("/ai/usage"))  # no key anywhere
    assert generate.NO_KEY in page.select_one("#ai-off").text
    assert "Once AI is on" in page.select_one("#ai-empty").text and not page.select_one("#ai-empty a")

    app.config["GEMINI_API_KEY"] = "test-key"
    team = Team.get()
    team.ai_enabled = False
    team.save()
    assert generate.TEAM_OFF in soup(web.get("/ai/usage")).select_one("#ai-off").text


def test_every_role_sees_the_page_and_it_is_in_the_menu(app, admin):
    team = Team.get()
    add_generation(team, 20_000)
    for role in ("admin", "manager", "author", "guest"):
        _, member = make_member(app, team, role, f"{role}-member@example.com")
        response = member.get("/ai/usage")
        assert response.status_code == 200, role
        page = soup(response)
        assert "$0.02 of $10.00" in page.select_one("#ai-budget-text").text
        assert page.select_one("nav.mainnav a[href='/ai/usage']")


def test_team_settings_link_to_the_usage_page_and_the_admin_is_sent_on_to_admin_ai(app, web, admin):
    assert soup(web.get("/teams/settings")).select_one("a[href='/ai/usage']")
    assert soup(web.get("/ai/usage")).select_one("#ai-budget a[href='/admin/ai#ai-teams']")
    _, manager = make_member(app, Team.get(), "manager", "manager-member@example.com")
    assert soup(manager.get("/ai/usage")).select_one("a[href^='/admin/ai']") is None
