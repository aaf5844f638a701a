"""Custom fields: the team's own contact attributes, their keys, types and typed values."""
import datetime
import math
import re
import unicodedata

from peewee import IntegrityError

from app.contacts.common import ContactError
from app.contacts.common import audit
from app.db import db
from app.models import FIELD_TYPES
from app.models import Contact
from app.models import CustomField

FIELD_TYPE_LABELS = {"text": "Text", "number": "Number", "date": "Date", "boolean": "Yes / no"}

# Keys a custom field may not take: templates address contact.<key>, and
# these already mean something there.
RESERVED_KEYS = {"id", "email", "name", "status", "domain", "source", "attributes", "lists", "team",
                 "created_at", "updated_at", "last_activity_at", "consent_source", "consent_at", "consent_ip",
                 "consent_text", "unsubscribe_url"}
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_TEXT = 2000


def key_from_label(text):
    """A custom-field key made from a label or column title ('Favourite colour' -> 'favourite_colour',
    'Café' -> 'cafe', '2nd phone' -> 'f_2nd_phone'), or '' when nothing usable is left.

    static/app.js fills the New field form's key with the same rule as the label is typed.
    """
    plain = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    key = re.sub(r"[^a-z0-9]+", "_", plain).strip("_")[:40].rstrip("_")
    if key and not key[0].isalpha():
        key = ("f_" + key)[:40].rstrip("_")
    return key if KEY_PATTERN.match(key or "-") else ""


def fields_of(team):
    return list(CustomField.select().where(CustomField.team == team).order_by(CustomField.id))


def parse_value(field_type, raw):
    """A form value as the JSON value stored for a field of `field_type`.

    None means "no value" (the key is removed). Dates are stored as ISO
    strings (YYYY-MM-DD), which compare correctly as text in SQL.
    """
    raw = (raw or "").strip()
    if raw == "":
        return None
    if field_type == "number":
        try:
            number = int(raw) if re.fullmatch(r"[+-]?\d+", raw) else float(raw.replace(",", "."))
        except ValueError:
            raise ValueError("Enter a number, for example 42 or 3.5.")
        if isinstance(number, float) and not math.isfinite(number):
            raise ValueError("Enter a number, for example 42 or 3.5.")
        return number
    if field_type == "date":
        try:
            return datetime.date.fromisoformat(raw).isoformat()
        except ValueError:
            raise ValueError("Enter a date as YYYY-MM-DD, for example 2026-03-31.")
    if field_type == "boolean":
        lowered = raw.lower()
        if lowered in ("yes", "true", "1", "on"):
            return True
        if lowered in ("no", "false", "0", "off"):
            return False
        raise ValueError("Choose yes or no.")
    if len(raw) > MAX_TEXT:
        raise ValueError(f"Keep it under {MAX_TEXT} characters.")
    return raw


def form_value(field, attributes):
    """The stored value of a field as a form shows it."""
    value = attributes.get(field.key)
    if value is None:
        return ""
    if field.type == "boolean":
        return "yes" if value else "no"
    return str(value)


def display_value(field_type, value):
    if value is None or value == "":
        return ""
    if field_type == "boolean":
        return "Yes" if value else "No"
    return str(value)


def create_field(team, form):
    """A new custom field. Without a key, the key is made from the label (key_from_label)."""
    label = (form.get("label") or "").strip()
    key = (form.get("key") or "").strip() or key_from_label(label)
    field_type = form.get("type") or "text"
    errors = {}
    if not key and label:
        errors["key"] = ("The label has no letters or digits to make a key from: enter one, "
                         "for example colour or plan_2026.")
    elif not key:
        errors["key"] = "Enter a key, or a label to make it from."
    elif not KEY_PATTERN.match(key):
        errors["key"] = ("Use lower-case letters, digits and underscores, starting with a letter "
                         "(at most 40 characters), for example company or plan_2026.")
    elif key in RESERVED_KEYS:
        errors["key"] = f"“{key}” is already a built-in contact field; choose another key."
    elif CustomField.select().where((CustomField.team == team) & (CustomField.key == key)).exists():
        errors["key"] = f"There is already a field with the key “{key}”."
    if not label:
        errors["label"] = "Give the field a label."
    elif len(label) > 100:
        errors["label"] = "Keep the label under 100 characters."
    if field_type not in FIELD_TYPES:
        errors["type"] = "Choose one of the types in the list."
    if errors:
        raise ContactError(errors=errors)
    try:
        return CustomField.create(team=team, key=key, label=label, type=field_type)
    except IntegrityError:
        raise ContactError(f"There is already a field with the key “{key}”.", field="key")


def update_field(team, field, form):
    """Rename a field. Its key and type stay: stored values and templates depend on them."""
    label = (form.get("label") or "").strip()
    if not label:
        raise ContactError("Give the field a label.", field="label")
    if len(label) > 100:
        raise ContactError("Keep the label under 100 characters.", field="label")
    CustomField.update(label=label).where(CustomField.id == field.id).execute()
    return CustomField.get_by_id(field.id)


def _has_key(key):
    return Contact.attributes[key].is_null(False)  # a JSON null is no value either


def field_usage(team, field):
    """How many contacts have a value for this field (a full scan: only on the delete page)."""
    return Contact.select().where((Contact.team == team) & _has_key(field.key)).count()


def delete_field(team, field, user=None):
    """Delete the field and remove its values from every contact, in one transaction; returns how many."""
    with db.atomic():
        cleared = (Contact.update(attributes=Contact.attributes[field.key].remove())
                   .where((Contact.team == team) & _has_key(field.key)).execute())
        field.delete_instance()
        audit(team, user, "field.deleted", f"field:{field.key}", cleared=cleared)
    return cleared
