"""The web version of a campaign message: what one recipient received, in the browser.

It is rendered again from the campaign (and the recipient's A/B variant) with
the same renderer the message factory uses, for the same contact, so it shows
that person's personalisation, their own unsubscribe link and, when the
campaign tracks clicks, the same click links (the Link rows registered when
the campaign was sent). There is never an open pixel: looking at the web
version is not an open of the email.

The page is campaign HTML, which our own UI treats as hostile: it is served
by app.security.untrusted_html_response, whose CSP sandboxes it, forbids every
script and loads nothing but images over https (deliverability reference, section 9)
and the instance's own (its media library, whatever the base URL's scheme).
"""
import logging

from app import settings
from app import tokens
from app.consent import preferences as consent_preferences
from app.content import fields
from app.content import prepare
from app.content import sandbox
from app.content import sources
from app.models import CustomField
from app.models import Link
from app.models import Team
from app.tracking import services

log = logging.getLogger(__name__)

def preference_url(contact):
    """The contact's preference-center link."""
    return consent_preferences.preference_url(contact)


def links_for(send_id, base=None):
    """The personal link variables of one Send: unsubscribe, preferences, web view."""
    base = base if base is not None else settings.base_url()
    unsubscribe_url = f"{base}/u/{tokens.sign('unsubscribe', send_id)}"
    return {"unsubscribe_url": unsubscribe_url,
            "webview_url": f"{base}/v/{tokens.sign('view', send_id)}",
            "preferences_url": unsubscribe_url}


def render(send_id):
    """The HTML of the web version of a Send, or None when there is nothing to show."""
    parts = services.web_view_parts(send_id)
    if parts is None:
        return None
    send, campaign, contact, variant = parts
    team = Team.get_by_id(campaign.team_id)
    base = settings.base_url()
    source = sources.source_of(campaign, variant)
    links = {}
    if campaign.track_clicks:
        links = {url: link_id for link_id, url in
                 Link.select(Link.id, Link.url).where(Link.campaign == campaign.id).tuples()}
    try:
        prepared = prepare.prepare(source.body, source.kind, source.subject, layout=source.layout,
                                   preheader=source.preheader, track_opens=False,
                                   track_clicks=bool(links), base_url=base, link_id=links.get,
                                   utm_settings=source.utm)
        context = fields.base_context(team, base, source.subject, source.from_name, campaign.from_email)
        context.update(links_for(send.id, base))
        preferences = preference_url(contact)
        if preferences:
            context["preferences_url"] = preferences
        custom_fields = list(CustomField.select().where(CustomField.team == campaign.team_id))
        context.update(fields.contact_context(contact, custom_fields))
        context[sandbox.CLICK_TOKEN] = tokens.sign("click", send.id)
        return sandbox.render(prepared.html_template, context)
    except sandbox.RenderError:
        log.exception("the web version of send %s cannot be rendered", send_id)
        return None
