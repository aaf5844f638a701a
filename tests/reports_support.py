"""Helpers for the report tests: a sent campaign with events to roll up."""
import datetime

from app import events
from app.db import db
from app.models import Campaign
from app.models import Contact
from app.models import Event
from app.models import Link
from app.models import Membership
from app.models import Send
from app.models import Variant
from app.models import utcnow


APPLE_MAIL = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"


def team_of(admin):
    return Membership.get(Membership.user == admin).team


def sent_events(team, sends, at=None):
    """"sent" events exactly as the engine writes them (engine.Run.write: app.events.write)."""
    at = at or utcnow() - datetime.timedelta(hours=2)
    with db.atomic():
        events.write(db.cursor(), [(team.id, s.contact_id, s.campaign_id, "sent", at, Event.data.db_value({"send": s.id}))
                                   for s in sends])


def build_campaign(team, emails, name="Spring news", ab=False, sent_ago=datetime.timedelta(hours=2)):
    campaign = Campaign.create(team=team, name=name, subject="Hello", body="<p>Hi</p>", from_email="news@acme.test",
                               state="completed", started_at=utcnow() - sent_ago, total=len(emails),
                               ab_test={"sample_percent": 20, "metric": "clicks", "wait_minutes": 60}
                               if ab else {})
    variants = []
    if ab:
        variants = [Variant.create(campaign=campaign, label="A", subject="Hello A"),
                    Variant.create(campaign=campaign, label="B", subject="Hello B", is_winner=True)]
    links = [Link.create(campaign=campaign, url="https://example.org/read"),
             Link.create(campaign=campaign, url="https://example.org/buy")]
    sends = []
    for i, email in enumerate(emails):
        contact = Contact.get_or_none((Contact.team == team) & (Contact.email == email)) or Contact.create(
            team=team, email=email, domain=email.partition("@")[2])
        sends.append(Send.create(campaign=campaign, contact=contact, email=email, status="sent",
                                 sent_at=utcnow() - sent_ago, message_id=f"<m{campaign.id}-{i}@acme.test>",
                                 variant=variants[i % 2] if variants else None))
    sent_events(team, sends, at=utcnow() - sent_ago)
    return campaign, sends, links
