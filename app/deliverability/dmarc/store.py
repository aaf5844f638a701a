"""Store DMARC aggregate reports: one writer of DmarcReport and DmarcRecord rows.

    store_report(team, source, origin) -> (DmarcReport, created)

`source` is what parse.parse() reads (bytes, a path, a seekable file). The report is read twice:
once for its metadata and counts (nothing is written when it is refused), then its records are
streamed into the database in batches of BATCH rows (app.db.insert_values), inside one transaction
with the report row, so a report is stored whole or not at all and memory stays flat for a 50 MB
report. A report already stored for the team (same org_name and report_id) is not stored again:
the existing row comes back with created False, whether it came from the mailbox or an upload.
"""
import datetime

from peewee import IntegrityError

from app.db import db
from app.db import insert_values
from app.deliverability.dmarc.parse import DmarcError
from app.deliverability.dmarc.parse import iter_records
from app.deliverability.dmarc.parse import parse
from app.models import DmarcRecord
from app.models import DmarcReport

BATCH = 500
ORIGINS = ("upload", "mailbox", "cli")
_COLUMNS = [DmarcRecord.report, DmarcRecord.team, DmarcRecord.domain, DmarcRecord.day, DmarcRecord.source_ip,
            DmarcRecord.count, DmarcRecord.disposition, DmarcRecord.dkim_aligned, DmarcRecord.spf_aligned,
            DmarcRecord.header_from, DmarcRecord.envelope_from, DmarcRecord.dkim_results, DmarcRecord.spf_results,
            DmarcRecord.reasons]


def _utc(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).replace(tzinfo=None)


def _clip(text, size=250):
    return text[:size]


def _results(items):
    return _clip(" ".join(":".join(part for part in item) for item in items), 2000)


def existing(team, org_name, report_id):
    return DmarcReport.get_or_none(DmarcReport.team == team.id, DmarcReport.org_name == org_name,
                                   DmarcReport.report_id == report_id)


def store_report(team, source, origin="upload"):
    """(the DmarcReport, True) once stored, (the one already stored, False) for a report seen before.
    Raises DmarcError (nothing written) for a file that is not a report Loft can read."""
    if origin not in ORIGINS:
        raise ValueError(f"unknown origin {origin!r}")
    summary = parse(source)
    if not summary.domain:
        raise DmarcError("The report names no domain (policy_published/domain), so it belongs to no sender domain.")
    org_name, report_id = _clip(summary.org_name), _clip(summary.report_id)
    found = existing(team, org_name, report_id)
    if found is not None:
        return found, False
    begin = _utc(summary.begin)
    day = begin.date()
    with db.atomic():
        try:
            with db.atomic():  # a savepoint: a report stored by another worker meanwhile is a duplicate
                report = DmarcReport.create(
                    team=team.id, domain=_clip(summary.domain), org_name=org_name, report_id=report_id,
                    email=_clip(summary.email), begin=begin, end=_utc(summary.end), policy=summary.policy,
                    errors=summary.errors, records=summary.records, total_messages=summary.total_messages,
                    origin=origin)
        except IntegrityError:
            return existing(team, org_name, report_id), False
        params, rows = [], 0
        for row in iter_records(source, summary.lenient):
            params += (report.id, team.id, report.domain, day, _clip(row.source_ip, 64), row.count,
                       _clip(row.disposition, 20), row.dkim_aligned, row.spf_aligned, _clip(row.header_from),
                       _clip(row.envelope_from), _results(row.dkim_results), _results(row.spf_results),
                       _results(row.reasons))
            rows += 1
            if rows == BATCH:
                _insert(params, rows)
                params, rows = [], 0
        if rows:
            _insert(params, rows)
    return report, True


def _insert(params, rows):
    insert_values(_COLUMNS, rows).run(params)


def reports_for(team, domain=None, limit=50):
    """The team's newest reports (of one domain)."""
    query = DmarcReport.select().where(DmarcReport.team == team.id)
    if domain:
        query = query.where(DmarcReport.domain == domain)
    return list(query.order_by(DmarcReport.begin.desc(), DmarcReport.id.desc()).limit(limit))
