"""Segment rules: checked against a whitelist, compiled into one SQL condition on Contact.

A segment is a JSON tree of groups and rules:

    {"op": "and", "rules": [
        {"field": "status", "operator": "is", "value": "active"},
        {"op": "or", "rules": [
            {"field": "list", "operator": "in_list", "value": 3},
            {"field": "custom:plan", "operator": "gt", "value": 2},
            {"field": "tag", "operator": "has_tag", "value": 7}]}]}

Only fields and operators named in the tables below exist; anything else is
refused with a SegmentError that says which rule is wrong and why. Values
never become SQL text: they are bound as parameters, custom field keys must
be fields of the team (and match the key pattern), and list, campaign and tag
ids must belong to the team. The result is a peewee expression for

    Contact.select().where((Contact.team == team_id) & compile_rules(team_id, rules))

so counting, paging and sending all run as one query in the database.

Negative operators ("is not", "does not contain", "not in list", "did not
open"...) match exactly the contacts the positive one does not, including
those that have no value at all: a rule and its opposite always add up to
every contact. Dates are calendar days in UTC.
"""
import datetime
import json
import math
import re

from peewee import fn

from app.db import everything
from app.errors import Problem
from app.models import CONTACT_STATUSES
from app.models import Campaign
from app.models import Contact
from app.models import ContactTag
from app.models import CustomField
from app.models import Event
from app.models import MailingList
from app.models import Subscription
from app.models import Tag
from app.models import utcnow

MAX_DEPTH = 3  # the top group is level 1, so groups nest at most two levels inside it
MAX_RULES = 50  # rules and groups in one segment, not counting the top group
MAX_TEXT = 500
MAX_DAYS = 36_500
CUSTOM_PREFIX = "custom:"
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")  # the custom field key rule of the contacts area

GROUP_OPS = {"and": "all of these (AND)", "or": "any of these (OR)"}

# What a rule's value is: decides both the check below and the input the builder shows.
# none: no value; text; number; date (YYYY-MM-DD); days (a whole number of days);
# status (a contact status); list (a list id); campaign (a campaign id); tag (a tag id).
_TEXT_OPS = {
    "is": ("is", "text"),
    "is_not": ("is not", "text"),
    "contains": ("contains", "text"),
    "not_contains": ("does not contain", "text"),
    "starts_with": ("starts with", "text"),
    "ends_with": ("ends with", "text"),
}
_EMPTY_OPS = {"is_empty": ("is empty", "none"), "is_not_empty": ("is not empty", "none")}

# kind -> operator -> (label, value kind). Dicts keep their order: the first operator is the default.
OPERATORS = {
    "email": dict(_TEXT_OPS),
    "domain": {"is": ("is", "text"), "is_not": ("is not", "text")},
    "text": {**_TEXT_OPS, **_EMPTY_OPS},
    "status": {"is": ("is", "status"), "is_not": ("is not", "status")},
    "datetime": {
        "within_last_days": ("in the last … days", "days"),
        "not_within_last_days": ("more than … days ago", "days"),
        "before": ("before", "date"),
        "after": ("after", "date"),
        "on": ("on", "date"),
    },
    "activity": {
        "within_last_days": ("active in the last … days", "days"),
        "not_within_last_days": ("not active in the last … days", "days"),
        "before": ("last active before", "date"),
        "after": ("last active after", "date"),
        "is_empty": ("never active", "none"),
        "is_not_empty": ("active at least once", "none"),
    },
    "list": {"in_list": ("is subscribed to", "list"), "not_in_list": ("is not subscribed to", "list")},
    "tag": {"has_tag": ("has", "tag"), "not_has_tag": ("does not have", "tag")},
    "campaign": {
        "opened": ("opened", "campaign"),
        "not_opened": ("did not open", "campaign"),
        "clicked": ("clicked in", "campaign"),
        "not_clicked": ("did not click in", "campaign"),
        "was_sent": ("was sent", "campaign"),
        "was_not_sent": ("was not sent", "campaign"),
    },
    "number": {
        "eq": ("=", "number"),
        "ne": ("≠", "number"),
        "gt": (">", "number"),
        "gte": ("≥", "number"),
        "lt": ("<", "number"),
        "lte": ("≤", "number"),
        **_EMPTY_OPS,
    },
    "date": {
        "before": ("before", "date"),
        "after": ("after", "date"),
        "on": ("on", "date"),
        "within_last_days": ("in the last … days", "days"),
        **_EMPTY_OPS,
    },
    "boolean": {"is_true": ("is yes", "none"), "is_false": ("is no", "none"), "is_empty": ("is empty", "none")},
}

# Built-in fields: name -> (label, kind). Custom fields are "custom:<key>" with their type as kind.
FIELDS = {
    "email": ("Email address", "email"),
    "domain": ("Email domain", "domain"),
    "name": ("Name", "text"),
    "status": ("Status", "status"),
    "created_at": ("Date added", "datetime"),
    "last_activity_at": ("Last activity", "activity"),
    "list": ("List", "list"),
    "tag": ("Tag", "tag"),
    "campaign": ("Campaign", "campaign"),
}

# Event types behind the campaign operators; the negative ones are the complement of these.
_CAMPAIGN_EVENTS = {"opened": "opened", "not_opened": "opened", "clicked": "clicked",
                    "not_clicked": "clicked", "was_sent": "sent", "was_not_sent": "sent"}
_NEGATIVE = {"is_not", "not_contains", "not_within_last_days", "not_in_list", "not_opened",
             "not_clicked", "was_not_sent", "ne", "not_has_tag"}


class SegmentError(Problem):
    """A refusal with a message for the person; `errors` maps rule paths ("0", "1.2") to messages.

    The path "" is the segment as a whole (its shape or size).
    """


# --- The catalogue of fields a team's rules may use -----------------------------

class Catalogue:
    """The fields, lists and campaigns one team's rules may name; looked up once, only when needed."""

    def __init__(self, team_id):
        self.team_id = team_id
        self._custom = None

    @property
    def custom_fields(self):
        if self._custom is None:
            self._custom = {f.key: f for f in CustomField.select().where(CustomField.team == self.team_id)
                            .order_by(CustomField.id)}
        return self._custom

    def field(self, name):
        """(label, kind) of a field name, or None when the team has no such field."""
        if not isinstance(name, str):
            return None
        if name in FIELDS:
            return FIELDS[name]
        if name.startswith(CUSTOM_PREFIX):
            custom = self.custom_fields.get(name[len(CUSTOM_PREFIX):])
            if custom is not None and custom.type in ("text", "number", "date", "boolean"):
                return custom.label, custom.type
        return None

    def fields(self):
        """Every (name, label, kind) the builder offers, built-in first."""
        choices = [(name, label, kind) for name, (label, kind) in FIELDS.items()]
        choices += [(CUSTOM_PREFIX + key, f.label, f.type) for key, f in self.custom_fields.items()]
        return choices

    def existing(self, model, ids):
        """The subset of `ids` that are rows of `model` (MailingList, Campaign or Tag) in this team."""
        if not ids:
            return set()
        return {row.id for row in model.select(model.id).where((model.team == self.team_id) & (model.id.in_(list(ids))))}


def _short(value, limit=40):
    text = str(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


# --- Checking -----------------------------------------------------------------------

def parse_rules(rules):
    """The rules as a Python tree: a dict passes through, JSON text is parsed, anything else is refused."""
    if isinstance(rules, (str, bytes)):
        try:
            rules = json.loads(rules or "{}")
        except ValueError:
            raise SegmentError("The segment's rules are not valid JSON.", errors={"": "The rules are not valid JSON."})
    if rules is None or rules == {}:
        return {"op": "and", "rules": []}
    return rules


def check_rules(team_id, rules, catalogue=None):
    """(cleaned tree, errors): every problem found, keyed by rule path; the tree keeps what could be cleaned.

    The cleaned tree has normalised values (numbers as numbers, ids as ints,
    dates as YYYY-MM-DD) and only the keys a rule or group may have.
    """
    team_id = getattr(team_id, "id", team_id)
    catalogue = catalogue or Catalogue(team_id)
    errors = {}
    try:
        rules = parse_rules(rules)
    except SegmentError as exc:
        return {"op": "and", "rules": []}, exc.errors
    if not _is_group(rules):
        return {"op": "and", "rules": []}, {"": "The segment must be a group: {\"op\": \"and\" or \"or\", \"rules\": [...]}."}

    total = _count_nodes(rules)
    if total > MAX_RULES:
        errors[""] = f"A segment can have at most {MAX_RULES} rules and groups; this one has {total}."

    pending = []  # (path, cleaned rule, value kind) whose ids need a database check
    cleaned = _check_group(rules, "", 1, catalogue, errors, pending)
    _check_ids(catalogue, pending, errors)
    return cleaned, errors


def validate_rules(team_id, rules, catalogue=None):
    """The cleaned tree, or SegmentError naming the first problem (all of them in .errors)."""
    cleaned, errors = check_rules(team_id, rules, catalogue)
    if errors:
        path, message = sorted(errors.items(), key=lambda item: _path_key(item[0]))[0]
        where = f"Rule {describe_path(path)}: " if path else ""
        raise SegmentError(where + message, errors=errors)
    return cleaned


def describe_path(path):
    """"1.2" -> "2.3": paths as people count them (from 1)."""
    return ".".join(str(int(part) + 1) for part in path.split(".")) if path else ""


def _path_key(path):
    return [int(part) for part in path.split(".")] if path else []


def _is_group(node):
    return isinstance(node, dict) and "rules" in node


def _count_nodes(group):
    children = group.get("rules")
    if not isinstance(children, list):
        return 0
    return sum(1 + (_count_nodes(child) if _is_group(child) else 0) for child in children)


def _child_path(path, index):
    return f"{path}.{index}" if path else str(index)


def _check_group(group, path, depth, catalogue, errors, pending):
    op = group.get("op", "and")
    if op not in GROUP_OPS:
        errors.setdefault(path, f"A group joins its rules with “and” or “or”, not “{_short(op)}”.")
        op = "and"
    children = group.get("rules")
    if not isinstance(children, list):
        errors.setdefault(path, "A group's rules must be a list.")
        children = []
    cleaned = {"op": op, "rules": []}
    if len(children) > MAX_RULES:
        children = children[:MAX_RULES]  # the size error is already recorded; don't walk a huge tree
    for index, child in enumerate(children):
        child_path = _child_path(path, index)
        if _is_group(child):
            if depth >= MAX_DEPTH:
                errors[child_path] = f"Groups can be nested at most {MAX_DEPTH - 1} levels deep."
                cleaned["rules"].append({"op": child.get("op") if child.get("op") in GROUP_OPS else "and", "rules": []})
                continue
            cleaned["rules"].append(_check_group(child, child_path, depth + 1, catalogue, errors, pending))
        else:
            cleaned["rules"].append(_check_rule(child, child_path, catalogue, errors, pending))
    return cleaned


def _check_rule(rule, path, catalogue, errors, pending):
    if not isinstance(rule, dict):
        errors[path] = "A rule must have a field, an operator and a value."
        return {"field": "", "operator": "", "value": None}
    field = rule.get("field")
    operator = rule.get("operator")
    value = rule.get("value")
    cleaned = {"field": field if isinstance(field, str) else "", "operator": operator if isinstance(operator, str) else "",
               "value": value}
    spec = catalogue.field(field)
    if spec is None:
        if isinstance(field, str) and field.startswith(CUSTOM_PREFIX):
            errors[path] = f"There is no custom field “{_short(field[len(CUSTOM_PREFIX):])}” in this team."
        elif field in (None, ""):
            errors[path] = "Choose a field."
        else:
            errors[path] = f"“{_short(field)}” is not a field a segment can use."
        return cleaned
    label, kind = spec
    if field.startswith(CUSTOM_PREFIX) and not KEY_PATTERN.match(field[len(CUSTOM_PREFIX):]):
        # Keys are made by the contacts area to this pattern; anything else never reaches a JSON path.
        errors[path] = f"The custom field {label} has a key segments cannot use; rename its key."
        return cleaned
    operators = OPERATORS[kind]
    if operator not in operators:
        choices = ", ".join(f"“{op_label}”" for op_label, _ in operators.values())
        errors[path] = (f"Choose what to compare: {label} can be {choices}." if operator in (None, "")
                        else f"“{_short(operator)}” is not an operator for {label}; use one of {choices}.")
        return cleaned
    value_kind = operators[operator][1]
    try:
        cleaned["value"] = _clean_value(value_kind, value)
    except ValueError as exc:
        errors[path] = str(exc)
        return cleaned
    if value_kind in ("list", "campaign", "tag"):
        pending.append((path, cleaned, value_kind))
    return cleaned


def _clean_value(value_kind, value):
    """The value as stored and bound: or ValueError with the message for the person."""
    if value_kind == "none":
        return None
    if isinstance(value, (list, dict)):
        raise ValueError("Enter a single value.")
    if value_kind == "text":
        text = "" if value is None else str(value).strip()
        if isinstance(value, bool):
            raise ValueError("Enter some text.")
        if not text:
            raise ValueError("Enter a value to compare with.")
        if len(text) > MAX_TEXT:
            raise ValueError(f"Keep the value under {MAX_TEXT} characters.")
        return text
    if value_kind == "number":
        return _number(value)
    if value_kind == "date":
        try:
            if isinstance(value, datetime.date):
                return value.isoformat()[:10]
            return datetime.date.fromisoformat(str(value or "").strip()).isoformat()
        except ValueError:
            raise ValueError("Enter a date as YYYY-MM-DD, for example 2026-03-31.")
    if value_kind == "days":
        days = _whole(value)
        if days is None or not 1 <= days <= MAX_DAYS:
            raise ValueError(f"Enter a number of days from 1 to {MAX_DAYS:,}.")
        return days
    if value_kind == "status":
        if value not in CONTACT_STATUSES:
            raise ValueError("Choose a status: " + ", ".join(CONTACT_STATUSES) + ".")
        return value
    if value_kind in ("list", "campaign", "tag"):
        number = _whole(value)
        if number is None or number < 1:
            raise ValueError(f"Choose a {value_kind}.")
        return number
    raise ValueError("Unknown value.")  # pragma: no cover - every value kind is handled above


def _whole(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*\d{1,12}\s*", value):
        return int(value)
    return None


def _number(value):
    if isinstance(value, bool):
        raise ValueError("Enter a number, for example 42 or 3.5.")
    if isinstance(value, (int, float)):
        number = value
    else:
        raw = str(value or "").strip()
        try:
            number = int(raw) if re.fullmatch(r"[+-]?\d{1,18}", raw) else float(raw.replace(",", "."))
        except ValueError:
            raise ValueError("Enter a number, for example 42 or 3.5.")
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError("Enter a number, for example 42 or 3.5.")
    return number


def _check_ids(catalogue, pending, errors):
    """One query per kind: every list, campaign and tag a rule names must be the team's."""
    for value_kind, model, noun in (("list", MailingList, "list"), ("campaign", Campaign, "campaign"),
                                    ("tag", Tag, "tag")):
        wanted = {rule["value"] for _, rule, kind in pending if kind == value_kind}
        found = catalogue.existing(model, wanted)
        for path, rule, kind in pending:
            if kind == value_kind and rule["value"] not in found:
                errors[path] = f"That {noun} does not exist in this team (it may have been deleted)."


# --- Compiling ----------------------------------------------------------------------

class _Attributes:
    """Custom field values: paths into the JSONField Contact.attributes, which peewee writes as
    SQLite's ->> / -> or PostgreSQL's #>> / #> (the path is a bound parameter or a quoted literal)."""

    def value(self, key):
        return Contact.attributes[key].as_text()

    def number(self, key):
        return Contact.attributes[key].as_float()

    def boolean(self, key, truth):
        return Contact.attributes[key] == truth  # the JSON true or false


ATTRIBUTES = _Attributes()


def everyone():
    """The condition that matches every contact (a segment with no rules)."""
    return everything()


def compile_rules(team_id, rules):
    """The rules as one peewee expression on Contact; SegmentError if they are not valid for the team.

    Use it as Contact.select().where((Contact.team == team_id) & expr). The
    expression only narrows: it never widens past the team, and every list,
    campaign and custom field it names has been checked to be the team's.
    """
    team_id = getattr(team_id, "id", team_id)
    catalogue = Catalogue(team_id)
    cleaned = validate_rules(team_id, rules, catalogue)
    return compile_clean(catalogue, cleaned)


def compile_clean(catalogue, cleaned):
    """Compile a tree that validate_rules cleaned with this catalogue."""
    return _compile_group(catalogue, cleaned, ATTRIBUTES) or everyone()


def _compile_group(catalogue, group, backend):
    parts = []
    for child in group["rules"]:
        part = (_compile_group(catalogue, child, backend) if _is_group(child)
                else _compile_rule(catalogue, child, backend))
        if part is not None:  # an empty group says nothing, so it is left out
            parts.append(part)
    if not parts:
        return None
    combined = parts[0]
    for part in parts[1:]:
        combined = (combined | part) if group["op"] == "or" else (combined & part)
    return combined


def _compile_rule(catalogue, rule, backend):
    team_id = catalogue.team_id
    field, operator, value = rule["field"], rule["operator"], rule["value"]
    if field == "email":
        return _text(Contact.email, operator, value, nullable=False, lowered=True)
    if field == "domain":
        return _text(Contact.domain, operator, value, nullable=False, lowered=True)
    if field == "name":
        return _text(Contact.name, operator, value, nullable=False)
    if field == "status":
        return (Contact.status == value) if operator == "is" else (Contact.status != value)
    if field == "created_at":
        return _moment(Contact.created_at, operator, value, nullable=False)
    if field == "last_activity_at":
        return _moment(Contact.last_activity_at, operator, value, nullable=True)
    if field == "list":
        subscribed = (Subscription.select(Subscription.contact)
                      .where((Subscription.list == value) & (Subscription.status == "subscribed")))
        return Contact.id.in_(subscribed) if operator == "in_list" else Contact.id.not_in(subscribed)
    if field == "tag":
        # IN, not a correlated EXISTS: SQLite reads the tag's contacts once from the (tag, contact)
        # index and looks contacts up by id, where EXISTS made it walk every contact of the team and
        # probe for each (1,000,000 contacts, "has vip AND active": 0.8 s with EXISTS, ms with IN;
        # docs/benchmarks.md). contact_tag.contact_id is never NULL, so NOT IN is exactly "has not".
        tagged = ContactTag.select(ContactTag.contact).where(ContactTag.tag == value)
        return Contact.id.in_(tagged) if operator == "has_tag" else Contact.id.not_in(tagged)
    if field == "campaign":
        # contact IS NOT NULL: an erased contact leaves events with a NULL contact,
        # and one NULL in a NOT IN list would make it match nobody.
        received = (Event.select(Event.contact)
                    .where((Event.team == team_id) & (Event.campaign_id == value)
                           & (Event.type == _CAMPAIGN_EVENTS[operator]) & Event.contact.is_null(False)))
        return Contact.id.not_in(received) if operator in _NEGATIVE else Contact.id.in_(received)
    key = field[len(CUSTOM_PREFIX):]
    if not KEY_PATTERN.match(key):  # refused when checked; this guard keeps the JSON path plain regardless
        raise SegmentError(f"“{_short(key)}” is not a valid custom field key.")
    kind = catalogue.field(field)[1]
    if kind == "text":
        return _text(backend.value(key), operator, value, nullable=True)
    if kind == "number":
        return _number_rule(backend, key, operator, value)
    if kind == "date":
        return _date_rule(backend.value(key), operator, value)
    return _boolean_rule(backend, key, operator)


def _text(column, operator, value, nullable, lowered=False):
    """Text comparisons: case-insensitive; LIKE patterns are escaped by peewee, so % and _ match themselves."""
    if operator in ("is_empty", "is_not_empty"):
        empty = (column.is_null() | (column == "")) if nullable else (column == "")
        return empty if operator == "is_empty" else ~empty
    # Stored addresses are lower-cased already; other text is lowered by the database on both
    # sides, so the two agree even where its idea of lower case differs from Python's.
    target = column if lowered else fn.lower(column)
    needle = value.lower() if lowered else fn.lower(value)
    positive = {
        "is": target == needle, "is_not": target == needle,
        "contains": column.contains(value), "not_contains": column.contains(value),
        "starts_with": column.startswith(value), "ends_with": column.endswith(value),
    }[operator]
    return _complement(positive, column, nullable) if operator in _NEGATIVE else positive


def _complement(expression, column, nullable):
    """Everything `expression` does not match, including contacts with no value at all."""
    return (column.is_null() | ~expression) if nullable else ~expression


def _day_start(iso_date, days=0):
    return datetime.datetime.combine(datetime.date.fromisoformat(iso_date) + datetime.timedelta(days=days),
                                     datetime.time())


def _moment(column, operator, value, nullable):
    """Comparisons on a timestamp column (UTC)."""
    if operator == "within_last_days":
        return column >= utcnow() - datetime.timedelta(days=value)
    if operator == "not_within_last_days":
        older = column < utcnow() - datetime.timedelta(days=value)
        return (column.is_null() | older) if nullable else older
    if operator == "before":
        return column < _day_start(value)
    if operator == "after":
        return column >= _day_start(value, 1)
    if operator == "on":
        return (column >= _day_start(value)) & (column < _day_start(value, 1))
    if operator == "is_empty":
        return column.is_null()
    if operator == "is_not_empty":
        return column.is_null(False)
    raise SegmentError(f"Unknown operator “{operator}”.")  # pragma: no cover - checked before


def _number_rule(backend, key, operator, value):
    raw = backend.value(key)
    if operator == "is_empty":
        return raw.is_null()
    if operator == "is_not_empty":
        return raw.is_null(False)
    number = backend.number(key)
    if operator == "ne":
        return raw.is_null() | (number != value)
    return {"eq": number == value, "gt": number > value, "gte": number >= value,
            "lt": number < value, "lte": number <= value}[operator]


def _date_rule(raw, operator, value):
    """Custom dates are stored as YYYY-MM-DD text, which sorts like the dates it names."""
    if operator == "is_empty":
        return raw.is_null() | (raw == "")
    if operator == "is_not_empty":
        return raw.is_null(False) & (raw != "")
    if operator == "within_last_days":
        today = utcnow().date()
        return (raw >= (today - datetime.timedelta(days=value)).isoformat()) & (raw <= today.isoformat())
    return {"before": raw < value, "after": raw > value, "on": raw == value}[operator]


def _boolean_rule(backend, key, operator):
    if operator == "is_empty":
        return backend.value(key).is_null()
    return backend.boolean(key, operator == "is_true")
