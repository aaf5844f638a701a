"""A/B tests with up to four variants, each changing one thing (subject, From name, content or send time):
the ledger's even split, messages in the real catcher, send-time variants claimed by the engine at
their time (the clock moved by rewriting stored times, as the other A/B tests do), the automatic pick
among four, "Pick this winner" exactly once, preview and test send of each variant, other teams' ids
and the roles."""
import datetime
import email
import email.policy
import zoneinfo

from app.campaigns import ab_testing
from app.campaigns import publishing
from app.models import Campaign
from app.models import CaughtMessage
from app.models import Contact
from app.models import Event
from app.models import Send
from app.models import Subscription
from app.models import Team
from app.models import Variant
from app.models import utcnow
from tasks.sending import tick
from tests.accounts_support import make_member
from tests.campaigns_support import create_draft
from tests.conftest import soup


def _more_contacts(team, news, count):
    for i in range(count):
        contact = Contact.create(team=team, email=f"extra{i}@example.com", domain="example.com", name=f"Extra {i}")
        Subscription.create(contact=contact, list=news, status="subscribed")


def _caught():
    return [email.message_from_bytes(bytes(m.raw), policy=email.policy.default)
            for m in CaughtMessage.select().order_by(CaughtMessage.id)]


def _variants(campaign):
    return {v.label: v for v in Variant.select().where(Variant.campaign == campaign.id)}


FOUR_SUBJECTS = dict(ab_enabled="1", ab_tests="subject", ab_sample_percent="40", ab_wait_minutes="60",
                     subject="Subject A", b_subject="Subject B", c_subject="Subject C", d_subject="Subject D")


def test_four_variants_split_the_sample_evenly(app, web, ready_team):
    team, news = ready_team
    _more_contacts(team, news, 36)  # 40 active recipients
    campaign = create_draft(web, news, **FOUR_SUBJECTS)
    variants = _variants(campaign)
    assert {label: v.subject for label, v in variants.items()} == {
        "A": "Subject A", "B": "Subject B", "C": "Subject C", "D": "Subject D"}
    with app.app_context():
        publishing.start(Campaign.get_by_id(campaign.id))
    counts = {label: Send.select().where(Send.variant == v).count() for label, v in variants.items()}
    assert counts == {"A": 4, "B": 4, "C": 4, "D": 4}  # a 40% sample of 40 is 16: four each
    assert Send.select().where((Send.campaign == campaign.id) & (Send.status == "held")).count() == 24


def test_four_variants_reach_the_catcher_and_the_best_one_wins(app, web, ready_team):
    team, news = ready_team
    _more_contacts(team, news, 36)
    campaign = create_draft(web, news, **FOUR_SUBJECTS)
    web.post(f"/campaigns/{campaign.id}/publish", {"when": "now"})
    assert sorted(m["Subject"] for m in _caught()) == ["Subject A"] * 4 + ["Subject B"] * 4 + ["Subject C"] * 4 \
        + ["Subject D"] * 4
    c = _variants(campaign)["C"]
    for send in Send.select().where(Send.variant == c).limit(2):
        Event.create(team=team, contact=send.contact, campaign_id=campaign.id, type="clicked", data={})
    Campaign.update(started_at=utcnow() - datetime.timedelta(minutes=61)).where(Campaign.id == campaign.id).execute()
    with app.app_context():
        tick.call_local()
    assert Variant.get_by_id(c.id).is_winner
    assert [m["Subject"] for m in _caught()[16:]] == ["Subject C"] * 24
    assert Campaign.get_by_id(campaign.id).state == "completed"


def test_a_from_name_variant_arrives_with_that_display_name(web, ready_team):
    team, news = ready_team
    campaign = create_draft(web, news, from_name="Acme", ab_enabled="1", ab_tests="from_name",
                            ab_sample_percent="50", b_from_name="Ann at Acme")
    assert {label: v.from_name for label, v in _variants(campaign).items()} == {"A": "Acme", "B": "Ann at Acme"}
    web.post(f"/campaigns/{campaign.id}/publish", {"when": "now"})
    senders = sorted((m["From"].addresses[0].display_name, m["From"].addresses[0].addr_spec) for m in _caught())
    assert senders == [("Acme", "news@acme.example"), ("Ann at Acme", "news@acme.example")]
    assert all(m["Subject"].startswith("Hello Reader") for m in _caught())  # only the From name differs


def test_send_time_variants_go_out_at_their_times(app, web, ready_team):
    team, news = ready_team
    _more_contacts(team, news, 4)  # 8 recipients: a 50% sample of 4, two per variant
    local_b = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=2)).astimezone(
        zoneinfo.ZoneInfo(team.time_zone or "UTC"))
    campaign = create_draft(web, news, ab_enabled="1", ab_tests="send_time", ab_sample_percent="50",
                            ab_wait_minutes="60", b_send_at=local_b.strftime("%Y-%m-%dT%H:%M"))
    b = _variants(campaign)["B"]
    assert abs((b.send_at - utcnow()) - datetime.timedelta(hours=2)) < datetime.timedelta(minutes=2)
    web.post(f"/campaigns/{campaign.id}/publish", {"when": "now"})
    assert len(_caught()) == 2  # A's share went at once
    waiting = list(Send.select().where(Send.variant == b))
    assert [(s.status, s.next_attempt_at, s.attempts) for s in waiting] == [("deferred", b.send_at, 0)] * 2
    with app.app_context():
        tick.call_local()  # a minute later: not B's time yet
        assert not ab_testing.ab_decision_due(Campaign.get_by_id(campaign.id))
    assert len(_caught()) == 2 and Campaign.get_by_id(campaign.id).state == "sending"
    progress = soup(web.get(f"/campaigns/{campaign.id}/progress"))
    assert progress.select_one("#timed-variants").text == "2 messages of the A/B test wait for their variants' send time."
    assert "retried" not in progress.select_one("#progress").text
    # Two hours pass.
    earlier = datetime.timedelta(hours=2, minutes=1)
    b_time = b.send_at - earlier
    Variant.update(send_at=b_time).where(Variant.id == b.id).execute()
    Send.update(next_attempt_at=b_time).where(Send.variant == b).execute()
    started = Campaign.get_by_id(campaign.id).started_at
    Campaign.update(started_at=started - earlier).where(Campaign.id == campaign.id).execute()
    with app.app_context():
        assert not ab_testing.ab_decision_due(Campaign.get_by_id(campaign.id))  # 60 minutes after B's time
        tick.call_local()
    assert len(_caught()) == 4
    assert {s.status for s in Send.select().where(Send.variant == b)} == {"sent"}
    assert Send.select().where((Send.campaign == campaign.id) & (Send.status == "held")).count() == 4
    page = soup(web.get(f"/reports/campaigns/{campaign.id}"))
    assert page.select_one("#variants").find("th", string="Sent at") is not None


def test_pick_this_winner_releases_the_rest_once(app, web, ready_team):
    team, news = ready_team
    _more_contacts(team, news, 20)  # 24 recipients, 12 in the sample
    campaign = create_draft(web, news, ab_enabled="1", ab_sample_percent="50", ab_wait_minutes="240",
                            b_subject="Subject B")
    web.post(f"/campaigns/{campaign.id}/publish", {"when": "now"})
    assert len(_caught()) == 12
    page = soup(web.get(f"/reports/campaigns/{campaign.id}"))
    buttons = [b.get_text(strip=True) for b in page.select("#ab-pick button")]
    assert buttons == ["Pick A as the winner", "Pick B as the winner"]
    b = _variants(campaign)["B"]
    first = web.post(f"/campaigns/{campaign.id}/ab/winner", {"variant": str(b.id)})  # the wait is not over
    second = web.post(f"/campaigns/{campaign.id}/ab/winner", {"variant": str(b.id)})  # a double click
    assert first.status_code == second.status_code == 302
    assert first.headers["Location"].endswith(f"/reports/campaigns/{campaign.id}")
    later = [m["Subject"] for m in _caught()[12:]]
    assert later == ["Subject B"] * 12  # the rest, exactly once
    assert Send.select().where(Send.variant == b).count() == 6 + 12
    assert [v.label for v in Variant.select().where((Variant.campaign == campaign.id) & Variant.is_winner)] == ["B"]
    with app.app_context():
        assert ab_testing.decide_ab_winner(Campaign.get_by_id(campaign.id)) is None  # the automatic pick comes late
    assert len(_caught()) == 24
    page = soup(web.get(f"/reports/campaigns/{campaign.id}"))
    assert page.select_one("#ab-pick") is None


def test_preview_and_test_send_of_each_variant(app, web, ready_team):
    team, news = ready_team
    campaign = create_draft(web, news, **FOUR_SUBJECTS)
    builder = soup(web.get(f"/campaigns/{campaign.id}"))
    assert [o["value"] for o in builder.select("#f-variant option")] == ["", "A", "B", "C", "D"]
    assert [o["value"] for o in builder.select("#f-test-variant option")] == ["", "A", "B", "C", "D"]
    for label in "ABCD":
        pane = soup(web.get(f"/campaigns/{campaign.id}/preview?variant={label}", headers={"HX-Request": "true"}))
        assert pane.select_one("#preview-subject").text == f"Subject {label}"
        assert pane.select_one("iframe.message-frame")["src"].endswith(f"variant={label}")
    for label in "BD":
        sent = web.post(f"/campaigns/{campaign.id}/test", {"addresses": "me@example.com", "variant": label}, htmx=True)
        assert soup(sent).select_one(".test-results li .badge").text == "Sent"
        assert soup(sent).select_one("#f-test-variant option[selected]")["value"] == label
    assert [m["Subject"] for m in _caught()] == ["[Test] Subject B", "[Test] Subject D"]
    assert Send.select().count() == 0


def test_a_content_variant_previews_and_sends_its_own_body(web, ready_team):
    team, news = ready_team
    campaign = create_draft(web, news, ab_enabled="1", ab_tests="content", b_body="<p>The <b>B</b> words</p>")
    assert _variants(campaign)["B"].body == "<p>The <b>B</b> words</p>"
    html = web.get(f"/campaigns/{campaign.id}/preview.html?variant=B").get_data(as_text=True)
    assert "The <b>B</b> words" in html and "see <a" not in html
    assert "see <a" in web.get(f"/campaigns/{campaign.id}/preview.html").get_data(as_text=True)
    web.post(f"/campaigns/{campaign.id}/test", {"addresses": "me@example.com", "variant": "B"}, htmx=True)
    assert "The <b>B</b> words" in _caught()[0].get_body(("html",)).get_content()


def test_the_builder_keeps_each_variant(web, ready_team):
    team, news = ready_team
    campaign = create_draft(web, news, ab_enabled="1", ab_tests="from_name", b_from_name="Bea", c_from_name="Cy")
    page = soup(web.get(f"/campaigns/{campaign.id}"))
    assert page.select_one("input[name=ab_tests][value=from_name]").has_attr("checked")
    assert page.select_one("#f-b_from_name")["value"] == "Bea" and page.select_one("#f-c_from_name")["value"] == "Cy"
    assert page.select_one("label[for=f-d_from_name]").text.startswith("Variant D From name")
    assert set(_variants(campaign)) == {"A", "B", "C"}


def test_other_teams_ids_are_not_found(app, web, ready_team):
    team, news = ready_team
    mine = create_draft(web, news, ab_enabled="1", b_subject="Mine B")
    other = Team.create(name="Other")
    theirs = Campaign.create(team=other, name="Theirs", ab_test={"sample_percent": 10, "wait_minutes": 60,
                                                                   "metric": "clicks"}, state="sending")
    their_b = Variant.create(campaign=theirs, label="B", subject="Theirs B")
    assert web.post(f"/campaigns/{theirs.id}/ab/winner", {"variant": str(their_b.id)}).status_code == 404
    assert web.get(f"/campaigns/{theirs.id}/preview?variant=B").status_code == 404
    assert web.get(f"/campaigns/{theirs.id}/preview.html?variant=B").status_code == 404
    assert web.post(f"/campaigns/{theirs.id}/test", {"addresses": "me@example.com", "variant": "B"}).status_code == 404
    # Their variant's id on my campaign, and a label my campaign does not have.
    assert web.post(f"/campaigns/{mine.id}/ab/winner", {"variant": str(their_b.id)}).status_code == 404
    assert web.get(f"/campaigns/{mine.id}/preview.html?variant=D").status_code == 404
    assert not Variant.get_by_id(their_b.id).is_winner and Campaign.get_by_id(theirs.id).ab_decided_at is None
    assert len(_caught()) == 0


def test_an_author_cannot_pick_the_winner(app, web, ready_team):
    team, news = ready_team
    _more_contacts(team, news, 4)
    campaign = create_draft(web, news, ab_enabled="1", ab_sample_percent="50", b_subject="Subject B")
    web.post(f"/campaigns/{campaign.id}/publish", {"when": "now"})
    _user, author = make_member(app, team, "author")
    assert soup(author.get(f"/reports/campaigns/{campaign.id}")).select_one("#ab-pick") is None
    b = _variants(campaign)["B"]
    assert author.post(f"/campaigns/{campaign.id}/ab/winner", {"variant": str(b.id)}).status_code == 403
    assert not Variant.get_by_id(b.id).is_winner
    assert Send.select().where((Send.campaign == campaign.id) & (Send.status == "held")).count() == 4


def _in_team_time(team, delta):
    moment = datetime.datetime.now(datetime.timezone.utc) + delta
    return moment.astimezone(zoneinfo.ZoneInfo(team.time_zone or "UTC")).strftime("%Y-%m-%dT%H:%M")


def test_a_send_time_that_passed_or_comes_before_the_schedule_stops_publishing(web, ready_team):
    team, news = ready_team
    campaign = create_draft(web, news, ab_enabled="1", ab_tests="send_time",
                            b_send_at=_in_team_time(team, datetime.timedelta(hours=2)))
    early = web.post(f"/campaigns/{campaign.id}/publish",
                     {"when": "later", "scheduled_at": _in_team_time(team, datetime.timedelta(hours=3))})
    assert early.status_code == 422
    assert "Variant B would go out before the scheduled time" in soup(early).select_one("#e-scheduled_at").text
    assert Campaign.get_by_id(campaign.id).state == "draft"
    Variant.update(send_at=utcnow() - datetime.timedelta(minutes=5)).where(Variant.campaign == campaign.id).execute()
    page = soup(web.get(f"/campaigns/{campaign.id}"))
    assert "Variant B's send time" in page.select_one("#publish .problems").text
    refused = web.post(f"/campaigns/{campaign.id}/publish", {"when": "now"})
    assert refused.status_code == 422 and "has passed" in soup(refused).select_one(".flash-error").text
    assert Send.select().count() == 0 and len(_caught()) == 0


def test_a_small_sample_still_tries_every_variant(app, web, ready_team):
    team, news = ready_team
    _more_contacts(team, news, 6)  # 10 recipients: 2% would be nobody
    campaign = create_draft(web, news, **dict(FOUR_SUBJECTS, ab_sample_percent="2"))
    with app.app_context():
        publishing.start(Campaign.get_by_id(campaign.id))
    counts = {label: Send.select().where(Send.variant == v).count() for label, v in _variants(campaign).items()}
    assert counts == {"A": 1, "B": 1, "C": 1, "D": 1}
    assert Send.select().where((Send.campaign == campaign.id) & (Send.status == "held")).count() == 6
