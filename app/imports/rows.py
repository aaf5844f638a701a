"""What one row of an import becomes: the job's plan (which column holds what) and its parser.

ImportPlan.parse turns a row's cells into (email, name, attributes as JSON text, values left out), or raises Reject
when the address is unusable: only a bad address rejects a row, a bad optional value is left out and named in the
rejects file (app/imports/rejects.py). It runs once per row, so it is written for speed (see its docstring); the chunk it
belongs to is written by app/imports/chunks.py."""
import json

from app import addresses
from app.contacts.fields import MAX_TEXT
from app.contacts.fields import RESERVED_KEYS
from app.contacts.fields import fields_of
from app.contacts.fields import parse_value
from app.contacts.tags import cached_splitter
from app.imports.rejects import TAG_DROPPED
from app.imports.services import ImportProblem
from app.imports.services import slug

MAX_NAME = 255

_quote = json.encoder.encode_basestring  # a JSON string literal, exactly as json.dumps writes it


def check_email(raw):
    """(normalised address, None) or (None, reason): app.addresses.normalise_email for one row."""
    if not raw.strip():
        return None, "No email address."
    try:
        return addresses.normalise_email(raw), None
    except addresses.InvalidEmail as exc:
        return None, f"Not a valid email address: {exc}"


class ImportPlan:
    """Everything about a job that does not change from row to row."""

    def __init__(self, job, columns):
        self.job = job
        self.team_id = job.team_id
        self.columns = columns
        self.width = len(columns)
        self.mode = job.mode
        self.list_ids = job.list_ids
        self.validation = job.team.import_validation  # the team's policy, see app/imports/screening.py
        mapping = {int(k): v for k, v in job.mapping.items()}
        fields = {f.key: f.type for f in fields_of(job.team_id)}
        self.field_types = fields
        self.email = self.name = self.first = self.last = self.json_column = self.tags = None
        self.typed = []  # (index, key, type, column title)
        for index, target in sorted(mapping.items()):
            if index >= self.width:
                continue
            if target == "email":
                self.email = index
            elif target == "name":
                self.name = index
            elif target == "first_name":
                self.first = index
            elif target == "last_name":
                self.last = index
            elif target == "attributes":
                self.json_column = index
            elif target == "tags":
                self.tags = index
            elif target.startswith("field:") and target[6:] in fields:
                self.typed.append((index, target[6:], fields[target[6:]], columns[index]))
        if self.email is None:
            raise ImportProblem("No column is mapped to the email address.")
        self.split_tags = cached_splitter()  # shared by the parser and the writer thread
        self.json_keys = {}  # raw JSON key -> field key
        self.new_fields = {}  # field key -> type, created with the chunk that first uses it

        self.parse = self._parser()

    def _parser(self):
        """parse(cells) -> (email, name, attributes as JSON text, dropped), or raise Reject.

        Only a bad address rejects the row. A bad optional value (a number that is not one, a
        text or name too long, broken JSON) is left out and its reason listed in `dropped`
        (None when nothing was), so the contact is kept and the rejects file names the field.

        A closure over locals, writing the JSON text directly: this runs once per
        row, and at a million rows attribute lookups, a dict per row and a
        json.dumps call per row are a fifth of the import's time (measured).
        """
        email_at, name_at, json_at, tags_at = self.email, self.name, self.json_column, self.tags
        split_tags = self.split_tags
        name_parts = [i for i in (self.first, self.last) if i is not None]
        typed = [(index, _quote(key) + ":", field_type, title) for index, key, field_type, title in self.typed]
        keyed = self.typed
        json_attributes = self._json_attributes
        fast_email = addresses.FAST_EMAIL.fullmatch  # addresses.is_fast_email, inlined below: once per row
        quote = _quote

        def parse(cells):
            email = cells[email_at].strip().lower()
            if not (fast_email(email) and len(email) <= 254 and "--" not in email):
                email, reason = check_email(cells[email_at])
                if reason:
                    raise Reject(reason)
            dropped = None
            name = cells[name_at].strip() if name_at is not None else ""
            if not name and name_parts:
                name = " ".join([part for part in (cells[i].strip() for i in name_parts) if part])
            if len(name) > MAX_NAME:
                dropped = [f"The name is longer than {MAX_NAME} characters."]
                name = ""
            if tags_at is not None and cells[tags_at] and not cells[tags_at].isspace():
                problems = split_tags(cells[tags_at])[1]
                if problems:
                    dropped = (dropped or []) + [TAG_DROPPED + problem for problem in problems]
            if json_at is None:
                parts = []
                for index, quoted_key, field_type, title in typed:
                    raw = cells[index]
                    if not raw or raw.isspace():
                        continue
                    if field_type == "text":
                        raw = raw.strip()
                        if len(raw) > MAX_TEXT:
                            dropped = (dropped or []) + [f"“{title}” is longer than {MAX_TEXT:,} characters."]
                            continue
                        parts.append(quoted_key + quote(raw))
                    elif field_type == "number" and raw.isdecimal():
                        parts.append(quoted_key + str(int(raw)))  # the common case, without a regex
                    else:
                        try:
                            parts.append(quoted_key + json.dumps(parse_value(field_type, raw)))
                        except ValueError:
                            dropped = (dropped or []) + [conversion_reason(field_type, title, raw)]
                return email, name, "{" + ",".join(parts) + "}" if parts else "{}", dropped
            # With a JSON attributes column (listmonk's format) the mapped fields win over its keys.
            raw_json = cells[json_at]
            problems = []
            attributes = json_attributes(raw_json, problems) if raw_json.strip() else {}
            for index, key, field_type, title in keyed:
                raw = cells[index]
                if not raw or raw.isspace():
                    continue
                if field_type == "text":
                    raw = raw.strip()
                    if len(raw) > MAX_TEXT:
                        problems.append(f"“{title}” is longer than {MAX_TEXT:,} characters.")
                        continue
                    attributes[key] = raw
                else:
                    try:
                        attributes[key] = parse_value(field_type, raw)
                    except ValueError:
                        problems.append(conversion_reason(field_type, title, raw))
            if problems:
                dropped = (dropped or []) + problems
            return email, name, json_object(attributes), dropped

        return parse

    def _json_attributes(self, raw, problems):
        """The attributes of the JSON column; what cannot be used is left out and described in `problems`."""
        try:
            data = json.loads(raw)
        except ValueError:
            problems.append(f"“{self.columns[self.json_column]}” is not valid JSON.")
            return {}
        if not isinstance(data, dict):
            problems.append(f"“{self.columns[self.json_column]}” must be a JSON object, like {{\"city\": \"Paris\"}}.")
            return {}
        attributes = {}
        for raw_key, value in data.items():
            key = self.json_keys.get(raw_key)
            if key is None:
                key = self._json_key(raw_key, value)
            if value is None or key == "":
                continue
            field_type = self.field_types.get(key) or self.new_fields.get(key)
            if isinstance(value, str) and field_type in ("number", "date", "boolean"):
                try:
                    value = parse_value(field_type, value)
                except ValueError:
                    problems.append(conversion_reason(field_type, raw_key, value))
                    continue
                if value is None:
                    continue
            attributes[key] = value
        return attributes

    def _json_key(self, raw_key, value):
        key = slug(str(raw_key))
        if key in RESERVED_KEYS:
            key = slug("attr_" + key)
        if key and key not in self.field_types and key not in self.new_fields:
            if isinstance(value, bool):
                self.new_fields[key] = "boolean"
            elif isinstance(value, (int, float)):
                self.new_fields[key] = "number"
            else:
                self.new_fields[key] = "text"
        self.json_keys[raw_key] = key
        return key


def conversion_reason(field_type, title, raw):
    shown = str(raw).strip()[:40]
    if field_type == "number":
        return f"“{shown}” in “{title}” is not a number."
    if field_type == "date":
        return f"“{shown}” in “{title}” is not a date; use YYYY-MM-DD."
    return f"“{shown}” in “{title}” is not yes or no."


class Reject(Exception):
    pass


def json_object(attributes):
    """json.dumps for the flat objects an import makes, twice as fast (measured); anything
    but strings, integers and booleans goes to json.dumps."""
    if not attributes:
        return "{}"
    parts = []
    for key, value in attributes.items():
        kind = type(value)
        if kind is str:
            parts.append(f"{_quote(key)}:{_quote(value)}")
        elif kind is int:
            parts.append(f"{_quote(key)}:{value}")
        elif kind is bool:
            parts.append(f"{_quote(key)}:{'true' if value else 'false'}")
        else:
            return json.dumps(attributes)
    return "{" + ",".join(parts) + "}"
