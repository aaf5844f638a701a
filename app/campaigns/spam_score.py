"""The builder's "SpamAssassin score" card: the campaign's message as a recipient gets it, checked by spamd.

The message comes from the same MessageFactory as real sends (app/content/message.py), for a chosen contact
or a sample person, with the subject as recipients read it (no "[Test]"), and DKIM-signed when the sender
domain has a key, as the real send is. Two things differ from a real recipient's copy, on purpose: links are
not rewritten to tracking links and there is no open pixel (tracking would register Link rows for a draft),
and the unsubscribe links carry send id 0. Neither changes SpamAssassin's local rules much; network rules
(blocklists of link domains) are off in the recommended `spamd -L` anyway.

The score itself is app/deliverability/spamassassin.py; this module only picks the message, the address
(the instance setting `spamd_address`) and counts checks per team (app/consent/ratelimit.py), since every
check costs spamd a second or so of CPU.
"""
import types

from flask import current_app

from app import settings
from app.consent import ratelimit
from app.content import fields
from app.content.message import MessageFactory
from app.content.sandbox import RenderError
from app.deliverability import spamassassin
from app.errors import Problem
from app.sending import teammail

CHECKS_PER_HOUR = 60  # per team, across its members (the app config SPAM_CHECKS_PER_HOUR overrides it)


class SpamScoreError(Problem):
    """The check was not made: the campaign cannot be rendered, or the team has used its checks for the hour."""


def checks_per_hour():
    return int(current_app.config.get("SPAM_CHECKS_PER_HOUR", CHECKS_PER_HOUR))


def rendered_message(team, campaign, contact=None, variant=None):
    """The message bytes a recipient (`contact`, else a sample person) gets; SpamScoreError when it cannot render."""
    person = contact or fields.sample_contact()
    try:
        factory = MessageFactory(campaign, variant, test=True, subject_prefix="")
        raw = factory.build(types.SimpleNamespace(email=person.email, id=0), person)
    except RenderError as error:
        raise SpamScoreError(f"This campaign cannot be rendered yet: {error}") from None
    sign = teammail.signer(team, factory.from_email)
    return sign(raw) if sign else raw


def score(team, campaign, contact=None, variant=None):
    """SpamAssassin's SpamVerdict for the campaign's message (spamassassin.SpamVerdict; `available` False in words
    when spamd is not set up or not answering); SpamScoreError when no check could be made."""
    address = settings.get_setting("spamd_address")
    if not (address or "").strip():
        return spamassassin.unavailable("SpamAssassin is not set up on this Loft (no spamd address is set).")
    message = rendered_message(team, campaign, contact, variant)
    if not ratelimit.hit("spam-score", team.id, checks_per_hour(), 3600):
        raise SpamScoreError(f"This team has made its {checks_per_hour()} SpamAssassin checks for this hour: "
                             "try again later.")
    return spamassassin.check(message, address)
