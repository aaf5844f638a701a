"""Sender addresses a person sets (From, Reply-To) can never split a header or add a
target to List-Unsubscribe (issue 9, point 7). The forms refuse them (tests/test_campaign_forms.py);
here a hostile value is stored behind the form's back and the message must still be safe."""
import re

import pytest

from app.campaigns import publishing
from app.content import sandbox
from app.content.message import MessageFactory
from app.content.message import one_address
from app.models import Campaign
from tests.message_support import make_campaign
from tests.message_support import make_contact
from tests.message_support import make_send
from tests.message_support import parse


@pytest.fixture
def team(message_team):
    """The Acme team with a sender, a postal address and Plan/Seats fields (tests/message_support.py)."""
    return message_team

HOSTILE_REPLY_TO = [
    "help@acme.example>, <https://evil.example/steal",
    "help@acme.example\r\nBcc: victim@example.net",
    "help@acme.example, other@evil.example",
    "Help Desk <help@acme.example>",
    "help@acme.example?subject=x&body=y",
]


pytestmark = pytest.mark.usefixtures("ctx")  # every test runs inside the app


def _unsubscribe_targets(message):
    return re.findall(r"<([^<>]*)>", " ".join(str(message["List-Unsubscribe"]).split()))


@pytest.mark.parametrize("reply_to", HOSTILE_REPLY_TO)
def test_a_stored_hostile_reply_to_cannot_break_the_headers(app, team, reply_to):  # noqa: F811
    contact = make_contact(team, "reader@example.org", "Reader")
    campaign = make_campaign(team, reply_to=reply_to)
    message = parse(MessageFactory(campaign).build(make_send(campaign, contact), contact))
    assert message["Bcc"] is None
    assert message["Reply-To"] is None  # left out rather than spliced in
    assert [a.addr_spec for a in message["To"].addresses] == ["reader@example.org"]
    targets = _unsubscribe_targets(message)
    assert len(targets) == 2 and targets[0].startswith("http")
    assert targets[1].startswith("mailto:news@acme.example?subject=unsubscribe%20")  # the From address instead
    assert "evil" not in str(message["List-Unsubscribe"])


def test_a_good_reply_to_is_used_and_encoded(app, team):  # noqa: F811
    contact = make_contact(team, "reader@example.org")
    campaign = make_campaign(team, reply_to="help+list=1@acme.example")
    message = parse(MessageFactory(campaign).build(make_send(campaign, contact), contact))
    assert message["Reply-To"].addresses[0].addr_spec == "help+list=1@acme.example"
    # The mailto: target carries the address percent-encoded, so "=" or "?" cannot start a new part.
    assert _unsubscribe_targets(message)[1].startswith("mailto:help%2Blist%3D1@acme.example?subject=")


@pytest.mark.parametrize("from_email", ["news@acme.example, boss@acme.example",
                                        "news@acme.example\r\nBcc: victim@example.net",
                                        "Boss <news@acme.example>"])
def test_a_stored_hostile_from_is_refused_not_sent(app, team, from_email):  # noqa: F811
    campaign = make_campaign(team, from_email=from_email)
    with pytest.raises(sandbox.RenderError, match="not one email address"):
        MessageFactory(campaign)
    problems = publishing.publish_problems(Campaign.get_by_id(campaign.id))
    assert any("From address must be one email address" in p for p in problems), problems


def test_one_address():
    assert one_address(" news@acme.example ") == "news@acme.example"
    assert one_address("zoë@bücher.example") == "zoë@bücher.example"
    for bad in HOSTILE_REPLY_TO + ["", "no-at-sign", "a@b@c.example", '"quoted"@acme.example']:
        assert one_address(bad) == "", bad


def test_instance_and_team_sender_fields_are_one_address_and_one_line(web, admin):
    from app.models import InstanceSetting
    from app.models import Team
    from tests.conftest import soup
    settings = {"base_url": "https://mail.example.com", "default_from_name": "Loft\r\nBcc: victim@example.net",
                "default_from_email": "loft@example.com>, <victim@example.net", "smtp_host": "smtp.example.com",
                "smtp_port": "587", "smtp_tls": "starttls"}
    refused = web.post("/admin/settings", settings)
    assert refused.status_code == 422
    page = soup(refused)
    assert "one email address" in page.select_one("#e-default_from_email").text
    assert "one line" in page.select_one("#e-default_from_name").text
    assert page.select_one("#f-smtp_host")["value"] == "smtp.example.com"  # the input is kept
    assert InstanceSetting.select().count() == 0
    team = Team.get(Team.name == "Acme")
    bad = web.post("/teams/settings", {"name": "Acme", "default_from_name": "Acme\nBcc: victim@example.net",
                                       "default_from_email": "news@acme.example", "time_zone": "UTC"}, htmx=True)
    assert bad.status_code == 422
    assert "one line" in soup(bad).select_one("#e-default_from_name").text
    assert Team.get_by_id(team.id).default_from_name == team.default_from_name
