"""Warm-up of SMTP accounts: a daily cap that starts small and grows each day, held exactly across runs.

The schedule is a pure function (app/senders/warmup.py); the form turns it on and off; the engine holds
it with the same permits as per_day (app/sending/shares.py), so two runs at once send exactly the day's
cap into a real aiosmtpd server on loopback, and the rest waits with the warm-up named in the reason.
Migration 0052 goes down and up again on the test's own database (SQLite, or PostgreSQL under make test-pg)."""
import datetime

import pytest
from playhouse.migrations import Runner

from app.cli import MIGRATIONS_DIR
from app.db import db
from app.models import Send
from app.models import SendPermit
from app.models import SmtpAccount
from app.models import Team
from app.models import utcnow
from app.senders import warmup
from app.senders.accounts import has_capacity
from app.sending import shares
from app.sending.lanes import Lane
from tests.accounts_support import make_member
from tests.conftest import soup
from tests.sending_support import FAST_SENDING
from tests.sending_support import launched
from tests.sending_support import make_account
from tests.sending_support import make_team
from tests.sending_support import run
from tests.sending_support import statuses
from tests.sending_support import two_campaigns_sent_at_once

START = datetime.date(2026, 3, 2)


def warming(first_day=50, growth=50, per_day=0, started=START, **fields):
    return SmtpAccount(id=1, name="Relay", per_hour=0, per_second=0, per_day=per_day, max_connections=2,
                       warmup_started_on=started, warmup_first_day=first_day, warmup_growth_percent=growth,
                       connection_state="ok", last_error="", **fields)


def day(n):
    """The UTC date n days after the warm-up began (day 1 of the warm-up is n=0)."""
    return START + datetime.timedelta(days=n)


# --- The schedule, at its boundaries -----------------------------------------------------------------

def test_the_first_day_allows_the_first_days_volume_and_each_day_grows_by_the_percentage_rounded_down():
    account = warming(first_day=50, growth=50, per_day=1000)
    assert [warmup.limit(account, day(n)) for n in range(9)] == [50, 75, 112, 168, 253, 379, 569, 854, None]
    assert warmup.limit(account, day(-3)) == 50  # a start still to come counts as its first day
    assert warmup.in_words(account, day(2)) == ("Warming up: day 3 of 8, 112 messages today, "
                                                "full volume (1,000 a day) in about 6 days")
    assert warmup.in_words(account, day(7)) == ("Warming up: day 8 of 8, 854 messages today, "
                                                "full volume (1,000 a day) tomorrow")
    assert [warmup.days_left(account, day(n)) for n in (0, 7, 8, 400)] == [8, 1, 0, 0]


def test_rounding_is_exact_where_floating_point_would_lose_a_message():
    # 25 × 1.16 is 28.999999999999996 in floating point: the day's cap is still 29.
    assert warmup.limit(warming(first_day=25, growth=16, per_day=1000), day(1)) == 29
    assert warmup.limit(warming(first_day=3, growth=50, per_day=1000), day(1)) == 4  # 4.5
    assert warmup.limit(warming(first_day=1, growth=1, per_day=1000), day(69)) == 1  # 1.01^69 < 2
    assert warmup.limit(warming(first_day=1, growth=1, per_day=1000), day(70)) == 2


def test_warmup_ends_when_it_reaches_the_daily_limit_and_the_lower_of_the_two_caps_holds():
    account = warming(first_day=100, growth=100, per_day=400)
    assert [warmup.limit(account, day(n)) for n in range(3)] == [100, 200, None]  # 400 is the daily limit
    assert [warmup.daily_cap(account, day(n)) for n in range(3)] == [100, 200, 400]
    assert warmup.limit(warming(first_day=500, per_day=400), day(0)) is None  # starts above it: nothing to do
    assert warmup.daily_cap(warming(first_day=500, per_day=400), day(0)) == 400
    assert warmup.in_words(warming(first_day=500, per_day=400), day(0)) == ""


def test_without_a_daily_limit_warmup_ends_at_full_volume():
    account = warming(first_day=50, growth=50, per_day=0)
    assert warmup.limit(account, day(21)) == 249_394 < warmup.FULL_VOLUME
    assert warmup.limit(account, day(22)) is None and warmup.daily_cap(account, day(22)) == 0
    assert warmup.days_left(account, day(0)) == 22
    assert warmup.limit(account, day(100_000)) is None  # years on: answered without a huge power
    assert "full volume (250,000 a day) in about 22 days" in warmup.in_words(account, day(0))


def test_no_warmup_means_no_cap_of_its_own():
    account = warming(started=None, per_day=700)
    assert warmup.limit(account, day(0)) is None and warmup.daily_cap(account, day(0)) == 700
    assert warmup.in_words(account, day(0)) == "" and warmup.days_left(account, day(0)) == 0
    assert warmup.daily_cap(warming(started=None), day(0)) == 0


def test_an_account_in_warmup_sends_with_permits_and_one_past_it_does_not():
    today = utcnow().date()
    lane = Lane(warming(per_day=0, started=today), {})
    assert lane.capped_account and lane.needs_permit()
    assert not accounts_has_capacity(lane)  # no permit in hand: the rotation passes it by
    lane.permits = 1
    assert accounts_has_capacity(lane)
    finished = Lane(warming(per_day=0, started=today - datetime.timedelta(days=400)), {})
    assert not finished.capped_account and accounts_has_capacity(finished)


def accounts_has_capacity(lane):
    return has_capacity(lane.account, lane.usage())


# --- The form ------------------------------------------------------------------------------------------

def acme():
    return Team.get(Team.name == "Acme")


def account_form(**overrides):
    form = {"preset": "generic", "name": "Relay", "host": "smtp.example.com", "port": "587", "tls_mode": "starttls",
            "username": "", "password": "", "per_second": "0", "per_hour": "0", "per_day": "1000",
            "max_connections": "2", "weight": "1", "warmup_first_day": "40", "warmup_growth_percent": "25"}
    form.update(overrides)
    return form


def stored_account(team, **fields):
    values = dict(name="Relay", host="smtp.example.com", port=587, tls_mode="starttls", per_day=1000,
                  max_connections=2)
    values.update(fields)
    return SmtpAccount.create(team=team, **values)


def test_turning_warmup_on_starts_it_today_and_the_card_says_where_it_stands(admin, web):
    response = web.post("/sending/accounts/new", account_form(warmup="1"))
    assert response.status_code == 302
    account = SmtpAccount.get()
    assert (account.warmup_started_on, account.warmup_first_day, account.warmup_growth_percent) == (
        utcnow().date(), 40, 25)
    card = soup(web.get("/sending/accounts")).select_one(f"#account-{account.id}")
    # 40 × 1.25^14 = 909 is the last day under 1,000.
    assert card.select_one(".warmup").get_text() == ("Warming up: day 1 of 15, 40 messages today, "
                                                     "full volume (1,000 a day) in about 15 days")
    edit = soup(web.get(f"/sending/accounts/{account.id}/edit"))
    assert edit.select_one("#f-warmup").has_attr("checked")
    assert "Warming up: day 1" in edit.select_one("#h-warmup").get_text()
    assert edit.select_one("label[for=f-warmup_first_day]").get_text() == "Messages on the first day"
    assert edit.select_one("#f-warmup_growth_percent")["value"] == "25"


@pytest.mark.parametrize("field, value, message", [
    ("warmup_first_day", "0", "Messages on the first day: enter 1 or more."),
    ("warmup_first_day", "100001", "Messages on the first day: enter at most 100,000."),
    ("warmup_first_day", "", "Messages on the first day: enter a whole number."),
    ("warmup_growth_percent", "0", "Daily increase (%): enter 1 or more."),
    ("warmup_growth_percent", "201", "Daily increase (%): enter at most 200."),
    ("warmup_growth_percent", "half", "Daily increase (%): enter a whole number."),
])
def test_each_bad_warmup_value_gets_its_message_at_the_field(admin, web, field, value, message):
    response = web.post("/sending/accounts/new", account_form(warmup="1", **{field: value}))
    assert response.status_code == 422
    page = soup(response)
    assert page.select_one(f"#e-{field}").get_text() == message
    assert page.select_one(f"#f-{field}")["aria-invalid"] == "true"
    assert page.select_one("#f-warmup").has_attr("checked")  # the choice is kept with the error
    assert SmtpAccount.select().count() == 0


def test_the_limits_are_accepted_at_both_ends(admin, web):
    web.post("/sending/accounts/new", account_form(warmup="1", warmup_first_day="1", warmup_growth_percent="200"))
    web.post("/sending/accounts/new", account_form(name="Big", warmup="1", warmup_first_day="100,000",
                                                   warmup_growth_percent="1"))
    assert sorted(SmtpAccount.select(SmtpAccount.warmup_first_day, SmtpAccount.warmup_growth_percent).tuples()) == [
        (1, 200), (100_000, 1)]


def test_turning_warmup_off_clears_it_and_values_it_no_longer_uses_are_not_checked(admin, web):
    account = stored_account(acme(), warmup_started_on=utcnow().date() - datetime.timedelta(days=2))
    response = web.post(f"/sending/accounts/{account.id}/edit", account_form(warmup_first_day="0"))
    assert response.status_code == 302
    assert SmtpAccount.get_by_id(account.id).warmup_started_on is None
    card = soup(web.get("/sending/accounts")).select_one(f"#account-{account.id}")
    assert card.select_one(".warmup") is None
    assert not soup(web.get(f"/sending/accounts/{account.id}/edit")).select_one("#f-warmup").has_attr("checked")


def test_editing_an_account_in_warmup_keeps_the_day_it_began(admin, web):
    began = utcnow().date() - datetime.timedelta(days=2)
    account = stored_account(acme(), warmup_started_on=began, warmup_first_day=50, warmup_growth_percent=50)
    response = web.post(f"/sending/accounts/{account.id}/edit", account_form(
        warmup="1", warmup_first_day="50", warmup_growth_percent="50", per_day="1000"))
    assert response.status_code == 302
    assert SmtpAccount.get_by_id(account.id).warmup_started_on == began
    card = soup(web.get("/sending/accounts")).select_one(f"#account-{account.id}")
    assert card.select_one(".warmup").get_text() == ("Warming up: day 3 of 8, 112 messages today, "
                                                     "full volume (1,000 a day) in about 6 days")
    # What it has sent is set against today's warm-up cap, not the daily limit it grows towards.
    assert card.select_one(".sent").get_text().endswith("in the last 24 hours of 112 today")


def test_the_icloud_preset_suggests_a_warmup(admin, web):
    form = soup(web.get("/sending/accounts/new?preset=icloud"))
    assert form.select_one("#f-warmup").has_attr("checked")
    assert form.select_one("#f-warmup_first_day")["value"] == "50"
    generic = soup(web.get("/sending/accounts/new?preset=generic"))
    assert not generic.select_one("#f-warmup").has_attr("checked")


@pytest.mark.parametrize("role", ["manager", "author", "guest"])
def test_only_administrators_turn_warmup_on_or_off(app, admin, role):
    team = acme()
    account = stored_account(team)
    _, member = make_member(app, team, role)
    assert member.get(f"/sending/accounts/{account.id}/edit").status_code == 403
    assert member.post(f"/sending/accounts/{account.id}/edit", account_form(warmup="1")).status_code == 403
    assert member.post("/sending/accounts/new", account_form(warmup="1")).status_code == 403
    assert SmtpAccount.get_by_id(account.id).warmup_started_on is None and SmtpAccount.select().count() == 1


def test_another_teams_account_is_not_found(admin, web):
    theirs = stored_account(Team.create(name="Other"), name="Theirs")
    assert web.post(f"/sending/accounts/{theirs.id}/edit", account_form(warmup="1")).status_code == 404
    assert SmtpAccount.get_by_id(theirs.id).warmup_started_on is None


# --- The engine: exact across runs ---------------------------------------------------------------------

LEASE = FAST_SENDING["SEND_LEASE_SECONDS"]


@pytest.fixture
def ctx(ctx):
    """conftest's ctx with fast sending timings."""
    ctx.config.update(FAST_SENDING)
    return ctx


def reached(first_day, name="Loopback"):
    return (f"“{name}” reached its warm-up limit for today ({first_day} messages); sending resumes tomorrow")


def test_two_runs_at_once_send_exactly_the_warmup_days_cap_and_the_rest_waits_for_tomorrow(ctx, smtp):
    ctx.config.update(SEND_PERMIT_BLOCK=5)
    first_day = 13  # not a multiple of the block
    server = smtp(delay=0.005)
    team = make_team()
    account = make_account(team, server.port, max_connections=2, per_second=4, warmup_started_on=utcnow().date(),
                           warmup_first_day=first_day, warmup_growth_percent=50)
    campaigns, results = two_campaigns_sent_at_once(ctx, team)

    assert server.handler.total() == first_day
    counts = [statuses(c) for c in campaigns]
    assert sum(c.get("sent", 0) for c in counts) == first_day
    assert sum(c.get("queued", 0) for c in counts) == 24 - first_day
    assert all(c.get("sent", 0) for c in counts), f"both runs sent through the account: {counts}"
    for result in results.values():
        assert (result.outcome, result.again, result.reason) == ("waiting", True, reached(first_day))
    assert not SendPermit.select().exists()
    assert SmtpAccount.get_by_id(account.id).status == "active"  # waiting for tomorrow is no pause


def test_the_next_day_the_cap_has_grown_and_counts_what_the_last_24_hours_sent(ctx, smtp):
    server = smtp()
    team = make_team()
    campaign, _, account = launched(team, 30, server.port, warmup_started_on=utcnow().date(),
                                    warmup_first_day=10, warmup_growth_percent=50)
    assert run(campaign.id).reason == reached(10)
    assert statuses(campaign) == {"sent": 10, "queued": 20}

    # A day later the cap is 15; the 10 sent in the last 24 hours still count against it.
    SmtpAccount.update(warmup_started_on=utcnow().date() - datetime.timedelta(days=1)).execute()
    assert run(campaign.id).reason == reached(15)
    assert server.handler.total() == 15 and statuses(campaign) == {"sent": 15, "queued": 15}


def test_an_account_held_by_its_hourly_cap_keeps_the_plain_reason(ctx, smtp):
    server = smtp()
    team = make_team()
    campaign, _, _ = launched(team, 10, server.port, per_hour=3, warmup_started_on=utcnow().date(),
                              warmup_first_day=50, warmup_growth_percent=50)
    assert run(campaign.id).reason == shares.CAPPED
    assert statuses(campaign) == {"sent": 3, "queued": 7}


def test_the_campaign_page_says_it_waits_for_tomorrow_while_the_warmup_holds_it(app, web, admin, smtp):
    app.config.update(SEND_FLUSH_INTERVAL=0.05, SEND_STATE_INTERVAL=0.1)
    server = smtp()
    with app.app_context():
        team = acme()
        team.postal_address = "1 Main Street, Springfield"
        team.save()
        campaign, _, account = launched(team, 8, server.port, warmup_started_on=utcnow().date(),
                                        warmup_first_day=5, warmup_growth_percent=50)
        assert run(campaign.id).reason == reached(5)
    notice = soup(web.get(f"/campaigns/{campaign.id}/progress")).select_one(".waiting-warmup")
    assert notice.get_text(" ", strip=True) == ("Waiting for the warm-up allowance: SMTP account “Loopback” reached "
                                                "its warm-up limit for today (5 messages). Sending resumes by itself "
                                                "when the allowance is back.")
    assert notice.select_one("a")["href"] == f"/sending/accounts#account-{account.id}"

    SmtpAccount.update(warmup_started_on=None).execute()  # turned off: the campaign no longer waits for it
    assert soup(web.get(f"/campaigns/{campaign.id}/progress")).select_one(".waiting-warmup") is None


def test_a_first_day_at_or_above_the_daily_limit_is_saved_with_a_warning(admin, web):
    response = web.post("/sending/accounts/new", account_form(warmup="1", warmup_first_day="1000", per_day="1000"),
                        follow_redirects=True)
    warnings = [p.get_text() for p in soup(response).select(".flash-warning")]
    assert "The warm-up's first day (1,000 messages) already reaches the daily limit (1,000)" in " ".join(warnings)
    assert soup(response).select_one(f"#account-{SmtpAccount.get().id} .warmup") is None  # nothing to warm up


# --- The migration ---------------------------------------------------------------------------------------

def test_the_migration_goes_down_and_up_again_keeping_the_accounts_and_what_they_sent(ctx):
    team = make_team()
    _, _, account = launched(team, 2, 9, per_day=300, warmup_started_on=utcnow().date(),
                                           warmup_first_day=30)
    Send.update(status="sent", smtp_account=account, sent_at=utcnow()).execute()
    runner = Runner(db.obj, MIGRATIONS_DIR)

    assert "0052_smtp_account_warmup" in runner.down(target="0052_smtp_account_warmup")
    assert not [c.name for c in db.get_columns("smtp_account") if c.name.startswith("warmup")]
    assert "0052_smtp_account_warmup" in runner.up()

    stored = SmtpAccount.get_by_id(account.id)
    assert (stored.per_day, stored.warmup_started_on, stored.warmup_first_day, stored.warmup_growth_percent) == (
        300, None, 50, 50)  # after the way down, no account is warming up
    assert Send.select().where((Send.smtp_account == account) & (Send.status == "sent")).count() == 2
