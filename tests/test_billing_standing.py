"""app/teams/standing.py: the one "may this team send now?" gate, suspension and the monthly cap."""
import datetime

import pytest

from app import usage
from app.models import Campaign
from app.models import CampaignState
from app.campaigns import publishing
from app.models import Notice
from app.models import Send
from app.models import Team
from app.models import utcnow
from app.teams import standing
from tests.sending_support import launched
from tests.sending_support import make_campaign
from tests.sending_support import make_team
from tests.sending_support import run
from tests.sending_support import statuses


def test_a_team_in_good_standing_may_send(ctx):
    team = make_team()
    assert standing.sending_refusal(team.id) is None
    assert standing.sending_refusal(team, stream="transactional") is None
    assert standing.room_left(team) is None


def test_suspend_refuses_with_the_reason_and_pauses_sending_campaigns(ctx):
    team, other = make_team(), make_team("Other")
    sending, draft = make_campaign(team), make_campaign(team, state="draft", name="Draft")
    theirs = make_campaign(other, name="Theirs")
    paused = standing.suspend(team, "Complaints from recipients  about  purchased lists", by_user=None)
    assert paused == [sending.id]
    refusal = standing.sending_refusal(team.id)
    assert "suspended by the instance administrator" in refusal
    assert "Complaints from recipients about purchased lists" in refusal
    assert standing.sending_refusal(team.id, stream="transactional") == refusal
    fresh = Campaign.get_by_id(sending.id)
    assert fresh.state == CampaignState.PAUSED and "Complaints from recipients" in fresh.state_reason
    assert "resume this campaign yourself" in fresh.state_reason
    assert Campaign.get_by_id(draft.id).state == CampaignState.DRAFT
    assert Campaign.get_by_id(theirs.id).state == CampaignState.SENDING  # another team is untouched
    assert standing.sending_refusal(other.id) is None

    standing.resume(team)
    assert standing.sending_refusal(team.id) is None
    assert Team.get_by_id(team.id).suspended_at is None
    # Documented: resuming the team leaves its campaigns paused; the team resumes them itself.
    assert Campaign.get_by_id(sending.id).state == CampaignState.PAUSED


def test_a_suspension_needs_a_reason_and_nothing_changes_without_one(ctx):
    team = make_team()
    campaign = make_campaign(team)
    with pytest.raises(standing.StandingError, match="Say why"):
        standing.suspend(team, "   ")
    assert Team.get_by_id(team.id).suspended_at is None
    assert Campaign.get_by_id(campaign.id).state == CampaignState.SENDING


def test_the_cap_refuses_once_reached_and_names_the_first_day_of_the_teams_next_month(ctx):
    team = make_team()
    team.time_zone = "Asia/Tokyo"
    team.save()
    now = datetime.datetime(2026, 1, 31, 14, 0)  # 23:00 in Tokyo, still January there
    standing.set_cap(team, "1,000")
    usage.count_sent(team.id, 999, now)
    assert standing.sending_refusal(team.id, now=now) is None
    assert standing.room_left(team.id, now=now) == 1
    usage.count_sent(team.id, 1, now, stream="transactional")
    refusal = standing.sending_refusal(team.id, now=now)
    assert refusal == ("This team has reached its monthly limit of 1,000 emails set by the instance administrator; "
                       "sending resumes on 1 February 2026 (Asia/Tokyo) or when the limit is raised.")
    # An hour later it is February in Tokyo: a new month, room again.
    assert standing.sending_refusal(team.id, now=now + datetime.timedelta(hours=1)) is None
    standing.set_cap(team, "")
    assert standing.sending_refusal(team.id, now=now) is None


@pytest.mark.parametrize("bad", ["ten", "-5", "1.5", "99999999999"])
def test_a_bad_cap_is_refused_in_words_and_the_old_one_kept(ctx, bad):
    team = make_team()
    standing.set_cap(team, 500)
    with pytest.raises(standing.StandingError):
        standing.set_cap(team, bad)
    assert Team.get_by_id(team.id).monthly_email_cap == 500


# --- Where mail leaves: the engine, launch and resume ---------------------------------------------------

FAST = dict(SEND_RETRY_DELAYS=(0.05, 0.1), SEND_RECONNECT_DELAY=0.01, SEND_FLUSH_INTERVAL=0.05,
            SEND_STATE_INTERVAL=0.1, SEND_MAX_IN_RUN_WAIT=5.0, SEND_BATCH_SIZE=10)


def test_a_campaign_sent_by_the_engine_stops_at_the_cap_and_pauses_with_the_reason(ctx, smtp):
    ctx.config.update(FAST)
    server = smtp()
    team = make_team()
    standing.set_cap(team, 25)
    campaign, contacts, _account = launched(team, 60, server.port, connections=4)
    result = run(campaign.id)
    fresh = Campaign.get_by_id(campaign.id)
    # One run alone: each batch is no larger than the room left, so it stops exactly at the cap.
    assert sum(server.handler.delivered.values()) == 25 == fresh.sent
    assert result.outcome == "paused" and fresh.state == CampaignState.PAUSED
    assert fresh.state_reason.startswith("Paused by Loft: This team has reached its monthly limit of 25 emails")
    assert statuses(campaign) == {"sent": 25, "queued": 35}
    assert usage.sent_this_month(team) == 25
    # The 80 % and 100 % alerts went to the team once each, and a second look sends neither again.
    kinds = [n.kind for n in Notice.select().where(Notice.team == team).order_by(Notice.id)]
    assert kinds.count("usage_80") == 1 and kinds.count("usage_100") == 1
    standing.sending_refusal(team.id)
    assert Notice.select().where((Notice.team == team) & Notice.kind.startswith("usage_")).count() == 2
    # Resuming is refused while at the cap; raised, it goes on and sends the rest.
    with pytest.raises(publishing.SendingRefusedError, match="monthly limit of 25"):
        publishing.control(fresh, "resume")
    standing.set_cap(team, 1000)
    publishing.control(Campaign.get_by_id(campaign.id), "resume")
    assert run(campaign.id).outcome == "completed"
    assert server.handler.delivered == {c.email: 1 for c in contacts}


def test_the_engine_pauses_a_sending_campaign_of_a_team_suspended_before_its_run(ctx, smtp):
    ctx.config.update(FAST)
    server = smtp()
    team = make_team()
    campaign, _contacts, _account = launched(team, 5, server.port)
    Team.update(suspended_at=utcnow(), suspended_reason="Abuse report").where(Team.id == team.id).execute()
    result = run(campaign.id)
    assert result.outcome == "paused" and server.handler.delivered == {}
    assert "Abuse report" in Campaign.get_by_id(campaign.id).state_reason


def test_launch_and_schedule_are_refused_with_the_reason_and_nothing_is_frozen(ctx, smtp):
    server = smtp()
    team = make_team()
    campaign, _contacts, _account = launched(team, 3, server.port)
    Campaign.update(state=CampaignState.DRAFT).where(Campaign.id == campaign.id).execute()
    Send.delete().where(Send.campaign == campaign.id).execute()
    standing.suspend(team, "Bought lists", by_user=None)
    draft = Campaign.get_by_id(campaign.id)
    with pytest.raises(publishing.SendingRefusedError, match="Bought lists"):
        publishing.start(draft)
    with pytest.raises(publishing.SendingRefusedError, match="Bought lists"):
        publishing.publish(draft, utcnow() + datetime.timedelta(days=40))
    assert Campaign.get_by_id(campaign.id).state == CampaignState.DRAFT and statuses(campaign) == {}
    # At the cap (not suspended): sending now is refused; scheduling into the team's next month is not.
    standing.resume(team)
    standing.set_cap(team, 0)
    with pytest.raises(publishing.SendingRefusedError, match="monthly limit of 0"):
        publishing.refuse_unless_standing(draft)
    publishing.refuse_unless_standing(draft, utcnow() + datetime.timedelta(days=40))


def test_the_builder_shows_the_reason_and_the_api_answers_409_problem_json(ctx, web, admin, api):
    team = Team.get(Team.name == "Acme")
    draft = make_campaign(team, state="draft")
    standing.suspend(team, "Too many complaints", by_user=admin)
    page = web.post(f"/campaigns/{draft.id}/publish", {"when": "now"})
    assert page.status_code == 422
    assert "Too many complaints" in page.get_data(as_text=True)
    response = api.post(f"/api/v1/campaigns/{draft.id}/send")
    assert response.status_code == 409 and response.mimetype == "application/problem+json"
    assert "suspended by the instance administrator: Too many complaints" in response.get_json()["detail"]
    assert Campaign.get_by_id(draft.id).state == CampaignState.DRAFT
    assert Team.get_by_id(team.id).suspended_by_id == admin.id


def test_a_campaign_that_ends_exactly_at_the_cap_completes_and_the_100_percent_alert_goes(ctx, smtp):
    ctx.config.update(FAST)
    server = smtp()
    team = make_team()
    standing.set_cap(team, 12)
    campaign, contacts, _account = launched(team, 12, server.port)
    result = run(campaign.id)
    assert result.outcome == "completed" and Campaign.get_by_id(campaign.id).state == CampaignState.COMPLETED
    assert server.handler.delivered == {c.email: 1 for c in contacts}
    assert Notice.select().where((Notice.team == team) & (Notice.kind == "usage_100")).count() == 1
    assert "monthly limit of 12 emails" in standing.sending_refusal(team.id)
