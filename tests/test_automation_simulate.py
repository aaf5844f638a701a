"""The automation preview (app/automations/simulate.py): who would enter and when, checked against what the
triggers then really do when the clock file is moved; and that a preview writes nothing."""
import datetime

import pytest

from app import clock
from app.automations import simulate
from app.automations import triggers
from app.models import Automation
from app.models import AutomationEvent
from app.models import AutomationRun
from app.models import AutomationSegmentMark
from app.models import AutomationSegmentMember
from app.models import AutomationStep
from app.models import Contact
from app.models import MailingList
from app.models import Segment
from app.models import Subscription
from app.models import Team

T0 = datetime.datetime(2026, 3, 2, 10, 0)  # Auckland (NZDT, UTC+13): 2026-03-02 23:00, an hour before midnight


@pytest.fixture
def ctx(app, tmp_path):
    app.config["CLOCK_FILE"] = str(tmp_path / "clock.txt")
    with app.app_context():
        clock.set_time(app.config["CLOCK_FILE"], T0)
        yield app


def at(ctx, moment):
    clock.set_time(ctx.config["CLOCK_FILE"], moment)
    return moment


def person(team, email, **attributes):
    return Contact.create(team=team, email=email, domain="example.com", status="active", attributes=attributes)


def build(team, trigger, reentry="never"):
    """email "Hello" → wait 60 min → condition (yes: email "Yes"; no: wait for "paid" ≤ 1 day → email "No")."""
    made = Automation.create(team=team, name="Renewal", state="live", trigger=trigger, goal={}, reentry=reentry)
    step = lambda kind, config: AutomationStep.create(automation=made, kind=kind, config=config)  # noqa: E731
    hello = step("email", {"subject": "Hello"})
    pause = step("wait", {"mode": "duration", "minutes": 60})
    check = step("condition", {"test": "field", "field": "plan", "op": "equals", "value": "pro"})
    yes = step("email", {"subject": "Yes"})
    timeout = step("wait", {"mode": "event", "event": "paid", "timeout_minutes": 1440})
    no = step("email", {"subject": "No"})
    hello.next_id, pause.next_id, check.yes_id, check.no_id, timeout.next_id = pause.id, check.id, yes.id, \
        timeout.id, no.id
    for row in (hello, pause, check, timeout):
        row.save()
    made.first_step_id = hello.id
    made.save()
    return made


def table_counts():
    return [model.select().count() for model in (AutomationRun, AutomationSegmentMark, AutomationSegmentMember,
                                                 AutomationEvent)]


def entered(made):
    return {run.contact_id: run.entered_at for run in AutomationRun.select().where(AutomationRun.automation == made.id)}


def test_date_field_in_the_team_zone_across_midnight_matches_what_then_happens(ctx):
    team = Team.create(name="Kiwi", time_zone="Pacific/Auckland")
    made = build(team, {"kind": "date_field", "field": "renewal", "offset_days": -7, "time": "00:30",
                        "yearly": False})
    due_today = person(team, "today@example.com", renewal="2026-03-09")  # local today 03-02 + 7: time has passed
    tomorrow = person(team, "tomorrow@example.com", renewal="2026-03-10")  # local 03-03, still UTC 03-02
    later = person(team, "later@example.com", renewal="2026-03-11")
    person(team, "far@example.com", renewal="2026-04-30")
    person(team, "none@example.com")
    Automation.create(team=Team.create(name="Other"), name="x", state="live", trigger={}, goal={})

    before = table_counts()
    preview = simulate.preview(made, T0, days=7)
    assert table_counts() == before  # a preview writes nothing
    predicted = {e["contact_id"]: e["at"] for e in preview["entrants"]}
    assert predicted == {
        due_today.id: T0,
        tomorrow.id: datetime.datetime(2026, 3, 2, 11, 30),  # 00:30 NZDT on 03-03 is 11:30 UTC on 03-02
        later.id: datetime.datetime(2026, 3, 3, 11, 30),
    }
    first = preview["schedule"][0]
    assert first["contact_id"] == due_today.id
    assert [(e["subject"], e["at"], e["path"], e["latest"]) for e in first["emails"]] == [
        ("Hello", T0, "", False),
        ("Yes", T0 + datetime.timedelta(minutes=60), "yes", False),
        ("No", T0 + datetime.timedelta(minutes=60 + 1440), "no", True),
    ]

    # What really happens, hour by hour: each contact enters at the predicted moment and not before.
    assert triggers.check_dates(at(ctx, T0)) == 1
    assert set(entered(made)) == {due_today.id}
    assert triggers.check_dates(at(ctx, datetime.datetime(2026, 3, 2, 11, 29))) == 0
    assert triggers.check_dates(at(ctx, datetime.datetime(2026, 3, 2, 11, 30))) == 1
    assert triggers.check_dates(at(ctx, datetime.datetime(2026, 3, 2, 12, 1))) == 0  # once per occurrence
    assert triggers.check_dates(at(ctx, datetime.datetime(2026, 3, 3, 11, 31))) == 1
    assert set(entered(made)) == set(predicted)
    for cid, moment in predicted.items():  # each within the hourly check after its predicted moment
        assert datetime.timedelta(0) <= entered(made)[cid] - moment < datetime.timedelta(hours=1)


def test_yearly_dates_fire_once_a_year_and_feb_29_on_feb_28_without_a_leap_day(ctx):
    team = Team.create(name="Birthdays", time_zone="UTC")
    made = build(team, {"kind": "date_field", "field": "birthday", "offset_days": 0, "time": "09:00", "yearly": True},
                 reentry="after_end")
    leap = person(team, "leap@example.com", birthday="2000-02-29")
    plain = person(team, "plain@example.com", birthday="1990-02-28")
    unborn = person(team, "unborn@example.com", birthday="2030-02-28")  # a date still to come has no anniversary

    preview = simulate.preview(made, datetime.datetime(2027, 2, 27, 10, 0), days=2)
    assert {e["contact_id"]: e["at"] for e in preview["entrants"]} == {
        leap.id: datetime.datetime(2027, 2, 28, 9, 0), plain.id: datetime.datetime(2027, 2, 28, 9, 0)}

    assert triggers.check_dates(at(ctx, datetime.datetime(2027, 2, 28, 8, 59))) == 0
    assert triggers.check_dates(at(ctx, datetime.datetime(2027, 2, 28, 9, 1))) == 2
    assert triggers.check_dates(at(ctx, datetime.datetime(2027, 2, 28, 15, 0))) == 0
    assert unborn.id not in entered(made)
    AutomationRun.update(state="done").execute()  # the runs ended; next year may come back
    assert triggers.check_dates(at(ctx, datetime.datetime(2028, 2, 28, 9, 1))) == 1  # 2028 has a Feb 29
    assert triggers.check_dates(at(ctx, datetime.datetime(2028, 2, 29, 9, 1))) == 1
    occurrences = sorted(run.data["occurrence"] for run in AutomationRun.select())
    assert occurrences == ["2027-02-28", "2027-02-28", "2028-02-28", "2028-02-29"]


def test_segment_preview_shows_newcomers_not_the_baseline_and_writes_nothing(ctx):
    team = Team.create(name="Seg", time_zone="UTC")
    news = MailingList.create(team=team, name="News")
    segment = Segment.create(team=team, name="On News", rules={"op": "and", "rules": [
        {"field": "list", "operator": "in_list", "value": news.id}]})
    made = build(team, {"kind": "segment_entry", "segment_id": segment.id})
    early = person(team, "early@example.com")
    Subscription.create(contact=early, list=news, status="subscribed")
    before = table_counts()
    assert simulate.preview(made, T0)["entrants"] == []  # no baseline yet: today's members are the baseline
    assert table_counts() == before
    triggers.check_segments(T0)
    late = person(team, "late@example.com")
    Subscription.create(contact=late, list=news, status="subscribed")
    preview = simulate.preview(made, T0)
    assert [(e["contact_id"], e["at"]) for e in preview["entrants"]] == [(late.id, T0)]
    assert triggers.check_segments(T0) == 1 and set(entered(made)) == {late.id}
    assert simulate.preview(made, T0)["entrants"] == []  # entered: no longer a newcomer


def test_list_and_event_triggers_are_estimated_from_the_last_week(ctx):
    team = Team.create(name="Est", time_zone="UTC")
    news = MailingList.create(team=team, name="News")
    joins = build(team, {"kind": "list_join", "list_id": news.id})
    events = build(team, {"kind": "event", "name": "paid"})
    for i, days_ago in enumerate((1, 2, 6, 9)):
        contact = person(team, f"s{i}@example.com")
        Subscription.create(contact=contact, list=news, status="subscribed",
                            created_at=T0 - datetime.timedelta(days=days_ago))
        AutomationEvent.create(team=team, contact=contact, name="paid", data={},
                               created_at=T0 - datetime.timedelta(days=days_ago))
    gone = person(team, "gone@example.com")
    Subscription.create(contact=gone, list=news, status="unsubscribed", created_at=T0 - datetime.timedelta(days=1))
    estimate = simulate.preview(joins, T0, days=14)["estimate"]
    assert estimate["count"] == 3 and estimate["expected"] == 6
    assert simulate.preview(events, T0, days=7)["estimate"]["count"] == 3
    manual = build(team, {"kind": "manual"})
    shown = simulate.preview(manual, T0)
    assert shown["entrants"] == [] and shown["estimate"] is None and "by hand" in shown["note"]
    # With nobody known, the schedule is that of one contact entering now.
    assert [e["subject"] for e in shown["schedule"][0]["emails"]] == ["Hello", "Yes", "No"]


def test_a_late_time_fires_at_the_check_after_midnight_but_a_missed_day_is_not_fired_late(ctx):
    team = Team.create(name="Late", time_zone="Europe/Berlin")  # CET in March: UTC+1
    made = build(team, {"kind": "date_field", "field": "renewal", "offset_days": 0, "time": "23:30", "yearly": False})
    late = person(team, "late@example.com", renewal="2026-03-02")
    missed = person(team, "missed@example.com", renewal="2026-03-01")  # due yesterday, before it went live
    # Checks at minute 1 of each hour: 23:01 Berlin is before the time, the next one is 00:01 on March 3.
    assert triggers.check_dates(at(ctx, datetime.datetime(2026, 3, 2, 22, 1))) == 0
    assert triggers.check_dates(at(ctx, datetime.datetime(2026, 3, 2, 23, 1))) == 1
    [run] = AutomationRun.select()
    assert (run.contact_id, run.data["occurrence"]) == (late.id, "2026-03-02")
    assert triggers.check_dates(at(ctx, datetime.datetime(2026, 3, 3, 0, 1))) == 0  # once per occurrence
    assert missed.id not in entered(made)


def test_dates_missed_while_the_worker_was_down_fire_late_but_not_before_going_live_or_while_paused(ctx):
    """The hourly check did not run for three days: those days' occurrences fire at the next check (at most
    triggers.CATCH_UP_DAYS back), each once; a day before the automation went live, or while it was paused, never."""
    from app.models import AutomationDateMark
    team = Team.create(name="Dates", time_zone="UTC")
    made = build(team, {"kind": "date_field", "field": "renewal", "offset_days": 0, "time": "09:00", "yearly": False})
    before_live = person(team, "before@example.com", renewal="2026-03-01")
    missed = [person(team, f"missed{n}@example.com", renewal=f"2026-03-0{n}") for n in (3, 4, 5)]
    later = person(team, "later@example.com", renewal="2026-03-07")
    triggers.went_live(made, at(ctx, datetime.datetime(2026, 3, 2, 10, 0)))
    assert triggers.check_dates(at(ctx, datetime.datetime(2026, 3, 2, 10, 1))) == 0  # 03-01 was before going live

    # No check from 03-02 10:01 until 03-06 08:01: 03-03, 03-04 and 03-05 fire now, late, each for its own day.
    assert triggers.check_dates(at(ctx, datetime.datetime(2026, 3, 6, 8, 1))) == 3
    assert {cid: run_data["occurrence"] for cid, run_data in (
        (run.contact_id, run.data) for run in AutomationRun.select())} == {
        missed[0].id: "2026-03-03", missed[1].id: "2026-03-04", missed[2].id: "2026-03-05"}
    assert triggers.check_dates(at(ctx, datetime.datetime(2026, 3, 6, 9, 1))) == 0  # nothing twice
    assert before_live.id not in entered(made)

    # Paused over 03-07 and resumed on 03-08: 03-07 does not fire on resume (as a list join meanwhile would not).
    Automation.update(state="paused").where(Automation.id == made.id).execute()
    assert triggers.check_dates(at(ctx, datetime.datetime(2026, 3, 7, 9, 1))) == 0
    Automation.update(state="live").where(Automation.id == made.id).execute()
    triggers.resumed(Automation.get_by_id(made.id), at(ctx, datetime.datetime(2026, 3, 8, 10, 0)))
    assert triggers.check_dates(at(ctx, datetime.datetime(2026, 3, 8, 10, 1))) == 0
    assert later.id not in entered(made)
    assert AutomationDateMark.get(AutomationDateMark.automation == made.id).checked_at == \
        datetime.datetime(2026, 3, 8, 10, 1)

    # A worker down for longer than CATCH_UP_DAYS: only the last CATCH_UP_DAYS days are fired.
    far = person(team, "far@example.com", renewal="2026-03-10")
    near = person(team, "near@example.com", renewal="2026-03-20")
    assert triggers.check_dates(at(ctx, datetime.datetime(2026, 3, 21, 9, 30))) == 1
    assert near.id in entered(made) and far.id not in entered(made)
