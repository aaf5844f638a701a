"""Opens, clicks, one-click unsubscribe and the web view: what the public endpoints do.

Every link in a campaign message carries a token made by app.tokens
from the Send id, with one key per purpose ("open", "click", "unsubscribe",
"view"). The views verify the token and hand the Send id to this module; a
token that fails verification never reaches the database.

An open or a click is one read of the Send, then an Event insert and, for
human-looking activity, one Contact update, handed to app.tracking.recorder:
on a connection kept open, batched by a per-process writer every
LOFT_TRACKING_FLUSH_MS (written at once in tests). A failed write never changes
the answer: the pixel is still the pixel, the click still goes to its target.
The common requests are answered by app.tracking.fastpath, before Flask.

Machine opens and bot clicks are kept but flagged (deliverability reference,
section 8): reports and the A/B winner use human-likely opens and clicks.
These are heuristics, observations of vendors rather than anything Apple or
the mail-security gateways document:

  machine open  Apple Mail Privacy Protection prefetches every image when the
                message arrives: the bare "Mozilla/5.0" user agent, a source
                address in Apple's networks, or a fetch within a few seconds of
                the send. Gmail's GoogleImageProxy fetches only when the person
                opens the message, so it counts as a real open (marked "proxy").
  bot click     a HEAD request, a scanner's user agent (or none at all), or a
                click within about ten seconds of the send.

Contact.last_activity_at moves only for human-likely opens and clicks, so a
prefetching proxy never keeps an inactive contact looking engaged.
"""
import base64
import ipaddress
import logging

from peewee import JOIN
from peewee import PeeweeException

from app import events
from app.automations import triggers
from app.consent import suppression
from app.db import db
from app.db import first_row
from app.db import statement
from app.db import update_many
from app.metrics.definitions import TRACKING_HITS
from app.models import Campaign
from app.models import Contact
from app.models import ContactStatus
from app.models import Event
from app.models import EventType
from app.models import Link
from app.models import MailingList
from app.models import Send
from app.models import Subscription
from app.models import Team
from app.models import Variant
from app.models import utcnow
from app.sending import ledger
from app.tracking import recorder

log = logging.getLogger(__name__)
# The one place a campaign's open or click is recorded: counted here (bound once, this is the hot path).
HITS = {EventType.OPENED.value: TRACKING_HITS.labels("open", "campaign"),
        EventType.CLICKED.value: TRACKING_HITS.labels("click", "campaign")}

# The smallest transparent GIF: 1x1, one transparent colour, 43 bytes.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
assert len(PIXEL) == 43

MACHINE_OPEN_SECONDS = 5  # an image fetched this soon after sending was fetched by a machine
BOT_CLICK_SECONDS = 10  # a link followed this soon after sending was followed by a scanner
UA_MAX = 300  # characters of the user agent kept in an event

# Apple's networks (17.0.0.0/8 and its IPv6 allocations): where MPP proxies fetch from.
APPLE_NETWORKS = tuple(ipaddress.ip_network(n) for n in ("17.0.0.0/8", "2620:149::/32", "2a01:b740::/32"))

# Lower-cased fragments of user agents sent by link scanners, previewers and scripts.
SCANNER_AGENTS = ("bot", "crawler", "spider", "scanner", "preview", "proofpoint", "urldefense", "mimecast",
                  "barracuda", "safelinks", "safe links", "forcepoint", "symantec", "trendmicro", "sophos",
                  "fortiguard", "headlesschrome", "phantomjs", "python-requests", "python-urllib", "aiohttp",
                  "curl/", "wget/", "go-http-client", "java/", "okhttp", "libwww", "httpclient", "slurp")

# Subscriptions that still bring campaign mail (an unconfirmed one never does).
RECEIVING = "subscribed"
# Sends still waiting to go out (not claimed by a run); an unsubscribe takes them out of the queue.
WAITING = ledger.WAITING


# --- Heuristics ------------------------------------------------------------------------

def _seconds_since(sent_at, now):
    if sent_at is None:
        return None
    return (now - sent_at).total_seconds()


def _in_apple_network(ip):
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in network for network in APPLE_NETWORKS)


def open_flags(user_agent, ip, sent_at, now):
    """{"machine": bool, "why": [...], "proxy": ...} for one fetch of the open pixel."""
    user_agent = (user_agent or "").strip()
    why = []
    proxy = None
    if "GoogleImageProxy" in user_agent:
        proxy = "google"  # fetched when the person opens the message: a real open
    elif "YahooMailProxy" in user_agent:
        proxy = "yahoo"
    else:
        if user_agent == "Mozilla/5.0":
            why.append("apple-mpp-agent")
        if ip and _in_apple_network(ip):
            why.append("apple-network")
        age = _seconds_since(sent_at, now)
        if age is not None and age < MACHINE_OPEN_SECONDS:
            why.append("too-soon")
    flags = {"machine": bool(why)}
    if why:
        flags["why"] = why
    if proxy:
        flags["proxy"] = proxy
    return flags


def click_flags(method, user_agent, sent_at, now):
    """{"bot": bool, "why": [...]} for one click."""
    agent = (user_agent or "").strip().lower()
    why = []
    if method == "HEAD":
        why.append("head-request")
    if not agent:
        why.append("no-agent")
    elif any(fragment in agent for fragment in SCANNER_AGENTS):
        why.append("scanner-agent")
    age = _seconds_since(sent_at, now)
    if age is not None and age < BOT_CLICK_SECONDS:
        why.append("too-soon")
    flags = {"bot": bool(why)}
    if why:
        flags["why"] = why
    return flags


def is_web_url(url):
    """Only http(s) targets are ever redirected to (never javascript:, data:, or a relative path)."""
    lowered = (url or "").strip().lower()
    return (lowered.startswith("https://") or lowered.startswith("http://")) and not any(
        ord(c) < 32 for c in url)


# --- Opens and clicks ------------------------------------------------------------------

# The hot path (the pixel must take thousands of requests a second, docs/benchmarks.md) uses
# plain SQL built once per database: building the same peewee queries per request
# costs more than running them. Keyed by the database's parameter style.
_statements = {}


def _sql():
    p = db.param
    found = _statements.get(p)
    if found is None:
        facts = (Send.contact, Send.campaign, Campaign.team, Send.sent_at)
        found = _statements[p] = {
            # (send id)
            "facts": statement(Send.select(*facts).join(Campaign).where(Send.id == 0)),
            # (link id, send id): the join's value comes first
            "click": statement(Send.select(*facts, Link.url).join(Campaign).switch(Send)
                               .join(Link, on=(Link.campaign == Send.campaign) & (Link.id == 0))
                               .where(Send.id == 0)),
            "activity": update_many([Contact.last_activity_at], Contact.id),
        }
    return found


def _facts(row):
    """(contact_id, campaign_id, team_id, sent_at as a datetime) from a raw row."""
    return row[0], row[1], row[2], Send.sent_at.python_value(row[3])


def _send_facts(send_id):
    """(contact_id, campaign_id, team_id, sent_at) of a Send, or None. One indexed read."""
    row = first_row(_sql()["facts"], (send_id,), recorder.reader())
    return _facts(row) if row else None


def _record(team_id, contact_id, campaign_id, type, data, now, active):
    """Write the event (and the contact's activity) before returning; False when it could
    not be written (already logged). Rows of concurrent hits share one transaction
    (app.tracking.recorder: group commit on a connection kept open)."""
    row = (team_id, contact_id, campaign_id, type, now, Event.data.db_value(data), active)
    written = recorder.recorder(_sql()).submit(row)
    if written:
        HITS[type].inc()
    return written


def record_open(send_id, user_agent, ip, now=None):
    """Record an "opened" event for the Send's contact; returns the event data, or None when
    there is nobody to record it for (unknown send, deleted contact). Never raises for a
    database problem: the pixel must be served whatever happens."""
    now = now or utcnow()
    try:
        facts = _send_facts(send_id)
        if facts is None or facts[0] is None:
            return None
        contact_id, campaign_id, team_id, sent_at = facts
        data = open_flags(user_agent, ip, sent_at, now)
        data.update(send=send_id, ua=(user_agent or "")[:UA_MAX], ip=ip or "")
        if not _record(team_id, contact_id, campaign_id, EventType.OPENED.value, data, now, active=not data["machine"]):
            return None
        return data
    except PeeweeException:
        log.exception("could not record an open of send %s", send_id)
        return None


def click_target(send_id, link_id):
    """(url, facts) when `link_id` is a web link of the Send's own campaign, else None."""
    row = first_row(_sql()["click"], (link_id, send_id), recorder.reader())
    if row is None or not is_web_url(row[4]):
        return None
    return row[4].strip(), _facts(row)


def record_click(send_id, link_id, url, facts, method, user_agent, ip, now=None):
    """Record a "clicked" event (with bot flags); never raises for a database problem."""
    now = now or utcnow()
    contact_id, campaign_id, team_id, sent_at = facts
    if contact_id is None:
        return None
    data = click_flags(method, user_agent, sent_at, now)
    data.update(send=send_id, link_id=link_id, url=url, ua=(user_agent or "")[:UA_MAX], ip=ip or "")
    if not _record(team_id, contact_id, campaign_id, EventType.CLICKED.value, data, now, active=not data["bot"]):
        return None
    return data


# --- Unsubscribe -----------------------------------------------------------------------

class UnsubscribeTarget:
    """Who an unsubscribe link belongs to: the Send, its campaign, contact and team."""

    def __init__(self, send, campaign, contact, team):
        self.send = send
        self.campaign = campaign
        self.contact = contact
        self.team = team

    @property
    def masked_email(self):
        local, _, domain = self.contact.email.partition("@")
        return f"{local[:1]}…@{domain}"

    @property
    def is_unsubscribed(self):
        return self.contact.status == ContactStatus.UNSUBSCRIBED


def unsubscribe_target(send_id):
    """Who the Send's unsubscribe link belongs to, or None when the send or its contact no longer exists."""
    send = (Send.select(Send, Campaign, Contact, Team)
            .join(Campaign, on=(Send.campaign == Campaign.id))
            .join(Team, on=(Campaign.team == Team.id))
            .switch(Send)
            .join(Contact, JOIN.LEFT_OUTER, on=(Send.contact == Contact.id))
            .where(Send.id == send_id).first())
    if send is None or send.contact_id is None or getattr(send, "contact", None) is None:
        return None
    return UnsubscribeTarget(send, send.campaign, send.contact, send.campaign.team)


def audience_lists(campaign):
    """Ids of the team's lists the campaign was sent to (its audience's "lists")."""
    selected = campaign.audience
    wanted = {int(v) for v in (selected.get("lists") or ()) if str(v).isdigit()} if isinstance(selected, dict) else set()
    if not wanted:
        return []
    return [i for (i,) in MailingList.select(MailingList.id)
            .where((MailingList.team == campaign.team_id) & (MailingList.id << list(wanted))).tuples()]


def _segments_of(campaign):
    selected = campaign.audience
    return list(selected.get("segments") or ()) if isinstance(selected, dict) else []


def unsubscribe(send_id, everything=False, source="one-click"):
    """Unsubscribe the recipient of a Send, at once; returns what changed, or None for an
    unknown send. Safe to repeat: a second call changes nothing and records nothing.

    One-click (RFC 8058) acts on the list tied to the message, as the mailbox providers
    define it: the contact leaves the lists the campaign was sent to. When that leaves
    them on no list at all, or the campaign was not sent to lists (segments only, so no
    narrower choice exists), the contact's status becomes "unsubscribed" and no campaign
    reaches them again. `everything=True` (the confirmation page's second button) ends
    every subscription, sets the status and adds the address to the suppression list
    (reason "unsubscribed"), exactly like the preference center's button. A one-click
    unsubscribe is a status change only: suppression is kept for what the person did not
    choose with one click (bounces, complaints, the team's own entries, "stop everything").

    Either way it takes effect immediately: queued sends of other campaigns that the
    contact no longer belongs to are skipped, and the engine skips any contact who is
    no longer active when it claims a send.
    """
    now = utcnow()
    with db.atomic():
        target = unsubscribe_target(send_id)
        if target is None:
            return None
        contact, campaign = target.contact, target.campaign
        explicit_everything = everything
        lists = [] if everything else audience_lists(campaign)
        ending = Subscription.select(Subscription.id, MailingList.id, MailingList.name,
                                     MailingList.visibility).join(MailingList).where(
            (Subscription.contact == contact) & (Subscription.status != "unsubscribed"))
        if lists:
            ending = ending.where(Subscription.list << lists)
        ending = list(ending.tuples())
        if ending:
            (Subscription.update(status="unsubscribed", unsubscribed_at=now)
             .where(Subscription.id << [row[0] for row in ending]).execute())
        still_receiving = (Subscription.select().where((Subscription.contact == contact)
                                                       & (Subscription.status == RECEIVING)).exists())
        everything = everything or not lists or not still_receiving
        status_changed = everything and contact.status == ContactStatus.ACTIVE
        if status_changed:
            Contact.update(status=ContactStatus.UNSUBSCRIBED, updated_at=now).where(Contact.id == contact.id).execute()
            events.record(target.team.id, contact.id, EventType.STATUS_CHANGED,
                          {"from": "active", "to": "unsubscribed", "by": None, "reason": source},
                          campaign_id=campaign.id, at=now)
            contact.status = "unsubscribed"
        suppressed = False
        if explicit_everything:
            # The person asked to stop everything: like the preference center's button, this
            # also goes on the suppression list (reason "unsubscribed"), so deleting and
            # re-importing the contact cannot bring them back; their preference page lifts it.
            suppressed = suppression.suppress(target.team.id, "email", contact.email, reason="unsubscribed")
        if not (ending or status_changed or suppressed):
            return {"changed": False, "lists": [], "public_lists": [], "all": contact.status != ContactStatus.ACTIVE,
                    "skipped": 0}
        if contact.status != ContactStatus.ACTIVE:
            triggers.contacts_stopped([contact.id], "unsubscribed", now)
        for row in ending:  # a list-level unsubscribe ends the runs that list started (docs/automations.md)
            triggers.left_list(target.team.id, contact.id, row[1], now)
        names = [row[2] for row in ending]
        public_names = [row[2] for row in ending if row[3] == "public"]  # private lists are named nowhere public
        events.record(target.team.id, contact.id, EventType.UNSUBSCRIBED,
                      {"send": send_id, "lists": names, "all": everything, "source": source},
                      campaign_id=campaign.id, at=now)
        skipped = _skip_waiting_sends(contact, now)
    return {"changed": True, "lists": names, "public_lists": public_names, "all": everything, "skipped": skipped}


def _skip_waiting_sends(contact, now):
    """Take the contact out of the queue of campaigns they no longer belong to; returns how many.

    A contact who is no longer active leaves every queue. One who is still active
    leaves the queue of campaigns sent to lists only (no segments) when they are
    subscribed to none of those lists any more. The update only touches sends still
    waiting, so a send the engine has already claimed is left to the engine.
    """
    waiting = list(Send.select(Send.id, Campaign.id, Campaign.team, Campaign.audience)
                   .join(Campaign, on=(Send.campaign == Campaign.id))
                   .where((Send.contact == contact.id) & (Send.status << WAITING)))
    if not waiting:
        return 0
    receiving = {i for (i,) in Subscription.select(Subscription.list)
                 .where((Subscription.contact == contact.id) & (Subscription.status == RECEIVING)).tuples()}
    leaving = []
    for send in waiting:
        if contact.status != ContactStatus.ACTIVE:
            leaving.append(send.id)
        elif not _segments_of(send.campaign):
            lists = audience_lists(send.campaign)
            if lists and not receiving.intersection(lists):
                leaving.append(send.id)
    if leaving:
        reason = ("The contact unsubscribed after the campaign was published."
                  if contact.status != ContactStatus.ACTIVE
                  else "The contact left the campaign's lists after it was published.")
        ledger.skip_for_contact(leaving, reason)
    return len(leaving)


# --- Web view --------------------------------------------------------------------------

def web_view_parts(send_id):
    """(send, campaign, contact, variant) for the web version of a Send, or None."""
    send = (Send.select(Send, Campaign, Contact)
            .join(Campaign, on=(Send.campaign == Campaign.id))
            .switch(Send)
            .join(Contact, JOIN.LEFT_OUTER, on=(Send.contact == Contact.id))
            .where(Send.id == send_id).first())
    if send is None or send.contact_id is None:
        return None
    variant = Variant.get_or_none(Variant.id == send.variant_id) if send.variant_id else None
    return send, send.campaign, send.contact, variant

