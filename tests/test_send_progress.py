"""Issue 9 point 12: the list behind "Failed or bounced" shows what the tile counts (bounces were left
out), and the live rate and time left stay honest at the start, at the end and during a stall."""
import datetime

import pytest

from app.campaigns import stats
from app.models import Campaign
from app.models import Send
from app.models import Team
from app.sending import ledger
from tasks import sending as sending_tasks
from tests.conftest import soup
from tests.sending_support import TestSmtp
from tests.sending_support import launched

NOW = datetime.datetime(2026, 12, 1, 12, 0, 0)


@pytest.fixture
def server():
    smtp = TestSmtp(reject=("reader1@", "reader2@"), always_451=("reader3@",))
    yield smtp
    smtp.stop()


def test_the_failed_list_shows_bounced_and_failed_sends_as_the_tile_counts_them(app, web, admin, server):
    app.config.update(SEND_RETRY_DELAYS=(0.01,), SEND_FLUSH_INTERVAL=0.05, SEND_STATE_INTERVAL=0.1)
    with app.app_context():
        team = Team.get(Team.name == "Acme")
        team.postal_address = "1 Main Street, Springfield"
        team.save()
        campaign, contacts, _ = launched(team, 8, server.port, connections=2)
        for _ in range(10):
            if not sending_tasks.run_campaign(campaign.id).again:
                break
        tile = stats.progress(Campaign.get_by_id(campaign.id))
    assert ledger.status_counts(campaign.id) == {"sent": 5, "bounced": 2, "failed": 1}
    assert tile["problems"] == 3

    page = soup(web.get(f"/campaigns/{campaign.id}/failed"))
    assert len(page.select("tbody tr")) == tile["problems"]
    rows = {row.select("td")[0].text: row["data-status"] for row in page.select("tbody tr")}
    assert rows == {"reader1@example.com": "bounced", "reader2@example.com": "bounced",
                    "reader3@example.com": "failed"}
    assert "550" in page.select_one("tr[data-status=bounced]").text
    progress = soup(web.get(f"/campaigns/{campaign.id}/progress"))
    assert progress.select_one(f"a[href='/campaigns/{campaign.id}/failed']") is not None


@pytest.fixture
def campaign(app):
    with app.app_context():
        team = Team.create(name="Pace", postal_address="1 Main Street, Springfield")
        campaign, _, _ = launched(team, 100, 9, connections=1)  # never sent: rows are set by hand
        yield Campaign.get_by_id(campaign.id)


def mark(campaign, count, status="sent", seconds_ago=1, **fields):
    """The next `count` queued sends become `status`, recorded `seconds_ago` before NOW."""
    ids = [i for (i,) in Send.select(Send.id).where((Send.campaign == campaign) & (Send.status == "queued"))
           .order_by(Send.id).limit(count).tuples()]
    values = dict(status=status, **fields)
    if status == "sent":
        values["sent_at"] = NOW - datetime.timedelta(seconds=seconds_ago)
    Send.update(**values).where(Send.id << ids).execute()


def test_the_first_seconds_of_a_send_are_not_averaged_over_a_whole_minute(campaign):
    Campaign.update(started_at=NOW - datetime.timedelta(seconds=5)).where(Campaign.id == campaign.id).execute()
    mark(campaign, 50)
    numbers = stats.progress(Campaign.get_by_id(campaign.id), now=NOW)
    assert numbers["rate"] == 10.0  # 50 in 5 s, not 50 / 60
    assert numbers["eta"] == datetime.timedelta(seconds=5)  # 50 left at 10/s


def test_the_last_message_still_has_time_left_and_a_finished_send_has_no_rate(campaign):
    Campaign.update(started_at=NOW - datetime.timedelta(minutes=5)).where(Campaign.id == campaign.id).execute()
    mark(campaign, 99)
    numbers = stats.progress(Campaign.get_by_id(campaign.id), now=NOW)
    assert numbers["remaining"] == 1 and numbers["eta"] == datetime.timedelta(seconds=1)  # not 0, read as "—"
    mark(campaign, 1)
    Campaign.update(state="completed").where(Campaign.id == campaign.id).execute()
    numbers = stats.progress(Campaign.get_by_id(campaign.id), now=NOW)
    assert numbers["rate"] == 0.0 and numbers["eta"] is None


def test_waiting_retries_set_the_time_left_not_the_rate(campaign):
    Campaign.update(started_at=NOW - datetime.timedelta(minutes=5)).where(Campaign.id == campaign.id).execute()
    mark(campaign, 97)
    mark(campaign, 3, status="deferred", next_attempt_at=NOW + datetime.timedelta(minutes=15))
    numbers = stats.progress(Campaign.get_by_id(campaign.id), now=NOW)
    assert numbers["rate"] > 1
    assert numbers["eta"] == datetime.timedelta(minutes=15)  # 3 / rate would say under a second


def test_when_nothing_goes_out_the_rate_drops_to_zero_instead_of_freezing(campaign):
    Campaign.update(started_at=NOW - datetime.timedelta(minutes=5)).where(Campaign.id == campaign.id).execute()
    mark(campaign, 50, seconds_ago=ledger.STALLED_AFTER + 5)  # the last minute's pace, then silence
    numbers = stats.progress(Campaign.get_by_id(campaign.id), now=NOW)
    assert numbers["rate"] == 0.0 and numbers["eta"] is None
