"""Helpers for the tracking tests: a team, campaign, contact and send to open, click and unsubscribe."""
import datetime

from app.models import Campaign
from app.models import Contact
from app.models import Send
from app.models import Team
from app.models import utcnow


HOUR_AGO = datetime.timedelta(hours=1)


BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"


def make_team(name="Acme"):
    return Team.create(name=name, postal_address="1 Main St, Springfield")


def make_contact(team, email="jamie.doe@example.com", name="Jamie"):
    return Contact.create(team=team, email=email, domain=email.partition("@")[2], name=name)


def make_campaign(team, name="Spring news", **fields):
    fields.setdefault("subject", "Hello {{ contact.name }}")
    fields.setdefault("body", '<p>Hi {{ contact.name }}!</p><p><a href="https://example.org/read">Read</a></p>')
    fields.setdefault("from_email", "news@acme.test")
    fields.setdefault("state", "completed")
    return Campaign.create(team=team, name=name, **fields)


def make_send(campaign, contact, sent_ago=HOUR_AGO, **fields):
    fields.setdefault("status", "sent")
    sent_at = utcnow() - sent_ago if sent_ago is not None else None
    return Send.create(campaign=campaign, contact=contact, email=contact.email, sent_at=sent_at, **fields)


def tampered(token):
    """The same token with one character of the tag changed."""
    last = token[-2]
    return token[:-2] + ("A" if last != "A" else "B") + token[-1]
