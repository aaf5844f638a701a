"""Sign-up forms built by a team: which lists, which fields, what wording and colours.

A built form has its hosted page at /f/<public_id> (the same address space as a list's own form; both ids
are random), an HTML snippet to paste into a website, and a popup script. A submission runs through the
same defences as a list's form (app/consent/forms.py: honeypot, signed timestamp, per-IP limits, neutral
answers) and subscribes the address to each of the form's lists with that list's opt-in rule.

Private lists never appear in anything public: the builder refuses them, and a list made private after
the form was built is left out of its page, its snippet and its submissions.
"""
import dataclasses
import time

from peewee import JOIN
from peewee import Case
from peewee import IntegrityError
from peewee import fn

from app import tokens
from app.brand import services as brand
from app.consent import forms
from app.consent import ratelimit
from app.consent.services import ConsentError
from app.consent.services import parse_entry
from app.contacts.fields import fields_of
from app.contacts.fields import parse_value
from app.db import db
from app.errors import Problem
from app.models import BLOCKED_STATUSES
from app.models import Contact
from app.models import FormSignup
from app.models import MailingList
from app.models import SignupForm
from app.models import Subscription
from app.models import Team
from app.models import utcnow

LIMITS = {"name": 100, "title": 200, "intro": 1000, "consent_text": 1000, "button_label": 40,
          "success_message": 1000}
MAX_POPUP_DELAY = 600
COLOR_FIELDS = {"primary": "primary_color", "background": "background_color", "text": "text_color"}
DEFAULT_BUTTON = "Subscribe"
DEFAULT_SUCCESS = "Thank you. If your address can receive our email, you are signed up."
STAMP_KIND = 0  # a built form's stamp names (0, form id): never a list's (list id,)


class SignupFormError(Problem):
    """A built form refused, with the fields at fault."""


# --- The team's forms -------------------------------------------------------------

def field_choices(team):
    """[(key, label, type)] of what a form may ask besides the email address: the name and every custom field."""
    return [("name", "Name", "text")] + [(f.key, f.label, f.type) for f in fields_of(team)]


def forms_of(team):
    """The team's built forms, newest first, each with `signups` (the contacts it brought) and `confirmed`
    (those of them subscribed now to at least one list through it), counted in one query for the page."""
    rows = list(SignupForm.select().where(SignupForm.team == team).order_by(SignupForm.id.desc()))
    counts = signup_counts([row.id for row in rows])
    for row in rows:
        row.signups, row.confirmed = counts.get(row.id, (0, 0))
    return rows


def signup_counts(form_ids):
    """{form id: (contacts brought, contacts confirmed)}. A contact counts as confirmed when a subscription
    the form brought is subscribed (confirmed by email, or on a single opt-in list); people rather than
    subscriptions, so a form of three lists does not count one person three times."""
    confirmed_contact = Case(None, [(Subscription.status == "subscribed", FormSignup.contact)], None)
    query = (FormSignup.select(FormSignup.form, fn.COUNT(fn.DISTINCT(FormSignup.contact)),
                               fn.COUNT(fn.DISTINCT(confirmed_contact)))
             .join(Subscription, JOIN.LEFT_OUTER, on=((Subscription.contact == FormSignup.contact)
                                                      & (Subscription.list == FormSignup.list)))
             .where(FormSignup.form.in_(form_ids)).group_by(FormSignup.form))
    return {form_id: (signed, confirmed) for form_id, signed, confirmed in query.tuples()}


def signup_count(signup_form):
    """(contacts brought, contacts confirmed) of one form."""
    return signup_counts([signup_form.id]).get(signup_form.id, (0, 0))


def public_lists(signup_form):
    """The form's lists that may be shown and subscribed to now: the team's, public, in the form's order."""
    ids = [i for i in (signup_form.list_ids or []) if isinstance(i, int)]
    found = {lst.id: lst for lst in MailingList.select().where(
        (MailingList.team == signup_form.team_id) & (MailingList.id.in_(ids)) & (MailingList.visibility == "public"))}
    return [found[i] for i in ids if i in found]


def lists_for_builder(team):
    """Every list of the team for the builder's choice, private ones included (shown, and refused if chosen)."""
    return list(MailingList.select().where(MailingList.team == team).order_by(MailingList.name))


# --- Building -------------------------------------------------------------------------

def _text(form, name, errors, label):
    value = (form.get(name) or "").strip()
    if len(value) > LIMITS[name]:
        errors[name] = f"Keep the {label} under {LIMITS[name]} characters."
    return value


def parse(team, form, lenient=False):
    """The stored values from the builder's form; SignupFormError names every field at fault.
    `lenient` (the live preview) drops what would be refused instead."""
    errors = {}
    values = {"name": _text(form, "name", errors, "name"), "title": _text(form, "title", errors, "title"),
              "intro": _text(form, "intro", errors, "introduction"),
              "consent_text": _text(form, "consent_text", errors, "consent text"),
              "button_label": _text(form, "button_label", errors, "button label"),
              "success_message": _text(form, "success_message", errors, "message after signing up")}
    if not values["name"]:
        errors["name"] = "Give the form a name your team will recognise, for example “Website footer”."
    lists = {lst.id: lst for lst in MailingList.select().where(MailingList.team == team)}
    chosen = []
    for raw in form.getlist("lists") if hasattr(form, "getlist") else form.get("lists", []):
        list_id = int(raw) if str(raw).isdigit() else None
        if list_id not in lists:
            errors["lists"] = "Choose lists of this team."  # a forged id, or another team's
            continue
        if not lists[list_id].is_public:
            errors["lists"] = (f"“{lists[list_id].name}” is a private list: private lists have no public form. "
                               "Untick it, or make the list public in its settings first.")
            continue
        if list_id not in chosen:
            chosen.append(list_id)
    if not chosen and "lists" not in errors:
        errors["lists"] = "Choose at least one public list for the people who sign up."
    values["list_ids"] = chosen
    asked = []
    for key, label, _ in field_choices(team):
        if not form.get(f"ask-{key}"):
            continue
        shown = (form.get(f"label-{key}") or "").strip() or label
        if len(shown) > 100:
            errors[f"label-{key}"] = "Keep a label under 100 characters."
            shown = shown[:100]
        asked.append({"key": key, "label": shown, "required": bool(form.get(f"required-{key}"))})
    values["fields"] = asked
    colors = {}
    for short, name in COLOR_FIELDS.items():
        raw = (form.get(name) or "").strip()
        if not raw:
            continue
        color = brand.clean_color(raw)
        if color is None:
            errors[name] = "Write a colour as # and 3 or 6 hexadecimal digits, for example #1d4ed8, or leave it empty."
        else:
            colors[short] = color
    values["colors"] = colors
    raw_delay = (form.get("popup_delay") or "0").strip()
    if raw_delay.isdigit() and int(raw_delay) <= MAX_POPUP_DELAY:
        values["popup_delay"] = int(raw_delay)
    else:
        errors["popup_delay"] = f"Write a number of seconds from 0 to {MAX_POPUP_DELAY} (0: only on a click)."
        values["popup_delay"] = 0
    if errors and not lenient:
        raise SignupFormError("The form was not saved: see the fields marked below.", errors=errors)
    return values


def draft(team, form):
    """An unsaved form from the builder's current values, for the live preview."""
    values = parse(team, form, lenient=True)
    return SignupForm(team=team, public_id="preview", **values)


def create(team, form):
    values = parse(team, form)
    return SignupForm.create(team=team, **values)


def update(team, signup_form, form):
    values = parse(team, form)
    values["updated_at"] = utcnow()
    SignupForm.update(**values).where((SignupForm.id == signup_form.id) & (SignupForm.team == team)).execute()
    return SignupForm.get_by_id(signup_form.id)


def delete(team, signup_form):
    """Delete a form: its page, snippet and popup stop working; the contacts it brought stay."""
    SignupForm.delete().where((SignupForm.id == signup_form.id) & (SignupForm.team == team)).execute()


def form_values(signup_form):
    """The builder's form filled from a stored form."""
    values = {"name": signup_form.name, "title": signup_form.title, "intro": signup_form.intro,
              "consent_text": signup_form.consent_text, "button_label": signup_form.button_label,
              "success_message": signup_form.success_message, "popup_delay": str(signup_form.popup_delay),
              "lists": [str(i) for i in signup_form.list_ids or []]}
    for short, name in COLOR_FIELDS.items():
        values[name] = (signup_form.colors or {}).get(short, "")
    for field in signup_form.fields or []:
        values[f"ask-{field['key']}"] = "1"
        values[f"label-{field['key']}"] = field["label"]
        if field.get("required"):
            values[f"required-{field['key']}"] = "1"
    return values


def new_form_values():
    """A new form's starting values: the name asked, the usual wording; no colours (the brand kit's)."""
    return {"ask-name": "1", "label-name": "Name", "button_label": DEFAULT_BUTTON, "popup_delay": "0",
            "success_message": DEFAULT_SUCCESS, "lists": []}


# --- What the public sees ---------------------------------------------------------------

def for_public_id(public_id):
    """The built form of a hosted page URL, with its team, or None."""
    return SignupForm.select(SignupForm, Team).join(Team).where(SignupForm.public_id == public_id).first()


def wording(signup_form, lists):
    """The consent sentence of the form: its own, or one naming its lists."""
    if signup_form.consent_text:
        return signup_form.consent_text
    names = ", ".join(f"“{lst.name}”" for lst in lists)
    return (f"I agree that {signup_form.team.name} may send me emails about {names}. "
            "I can unsubscribe at any time with the link in every email.")


@dataclasses.dataclass(frozen=True)
class AskedField:
    """A field of a built form as the public sees it. `input` is the form control's name: "name", or
    "field-<key>" for a custom field, so no field of the team can take the name of the address, the timing
    stamp or the honeypot (a custom field called "website" would otherwise fill the bot trap)."""
    key: str
    input: str
    label: str
    required: bool
    kind: str


def asked_fields(signup_form):
    """The fields the public form shows, skipping fields the team has deleted since."""
    types = {key: kind for key, _, kind in field_choices(signup_form.team)}
    return [AskedField(f["key"], "name" if f["key"] == "name" else f"field-{f['key']}", f["label"],
                       bool(f.get("required")), types[f["key"]])
            for f in signup_form.fields or [] if f.get("key") in types]


def style_values(signup_form):
    """The brand kit's values with the form's own colours over them (checked again: stored JSON is not trusted)."""
    values = brand.values_of(brand.kit_of(signup_form.team))
    for short, name in COLOR_FIELDS.items():
        color = brand.clean_color((signup_form.colors or {}).get(short))
        if color:
            values[name] = color
    return values


def form_stamp(signup_form, at=None):
    return tokens.sign("form", STAMP_KIND, signup_form.id, int(at if at is not None else time.time()))


# --- Submission -------------------------------------------------------------------------

def submit(signup_form, form, ip):
    """Process one submission of a built form; returns the SignupOutcome of each list (the caller sends
    the confirmations). Raises forms.Refused or ConsentError (for the person to fix), storing nothing."""
    stamp = (form.get("ts") or "").strip()
    if not ratelimit.hit("signup", ip, forms.limit("SIGNUP_PER_IP_HOUR"), 3600):
        raise forms.Refused("rate_limited", "There have been too many sign-ups from your network. "
                                            "Please try again in an hour.", 429)
    if not stamp and not ratelimit.hit("signup-bare", ip, forms.limit("SIGNUP_BARE_PER_IP_HOUR"), 3600):
        raise forms.Refused("rate_limited", "There have been too many sign-ups from your network. "
                                            "Please try again in an hour.", 429)
    lists = public_lists(signup_form)
    if (form.get(forms.HONEYPOT) or "").strip() or not lists:
        return []
    if stamp:
        forms.check_signed_stamp(stamp, (STAMP_KIND, signup_form.id))
    try:
        kind, email = parse_entry(forms.submitted_address(form))
    except ConsentError:
        kind = None
    if kind != "email":
        raise ConsentError("Enter your email address, for example name@example.com.", field="email")
    name, attributes = _answers(signup_form, form)
    forms.check_address(email, form)
    try:
        with db.atomic():
            outcomes = [forms.subscribe_through(signup_form, lst, email, name, ip) for lst in lists]
            _fill_attributes(outcomes, attributes)
    except IntegrityError:
        return []  # two submissions of a new address at the same moment: the other one won
    forms.charge_confirmation(signup_form.team, email, outcomes)
    return outcomes


def _answers(signup_form, form):
    errors = {}
    name = ""
    attributes = {}
    for field in asked_fields(signup_form):
        raw = (form.get(field.input) or "").strip()
        if not raw:
            if field.required:
                errors[field.input] = (f"Fill in “{field.label}”." if field.kind != "boolean"
                                       else f"Tick “{field.label}” to sign up.")
            continue
        if field.key == "name":
            if len(raw) > forms.MAX_NAME:
                errors[field.input] = f"Keep the name under {forms.MAX_NAME} characters."
            name = raw
            continue
        try:
            value = parse_value(field.kind, raw)
        except ValueError as exc:
            errors[field.input] = f"{field.label}: {exc}"
            continue
        if value is not None:
            attributes[field.key] = value
    if errors:
        raise ConsentError("Please check the fields marked below.", errors=errors)
    return name, attributes


def _fill_attributes(outcomes, attributes):
    """Add the answers to the contact, never replacing a value it has: anyone can type an address."""
    contact = next((o.contact for o in outcomes if o.contact is not None and o.state != "ignored"), None)
    if contact is None or not attributes:
        return
    current = Contact.get_by_id(contact.id)
    if current.status in BLOCKED_STATUSES:
        return
    merged = dict(current.attributes or {})
    added = {key: value for key, value in attributes.items() if key not in merged}
    if added:
        merged.update(added)
        Contact.update(attributes=merged, updated_at=utcnow()).where(Contact.id == current.id).execute()
