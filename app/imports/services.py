"""CSV contact import, the part a person drives: upload a file, map its columns, start, discard
or resume the job, and find the imports whose worker died. The run itself, chunk by chunk, is
importer.py."""
import datetime
import json
import os
import re
import uuid

from flask import current_app

from app.contacts.fields import KEY_PATTERN
from app.contacts.fields import RESERVED_KEYS
from app.contacts.fields import fields_of
from app.contacts.fields import key_from_label
from app.db import db
from app.errors import Problem
from app.imports import csvsniff
from app.imports.csvsniff import FileProblem
from app.models import CustomField
from app.models import ImportJob
from app.models import MailingList
from app.models import Team
from app.models import utcnow

STALL_SECONDS = 180  # a running import whose heartbeat is older than this has lost its worker
MODES = {"add": "Add new contacts only", "upsert": "Add new contacts and update existing ones"}
# ImportJob.encoding of a job whose rows were given as data (save_rows): there is no CSV file to decode.
ROWS_AS_JSON = "json-rows"
STATUS_LABELS = {"uploaded": "Waiting for mapping", "queued": "Queued", "running": "Importing",
                 "done": "Done", "failed": "Failed"}


# Targets a column can be mapped to; custom fields are "field:<key>".
TARGETS = {"email": "Email address", "name": "Name", "first_name": "First name", "last_name": "Last name",
           "tags": "Tags (separated by , ; or |)", "attributes": "Attributes (a JSON object per row)"}
HEADER_GUESSES = {
    "email": {"email", "emailaddress", "mail", "emailaddr", "mailaddress", "subscriberemail", "useremail",
              "contactemail", "emails", "courriel", "correo", "emailadresse"},
    "name": {"name", "fullname", "displayname", "contactname", "subscribername", "username"},
    "first_name": {"firstname", "first", "givenname", "fname", "forename", "vorname", "prenom"},
    "last_name": {"lastname", "last", "surname", "familyname", "lname", "nachname", "nom"},
    "tags": {"tags", "tag", "labels", "label", "keywords"},
    "attributes": {"attributes", "attribs", "customfields", "data"},
}


class ImportProblem(Problem):
    """A refusal with a message for the person; `field` names the form control it belongs to."""


# --- Looking things up ------------------------------------------------------------

def import_dir():
    return current_app.config.get("IMPORT_DIR") or os.path.join(current_app.root_path, "..", "var", "imports")


def recent_imports(team, limit=50):
    return list(ImportJob.select().where(ImportJob.team == team).order_by(ImportJob.id.desc()).limit(limit))


def find_team(value):
    """A team by id or by name (for the CLI)."""
    team = Team.get_or_none(Team.id == int(value)) if str(value).isdigit() else None
    return team or Team.get_or_none(Team.name == value)


def find_list(team, value):
    """One of the team's lists by id or by name (for the CLI)."""
    if str(value).isdigit():
        found = MailingList.get_or_none((MailingList.team == team) & (MailingList.id == int(value)))
        if found:
            return found
    return MailingList.get_or_none((MailingList.team == team) & (MailingList.name == value))


# --- Upload -----------------------------------------------------------------------

def save_upload(team, user, filename, stream):
    """Store an uploaded file under IMPORT_DIR/<team>/ and describe it; returns the new job
    (status 'uploaded', with guessed mapping) or raises ImportProblem. A refused file is deleted."""
    filename = os.path.basename((filename or "").replace("\\", "/")).strip()[:200]
    if not filename:
        raise ImportProblem("Choose a CSV file to upload.", field="file")
    folder = os.path.join(import_dir(), str(team.id))
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{uuid.uuid4().hex}.csv")
    with open(path, "wb") as out:
        while True:
            block = stream.read(1024 * 1024)
            if not block:
                break
            out.write(block)
    try:
        return create_job(team, user, path, filename)
    except ImportProblem:
        os.remove(path)
        raise


def save_rows(team, user, filename, header, rows):
    """An import job for rows given as data (the API's bulk upsert): the cells (lists of text, as a CSV
    file's rows would be) are kept as one JSON document under IMPORT_DIR/<team>/, which the import reads
    back in one call instead of writing, sniffing and parsing a CSV file; the checks and writes are the
    CSV import's own."""
    folder = os.path.join(import_dir(), str(team.id))
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{uuid.uuid4().hex}.json")
    with open(path, "w", encoding="utf-8") as out:
        # dumps, not dump: json.dump streams through the pure-Python encoder, several times slower.
        out.write(json.dumps({"columns": header, "rows": rows}, ensure_ascii=False, separators=(",", ":")))
    return ImportJob.create(team=team, user=user, filename=filename, path=path, encoding=ROWS_AS_JSON,
                            delimiter=",", has_header=True, mapping={})


def holds_rows(job):
    """True for a job made by save_rows (its file is JSON rows, not an upload)."""
    return job.encoding == ROWS_AS_JSON


def load_rows(job):
    """(column titles, rows of cells) of a job made by save_rows."""
    with open(job.path, encoding="utf-8") as handle:
        data = json.load(handle)
    return data["columns"], data["rows"]


def create_job(team, user, path, filename):
    """An import job for the CSV file at `path` (which stays where it is), after sniffing it."""
    try:
        sniffed = csvsniff.sniff(path)
    except FileProblem as exc:
        raise ImportProblem(str(exc), field="file")
    mapping = guess_mapping(sniffed.columns, sniffed.preview, fields_of(team))
    return ImportJob.create(team=team, user=user, filename=filename, path=path, encoding=sniffed.encoding,
                            delimiter=sniffed.delimiter, has_header=sniffed.has_header,
                            mapping=mapping)


def describe(job):
    """Columns, preview rows and notes of an uploaded job's file (for the mapping page)."""
    try:
        return csvsniff.preview(job.path, job.encoding, job.delimiter, job.has_header,
                                truncated=csvsniff.ends_mid_character(job.path, job.encoding))
    except (FileProblem, OSError) as exc:
        raise ImportProblem(f"The uploaded file can no longer be read ({exc}). Upload it again.")


def discard(team, job):
    """Forget an import that was never started (its file too)."""
    if job.status != "uploaded":
        raise ImportProblem("Only an import that has not started can be discarded.")
    remove_upload(job)
    job.delete_instance()


def remove_upload(job):
    """Delete the uploaded copy (personal data we no longer need); never a file the CLI pointed at."""
    root = os.path.realpath(import_dir())
    path = os.path.realpath(job.path)
    if path.startswith(root + os.sep) and os.path.exists(path):
        os.remove(path)


# --- Mapping ----------------------------------------------------------------------

def _squash(text):
    return re.sub(r"[^a-z0-9]", "", text.casefold())


def slug(text):
    """A custom-field key made from a column title ('Company Name' -> 'company_name'), or ''."""
    return key_from_label(text)


def guess_mapping(columns, preview, fields):
    """{column index: target}: header names first, then which column holds addresses."""
    by_key = {f.key: f for f in fields}
    by_label = {_squash(f.label): f for f in fields}
    mapping = {}
    used = set()
    for index, title in enumerate(columns):
        squashed = _squash(title)
        target = None
        for candidate, names in HEADER_GUESSES.items():
            if squashed in names:
                target = candidate
                break
        if target is None and "email" in squashed:
            target = "email"
        if target is None:
            field = by_key.get(slug(title)) or by_label.get(squashed)
            target = f"field:{field.key}" if field else None
        if target and target not in used:
            mapping[str(index)] = target
            used.add(target)
    if "email" not in used and preview:
        # No telling header (or none at all): the column where most cells look like addresses.
        best, best_hits = None, 0
        for index in range(len(columns)):
            hits = sum(1 for row in preview if index < len(row) and csvsniff.LOOKS_LIKE_EMAIL.match(row[index]))
            if hits > best_hits:
                best, best_hits = index, hits
        if best is not None and best_hits * 2 >= len(preview):
            mapping[str(best)] = "email"
    return mapping


def column_choices(columns, fields):
    """Per column: the options of its select, as (value, label) pairs."""
    existing = {f.key for f in fields}
    base = [("", "Don't import")] + list(TARGETS.items())
    base += [(f"field:{f.key}", f"Field: {f.label}") for f in fields]
    choices = []
    for title in columns:
        options = list(base)
        key = slug(title)
        if key and key not in existing and key not in RESERVED_KEYS:
            options.append((f"new:{key}", f"New text field “{key}”"))
        choices.append(options)
    return choices


def configure(team, job, mapping, list_ids, mode, columns):
    """Check the person's choices, create requested new text fields, and queue the job.

    `mapping` is {column index (str): target}. Raises ImportProblem (field
    'mapping', 'lists' or 'mode') and changes nothing when a choice is wrong.
    """
    if mode not in MODES:
        raise ImportProblem("Choose whether existing contacts are updated.", field="mode")
    chosen = {}
    seen = {}
    for index, target in mapping.items():
        if not target:
            continue
        if not str(index).isdigit() or int(index) >= len(columns):
            raise ImportProblem("The mapping names a column the file does not have.", field="mapping")
        if target in seen:
            raise ImportProblem(f"“{columns[seen[target]]}” and “{columns[int(index)]}” are both mapped to "
                                f"{target_label(target)}; choose one.", field="mapping")
        seen[target] = int(index)
        chosen[str(int(index))] = target
    if "email" not in seen:
        raise ImportProblem("Choose the column that holds the email addresses.", field="mapping")
    keys = {f.key: f for f in fields_of(team)}
    new_keys = []
    for index, target in chosen.items():
        kind, _, key = target.partition(":")
        if kind == "field" and key not in keys:
            raise ImportProblem(f"There is no field “{key}” any more; choose another for “{columns[int(index)]}”.",
                                field="mapping")
        if kind == "new":
            if not KEY_PATTERN.match(key) or key in RESERVED_KEYS:
                raise ImportProblem(f"“{key}” cannot be a field key.", field="mapping")
            if key not in keys:
                new_keys.append((key, columns[int(index)]))
            chosen[index] = f"field:{key}"
        elif kind not in ("field",) and target not in TARGETS:
            raise ImportProblem(f"Unknown choice for “{columns[int(index)]}”.", field="mapping")
    wanted = []
    for value in list_ids:
        try:
            wanted.append(int(value))
        except (TypeError, ValueError):
            raise ImportProblem("Choose lists from the ones shown.", field="lists")
    found = [lst.id for lst in MailingList.select(MailingList.id)
             .where((MailingList.team == team) & (MailingList.id << wanted))] if wanted else []
    if len(set(found)) != len(set(wanted)):
        raise ImportProblem("One of the chosen lists does not exist any more.", field="lists")
    with db.atomic():
        for key, title in new_keys:
            CustomField.insert(team=team, key=key, label=title[:100] or key, type="text").on_conflict_ignore().execute()
        queued = (ImportJob.update(mapping=chosen, list_ids=sorted(set(found)), mode=mode,
                                   status="queued", heartbeat_at=utcnow())
                  .where((ImportJob.id == job.id) & (ImportJob.status == "uploaded")).execute())
    if not queued:
        raise ImportProblem("This import has already been started.")
    return ImportJob.get_by_id(job.id)


def target_label(target):
    kind, _, key = target.partition(":")
    return TARGETS.get(target) or f"the field “{key}”"


# --- Stopped imports and the result -------------------------------------------------

def resume(team, job):
    """Queue a failed or stalled import again; it carries on after its last committed chunk."""
    if not (job.status == "failed" or is_stalled(job)):
        raise ImportProblem("This import is not stopped.")
    if not os.path.exists(job.path):
        raise ImportProblem("The uploaded file is gone, so this import cannot continue. Upload it again: "
                            "contacts already imported are not duplicated.")
    ImportJob.update(status="queued", error="", heartbeat_at=utcnow()).where(ImportJob.id == job.id).execute()
    return ImportJob.get_by_id(job.id)


def is_stalled(job):
    if job.status not in ("queued", "running") or job.heartbeat_at is None:
        return False
    return job.heartbeat_at < utcnow() - datetime.timedelta(seconds=STALL_SECONDS)


def claim_stalled_imports():
    """Ids of imports whose worker died (no heartbeat for STALL_SECONDS); their heartbeat is
    renewed so the next sweep does not queue them twice."""
    limit = utcnow() - datetime.timedelta(seconds=STALL_SECONDS)
    with db.atomic():
        ids = [j.id for j in ImportJob.select(ImportJob.id)
               .where((ImportJob.status << ("queued", "running")) & (ImportJob.heartbeat_at < limit))]
        if ids:
            ImportJob.update(heartbeat_at=utcnow()).where(ImportJob.id << ids).execute()
    return ids


def summary(job):
    """The import's result as plain data (the CLI prints it as JSON)."""
    return {"import_id": job.id, "file": job.filename, "status": job.status, "mode": job.mode,
            "rows": job.total_rows, "processed": job.processed_rows, "created": job.created,
            "updated": job.updated, "unchanged": job.skipped, "duplicates": job.duplicates,
            "rejected": job.rejected, "partly_imported": job.partial, "not_subscribed": job.blocked,
            "error": job.error or None,
            "rejects_file": job.rejects_path or None}
