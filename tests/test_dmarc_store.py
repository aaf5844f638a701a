"""Storing DMARC aggregate reports: once per (team, org, report id), whole or not at all."""
import gzip

import pytest

from app.deliverability.dmarc import store
from app.deliverability.dmarc.parse import DmarcError
from app.models import DmarcRecord
from app.models import DmarcReport
from app.models import Team
from tests.dmarc_support import email_with
from tests.dmarc_support import report_xml


@pytest.fixture
def teams(ctx):
    return Team.create(name="Acme"), Team.create(name="Other")


def test_a_report_is_stored_with_its_records(teams):
    acme, _ = teams
    report, created = store.store_report(acme, report_xml(records=3, count=4), origin="mailbox")
    assert created
    stored = DmarcReport.get_by_id(report.id)
    assert (stored.domain, stored.org_name, stored.report_id, stored.records, stored.total_messages, stored.origin) \
        == ("example.com", "mail.example.net", "r-1", 3, 12, "mailbox")
    assert stored.policy == {"domain": "example.com", "adkim": "r", "aspf": "r", "p": "none"}
    assert str(stored.begin) == "2023-11-14 22:13:20"
    rows = list(DmarcRecord.select().where(DmarcRecord.report == report.id).order_by(DmarcRecord.id))
    assert [(r.source_ip, r.count, r.dkim_aligned, r.spf_aligned) for r in rows] == [
        ("192.0.2.1", 4, True, False), ("192.0.2.2", 4, False, False), ("192.0.2.3", 4, True, False)]
    first = rows[0]
    assert (first.team_id, first.domain, str(first.day), first.disposition) == (acme.id, "example.com", "2023-11-14",
                                                                               "none")
    assert first.dkim_results == "example.com:loft1:pass"
    assert first.spf_results == "bounce.example.com:mfrom:softfail"
    assert first.reasons == "forwarded:list"


def test_the_same_report_twice_is_stored_once_per_team(teams):
    acme, other = teams
    first, created = store.store_report(acme, report_xml(records=2))
    again, created_again = store.store_report(acme, email_with(gzip.compress(report_xml(records=2))))
    assert created and not created_again and again.id == first.id
    assert DmarcReport.select().where(DmarcReport.team == acme.id).count() == 1
    assert DmarcRecord.select().where(DmarcRecord.team == acme.id).count() == 2
    # Another team receiving the same report keeps its own copy.
    theirs, created_theirs = store.store_report(other, report_xml(records=2))
    assert created_theirs and theirs.id != first.id
    # A different report id from the same receiver is a new report.
    _, created_new = store.store_report(acme, report_xml(records=1, report_id="r-2"))
    assert created_new


def test_many_records_go_in_batches(teams):
    acme, _ = teams
    report, _ = store.store_report(acme, report_xml(records=store.BATCH * 2 + 7, count=1))
    assert DmarcRecord.select().where(DmarcRecord.report == report.id).count() == store.BATCH * 2 + 7
    assert report.total_messages == store.BATCH * 2 + 7


def test_a_refused_file_writes_nothing(teams):
    acme, _ = teams
    bad_count = report_xml(records=30).replace(b"<count>3</count>", b"<count>x</count>")
    for data in (b"not a report", bad_count, report_xml(domain="")):
        with pytest.raises(DmarcError):
            store.store_report(acme, data)
    assert DmarcReport.select().count() == 0 and DmarcRecord.select().count() == 0


def test_a_record_failing_after_the_first_batch_rolls_the_report_back(teams, monkeypatch):
    acme, _ = teams
    monkeypatch.setattr(store, "BATCH", 5)
    calls = []
    real = store._insert

    def failing(params, rows):
        calls.append(rows)
        if len(calls) == 2:
            raise RuntimeError("the database went away")
        real(params, rows)

    monkeypatch.setattr(store, "_insert", failing)
    with pytest.raises(RuntimeError):
        store.store_report(acme, report_xml(records=12))
    assert calls == [5, 5]
    assert DmarcReport.select().count() == 0 and DmarcRecord.select().count() == 0
