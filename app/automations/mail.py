"""The automation email step: exactly one email per (run, step), sent by the campaign engine.

Each email step has a hidden campaign of its own (AutomationStep.campaign), made on first use and kept in step with
the step's config whenever a run reaches the step (campaign_for). queue_email() appends the run's message to that
campaign's Send ledger (app.sending.ledger.queue_one, the one writer of Send rows), so the message gets what every
campaign message gets: the renderer and sanitizer, open and click tracking, List-Unsubscribe and the footer, DKIM,
the accounts' rate limits, the engine's crash guarantee and bounce attribution (X-Loft-Token names the send).

Exactly once per (run, step): the run's visit of the step (AutomationVisit, unique per run and step) holds the message
(send_id, migration 0078), set in the transaction that writes the Send row and only while it is empty, so a second
call (a retry, or the engine doing the step again after a kill -9 before it recorded the visit's outcome) finds it
set, or changes no row and rolls its transaction back, and adds nothing. A burst's visits are inserted with their
Send rows (queue_emails, in the scheduler's transaction; the skip rules are checked by screen_emails before it):
a visit already there fails the insert on its unique index.

Send is unique per (campaign, contact). A contact who enters again (re-entry after_end / always) reuses its row once
the earlier message finished (queued again); one still waiting to go is this entry's message too. Engagement of a
run's email is told apart from an earlier entry's by the newest Event id at queue time (the visit's after_event_id):
opens and clicks are Event rows with campaign_id = the hidden campaign, and this run's message goes out after it.

The hidden campaign stays "sending" for as long as the automation lives: app/sending/conclusion.py never completes a
campaign an automation step owns (so there is no "finished" notice), and the campaign list leaves them out.
"""
import time
import typing

from peewee import Value
from peewee import fn

from app.campaigns import states
from app.consent import suppression
from app.db import IdList
from app.db import db
from app.db import insert_rows
from app.email_templates import services as template_services
from app.models import Automation
from app.models import AutomationRun
from app.models import AutomationStep
from app.models import AutomationVisit
from app.models import Campaign
from app.models import CampaignState
from app.models import Contact
from app.models import ContactStatus
from app.models import Event
from app.models import MailingList
from app.models import Send
from app.models import SendStatus
from app.models import StepKind
from app.models import Template
from app.models import automation_email_campaigns
from app.models.common import utcnow
from app.senders import domains
from app.sending import ledger

KINDS = ("html", "markdown")
ENGAGEMENT = {"opened": ("opened", "clicked"), "clicked": ("clicked",)}  # a click is an open the pixel missed


def is_hidden(campaign_id):
    return AutomationStep.select().where(AutomationStep.campaign == campaign_id).exists()


# --- The hidden campaign ------------------------------------------------------------------

def _text(config, key, limit=None):
    value = config.get(key) if isinstance(config, dict) else None
    value = value if isinstance(value, str) else ""
    return value[:limit] if limit else value


def audience_of(automation, step):
    """The hidden campaign's audience: never frozen (runs add its Send rows), it says which list a message is "about".
    For an automation started by joining a list, a one-click unsubscribe (RFC 8058) then leaves that list only, as a
    campaign's does, and the runs that list started end (triggers.left_list); otherwise it stops everything."""
    trigger = automation.trigger if isinstance(automation.trigger, dict) else {}
    lists = []
    list_id = trigger.get("list_id")
    if trigger.get("kind") in ("list_join", "confirmed") and isinstance(list_id, int) and not isinstance(list_id, bool):
        lists = [mailing_list.id for mailing_list in MailingList.select(MailingList.id)
                 .where((MailingList.id == list_id) & (MailingList.team == automation.team_id))]
    return {"lists": lists, "segments": [], "exclude_lists": [], "exclude_segments": [], "automation_step": step.id}


def content_of(automation, step):
    """The campaign columns the step's config asks for (the automation's sender where the step leaves it empty)."""
    config = step.config if isinstance(step.config, dict) else {}
    kind = _text(config, "kind")
    template_id = config.get("template_id")
    template = None
    if isinstance(template_id, int) and not isinstance(template_id, bool):
        # Only the team's own templates or the built-in ones: another team's id is ignored, never used.
        template = (Template.select(Template.id)
                    .where((Template.id == template_id)
                           & ((Template.team == automation.team_id) | Template.team.is_null())).scalar())
    return {"audience": audience_of(automation, step),
            "subject": _text(config, "subject", 1000), "preheader": _text(config, "preheader", 1000),
            "kind": kind if kind in KINDS else "html", "body": _text(config, "body"), "template": template,
            "from_name": _text(config, "from_name", 200) or automation.from_name,
            "from_email": _text(config, "from_email", 320) or automation.from_email,
            "reply_to": automation.reply_to}


def campaign_for(step, automation=None):
    """The step's hidden campaign, made on first use and brought in line with the step's config (lazy sync): an
    edit reaches every run that has not yet reached the step (the engine builds messages from the campaign)."""
    automation = automation or Automation.get_by_id(step.automation_id)
    wanted = content_of(automation, step)
    campaign = Campaign.get_or_none(Campaign.id == step.campaign_id) if step.campaign_id else None
    if campaign is None:
        name = f"{automation.name} · step {step.id}"[:200]
        campaign = Campaign.create(team=automation.team_id, name=name,  # a draft until the first run reaches it
                                   track_opens=True, track_clicks=True, **wanted)
        # Two processes may both make one: the first to set the step's column wins, the other's is removed.
        claimed = (AutomationStep.update(campaign=campaign.id)
                   .where((AutomationStep.id == step.id)
                          & (AutomationStep.campaign.is_null() | (AutomationStep.campaign == step.campaign_id)))
                   .execute())
        if not claimed:
            Campaign.delete().where(Campaign.id == campaign.id).execute()
            step = AutomationStep.get_by_id(step.id)
            return campaign_for(step, automation)
        step.campaign = campaign.id
        return campaign
    changed = {getattr(Campaign, key): value for key, value in wanted.items()
               if (campaign.template_id if key == "template" else getattr(campaign, key)) != value}
    if changed:
        if campaign.state != CampaignState.PAUSED:  # a paused one's updated_at says since when its mail is on hold
            changed[Campaign.updated_at] = utcnow()
        Campaign.update(changed).where(Campaign.id == campaign.id).execute()
        campaign = Campaign.get_by_id(campaign.id)
    return campaign


def _keep_sending(campaign):
    """The hidden campaign must be "sending" for the engine to send from it (a new one is a draft)."""
    if campaign.state in (CampaignState.DRAFT, CampaignState.COMPLETED):
        try:
            return states.transition(campaign, CampaignState.SENDING)
        except states.TransitionError:
            return Campaign.get_by_id(campaign.id)
    return campaign


# What queue_email reads of the automation: its sender and what names the hidden campaign (a burst of 100,000 runs
# builds this query 100,000 times, and peewee's cost grows with the columns).
SENDER_COLUMNS = (Automation.id, Automation.team, Automation.name, Automation.from_name, Automation.from_email,
                  Automation.reply_to, Automation.trigger)
_synced = {}  # step id -> (campaign id, content, when): what this process last found the step's campaign to hold
RECHECK_SECONDS = 60  # how long that is trusted before the campaign and the sender domain are read again


def _sending_campaign(step, automation):
    """(campaign id, "") of the step's hidden campaign, synced and sending, or (None, why not). The content asked for is
    compared with what this process last synced (the step's config is read fresh with the run, so an edit made in
    any process is seen); only a change, or a first call, reads and writes the campaign."""
    wanted = content_of(automation, step)
    fingerprint = repr(sorted(wanted.items()))
    known = _synced.get(step.id)
    if known is not None and step.campaign_id == known[0] and known[1] == fingerprint \
            and time.monotonic() - known[2] < RECHECK_SECONDS:
        return known[0], ""
    if not wanted["from_email"]:
        return None, "no_sender"
    # As a campaign's publishing does (and the automation's go-live, app/automations/flow.py): only From a verified
    # sender domain of the team, checked again here because a domain can be removed after go-live.
    if not domains.is_verified_sender(automation.team_id, wanted["from_email"]):
        return None, "sender_not_verified"
    campaign = _keep_sending(campaign_for(step, automation))
    if campaign.state == CampaignState.SENDING:
        _synced[step.id] = (campaign.id, fingerprint, time.monotonic())
    return campaign.id, ""


# --- Queueing a run's email ---------------------------------------------------------------

def _refusal(contact, suppressed=None):
    """Why the contact must not get the email now ("" when it may). `suppressed`: the addresses of a burst's
    contacts that the team's list blocks (suppression.suppressed_among, one query for them all)."""
    if contact is None:
        return "no_contact"
    if contact.status != ContactStatus.ACTIVE:
        return f"contact_{contact.status}"
    if not contact.email:
        return "no_address"
    if suppressed is not None:
        if suppression.normalise("email", contact.email) in suppressed:
            return "suppressed"
    elif suppression.entries_for(contact.team_id, contact.email):
        return "suppressed"
    return ""


class _AlreadyQueued(Exception):
    """Another call set the visit's message first: this transaction's Send row is rolled back with it."""


def _visit_of(run_id, step_id):
    return AutomationVisit.get_or_none((AutomationVisit.run == run_id) & (AutomationVisit.step == step_id))


def queue_email(run, step, contact, now, visit=None):
    """Hand this run's email of `step` to the campaign engine: "queued", or "skipped:<why>". Safe to call again for
    the same (run, step): the message is written once and sent once. The engine calls it with the visit it opened
    (scheduler.advance, through steps.email), so the visit is not read again; without one it is read, and made here
    if there is none yet. A stale visit is harmless: its message is set only while the stored one is empty."""
    if visit is None:
        visit = _visit_of(run.id, step.id)
    if visit is not None and visit.send_id is not None:
        return "queued"
    if step.kind != StepKind.EMAIL:
        return "skipped:not_an_email_step"
    why = _refusal(contact)
    if why:
        return f"skipped:{why}"
    automation = (Automation.select(*SENDER_COLUMNS).where(Automation.id == step.automation_id).get())
    if automation.team_id != contact.team_id:
        return "skipped:other_team"
    campaign_id, refusal = _sending_campaign(step, automation)
    if refusal:
        return f"skipped:{refusal}"
    try:
        with db.atomic():
            if visit is None:
                AutomationVisit.insert(run=run.id, step=step.id, entered_at=now).on_conflict_ignore().execute()
            after = Event.select(fn.MAX(Event.id)).scalar() or 0
            send_id = ledger.queue_one(campaign_id, contact.id, contact.email)
            # Only while empty: a second call at the same moment (another process) changes no row, and its Send row
            # goes with the rolled-back transaction (PostgreSQL: it waits for the first's row lock, then finds it set).
            if not AutomationVisit.update(send_id=send_id, after_event_id=after).where(
                    (AutomationVisit.run == run.id) & (AutomationVisit.step == step.id)
                    & AutomationVisit.send_id.is_null()).execute():
                raise _AlreadyQueued
    except _AlreadyQueued:
        pass  # the other call's message is this step's: nothing of ours stays
    return "queued"


class Screened(typing.NamedTuple):
    """A part of a burst at an email step, checked (screen_emails): the runs whose email goes, [(run, contact)], and
    the others' visit outcomes, {run id: "skipped:why"}."""
    todo: list
    skipped: dict


def screen_emails(team_id, step, pairs):
    """The skip rules of queue_email for many runs at one email step of the team's automation (`pairs`: [(run,
    contact)]), by reads only. The scheduler calls it before the part's write transaction: a SQLite writer holds the
    whole database, and the suppression check (a keyed hash of every address, then a query) was the longest part of
    what it held meanwhile, with the senders of every campaign waiting to record their results. A suppression added
    between the check and the write is still honoured: the sending engine checks each address again as it sends."""
    if step.kind != StepKind.EMAIL:
        return Screened([], {run.id: "skipped:not_an_email_step" for run, _contact in pairs})
    addresses = [suppression.normalise("email", contact.email) for _run, contact in pairs if contact and contact.email]
    suppressed = suppression.suppressed_among(team_id, addresses)
    skipped, todo = {}, []
    for run, contact in pairs:
        why = _refusal(contact, suppressed)
        if not why and team_id != contact.team_id:
            why = "other_team"
        if why:
            skipped[run.id] = f"skipped:{why}"
        else:
            todo.append((run, contact))
    return Screened(todo, skipped)


def queue_emails(step, screened, now):
    """queue_email for a burst's runs at one email step, screened first (screen_emails), inside the caller's
    transaction, for runs that have no visit of the step yet. Each run's visit of the step is written done, with its
    outcome and its message; returns how many emails were queued. The Send rows in a few statements
    (ledger.queue_many). The visits' unique index is the guard: if another process wrote one meanwhile, the insert
    fails and the caller's whole transaction, Send rows included, is rolled back."""
    skipped, todo = dict(screened.skipped), screened.todo
    if not todo:
        _skipped(step, skipped, now)
        return 0
    automation = Automation.select(*SENDER_COLUMNS).where(Automation.id == step.automation_id).get()
    campaign_id, refusal = _sending_campaign(step, automation)
    if refusal:
        skipped.update((run.id, f"skipped:{refusal}") for run, _contact in todo)
        _skipped(step, skipped, now)
        return 0
    after = Event.select(fn.MAX(Event.id)).scalar() or 0
    ledger.queue_many(campaign_id, [(contact.id, contact.email) for _run, contact in todo])
    # Each run's visit, with its contact's Send row in the step's campaign (unique per campaign and contact), in one
    # INSERT ... SELECT: the same rows bound one by one cost 9-15 us a run (docs/benchmarks.md). The Send row is a
    # subquery, not a join: without statistics SQLite took "campaign = ?" for a few rows and scanned the campaign's
    # whole ledger for every run (6.7 ms a run by 50,000).
    done = AutomationVisit.done_at.db_value(now)
    message = Send.select(Send.id).where((Send.campaign == campaign_id) & (Send.contact == AutomationRun.contact))
    rows = (AutomationRun.select(AutomationRun.id, Value(step.id), Value("queued"), Value(""), Value(done), Value(done),
                                 message, Value(after))
            .where(AutomationRun.id << IdList([run.id for run, _contact in todo])))
    AutomationVisit.insert_from(rows, list(VISIT_FIELDS)).execute()
    _skipped(step, skipped, now)
    return len(todo)


# A visit as a burst writes it, done (an INSERT ... SELECT writes no Python default: every NOT NULL column is named)
VISIT_FIELDS = (AutomationVisit.run, AutomationVisit.step, AutomationVisit.outcome, AutomationVisit.detail,
                AutomationVisit.entered_at, AutomationVisit.done_at, AutomationVisit.send_id,
                AutomationVisit.after_event_id)


def _skipped(step, outcomes, now):
    """The visits of runs whose email is skipped (few in a burst: bound row by row), done with their reasons."""
    insert_rows(VISIT_FIELDS).run([(run_id, step.id, outcome, "", now, now, None, 0)
                                   for run_id, outcome in outcomes.items()])


def send_of(run, step_id):
    """The Send row of this run's email of that step, or None (not queued, or skipped)."""
    visit = _visit_of(run.id, step_id)
    return Send.get_or_none(Send.id == visit.send_id) if visit and visit.send_id else None


def engaged(run, step_id, kind):
    """Did this run's email of that step get opened (kind="opened") or clicked ("clicked")?"""
    if kind not in ENGAGEMENT or run.contact_id is None:
        return False
    step = AutomationStep.get_or_none(AutomationStep.id == step_id)
    visit = _visit_of(run.id, step_id)
    if step is None or step.campaign_id is None or visit is None or visit.send_id is None:
        return False
    rows = (Event.select(Event.data).where((Event.contact == run.contact_id) & (Event.campaign_id == step.campaign_id)
                                           & (Event.type.in_(ENGAGEMENT[kind])) & (Event.id > visit.after_event_id))
            .tuples().iterator())
    # Human-likely only, as the reports count (app/tracking/services.py flags them): a link scanner's click or a
    # privacy proxy's prefetch must not send someone down the "yes" branch.
    return any(not (isinstance(data, dict) and (data.get("bot") or data.get("machine"))) for (data,) in rows)


def due_campaign_ids(team_id=None):
    """Hidden campaigns with messages waiting: the task that moves runs enqueues their sending right after, so a
    welcome email leaves within seconds instead of at the minute tick."""
    # Only a sending campaign: a deleted automation's (cancelled, app/automations/deletion.py) keeps its unsent rows
    # queued, and asking the engine about it every minute would be work for nothing.
    query = (Send.select(Send.campaign).distinct().join(Campaign, on=(Send.campaign == Campaign.id))
             .where((Send.campaign.in_(automation_email_campaigns())) & (Send.status == SendStatus.QUEUED)
                    & (Campaign.state == CampaignState.SENDING)))
    if team_id is not None:
        query = query.where(Campaign.team == team_id)
    return [campaign_id for (campaign_id,) in query.tuples()]


# --- "Send me every step now" -------------------------------------------------------------

def email_steps(automation):
    """The automation's email steps in the order a run meets them (the yes branch before the no branch)."""
    steps = {s.id: s for s in AutomationStep.select().where((AutomationStep.automation == automation.id)
                                                            & AutomationStep.removed_at.is_null())}
    found, todo, seen = [], [automation.first_step_id], set()
    while todo:
        step = steps.get(todo.pop(0))
        if step is None or step.id in seen:  # the tree never loops; a damaged one must not hang us either
            continue
        seen.add(step.id)
        if step.kind == StepKind.EMAIL:
            found.append(step)
        todo[0:0] = [i for i in (step.yes_id, step.no_id, step.next_id) if i]
    return found


def send_test(automation, to_email, contact=None):
    """Send every email step of the automation to `to_email` now, marked as a test ("[Test]", nothing tracked), with
    `contact`'s data or sample data: no run, no ledger row, waits skipped. The campaigns' test-send rules apply (a
    valid address, the team's own account and verified sender, the hourly test allowance): a refusal raises
    app.email_templates.services.TemplateError. Returns how many were accepted by the SMTP server."""
    addresses = template_services.parse_addresses(to_email)
    if len(addresses) != 1:
        raise template_services.TemplateError(errors={"addresses": "Send the test to one address."})
    if contact is not None and contact.team_id != automation.team_id:
        contact = None
    team = automation.team
    steps = email_steps(automation)
    if not steps:
        raise template_services.TemplateError(errors={"": "This automation has no email step to send yet."})
    sent = 0
    for step in steps:
        campaign = campaign_for(step, automation)
        if not campaign.from_email:
            raise template_services.TemplateError(
                errors={"": "Set the automation's From address (or the step's) before sending a test."})
        results = template_services.send_test(campaign, addresses, team, contact)
        sent += sum(1 for result in results if result.ok)
    return sent


def contact_for_test(automation, contact_id):
    """The team's contact for a test, or None (another team's id is never used)."""
    return Contact.get_or_none((Contact.id == contact_id) & (Contact.team == automation.team_id))
