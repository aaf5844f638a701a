"""app/teams/standing.py: the one "may this team send now?" gate, suspension and the monthly cap."""
import datetime

import pytest

from app import usage
from app.models import Campaign
from app.models import CampaignState
from app.models import Team
from app.teams import standing
from tests.sending_support import make_campaign
from tests.sending_support import make_team


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
