"""/api/v1/contacts/bulk and /api/v1/jobs: up to 10,000 contacts in one request, added or updated by the
import's own checks and writes (app/imports/: the validated rows become an import job, kept as JSON and
written in one transaction by a task), and the job to poll, with an error per row it refused or changed."""
import datetime
from typing import Literal

from flask import g
from pydantic import Field

from app.api.contacts import FieldValue
from app.api.framework import ApiProblem
from app.api.framework import Schema
from app.api.framework import Strict
from app.api.framework import operation
from app.contacts.fields import fields_of
from app.imports import rejects
from app.imports import services as imports
from app.models import ImportJob
from app.teams.context import team_object_or_404
from tasks.imports import run_import

MAX_ROWS = 10_000
TAG_SEPARATOR = "|"


class BulkContact(Strict):
    email: str = Field(max_length=320)
    name: str = Field("", max_length=200)
    fields: dict[str, FieldValue] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list, max_length=200)


class BulkIn(Strict):
    contacts: list[BulkContact] = Field(min_length=1, max_length=MAX_ROWS)
    lists: list[int] = Field(default_factory=list, max_length=100, description="Subscribe every contact to these.")
    update_existing: bool = Field(True, description="Update contacts that exist (else only new ones are added).")


class RowError(Schema):
    index: int = Field(description="The contact's position in the request's `contacts`, from 0.")
    field: str = Field(description="What the message is about: email, name, tags, lists or fields.<key>.")
    message: str


class JobOut(Schema):
    id: int
    status: Literal["uploaded", "queued", "running", "done", "failed"]
    rows: int
    processed: int
    created: int
    updated: int
    unchanged: int
    duplicates: int = Field(description="Later rows repeating an address (the first one counts).")
    rejected: int
    not_subscribed: int = Field(description="Unsubscribed, bounced, complained or suppressed: not put on lists.")
    error: str | None
    errors: list[RowError] = Field(description="Each contact not written, or written without a value or not "
                                               "put on the lists, and why; filled in when the job is done.")
    created_at: datetime.datetime
    finished_at: datetime.datetime | None


def utc(moment):
    return moment.replace(tzinfo=datetime.timezone.utc) if moment and moment.tzinfo is None else moment


def job_out(job):
    summary = imports.summary(job)
    return JobOut(id=job.id, status=job.status, rows=summary["rows"], processed=summary["processed"],
                  created=summary["created"], updated=summary["updated"], unchanged=summary["unchanged"],
                  duplicates=summary["duplicates"], rejected=summary["rejected"],
                  not_subscribed=summary["not_subscribed"], error=summary["error"],
                  errors=[RowError(index=index, field=api_field(field), message=message)
                          for index, field, message in rejects.given_row_errors(job)],
                  created_at=utc(job.created_at), finished_at=utc(job.finished_at))


def api_field(column):
    """The request's name for a column of the job's rows (see bulk_upsert's header)."""
    return column if column in ("email", "name", "tags", "lists") else f"fields.{column}"


def cell(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


@operation("/contacts/bulk", "POST", "edit_content", ok=JobOut, status=202, body=BulkIn, tags=["contacts"],
           location="/jobs/{id}")
def bulk_upsert(body):
    """Add or update up to 10,000 contacts; answers with the job to poll"""
    keys = sorted({key for row in body.contacts for key in row.fields})
    unknown = sorted(set(keys) - {field.key for field in fields_of(g.team)})
    if unknown:
        raise ApiProblem(422, "There is no custom field with these keys; create them first.",
                         errors={f"fields.{key}": "no such custom field" for key in unknown})
    for index, row in enumerate(body.contacts):
        if any(TAG_SEPARATOR in tag or "," in tag or ";" in tag for tag in row.tags):
            raise ApiProblem(422, "A tag name cannot hold , ; or |.", errors={f"contacts.{index}.tags": "separator"})
    header = ["email", "name", *keys, "tags"]
    rows = [[row.email, row.name, *[cell(row.fields.get(key)) for key in keys], TAG_SEPARATOR.join(row.tags)]
            for row in body.contacts]
    job = imports.save_rows(g.team, None, f"API bulk upsert ({len(body.contacts):,} contacts)", header, rows)
    mapping = {"0": "email", "1": "name", **{str(2 + i): f"field:{key}" for i, key in enumerate(keys)},
               str(len(header) - 1): "tags"}
    try:
        job = imports.configure(g.team, job, mapping, body.lists, "upsert" if body.update_existing else "add",
                                header)
    except imports.ImportProblem:
        imports.discard(g.team, job)
        raise
    run_import(job.id)
    return job_out(ImportJob.get_by_id(job.id))


@operation("/jobs/<int:job_id>", "GET", "view", ok=JobOut, tags=["contacts"])
def get_job(job_id):
    """Get a bulk job's progress and result"""
    return job_out(team_object_or_404(ImportJob, job_id))
