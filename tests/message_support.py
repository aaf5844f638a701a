"""Helpers for the message tests: a team with fields, contacts, campaigns and sends, and the built message parsed."""
import email.policy

import pytest

from app.models import Campaign
from app.models import Contact
from app.models import CustomField
from app.models import Send
from app.models import Team


BODY = """<table role="presentation" width="100%"><tr><td style="font-family:Arial;color:#333333;">
<p>Hello {{ contact.first_name or "friend" }}, welcome to {{ team.name }}!</p>
<p>Your plan: {{ contact.plan }}; seats: {{ (contact.seats or 0) + 1 }}.</p>
<p><a href="https://example.com/pricing?a=1&amp;b=2">See pricing</a> or
<a href="https://example.com/docs">read the docs</a>, <a href="mailto:help@example.com">write to us</a>,
<a href="tel:+15551234">call</a>, <a href="#top">top</a>,
<a href="https://example.com/u?e={{ contact.email|urlencode }}">your page</a>.</p>
<p><a href="https://example.com/pricing?a=1&amp;b=2">Pricing again</a></p>
<p>Long line: """ + "lorem ipsum dolor sit amet = équilibre " * 12 + """trailing   </p>
</td></tr></table>
"""


@pytest.fixture
def message_team(app, admin):
    team = Team.get(Team.name == "Acme")
    team.postal_address = "1 Main Street\nSpringfield 12345"
    team.default_from_email = "news@acme.example"
    team.save()
    CustomField.create(team=team, key="plan", label="Plan", type="text")
    CustomField.create(team=team, key="seats", label="Seats", type="number")
    return team


def make_contact(team, email_address, name="", **attributes):
    return Contact.create(team=team, email=email_address, domain=email_address.rpartition("@")[2], name=name,
                          attributes=attributes)


def make_campaign(team, **fields):
    values = dict(team=team, name="Welcome", from_name="Acme News", from_email="news@acme.example",
                  subject="Hi {{ contact.first_name or 'there' }} — news from Acme", body=BODY, kind="html",
                  preheader="The short line shown after the subject")
    values.update(fields)
    return Campaign.create(**values)


def make_send(campaign, contact):
    return Send.create(campaign=campaign, contact=contact, email=contact.email)


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)
