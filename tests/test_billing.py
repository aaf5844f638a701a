"""Billing: the plans' arithmetic, months in the team's time zone (with DST), the meter page, the CSV statement,
Admin > Billing (plans, a team's plan and cap), roles and another team's months."""
import csv
import datetime
import decimal
import io

import pytest

from app import usage
from app.billing import meter
from app.billing import plans
from app.models import Team
from app.models import UsageCount
from tests.accounts_support import make_member
from tests.conftest import soup

D = decimal.Decimal


# --- Arithmetic -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("emails, due", [(0, "0.00"), (10_000, "0.00"), (10_001, "0.00"), (10_020, "0.01"),
                                         (25_000, "3.75"), (250_000, "60.00"), (15_500, "1.38"),
                                         (1_000_000_000, "249997.50")])
def test_the_default_plan_free_10000_then_25_cents_per_1000_pro_rata_to_the_cent(ctx, emails, due):
    plan = plans.default_plan()
    assert (plan.key, plan.free_emails, plan.price_per_thousand, plan.currency) == ("standard", 10000, D("0.25"), "USD")
    amount = plan.amount_due(emails)
    assert isinstance(amount, D) and amount == D(due)
    assert plan.money(plan.amount_due(25_000)) == "$3.75"
    assert plan.money(plan.amount_due(250_000)) == "$60.00"


def test_plans_are_saved_checked_and_assigned(ctx):
    team = Team.create(name="Acme")
    saved = plans.save_plans([{"key": "standard", "name": "Standard", "free_emails": "10,000",
                               "price_per_thousand": "0.25", "currency": "usd"},
                              {"key": "pro", "name": "Pro", "free_emails": "0", "price_per_thousand": "0.1234",
                               "currency": "EUR"}], "pro")
    assert [p.key for p in saved] == ["standard", "pro"] and plans.default_plan().key == "pro"
    assert plans.plan_for(team).key == "pro"  # no plan of its own: the default
    team.billing_plan = "standard"
    assert plans.plan_for(team).amount_due(25_000) == D("3.75")
    assert plans.plan_for(Team(billing_plan="gone")).key == "pro"  # a plan no longer offered: the default
    assert plans.default_plan().amount_due(1000) == D("0.12") and plans.default_plan().money(D("1234.5")) == "€1,234.50"
    for bad, field in [({"price_per_thousand": "0.1.2"}, "price_per_thousand-1"), ({"price_per_thousand": "-1"},
                       "price_per_thousand-1"), ({"free_emails": "lots"}, "free_emails-1"), ({"key": "Big Plan"}, "key-1"),
                       ({"currency": "dollars"}, "currency-1"), ({"price_per_thousand": "NaN"}, "price_per_thousand-1")]:
        row = dict({"key": "x", "name": "X", "free_emails": "1", "price_per_thousand": "1", "currency": "USD"}, **bad)
        with pytest.raises(plans.PlanError) as refused:
            plans.save_plans([row], "x")
        assert refused.value.field == field and refused.value.message.startswith("Plan 1: ")
    with pytest.raises(plans.PlanError, match="same key"):
        plans.save_plans([{"key": "a", "name": "A", "free_emails": 1, "price_per_thousand": 1, "currency": "USD"}] * 2, "a")
    assert [p.key for p in plans.all_plans()] == ["standard", "pro"]  # nothing saved by the refusals


# --- Months in the team's time zone ---------------------------------------------------------------------------

def test_a_message_sent_on_31_january_2330_utc_by_a_team_in_tokyo_counts_for_february(ctx):
    tokyo, utc_team = Team.create(name="Tokyo", time_zone="Asia/Tokyo"), Team.create(name="London", time_zone="UTC")
    at = datetime.datetime(2026, 1, 31, 23, 30)
    usage.count_sent(tokyo.id, 3, at)
    usage.count_sent(utc_team.id, 3, at)
    assert usage.usage_for(tokyo, 2, now=at) == [("2026-01", 0), ("2026-02", 3)]
    assert usage.usage_for(utc_team, 2, now=at) == [("2025-12", 0), ("2026-01", 3)]
    assert usage.month_bounds("2026-02", tokyo) == (datetime.datetime(2026, 1, 31, 15), datetime.datetime(2026, 2, 28, 15))
    # Westwards: 00:30 UTC on 1 March is still February in New York.
    york = Team.create(name="York", time_zone="America/New_York")
    usage.count_sent(york.id, 2, datetime.datetime(2026, 3, 1, 0, 30))
    assert usage.month_key(york, datetime.datetime(2026, 3, 1, 0, 30)) == "2026-02"
    assert UsageCount.get(UsageCount.team == york).month == "2026-02"


def test_a_dst_month_is_as_long_as_it_really_is_and_the_projection_uses_it(ctx):
    berlin = Team.create(name="Berlin", time_zone="Europe/Berlin")
    start, end = usage.month_bounds("2026-03", berlin)  # clocks go forward on 29 March: one hour short
    assert start == datetime.datetime(2026, 2, 28, 23) and end == datetime.datetime(2026, 3, 31, 22)
    assert (end - start) == datetime.timedelta(days=31, hours=-1)
    start, end = usage.month_bounds("2026-10", berlin)  # and back on 25 October: one hour long
    assert (end - start) == datetime.timedelta(days=31, hours=1)
    # Half-way through March (by real elapsed time) with 1,000 sent: a projection of 2,000.
    middle = start_march = usage.month_bounds("2026-03", berlin)[0]
    middle = start_march + (usage.month_bounds("2026-03", berlin)[1] - start_march) / 2
    assert meter.projection(berlin, 1000, middle) == 2000
    assert meter.projection(berlin, 0, middle) == 0


# --- The meter page and the statement ---------------------------------------------------------------

def test_a_new_team_sees_the_empty_state(web, team):
    page = soup(web.get("/billing"))
    assert page.select_one("#billing-empty") is not None and "Nothing sent yet" in page.text
    assert "Free 10,000 emails a month, then $0.25 per 1,000" in page.text
    assert page.select_one("#billing-month") is None


def test_the_meter_shows_the_month_by_stream_and_domain_the_amount_the_projection_and_past_months(web, team):
    now = usage.local_now(team)
    usage.count_sent(team.id, 20_000, stream="marketing", domain="acme.test")
    usage.count_sent(team.id, 5_000, stream="transactional", domain="mail.acme.test")
    usage.count_sent(team.id, 250_000, now=datetime.datetime(now.year - 1, 6, 15), domain="acme.test")
    page = soup(web.get("/billing"))
    assert page.select_one("#billing-marketing").text == "20,000"
    assert page.select_one("#billing-transactional").text == "5,000"
    assert page.select_one("#billing-total").text.strip() == "25,000"
    assert page.select_one("#billing-due").text.strip() == "$3.75"
    assert "a projection" in page.select_one("#billing-month").text
    projected = int(page.select_one("#billing-projection").text.split()[0].replace(",", ""))
    assert projected >= 25_000
    domains = [[c.text.strip() for c in row.select("th, td")] for row in page.select("#billing-domains tbody tr")]
    assert domains == [["acme.test", "20,000", "0"], ["mail.acme.test", "0", "5,000"]]
    assert page.select_one("#billing-months svg") is not None
    history = {row.th.text: [c.text.strip() for c in row.select("td")] for row in page.select("#billing-history tbody tr")}
    month = usage.month_key(team)
    assert history[month][:2] == ["25,000", "$3.75"]
    last_june = f"{now.year - 1}-06"
    if last_june in history:  # within the last twelve months
        assert history[last_june][:2] == ["250,000", "$60.00"]


def test_the_csv_statement_has_the_figures_and_no_formula_cells(web, team):
    team.name = "=HYPERLINK(\"http://evil.example\")"
    team.save()
    usage.count_sent(team.id, 25_000, domain="acme.test")
    usage.count_sent(team.id, 7, stream="transactional", domain="-cmd.example")
    month = usage.month_key(team)
    response = web.get(f"/billing/statements/{month}.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and f"-{month}.csv" in disposition and "\"" not in disposition[22:-1]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == ["Loft statement", "'=HYPERLINK(\"http://evil.example\")"]
    assert ["marketing", "acme.test", "25000"] in rows and ["transactional", "'-cmd.example", "7"] in rows
    figures = {row[0]: row[2] for row in rows if len(row) == 3 and row[1] == ""}
    assert figures["Total emails"] == "25007" and figures["Billable emails"] == "15007"
    assert figures["Amount due (USD)"] == "3.75"  # 15,007 x $0.25 / 1,000 = $3.75175
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)
    assert figures["AI tokens (not in the amount above)"] == "0"


def test_statements_of_months_the_team_never_sent_in_or_of_another_team_are_404(web, team, app):
    other = Team.create(name="Other")
    usage.count_sent(other.id, 5, datetime.datetime(2024, 5, 5))
    assert web.get("/billing/statements/2024-05.csv").status_code == 404  # another team's month, not ours
    for bad in ("2024-13", "24-05", "../../etc", "2024-05x"):
        assert web.get(f"/billing/statements/{bad}.csv").status_code == 404
    usage.count_sent(team.id, 1, datetime.datetime(2024, 5, 5))
    assert web.get("/billing/statements/2024-05.csv").status_code == 200


def test_only_administrators_see_billing(app, web, team):
    for role in ("manager", "author", "guest"):
        _user, client = make_member(app, team, role)
        assert client.get("/billing").status_code == 403, role
        assert client.get(f"/billing/statements/{usage.month_key(team)}.csv").status_code == 403, role


# --- Admin > Billing -------------------------------------------------------------------------------------

def test_admin_edits_plans_and_refuses_a_bad_one_in_place(ctx, web, admin):
    page = soup(web.get("/admin/billing"))
    assert page.select_one("#f-key-1")["value"] == "standard" and page.select_one("#f-price_per_thousand-1")["value"] == "0.25"
    form = {"key-1": "standard", "name-1": "Standard", "free_emails-1": "10000", "price_per_thousand-1": "0.25",
            "currency-1": "USD", "key-2": "bulk", "name-2": "Bulk", "free_emails-2": "0", "price_per_thousand-2": "abc",
            "currency-2": "USD", "default_plan": "standard"}
    refused = web.post("/admin/billing", form)
    assert refused.status_code == 422
    page = soup(refused)
    assert "Plan 2: The price per 1,000" in page.select_one("#billing-plans-error").text
    assert page.select_one("#f-price_per_thousand-2")["aria-invalid"] == "true"
    assert page.select_one("#f-price_per_thousand-2")["value"] == "abc"  # what was typed comes back
    form["price_per_thousand-2"] = "0.10"
    assert web.post("/admin/billing", form).status_code == 302
    assert [p.key for p in plans.all_plans()] == ["standard", "bulk"]


def test_admin_sets_a_teams_plan_and_cap_and_an_unknown_team_is_404(web, admin, team):
    plans.save_plans([{"key": "standard", "name": "Standard", "free_emails": 10000, "price_per_thousand": "0.25",
                       "currency": "USD"}, {"key": "bulk", "name": "Bulk", "free_emails": 0, "price_per_thousand": "0.1",
                                            "currency": "USD"}], "standard")
    assert web.post(f"/admin/billing/teams/{team.id}", {"plan": "bulk", "monthly_email_cap": "50,000"}).status_code == 302
    fresh = Team.get_by_id(team.id)
    assert (fresh.billing_plan, fresh.monthly_email_cap) == ("bulk", 50000)
    assert web.post(f"/admin/billing/teams/{team.id}", {"plan": "bulk", "monthly_email_cap": "lots"}).status_code == 302
    assert Team.get_by_id(team.id).monthly_email_cap == 50000  # refused, kept
    assert web.post(f"/admin/billing/teams/{team.id}", {"plan": "nope", "monthly_email_cap": ""}).status_code == 302
    assert Team.get_by_id(team.id).billing_plan == "bulk"
    assert web.post("/admin/billing/teams/999999", {"plan": "", "monthly_email_cap": "5"}).status_code == 404
    assert web.post(f"/admin/billing/teams/{team.id}", {"monthly_email_cap": "", "next": "//evil.example/"}) \
        .headers["Location"].startswith("/admin/billing")
    assert Team.get_by_id(team.id).monthly_email_cap is None


def test_a_team_administrator_cannot_open_admin_billing(app, team):
    _user, client = make_member(app, team, "admin", email="teamadmin@example.com")
    assert client.get("/admin/billing").status_code == 403
    assert client.post(f"/admin/billing/teams/{team.id}", {"csrf_token": "x", "monthly_email_cap": "1"}).status_code in (400, 403)
    assert Team.get_by_id(team.id).monthly_email_cap is None


def test_the_meter_shows_the_cap_and_a_suspension_with_its_reason(web, team):
    from app.teams import standing
    standing.set_cap(team, 1000)
    usage.count_sent(team.id, 800, domain="acme.test")
    page = soup(web.get("/billing"))
    assert page.select_one("#billing-cap-meter")["value"] == "800"
    assert "800 of the 1,000 emails a month" in page.select_one("#billing-cap-text").text
    standing.suspend(team, "Unpaid invoices", by_user=None)
    banner = soup(web.get("/billing")).select_one("#billing-suspended")
    assert banner is not None and "Unpaid invoices" in banner.text


def test_migration_0065_copies_the_old_usage_rows_and_goes_down_and_up_again(ctx):
    from playhouse.migrations import Runner

    from app.cli import MIGRATIONS_DIR
    from app.db import db
    team = Team.create(name="Old", time_zone="UTC")
    runner = Runner(db.obj, MIGRATIONS_DIR)
    assert "0065_billing" in runner.down(target="0065_billing")
    assert "usage_count" not in db.get_tables()
    assert "monthly_email_cap" not in [c.name for c in db.get_columns("team")]
    db.execute_sql('INSERT INTO "usage" ("team_id", "month", "messages_sent") VALUES (%s, %s, %s)'
                   .replace("%s", db.obj.param), (team.id, "2025-11", 1234))
    assert "0065_billing" in runner.up()
    assert usage.usage_for(team, 2, now=datetime.datetime(2025, 12, 5)) == [("2025-11", 1234), ("2025-12", 0)]
    row = UsageCount.get(UsageCount.team == team)
    assert (row.stream, row.domain) == ("marketing", "")
    assert Team.get_by_id(team.id).monthly_email_cap is None and Team.get_by_id(team.id).suspended_at is None


def test_ai_tokens_and_cost_are_read_for_the_teams_month(ctx):
    from app.models import AiGeneration
    tokyo = Team.create(name="Tokyo", time_zone="Asia/Tokyo")
    base = dict(team=tokyo, prompt="subject_lines", version="1", model="gemini-2.5-flash", input_hash="h", inputs={},
                output={})
    AiGeneration.create(**base, input_tokens=1000, output_tokens=500, cost_micros=1_250_000,
                        created_at=datetime.datetime(2026, 1, 31, 16))  # 1 February in Tokyo
    AiGeneration.create(**base, input_tokens=7, output_tokens=3, cost_micros=99,
                        created_at=datetime.datetime(2026, 1, 31, 14))  # still January there
    assert meter.ai_for_month(tokyo, "2026-02") == (1500, D("1.2500"))
    assert meter.ai_for_month(tokyo, "2026-01") == (10, D("0.0001"))
    assert meter.ai_for_month(Team.create(name="Other"), "2026-02") == (0, D("0.0000"))


def test_contacts_stored_read_the_fresh_roll_up_else_are_counted(ctx):
    from app.models import Contact
    from app.models import ContactCount
    from app.models import utcnow
    team = Team.create(name="Acme")
    for i in range(3):
        Contact.create(team=team, email=f"c{i}@example.com", domain="example.com")
    assert meter.contacts_stored(team) == 3  # no roll-up yet: counted
    ContactCount.create(team=team, total=1_000_000, active=900_000, counted_at=utcnow())
    assert meter.contacts_stored(team) == 1_000_000
    ContactCount.update(counted_at=utcnow() - datetime.timedelta(hours=1)).execute()
    assert meter.contacts_stored(team) == 3  # stale (a stopped worker): counted again
