"""Warm-up plans (issue 15): presets (double daily to a target, a fixed cap, custom), their length in days,
the same plan on a sender domain, and the forms that set them, with each bad value refused at its field.
The engine's side (the lower of account and domain allowance, the automatic continuation, most engaged
first) is in tests/test_warmup_engine.py."""
import datetime

import pytest

from app.models import Campaign
from app.models import SenderDomain
from app.models import SmtpAccount
from app.models import Team
from app.models import utcnow
from app.senders import domains
from app.senders import warmup
from tests.accounts_support import make_member
from tests.conftest import soup

START = datetime.date(2026, 3, 2)


def plan(preset="double", first_day=50, growth=100, target=0, per_day=None, started=START):
    values = dict(warmup_started_on=started, warmup_preset=preset, warmup_first_day=first_day,
                  warmup_growth_percent=growth, warmup_target=target)
    if per_day is None:
        return SenderDomain(id=1, domain="acme.test", **values)
    return SmtpAccount(id=1, name="Relay", per_day=per_day, **values)


def day(n):
    return START + datetime.timedelta(days=n)


# --- The plan maths -----------------------------------------------------------------------------------

def test_double_daily_doubles_from_the_first_day_to_the_target_and_says_how_many_days():
    doubling = plan("double", first_day=50, target=800, growth=7)  # a stored growth is ignored: ×2 a day
    assert [warmup.limit(doubling, day(n)) for n in range(6)] == [50, 100, 200, 400, None, None]
    assert warmup.length(doubling) == 4  # day 5 is full volume: 800 a day
    assert warmup.in_words(doubling, day(2)) == ("Warming up: day 3 of 4, 200 messages today, "
                                                 "full volume (800 a day) in about 2 days")
    assert warmup.describe(doubling) == "Doubles daily from 50 to 800 a day (4 days)"
    # A target between two doublings: the last day under it still counts, then full volume.
    assert [warmup.limit(plan("double", first_day=50, target=700), day(n)) for n in range(5)] == [
        50, 100, 200, 400, None]


def test_a_fixed_cap_is_the_same_every_day_and_never_ends():
    fixed = plan("fixed", first_day=600, growth=50, target=5000)
    assert {warmup.limit(fixed, day(n)) for n in (0, 1, 30, 10_000)} == {600}
    assert warmup.length(fixed) is None and warmup.days_left(fixed, day(3)) == 0
    assert warmup.in_words(fixed, day(3)) == "Warming up: a fixed cap of 600 messages a day"
    assert warmup.describe(fixed) == "Fixed cap: 600 messages a day"
    account = plan("fixed", first_day=600, per_day=400)
    assert warmup.daily_cap(account, day(9)) == 400  # the lower of the two


def test_custom_ramps_by_its_percentage_to_its_target_or_to_the_accounts_daily_limit():
    custom = plan("custom", first_day=100, growth=50, target=1000)
    assert [warmup.limit(custom, day(n)) for n in range(7)] == [100, 150, 225, 337, 506, 759, None]
    assert warmup.length(custom) == 6
    assert warmup.describe(custom) == "100 on day 1, +50 % a day, to 1,000 a day (6 days)"
    # An account: the lower of target and per_day ends it; without a target, per_day does.
    assert warmup.length(plan("custom", first_day=100, growth=50, target=1000, per_day=300)) == 3
    assert warmup.length(plan("custom", first_day=100, growth=50, target=0, per_day=300)) == 3
    # Without either: 250,000 a day.
    assert warmup.length(plan("custom", first_day=50, growth=50, target=0)) == 22


def test_length_agrees_with_the_days_the_schedule_holds_back_for_many_plans():
    for first_day in (1, 7, 50, 999):
        for growth in (1, 13, 50, 100, 200):
            for target in (first_day + 1, 1000, 123_457):
                if target <= first_day:
                    continue
                p = plan("custom", first_day=first_day, growth=growth, target=target)
                days = warmup.length(p)
                assert warmup.limit(p, day(days - 1)) is not None and warmup.limit(p, day(days)) is None
                assert warmup.days_left(p, day(0)) == days


def test_a_first_day_at_the_target_holds_nothing_back():
    assert warmup.length(plan("custom", first_day=500, growth=10, target=500)) == 0
    assert warmup.limit(plan("custom", first_day=500, growth=10, target=500), day(0)) is None


# --- The account form ---------------------------------------------------------------------------------

def acme():
    return Team.get(Team.name == "Acme")


def account_form(**overrides):
    form = {"preset": "generic", "name": "Relay", "host": "smtp.example.com", "port": "587", "tls_mode": "starttls",
            "username": "", "password": "", "per_second": "0", "per_hour": "0", "per_day": "0",
            "max_connections": "2", "weight": "1", "warmup": "1", "warmup_first_day": "50",
            "warmup_growth_percent": "50", "warmup_target": ""}
    form.update(overrides)
    return form


def test_the_account_form_offers_the_three_presets_and_saves_a_double_daily_plan(admin, web):
    page = soup(web.get("/sending/accounts/new?preset=generic"))
    assert [r["value"] for r in page.select("input[name=warmup_preset]")] == ["double", "fixed", "custom"]
    assert page.select_one("label[for=f-warmup_target]").get_text() == "Target a day"
    response = web.post("/sending/accounts/new", account_form(warmup_preset="double", warmup_first_day="50",
                                                             warmup_target="3200"))
    assert response.status_code == 302
    account = SmtpAccount.get()
    assert (account.warmup_preset, account.warmup_first_day, account.warmup_growth_percent,
            account.warmup_target, account.warmup_started_on) == ("double", 50, 100, 3200, utcnow().date())
    card = soup(web.get("/sending/accounts")).select_one(f"#account-{account.id}")
    assert card.select_one(".warmup").get_text() == ("Warming up: day 1 of 6, 50 messages today, "
                                                     "full volume (3,200 a day) in about 6 days")
    assert card.select_one(".warmup-plan").get_text() == "Doubles daily from 50 to 3,200 a day (6 days)"
    assert card.select_one(".sent").get_text().endswith("in the last 24 hours of 50 today")
    edit = soup(web.get(f"/sending/accounts/{account.id}/edit"))
    assert edit.select_one("input[name=warmup_preset][value=double]").has_attr("checked")


def test_a_fixed_cap_needs_no_increase_or_target(admin, web):
    response = web.post("/sending/accounts/new", account_form(warmup_preset="fixed", warmup_first_day="600",
                                                             warmup_growth_percent="", warmup_target="junk"))
    assert response.status_code == 302
    account = SmtpAccount.get()
    assert (account.warmup_preset, account.warmup_first_day, account.warmup_target) == ("fixed", 600, 0)
    assert warmup.limit(account, utcnow().date() + datetime.timedelta(days=90)) == 600


@pytest.mark.parametrize("overrides, field, message", [
    ({"warmup_preset": "double", "warmup_target": ""}, "warmup_target", "Target a day: enter a whole number."),
    ({"warmup_preset": "double", "warmup_target": "50"}, "warmup_target",
     "Target a day: enter more than the first day's 50 messages, or choose a fixed cap."),
    ({"warmup_preset": "custom", "warmup_target": "20000000"}, "warmup_target", "Target a day: enter at most 10,000,000."),
    ({"warmup_preset": "weekly"}, "warmup_preset", "Choose a warm-up plan: double daily, a fixed cap, or custom."),
    ({"warmup_preset": "fixed", "warmup_first_day": "0"}, "warmup_first_day", "Messages on the first day: enter 1 or more."),
])
def test_each_bad_plan_value_is_refused_at_its_field_and_nothing_is_stored(admin, web, overrides, field, message):
    response = web.post("/sending/accounts/new", account_form(**overrides))
    assert response.status_code == 422
    page = soup(response)
    assert page.select_one(f"#e-{field}").get_text() == message
    assert SmtpAccount.select().count() == 0


# --- The sender domain's plan -------------------------------------------------------------------------

def add_domain(app, team, name):
    with app.app_context():  # the DKIM key is encrypted with the app's key
        return domains.add_domain(team, name)


def domain_form(**overrides):
    form = {"warmup": "1", "warmup_preset": "double", "warmup_first_day": "50", "warmup_growth_percent": "",
            "warmup_target": "800"}
    form.update(overrides)
    return form


def test_a_domain_gets_a_plan_on_its_page_and_the_page_shows_it_and_todays_use(app, admin, web):
    row = add_domain(app, acme(), "acme.test")
    page = soup(web.get(f"/sending/domains/{row.id}"))
    assert "No warm-up plan" in page.select_one("#warmup .empty-plan").get_text()
    response = web.post(f"/sending/domains/{row.id}/warmup", domain_form())
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/sending/domains/{row.id}#warmup")
    stored = SenderDomain.get_by_id(row.id)
    assert (stored.warmup_preset, stored.warmup_first_day, stored.warmup_target, stored.warmup_started_on) == (
        "double", 50, 800, utcnow().date())
    page = soup(web.get(f"/sending/domains/{row.id}"))
    assert page.select_one("#warmup .warmup-plan").get_text() == "Doubles daily from 50 to 800 a day (4 days)"
    assert page.select_one("#warmup .warmup").get_text() == ("Warming up: day 1 of 4, 50 messages today, "
                                                             "full volume (800 a day) in about 4 days")
    assert page.select_one("#warmup .sent").get_text() == "0 From acme.test in the last 24 hours of 50 today"

    # Turned off: cleared, and the numbers it no longer uses are not checked.
    assert web.post(f"/sending/domains/{row.id}/warmup", {"warmup_first_day": "-4"}).status_code == 302
    assert SenderDomain.get_by_id(row.id).warmup_started_on is None


def test_a_bad_domain_plan_is_refused_at_its_field_and_the_stored_plan_is_kept(app, admin, web):
    row = add_domain(app, acme(), "acme.test")
    web.post(f"/sending/domains/{row.id}/warmup", domain_form(warmup_preset="fixed", warmup_first_day="300"))
    response = web.post(f"/sending/domains/{row.id}/warmup", domain_form(warmup_target="10"))
    assert response.status_code == 422
    page = soup(response)
    assert page.select_one("#e-warmup_target").get_text() == (
        "Target a day: enter more than the first day's 50 messages, or choose a fixed cap.")
    assert page.select_one("#f-warmup_target")["value"] == "10"  # what was typed stays
    stored = SenderDomain.get_by_id(row.id)
    assert (stored.warmup_preset, stored.warmup_first_day) == ("fixed", 300)


@pytest.mark.parametrize("role", ["manager", "author", "guest"])
def test_only_administrators_set_a_domains_plan(app, admin, role):
    row = add_domain(app, acme(), "acme.test")
    _, member = make_member(app, acme(), role)
    assert member.post(f"/sending/domains/{row.id}/warmup", domain_form()).status_code == 403
    assert SenderDomain.get_by_id(row.id).warmup_started_on is None


def test_another_teams_domain_is_not_found_and_keeps_no_plan(app, admin, web):
    theirs = add_domain(app, Team.create(name="Other"), "other.test")
    assert web.post(f"/sending/domains/{theirs.id}/warmup", domain_form()).status_code == 404
    assert SenderDomain.get_by_id(theirs.id).warmup_started_on is None


def test_the_domain_plan_form_answers_htmx_with_its_card_or_a_redirect(app, admin, web):
    row = add_domain(app, acme(), "acme.test")
    refused = web.post(f"/sending/domains/{row.id}/warmup", domain_form(warmup_first_day="abc"), htmx=True)
    assert refused.status_code == 422
    card = soup(refused)
    assert card.select_one("section#warmup") is not None and card.select_one("h1") is None  # the card alone
    assert card.select_one("#e-warmup_first_day").get_text() == "Messages on the first day: enter a whole number."
    saved = web.post(f"/sending/domains/{row.id}/warmup", domain_form(), htmx=True)
    assert saved.headers["HX-Redirect"] == f"/sending/domains/{row.id}"
    assert SenderDomain.get_by_id(row.id).warmup_target == 800


def test_saving_a_plan_releases_the_teams_campaigns_waiting_under_the_old_one(app, admin, web):
    row = add_domain(app, acme(), "acme.test")
    later = utcnow() + datetime.timedelta(hours=20)
    mine = Campaign.create(team=acme(), name="Mine", state="sending", waiting_until=later)
    theirs = Campaign.create(team=Team.create(name="Other"), name="Theirs", state="sending", waiting_until=later)
    assert web.post(f"/sending/domains/{row.id}/warmup", domain_form(target="5000")).status_code == 302
    assert Campaign.get_by_id(mine.id).waiting_until is None
    assert Campaign.get_by_id(theirs.id).waiting_until == later  # another team's campaigns are not touched
