"""What Loft does about a bounce, a complaint or a refusal during sending.

    apply(team_id, report, source)               a parsed report (app.bounces.parse.Report) from the
                                                 bounce mailbox ("imap") or a provider webhook ("ses", ...)
    apply_smtp_reply(send, code, message)        a 5xx the receiving server gave while the engine sent
    apply_smtp_replies(refusals)                 the same for a batch: the engine's on_refusals hook

Matching, always inside the team that received the report (another team's
send, contact or account is never touched, even with a genuine token):
  1. the X-Loft-Token header of the returned message (tokens.verify("header") -> Send id);
  2. the returned Message-ID: Loft's own <loft.<campaign>.<send>.<tag>@...> (tag checked),
     then Send.message_id;
  3. an unsubscribe request's token (tokens.verify("unsubscribe")), from the subject of a
     mail to the List-Unsubscribe mailto: address;
  4. for bounces and complaints only, the recipient address among the team's sends of
     the last 30 days (MATCH_DAYS). Never for authentication-failure reports (a DMARC
     report about mail someone else forged in our name must not stop our campaign) nor
     for unsubscribe mails (a forged From: must not unsubscribe anyone).

Outcomes, by kind (app.bounces.classify):
  hard       the Send is "bounced"; the contact "bounced" (from active); the address suppressed
             (reason "bounced"); Event "bounced" {kind, status, reason, source, ...}.
  soft       the Send is "bounced"; Event "bounced"; after SOFT_BOUNCE_LIMIT soft bounces of
             the contact within SOFT_BOUNCE_DAYS, as hard (the status change says "soft_bounces").
  block      the Send is "bounced"; Event "bounced" only: the contact is not to blame.
  auth       Event "bounced"; the campaign pauses with the reason, and the team admins are
             alerted (app.notices.alerts.notify).
  limit      the SMTP account pauses (accounts.pause_for_limit_reply); the Send is "failed",
             so "send failed messages again" retries it; the contact is not to blame.
  complaint  the contact "complained", unsubscribed from every list, suppressed (reason
             "complained"); Event "complained". An opt-out (ARF opt-out, an unsubscribe mail)
             unsubscribes instead (app.consent.preferences.unsubscribe_everything).
  delayed    a delay notice (Action: delayed): Event "deferred" only.

Idempotent per (send, kind): the same report applied twice records one event
and changes nothing the second time. Each application is one transaction.
"""
import datetime
import logging
import re

from flask import current_app

from app import addresses
from app import events
from app import tokens
from app.automations import runs as automation_runs
from app.bounces import autopause
from app.bounces import classify
from app.campaigns import states
from app.consent import preferences
from app.consent import suppression
from app.db import db
from app.models import Campaign
from app.models import CampaignState
from app.models import Contact
from app.models import ContactStatus
from app.models import Event
from app.models import EventType
from app.models import Send
from app.models import SmtpAccount
from app.models import Subscription
from app.models import Suppression
from app.models import utcnow
from app.notices import alerts
from app.senders import accounts
from app.sending import ledger
from app.transactional import service as transactional

log = logging.getLogger(__name__)

MATCH_DAYS = 30  # how far back a bounce or complaint is matched by the recipient's address
LOFT_MESSAGE_ID = re.compile(r"^<?loft\.(\d+)\.(\d+)\.([A-Za-z0-9_-]{10})@[^>]+>?$")
DEFAULT_SOFT_LIMIT = 3
DEFAULT_SOFT_DAYS = 30


def soft_bounce_policy():
    """(N, M): N soft bounces within M days suppress a contact (LOFT_SOFT_BOUNCE_LIMIT / _DAYS)."""
    config = current_app.config
    return (max(1, int(config.get("SOFT_BOUNCE_LIMIT", DEFAULT_SOFT_LIMIT))),
            max(1, int(config.get("SOFT_BOUNCE_DAYS", DEFAULT_SOFT_DAYS))))


# --- Matching ---------------------------------------------------------------------------------------

def _team_send(team_id, send_id):
    if not send_id:
        return None
    return (Send.select(Send, Campaign).join(Campaign)
            .where((Send.id == send_id) & (Campaign.team == team_id)).first())


def send_for_token(team_id, token):
    ids = tokens.verify("header", token) if token else None
    return _team_send(team_id, ids[0]) if ids and len(ids) == 1 else None


def send_for_message_id(team_id, message_id):
    message_id = (message_id or "").strip()
    if not message_id:
        return None
    match = LOFT_MESSAGE_ID.match(message_id)
    if match:
        campaign_id, send_id, tag = int(match.group(1)), int(match.group(2)), match.group(3)
        expected = tokens.sign("header", campaign_id, send_id)[-10:]
        if tag == expected:
            send = _team_send(team_id, send_id)
            if send is not None and send.campaign_id == campaign_id:
                return send
    bracketed = message_id if message_id.startswith("<") else f"<{message_id}>"
    return (Send.select(Send, Campaign).join(Campaign)
            .where((Send.message_id << [bracketed, bracketed.strip("<>")]) & (Campaign.team == team_id))
            .order_by(Send.id.desc()).first())


def send_for_address(team_id, email, now=None):
    email = addresses.lookup_form(email)
    if not email:
        return None
    since = (now or utcnow()) - datetime.timedelta(days=MATCH_DAYS)
    return (Send.select(Send, Campaign).join(Campaign)
            .where((Send.email == email) & (Campaign.team == team_id) & (Send.sent_at >= since))
            .order_by(Send.sent_at.desc(), Send.id.desc()).first())


def match(team_id, report, now=None):
    """[(send, result)] for the report's failed recipients, within the team; empty when nothing matches."""
    failed = [r for r in report.results if r.kind != "none"] or list(report.results)
    send = send_for_token(team_id, report.loft_token) or send_for_message_id(team_id, report.original_message_id)
    if send is None and getattr(report, "unsubscribe_token", ""):
        ids = tokens.verify("unsubscribe", report.unsubscribe_token)
        send = _team_send(team_id, ids[0]) if ids and len(ids) == 1 else None
    if send is not None:
        # One Loft message has one recipient: use the result about it, else the first failure.
        mine = [r for r in failed if r.email and r.email.lower() == send.email.lower()]
        return [(send, (mine or failed or [None])[0])]
    if report.kind == "auth" or report.format == "mailto":
        return []  # never by address: see the module docstring
    pairs, seen = [], set()
    for result in failed:
        found = send_for_address(team_id, result.email, now)
        if found is not None and found.id not in seen:
            seen.add(found.id)
            pairs.append((found, result))
    return pairs


# --- Applying -----------------------------------------------------------------------------------------

def apply(team_id, report, source, now=None):
    """Apply a parsed report for `team_id`. Returns one dict per matched send:
    {"send_id", "contact_id", "email", "kind", "actions": [...], "duplicate": bool}."""
    if not (report.is_bounce or report.is_complaint or report.kind == "auth"):
        return []
    # A transactional message's Message-ID first: matched by address, its bounce would land on a campaign's send.
    about_transactional = _apply_transactional(team_id, report)
    if about_transactional:
        return about_transactional
    now = now or utcnow()
    done = []
    for send, result in match(team_id, report, now):
        kind = "complaint" if report.is_complaint else (result.kind if result is not None else report.kind)
        details = {
            "status": (result.status if result is not None else "") or report.status,
            "reason": (result.reason if result is not None else "") or report.reason,
            "diagnostic": ((result.diagnostic if result is not None else "") or report.diagnostic)[:500],
            "action": result.action if result is not None else "failed",
            "feedback_type": report.feedback_type,
            "remote_mta": (result.remote_mta if result is not None else "") or report.remote_mta,
            # A feedback report is about a message that was delivered: the Send stays as it is.
            "delivered": report.format in ("arf", "mailto"),
        }
        done.append(_apply_one(team_id, send, kind, details, source, now))
    autopause.after_outcomes(done)  # a sending campaign with too many bounces/complaints pauses
    return done


def _apply_transactional(team_id, report, delivered=False):
    """A report about a transactional message (matched by its Message-ID only, never by address): into its
    status history; a hard bounce or a complaint suppresses the address. [] when it names none."""
    failed = [r for r in report.results if r.kind != "none"] or list(report.results)
    result = failed[0] if failed else None
    tx = transactional.message_for_report(team_id, report.original_message_id, result.email if result else "")
    if tx is None or report.kind == "auth":
        return []
    kind = "complaint" if report.is_complaint else (result.kind if result is not None else report.kind)
    if delivered:
        kind = "delivered"
    status = (result.status if result is not None else "") or report.status
    reason = (result.reason if result is not None else "") or report.reason
    diagnostic = ((result.diagnostic if result is not None else "") or report.diagnostic)[:500]
    detail = " ".join(part for part in (status, reason, diagnostic) if part) or kind
    recorded, duplicate = transactional.record_report(tx, kind, detail)
    return [{"send_id": None, "tx_id": tx.id, "contact_id": None, "email": tx.to_email, "kind": kind,
             "actions": [recorded], "duplicate": duplicate}]


def record_delivery(team_id, report, source, now=None):
    """Record a provider's "delivered" for each matched send: one Event "delivered" per send, never twice.

    The Send itself stays "sent": delivery is news about a message already handed over,
    and reports and outgoing webhooks read it from the event."""
    about_transactional = _apply_transactional(team_id, report, delivered=True)
    if about_transactional:
        return about_transactional
    now = now or utcnow()
    done = []
    for send, result in match(team_id, report, now):
        with db.atomic():
            duplicate = _already(send, "delivered", "delivered")
            if not duplicate:
                data = {"send": send.id, "kind": "delivered", "source": source,
                        "remote_mta": (result.remote_mta if result is not None else "") or report.remote_mta}
                events.record(team_id, send.contact_id, EventType.DELIVERED, data, campaign_id=send.campaign_id,
                              at=now)
        done.append({"send_id": send.id, "contact_id": send.contact_id, "email": send.email, "kind": "delivered",
                     "actions": [] if duplicate else ["event:delivered"], "duplicate": duplicate})
    return done


def apply_smtp_reply(send, code, message, command="RCPT", source="smtp", now=None):
    """Classify and apply a permanent reply the receiving server gave during sending.

    `send` is a Send or its id. The reply is taken as the answer to RCPT TO unless
    `command` says otherwise ("DATA" after the message was sent). Returns the same
    dict as apply(), or None when the send is gone.
    """
    send_id = send.id if isinstance(send, Send) else int(send)
    send = Send.select(Send, Campaign).join(Campaign).where(Send.id == send_id).first()
    if send is None:
        return None
    return _apply_reply(send, code, message, command, source, now or utcnow())


def apply_smtp_replies(refusals):
    """The engine's on_refusals hook: apply_smtp_reply for [(send_id, code, reply, at)], the sends
    read in one query per 500 rather than one each. Returns the dicts of the sends still there."""
    done = []
    for start in range(0, len(refusals), 500):
        chunk = refusals[start:start + 500]
        sends = {send.id: send for send in Send.select(Send, Campaign).join(Campaign)
                 .where(Send.id << [send_id for send_id, _code, _reply, _at in chunk])}
        for send_id, code, reply, at in chunk:
            if send_id in sends:
                done.append(_apply_reply(sends[send_id], code, reply, "RCPT", "smtp", at or utcnow()))
    return done


def _apply_reply(send, code, message, command, source, now):
    message = (message or "").strip()
    text = message if message.startswith(str(code)) else f"{code} {message}".strip()
    kind, reason, status = classify.classify("", text, command=command, reply_code=code)
    details = {"status": status, "reason": reason, "diagnostic": "", "action": "failed",
               "feedback_type": "", "remote_mta": "", "code": code, "reply": text[:1000]}
    return _apply_one(send.campaign.team_id, send, kind, details, source, now)


def _apply_one(team_id, send, kind, details, source, now):
    delayed = details.get("action") == "delayed" and kind not in ("complaint", "auth")
    event_type = (EventType.COMPLAINED if kind == "complaint"
                  else EventType.DEFERRED if delayed else EventType.BOUNCED).value
    marker = "delayed" if delayed else kind
    summary = {"send_id": send.id, "contact_id": send.contact_id, "email": send.email, "kind": marker,
               "actions": [], "duplicate": False}
    alert = None
    with db.atomic():
        if _already(send, event_type, marker):
            summary["duplicate"] = True
            return summary
        data = {"send": send.id, "kind": marker, "status": details["status"], "reason": details["reason"],
                "source": source, "hard": kind == "hard"}
        for key in ("code", "reply", "feedback_type", "remote_mta", "diagnostic"):
            if details.get(key):
                data[key] = details[key]
        events.record(team_id, send.contact_id, event_type, data, campaign_id=send.campaign_id, at=now)
        summary["actions"].append(f"event:{event_type}")
        if delayed or kind == "none":
            return summary
        if kind == "complaint":
            if details.get("feedback_type") in ("opt-out", "optout"):
                summary["actions"] += _opt_out(send, source)
            else:
                summary["actions"] += _complained(team_id, send, details, now)
            return summary
        error = details.get("reply") or details.get("diagnostic") or details["reason"]
        if kind == "limit":
            if ledger.fail_for_account(send.id, f"Account limit: {error}"):
                Campaign.update(failed=Campaign.failed + 1).where(Campaign.id == send.campaign_id).execute()
            summary["actions"] += _pause_account(team_id, send, details)
            return summary
        if not details.get("delivered"):
            ledger.mark_bounced(send.id, error)
        if kind == "hard":
            summary["actions"] += _bounce_contact(team_id, send, now, "hard bounce")
        elif kind == "soft":
            limit, days = soft_bounce_policy()
            if _soft_bounces(send, now, days) >= limit:
                summary["actions"] += _bounce_contact(team_id, send, now, "soft_bounces")
        elif kind == "auth":
            alert = _pause_campaign(send, details)
            if alert:
                summary["actions"].append("campaign:paused")
    if alert:  # after the commit: an alert is mail and a notice, never part of this transaction
        summary["actions"].append("alert" if notify(team_id, *alert[:2], campaign_id=alert[2]) else "alert:unavailable")
    return summary


def _already(send, event_type, marker):
    """Was (send, kind) applied before? Looked up by the send's contact (an index), or its campaign."""
    query = Event.select(Event.data).where((Event.type == event_type) & (Event.campaign_id == send.campaign_id))
    if send.contact_id is not None:
        query = query.where(Event.contact == send.contact_id)
    for (data,) in query.tuples().iterator():
        if isinstance(data, dict) and data.get("send") == send.id and data.get("kind", marker) == marker:
            return True
    return False


def _soft_bounces(send, now, days):
    """Soft bounces of this contact (or address, when the contact is gone) in the last `days`, this one included."""
    since = now - datetime.timedelta(days=days)
    query = Event.select(Event.data).where((Event.type == "bounced") & (Event.at >= since))
    if send.contact_id is not None:
        query = query.where(Event.contact == send.contact_id)
    else:
        query = query.where(Event.campaign_id == send.campaign_id)
    sends = set()
    for (data,) in query.tuples().iterator():
        if not isinstance(data, dict):
            continue
        if data.get("kind") == "soft" and (send.contact_id is not None or data.get("send") == send.id):
            sends.add(data.get("send"))
    return len(sends)


def _suppress(team_id, email, reason):
    """Suppress the address; a stronger reason replaces "unsubscribed" (which a person may lift
    from the preference page) so that a bounced or complaining address stays stopped."""
    suppression.suppress(team_id, "email", email, reason)
    stronger = ("unsubscribed",) if reason == "bounced" else ("unsubscribed", "bounced")
    (Suppression.update(reason=reason)
     .where((Suppression.team == team_id) & (Suppression.kind == "email") & (Suppression.reason.in_(stronger))
            & (Suppression.value_hash == suppression.value_hash(team_id, "email", email)))
     .execute())


def _bounce_contact(team_id, send, now, why):
    actions = []
    _suppress(team_id, send.email, "bounced")
    actions.append("suppressed:bounced")
    if send.contact_id is not None:
        # The address is dead: no automation may mail it again (the runs the contact is in end, "bounced").
        if automation_runs.leave([send.contact_id], "bounced", now):
            actions.append("automations:left")
        changed = (Contact.update(status=ContactStatus.BOUNCED, updated_at=now)
                   .where((Contact.id == send.contact_id) & (Contact.team == team_id) & (Contact.status == ContactStatus.ACTIVE))
                   .execute())
        if changed:
            events.record(team_id, send.contact_id, EventType.STATUS_CHANGED,
                          {"from": "active", "to": "bounced", "by": None, "reason": why},
                          campaign_id=send.campaign_id, at=now)
            actions.append("contact:bounced")
    return actions


def _complained(team_id, send, details, now):
    actions = []
    _suppress(team_id, send.email, "complained")
    actions.append("suppressed:complained")
    contact = (Contact.get_or_none((Contact.id == send.contact_id) & (Contact.team == team_id))
               if send.contact_id is not None else None)
    if contact is None:
        return actions
    if automation_runs.leave([contact.id], "complained", now):
        actions.append("automations:left")
    ended = (Subscription.update(status="unsubscribed", unsubscribed_at=now)
             .where((Subscription.contact == contact.id) & (Subscription.status != "unsubscribed")).execute())
    if ended:
        actions.append(f"unsubscribed:{ended}")
    if contact.status != ContactStatus.COMPLAINED:
        Contact.update(status=ContactStatus.COMPLAINED, updated_at=now).where(Contact.id == contact.id).execute()
        events.record(team_id, contact.id, EventType.STATUS_CHANGED,
                      {"from": contact.status, "to": "complained", "by": None,
                       "reason": f"complaint ({details.get('feedback_type') or 'abuse'})"},
                      campaign_id=send.campaign_id, at=now)
        actions.append("contact:complained")
    return actions


def _opt_out(send, source):
    if send.contact_id is None:
        _suppress(send.campaign.team_id, send.email, "unsubscribed")
        return ["suppressed:unsubscribed"]
    contact = Contact.get_or_none(Contact.id == send.contact_id)
    if contact is None:
        return []
    ended = preferences.unsubscribe_everything(contact, source=f"feedback:{source}", campaign_id=send.campaign_id)
    return ["contact:unsubscribed", f"unsubscribed:{len(ended)}"]


def _pause_account(team_id, send, details):
    account = (SmtpAccount.get_or_none((SmtpAccount.id == send.smtp_account_id) & (SmtpAccount.team == team_id))
               if send.smtp_account_id is not None else None)
    if account is None:
        return []
    text = details.get("reply") or details.get("diagnostic") or details["reason"]
    code = details.get("code") or classify.find_reply(text) or 550
    accounts.pause_for_limit_reply(account, code, re.sub(rf"^{code}\s*", "", text))
    return [f"account:paused:{account.id}"]


def _pause_campaign(send, details):
    """Pause a sending campaign for our own authentication failure; (subject, text) to alert with, or None."""
    campaign = Campaign.get_by_id(send.campaign_id)
    words = details.get("reply") or details.get("diagnostic") or details.get("reason")
    reason = (f"Receiving servers refused our mail because its authentication (SPF, DKIM or DMARC) failed: "
              f"“{words}”. Check the sending domain's DNS records, then resume the campaign.")
    if campaign.state != CampaignState.SENDING:
        return None
    try:
        states.transition(campaign, CampaignState.PAUSED, reason=reason[:1000])
    except states.TransitionError:
        return None  # paused or stopped meanwhile: someone else already acted (and alerted)
    subject = f"Campaign “{campaign.name}” paused: our email failed authentication"
    return subject, reason, campaign.id


def notify(team_id, subject, text, campaign_id=None):
    """Alert the team's admins (app.notices.alerts); True when handed over. `campaign_id` names the campaign (an
    automation's email step is then named instead of its hidden campaign)."""
    try:
        alerts.notify(team_id, subject, text, campaign_id=campaign_id)
    except Exception:  # noqa: BLE001 - an alert must never undo the outcome it reports
        log.exception("team %s alert failed: %s", team_id, subject)
        return False
    return True
