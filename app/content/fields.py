"""Merge fields: what a template sees of a contact, its team and its campaign.

Only the contact's own fields (email, name, first and last name, typed custom fields) reach a
template, never its status or internals. Values lose control characters (line breaks aside) and
the private-use characters that mark slots while a body is prepared.
"""
import datetime
import re
import types

from app.content.sandbox import Record

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f\ue000-\ue00f]")


def _clean_value(value):
    if isinstance(value, str):
        return _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))
    return value


def _typed(kind, value):
    if value is None or value == "":
        return None
    try:
        if kind == "number":
            number = float(value)
            return int(number) if number.is_integer() and abs(number) < 2 ** 53 else number
        if kind == "date":
            if isinstance(value, str):
                return datetime.date.fromisoformat(value[:10])
            return None
        if kind == "boolean":
            if isinstance(value, str):
                return value.strip().lower() in ("1", "true", "yes", "y", "on")
            return bool(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return _clean_value(str(value)) if not isinstance(value, str) else _clean_value(value)


def field_types(custom_fields):
    """{key: type} from CustomField rows, (key, type) pairs or a dict."""
    if isinstance(custom_fields, dict):
        return dict(custom_fields)
    types_by_key = {}
    for field in custom_fields or ():
        if isinstance(field, tuple):
            types_by_key[field[0]] = field[1]
        else:
            types_by_key[field.key] = field.type
    return types_by_key


def contact_fields(contact, types_by_key):
    """The contact's fields as template values: email, name, first/last name and typed custom fields."""
    name = _clean_value(contact.name or "")
    parts = name.split()
    data = {
        "email": _clean_value(contact.email or ""),
        "name": name,
        "first_name": parts[0] if parts else "",
        "last_name": " ".join(parts[1:]) if len(parts) > 1 else "",
    }
    if types_by_key:
        attributes = contact.attributes
        if isinstance(attributes, dict):
            for key, kind in types_by_key.items():
                if key not in data:
                    data[key] = _typed(kind, attributes.get(key))
    return data


def contact_context(contact, custom_fields):
    """{'contact': …} for a template: only the contact's own fields, never status or internals."""
    return {"contact": Record(contact_fields(contact, field_types(custom_fields)))}


def sample_contact(email="jamie@example.com", name="Jamie Example"):
    """A stand-in contact for previews and test sends to addresses with no contact."""
    return types.SimpleNamespace(email=email, name=name, attributes={})


def one_line(text):
    return ", ".join(line.strip() for line in (text or "").splitlines() if line.strip())


def preview_links(base_url):
    return {"unsubscribe_url": f"{base_url}/u/preview", "preferences_url": f"{base_url}/p/preview",
            "webview_url": f"{base_url}/v/preview"}


def base_context(team, base_url, subject="", from_name="", from_email=""):
    return {
        "postal_address": one_line(getattr(team, "postal_address", "") or ""),
        "team": Record({"name": getattr(team, "name", "") or ""}),
        "campaign": Record({"subject": subject, "from_name": from_name, "from_email": from_email}),
    }
