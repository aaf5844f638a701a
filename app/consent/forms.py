"""Public sign-up forms: the hosted page, the embeddable snippet, double opt-in.

Bot defence without a third-party captcha, in three layers:

* a honeypot field, hidden from people (and from screen readers), that must
  stay empty: a bot that fills every field gets the usual "thank you" page
  and nothing is stored or sent;
* a signed timestamp in the hosted form: submitted less than MIN_SECONDS
  after the page was made, or after MAX_AGE, or with a forged stamp, the
  form comes back with a message instead of being processed;
* a per-IP rate limit kept in the database (app.consent.ratelimit), so it
  holds across workers. The embeddable snippet is static HTML pasted into
  another site and cannot carry a fresh server timestamp, so a submission
  without a stamp is accepted but counts against a much smaller per-IP
  allowance than the hosted form.

A further limit caps confirmation emails per address and day, so nobody can
use a form to flood a stranger's inbox.

The answer never tells whether an address is known: suppressed addresses
and contacts that unsubscribed, bounced or complained get the same neutral
page as everyone else, and nothing is sent to them.
"""
import dataclasses
import time

from flask import current_app
from peewee import IntegrityError

from app import events
from app import settings
from app import system_mail
from app import tokens
from app.automations import triggers
from app.brand import services as brand
from app.consent import ratelimit
from app.consent import suppression
from app.consent.services import ConsentError
from app.consent.services import parse_entry
from app.content.media_urls import absolute_media_urls
from app.deliverability import validation
from app.db import db
from app.errors import Problem
from app.models import BLOCKED_STATUSES
from app.models import Contact
from app.models import EventType
from app.models import FormSignup
from app.models import MailingList
from app.models import SignupForm
from app.models import Subscription
from app.models import Team
from app.models import utcnow

# Defaults; each can be overridden in the app config (tests use that).
LIMITS = {
    "SIGNUP_MIN_SECONDS": 2,  # a person needs at least this long to fill in the hosted form
    "SIGNUP_FORM_MAX_AGE": 24 * 3600,  # a hosted form page stays valid this long
    "SIGNUP_PER_IP_HOUR": 20,  # sign-up attempts per IP and hour (any form)
    "SIGNUP_BARE_PER_IP_HOUR": 5,  # of which without a timestamp (the embedded snippet)
    "SIGNUP_CONFIRM_DAYS": 7,  # a confirmation link stays valid this long
    "SIGNUP_MAILS_PER_ADDRESS_DAY": 3,  # confirmation emails per address and day
    "SIGNUP_DNS_TIMEOUT": 1.5,  # seconds the address check may wait for the domain's DNS (then it lets it in)
}
HONEYPOT = "website"  # the field bots love to fill; people never see it
USE_SUGGESTION = "use_suggestion"  # the "Did you mean …?" button's field: the suggested address
TYPO_CHECKED = "email_checked"  # the address the form asked about; sent again unchanged, it is kept
MAX_NAME = 200


def limit(name):
    return current_app.config.get(name, LIMITS[name])


class Refused(Problem):
    """A submission turned away before processing: `reason`, a message, an HTTP status."""

    def __init__(self, reason, message, status):
        super().__init__(message)
        self.reason = reason
        self.status = status


class LinkInvalid(Exception):
    """A confirmation link that was tampered with (`expired` False) or is too old (`expired` True)."""

    def __init__(self, expired=False):
        super().__init__("expired" if expired else "invalid")
        self.expired = expired


@dataclasses.dataclass
class SignupOutcome:
    """What a submission did. `state` is "pending" (confirmation needed), "subscribed",
    "already" or "ignored"; the page shown is the same for all but the first two."""
    state: str
    double_opt_in: bool
    contact: Contact = None
    subscription: Subscription = None
    send_confirmation: bool = False


# --- Lookups ------------------------------------------------------------------

def list_for_public_id(public_id, include_private=False):
    """The list of a hosted form URL. A private list has no public form (None); `include_private` is
    for confirmation links only, so a person who signed up while the list was public can still confirm."""
    query = MailingList.select(MailingList, Team).join(Team).where(MailingList.public_id == public_id)
    if not include_private:
        query = query.where(MailingList.visibility == "public")
    return query.first()


def form_url(mailing_list):
    return f"{settings.base_url()}/f/{mailing_list.public_id}"


def consent_wording(mailing_list):
    """The sentence the person agrees to; stored with their consent record."""
    return (f"I agree that {mailing_list.team.name} may send me emails about “{mailing_list.name}”. "
            "I can unsubscribe at any time with the link in every email.")


# --- The timestamp of the hosted form -----------------------------------------

def form_stamp(mailing_list, at=None):
    """A signed (list, time) pair for the hidden field of the hosted form."""
    return tokens.sign("form", mailing_list.id, int(at if at is not None else time.time()))


def check_stamp(mailing_list, stamp, now=None):
    """Refuse a hosted-form submission that is forged, too fast or too old."""
    check_signed_stamp(stamp, (mailing_list.id,), now)


def check_signed_stamp(stamp, expected_ids, now=None):
    """Refuse a stamp that does not name `expected_ids` (forged, or another form's), or whose time says
    the form was sent too fast or too late. A list's stamp names (list id,), a built form's (0, form id)."""
    ids = tokens.verify("form", stamp)
    if ids is None or tuple(ids[:-1]) != tuple(expected_ids):
        raise Refused("forged", "This form could not be verified. Please fill it in and send it again.", 422)
    age = (now if now is not None else time.time()) - ids[-1]
    if age < limit("SIGNUP_MIN_SECONDS"):
        raise Refused("too_fast", "That was quicker than we expected from a person. "
                                  "Please check the form and send it again.", 422)
    if age > limit("SIGNUP_FORM_MAX_AGE"):
        raise Refused("stale", "This page was open for a long time. Please send the form again.", 422)


# --- The address check -----------------------------------------------------------

class AddressTypo(ConsentError):
    """An address whose domain looks like a slip of a common provider's: the form asks once, "Did you mean
    …?", with a button that sends the `suggestion`; sending the same address again keeps it."""

    def __init__(self, email, suggestion):
        super().__init__(f"Did you mean {suggestion}?", field="email")
        self.email = email
        self.suggestion = suggestion


def submitted_address(form):
    """The address a submission gives: the suggestion's button (USE_SUGGESTION) wins over the typed field."""
    return form.get(USE_SUGGESTION) or form.get("email")


def check_address(email, form):
    """Refuse an address that cannot receive mail (no such domain, a null MX) or is disposable, and ask
    about a probable typo once (AddressTypo). Anything the check could not settle (the domain's DNS did not
    answer within SIGNUP_DNS_TIMEOUT) lets the sign-up through: a slow name server is no reason to turn a
    person away. Role accounts are signed up: a shared inbox may want the newsletter. The DNS half is
    LOFT_SIGNUP_CHECK_DOMAINS's to turn off."""
    verdict = validation.validate(email, dns=bool(current_app.config.get("SIGNUP_CHECK_DOMAINS", True)),
                                  timeout=limit("SIGNUP_DNS_TIMEOUT"))
    domain = email.rpartition("@")[2]
    # The most helpful answer first: a typo's fix, then why the address cannot be used.
    confirmed = (form.get(TYPO_CHECKED) or "").strip().lower()
    if "typo" in verdict.reasons and verdict.suggestion and confirmed != email:
        raise AddressTypo(email, verdict.suggestion)
    if "disposable" in verdict.reasons:
        raise ConsentError("Please use a permanent address: disposable addresses cannot sign up.", field="email")
    if "no_domain" in verdict.reasons or "null_mx" in verdict.reasons:
        raise ConsentError(f"{domain} does not receive email. Please check the address.", field="email")
    if verdict.status == "invalid":
        raise ConsentError("Enter your email address, for example name@example.com.", field="email")


# --- Submission -----------------------------------------------------------------

def _record_consent(contact, source, ip, text, now):
    Contact.update(consent_source=source, consent_at=now, consent_ip=ip or "", consent_text=text,
                   updated_at=now).where(Contact.id == contact.id).execute()


def signup(mailing_list, form, ip):
    """Process one submission of a list's public form (hosted page or embedded snippet).

    Raises Refused (rate limit, honeypot aside, timing) or ConsentError (a bad
    address, for the person to fix); otherwise returns a SignupOutcome. The caller
    sends the confirmation email when outcome.send_confirmation is set.
    """
    stamp = (form.get("ts") or "").strip()
    if not ratelimit.hit("signup", ip, limit("SIGNUP_PER_IP_HOUR"), 3600):
        raise Refused("rate_limited", "There have been too many sign-ups from your network. "
                                      "Please try again in an hour.", 429)
    if not stamp and not ratelimit.hit("signup-bare", ip, limit("SIGNUP_BARE_PER_IP_HOUR"), 3600):
        raise Refused("rate_limited", "There have been too many sign-ups from your network. "
                                      "Please try again in an hour.", 429)
    double = mailing_list.double_opt_in
    if (form.get(HONEYPOT) or "").strip():
        return SignupOutcome("ignored", double)
    if stamp:
        check_stamp(mailing_list, stamp)
    try:
        kind, email = parse_entry(submitted_address(form))
    except ConsentError:
        kind = None
    if kind != "email":
        raise ConsentError("Enter your email address, for example name@example.com.", field="email")
    name = (form.get("name") or "").strip()
    if len(name) > MAX_NAME:
        raise ConsentError(f"Keep the name under {MAX_NAME} characters.", field="name")
    check_address(email, form)
    try:
        outcome = _subscribe(mailing_list, email, name, ip)
    except IntegrityError:
        # Two submissions of a new address at the same moment: the other one won.
        return SignupOutcome("already", double)
    charge_confirmation(mailing_list.team, email, [outcome])
    return outcome


def charge_confirmation(team, email, outcomes):
    """Mark the first pending outcome for sending when the address's daily allowance of confirmation
    emails has room, charging it once: one email confirms every list of a sign-up, however many."""
    waiting = next((outcome for outcome in outcomes if outcome.state == "pending"), None)
    if waiting is None:
        return
    waiting.send_confirmation = ratelimit.hit("confirm-mail", f"{team.id}:{email}",
                                              limit("SIGNUP_MAILS_PER_ADDRESS_DAY"), 24 * 3600)


def subscribe_through(signup_form, mailing_list, email, name, ip):
    """One list's part of a built sign-up form's submission (app/consent/signup_forms.py): the same
    rules as a list's own form, with the form's consent wording, and the subscription counted for it.
    The caller charges the confirmation email once for the whole submission (charge_confirmation)."""
    return _subscribe(mailing_list, email, name, ip, via=signup_form)


def ask_to_confirm(mailing_list, contact, ip):
    """An API caller's double opt-in for an existing contact: the list's confirmation flow whatever the
    list's own setting (the contact stays "unconfirmed" until they click the emailed link), with the
    confirmation email charged like a sign-up's. The caller sends it when outcome.send_confirmation is set."""
    outcome = _subscribe(mailing_list, contact.email, "", ip, double=True, source="api")
    charge_confirmation(mailing_list.team, contact.email, [outcome])
    return outcome


def _subscribe(mailing_list, email, name, ip, via=None, double=False, source="form"):
    outcome = _subscribe_row(mailing_list, email, name, ip, via, double, source)
    if outcome.state == "subscribed":  # after the commit; a pending one starts its automations at confirmation
        triggers.list_joined(mailing_list.team_id, [outcome.contact.id], mailing_list.id, source=source)
    if outcome.contact is not None and outcome.state in ("subscribed", "pending"):
        triggers.contact_changed(mailing_list.team_id, outcome.contact.id)
    return outcome


def _subscribe_row(mailing_list, email, name, ip, via, double, source):
    team = mailing_list.team
    now = utcnow()
    source = {"source": "form", "form_id": via.id} if via is not None else {"source": source}
    consent_source = f"form:{via.name}" if via is not None else f"form:{mailing_list.name}"
    wording = (via.consent_text or consent_wording(mailing_list)) if via is not None else consent_wording(mailing_list)
    with db.atomic():
        if suppression.is_suppressed(team.id, email):
            return SignupOutcome("ignored", mailing_list.double_opt_in)
        contact = Contact.get_or_none((Contact.team == team) & (Contact.email == email))
        if contact is not None and contact.status in BLOCKED_STATUSES:
            return SignupOutcome("ignored", mailing_list.double_opt_in)
        if contact is None:
            contact = Contact.create(team=team, email=email, domain=email.rpartition("@")[2], name=name,
                                     source="form", created_at=now, updated_at=now)
            events.record(team, contact, EventType.CREATED, {**source, "list_id": mailing_list.id,
                          "list": mailing_list.name})
        elif name and not contact.name:
            Contact.update(name=name, updated_at=now).where(Contact.id == contact.id).execute()
        sub = Subscription.get_or_none((Subscription.contact == contact) & (Subscription.list == mailing_list))
        # Someone who unsubscribed from this list must confirm by email even on
        # a single opt-in list: a stranger typing their address is not consent.
        double = double or mailing_list.double_opt_in or (sub is not None and sub.status == "unsubscribed")
        if sub is not None and sub.status == "subscribed":
            return SignupOutcome("already", mailing_list.double_opt_in, contact, sub)
        if double:
            if sub is None:
                sub = Subscription.create(contact=contact, list=mailing_list, status="unconfirmed", created_at=now)
            elif sub.status == "unsubscribed":
                Subscription.update(status="unconfirmed").where(Subscription.id == sub.id).execute()
                sub.status = "unconfirmed"
            events.record(team, contact, EventType.SUBSCRIBED, {"list_id": mailing_list.id, "list": mailing_list.name,
                          **source, "status": "unconfirmed", "ip": ip})
            _count_for(via, contact, mailing_list)
            return SignupOutcome("pending", mailing_list.double_opt_in, contact, sub)
        if sub is None:
            sub = Subscription.create(contact=contact, list=mailing_list, status="subscribed", created_at=now)
        else:
            Subscription.update(status="subscribed").where(Subscription.id == sub.id).execute()
        _record_consent(contact, consent_source, ip, wording, now)
        events.record(team, contact, EventType.SUBSCRIBED, {"list_id": mailing_list.id, "list": mailing_list.name,
                      **source, "status": "subscribed", "ip": ip})
        _count_for(via, contact, mailing_list)
        return SignupOutcome("subscribed", False, contact, sub)


def _count_for(signup_form, contact, mailing_list):
    """Count a subscription a built form brought (once per form, contact and list)."""
    if signup_form is not None:
        FormSignup.insert(form=signup_form, contact=contact, list=mailing_list).on_conflict_ignore().execute()


# --- Double opt-in ----------------------------------------------------------------

def confirmation_token(subscription, email):
    return tokens.sign("confirm", subscription.id, tokens.email_digest(email), int(time.time()))


def confirmation_url(mailing_list, subscription, email):
    return f"{form_url(mailing_list)}/confirm/{confirmation_token(subscription, email)}"


def confirmation_message(mailing_list, outcome):
    """The confirmation email, composed: {to, subject, text, html}. It names every list the link confirms;
    its HTML wears the team's brand kit, since the team sends it."""
    email = outcome.contact.email
    others = [sub.list for sub in companions(outcome.subscription)]
    names = list_names([mailing_list] + others)
    subject = f"Confirm your subscriptions to {names}" if others else f"Confirm your subscription to {mailing_list.name}"
    team = mailing_list.team
    team_brand = brand.brand_for(team)
    team_brand["button_text"] = brand.text_on(team_brand["primary_color"])
    message = system_mail.compose("confirm_subscription", email, subject,
                                  team=team, mailing_list=mailing_list, list_names=names, brand=team_brand,
                                  url=confirmation_url(mailing_list, outcome.subscription, email),
                                  days=limit("SIGNUP_CONFIRM_DAYS"))
    message["html"] = absolute_media_urls(message["html"])  # a logo from the team's media library
    return message


def list_names(lists):
    """“News”, “Offers” and “Events”: lists named in a sentence."""
    quoted = [f"“{lst.name}”" for lst in lists]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def companions(subscription):
    """The other subscriptions waiting for confirmation that the same built form brought in the same sign-up:
    one email and one click confirm them all. None for a list's own form."""
    via = _form_that_brought(subscription.contact_id, subscription.list_id)
    if via is None:
        return []
    return list(Subscription.select(Subscription, MailingList)
                .join(MailingList)
                .switch(Subscription)
                .join(FormSignup, on=((FormSignup.contact == Subscription.contact)
                                      & (FormSignup.list == Subscription.list)))
                .where((FormSignup.form == via) & (Subscription.contact == subscription.contact_id)
                       & (Subscription.id != subscription.id) & (Subscription.status == "unconfirmed"))
                .order_by(Subscription.id))


def wording_for(mailing_list, subscription):
    """The consent sentence a confirmation is about: the built form's own when one brought the subscription."""
    via = _form_that_brought(subscription.contact_id, mailing_list.id)
    return (via.consent_text if via is not None else "") or consent_wording(mailing_list)


def _form_that_brought(contact_id, list_id):
    """The built form that most recently brought this contact to this list, or None."""
    return (SignupForm.select().join(FormSignup)
            .where((FormSignup.contact == contact_id) & (FormSignup.list == list_id))
            .order_by(FormSignup.id.desc()).first())


def confirmation_for(mailing_list_id, subscription_id):
    """The confirmation email for a subscription still waiting for it (plus "team"), or None.

    Read afresh by the task that sends it, which sends it as the team (app.sending.teammail),
    never as the instance.
    """
    mailing_list = (MailingList.select(MailingList, Team).join(Team)
                    .where(MailingList.id == mailing_list_id).first())
    sub = (Subscription.select(Subscription, Contact).join(Contact)
           .where((Subscription.id == subscription_id) & (Subscription.list == mailing_list_id)).first())
    if mailing_list is None or sub is None or sub.status != "unconfirmed":
        return None
    message = confirmation_message(mailing_list, SignupOutcome("pending", True, sub.contact, sub))
    return dict(message, team=mailing_list.team)


def subscription_for_token(mailing_list, token):
    """The subscription a confirmation link names; raises LinkInvalid."""
    ids = tokens.verify("confirm", token)
    if ids is None or len(ids) != 3:
        raise LinkInvalid()
    sub_id, digest, issued = ids
    if time.time() - issued > limit("SIGNUP_CONFIRM_DAYS") * 86400:
        raise LinkInvalid(expired=True)
    sub = (Subscription.select(Subscription, Contact).join(Contact)
           .where((Subscription.id == sub_id) & (Subscription.list == mailing_list)).first())
    if sub is None or tokens.email_digest(sub.contact.email) != digest:
        raise LinkInvalid()
    return sub


def confirm(mailing_list, subscription, ip):
    """Confirm a pending subscription; True when it is (or already was) confirmed.

    Confirming twice is harmless. False when the person can no longer be
    subscribed (they unsubscribed from everything, bounced, or the address
    was suppressed since they signed up): a link does not override that.
    """
    team = mailing_list.team
    now = utcnow()
    with db.atomic():
        sub = Subscription.get_or_none(Subscription.id == subscription.id)
        contact = Contact.get_or_none(Contact.id == subscription.contact_id)
        if sub is None or contact is None:
            return False
        if sub.status == "subscribed":
            return True
        if contact.status in BLOCKED_STATUSES or suppression.is_suppressed(team.id, contact.email):
            return False
        # The wording the person agreed to is the one of the form they used: a built form's own, if one brought it.
        via = _form_that_brought(contact.id, mailing_list.id)
        source = f"form:{via.name}" if via is not None else f"form:{mailing_list.name}"
        wording = (via.consent_text if via is not None else "") or consent_wording(mailing_list)
        extra = {"form_id": via.id} if via is not None else {}
        joined = []
        for confirmed in [sub] + companions(sub):
            Subscription.update(status="subscribed", confirmed_at=now).where(Subscription.id == confirmed.id).execute()
            confirmed_list = mailing_list if confirmed.id == sub.id else confirmed.list
            joined.append(confirmed_list.id)
            events.record(team, contact, EventType.CONFIRMED, {"list_id": confirmed_list.id, "list": confirmed_list.name,
                          "source": "form", "ip": ip, **extra})
        _record_consent(contact, source, ip, wording, now)
    for list_id in joined:  # after the commit: the confirmation is the list join of a double opt-in list
        triggers.list_confirmed(team.id, contact.id, list_id)
    triggers.contact_changed(team.id, contact.id)
    return True


# --- The sign-up forms page ----------------------------------------------------

def forms_of(team):
    """The team's public lists, each with its hosted form URL (private lists have no form)."""
    lists = list(MailingList.select(MailingList, Team).join(Team)
                 .where((MailingList.team == team) & (MailingList.visibility == "public"))
                 .order_by(MailingList.name))
    root = settings.base_url()
    return [(lst, f"{root}/f/{lst.public_id}") for lst in lists]


def private_list_count(team):
    return MailingList.select().where((MailingList.team == team) & (MailingList.visibility != "public")).count()
