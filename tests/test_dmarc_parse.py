"""DMARC aggregate report parsing: the formats it accepts and the hostile files it refuses.

Each refusal must be a DmarcError whose words say why (what a person sees at the upload form and
what `flask dmarc parse` prints), never a traceback, and must come before the file is in memory.
"""
import gzip
import io
import json
import os
import zipfile

import pytest

from app.deliverability.dmarc import parse as dmarc_parse
from app.deliverability.dmarc.parse import DmarcError
from app.deliverability.dmarc.parse import iter_records
from app.deliverability.dmarc.parse import parse
from tests.dmarc_support import email_with
from tests.dmarc_support import report_xml
from tests.dmarc_support import zipped


# --- What it reads -------------------------------------------------------------------------------

def test_plain_xml_gives_metadata_policy_records_and_totals():
    report = parse(report_xml(records=3, count=4), keep_records=True)
    assert report.summary() == {"org_name": "mail.example.net", "report_id": "r-1", "begin": 1700000000,
                                "end": 1700086399, "policy": {"domain": "example.com", "adkim": "r", "aspf": "r",
                                                              "p": "none"},
                                "records": 3, "total_messages": 12}
    first = report.rows[0]
    assert (first.source_ip, first.count, first.disposition, first.dkim, first.spf) == ("192.0.2.1", 4, "none",
                                                                                         "pass", "fail")
    assert first.dkim_aligned and not first.spf_aligned and first.dmarc_pass
    assert not report.rows[1].dmarc_pass
    assert first.dkim_results == (("example.com", "loft1", "pass"),)
    assert first.spf_results == (("bounce.example.com", "mfrom", "softfail"),)
    assert first.reasons == (("forwarded", "list"),)
    assert first.header_from == "example.com"


def test_gzip_zip_email_and_a_file_object_read_the_same(tmp_path):
    xml = report_xml(records=5)
    plain = parse(xml, keep_records=True)
    packed = {"gzip": gzip.compress(xml), "zip": zipped([("report.xml", xml)]),
              "email/gzip": email_with(gzip.compress(xml)),
              "email/zip": email_with(zipped([("r.xml", xml)]), "application/zip", "r.zip"),
              "email/xml": email_with(xml, "application/octet-stream", "report.xml"),
              "zip/gzip": zipped([("report.xml.gz", gzip.compress(xml))])}
    for how, data in packed.items():
        report = parse(data, keep_records=True)
        assert report.container == how
        assert report.rows == plain.rows and report.summary() == plain.summary()
    path = tmp_path / "report.bin"
    path.write_bytes(packed["gzip"])
    with open(path, "rb") as handle:
        assert parse(handle).summary() == plain.summary()
        assert not handle.closed  # the caller's file stays the caller's
    assert list(iter_records(path)) == plain.rows


def test_rfc9990_namespace_and_message_id_report_ids():
    report = parse(report_xml(namespace="urn:ietf:params:xml:ns:dmarc-2.0", report_id="&lt;abc.123@mx.example.net&gt;"))
    assert report.report_id == "abc.123"
    assert report.records == 2


def test_gzip_with_trailing_bytes_and_several_members():
    xml = report_xml(records=4)
    assert parse(gzip.compress(xml) + b"\r\n").records == 4
    half = len(xml) // 2
    assert parse(gzip.compress(xml[:half]) + gzip.compress(xml[half:])).records == 4


def test_bad_bytes_and_stray_schema_tags_are_read_leniently():
    xml = report_xml().replace(b"<header_from>example.com", b"<header_from>example.com\x91", 1)
    xml = xml.replace(b"<feedback>", b'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">\n<feedback>')
    report = parse(xml, keep_records=True)
    assert report.lenient and report.records == 2
    assert report.rows[0].header_from == "example.com\ufffd"
    assert not parse(report_xml()).lenient


# --- What it refuses -----------------------------------------------------------------------------

def refused(data):
    with pytest.raises(DmarcError) as caught:
        parse(data)
    return str(caught.value)


def test_billion_laughs_is_refused_before_expansion():
    bomb = b"""<?xml version="1.0"?>
<!DOCTYPE feedback [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>
<feedback><report_metadata><org_name>&d;&d;&d;&d;</org_name></report_metadata></feedback>"""
    assert "declares a DTD" in refused(bomb)
    assert "XML bomb" in refused(gzip.compress(bomb))


def test_external_entity_is_refused():
    xxe = b"""<?xml version="1.0"?><!DOCTYPE feedback [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<feedback><report_metadata><org_name>&x;</org_name></report_metadata></feedback>"""
    message = refused(xxe)
    assert "DTD" in message and "root:" not in message


def test_gzip_bomb_is_refused_by_its_ratio():
    bomb = gzip.compress(b"<feedback>" + b" " * (30 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 100_000
    message = refused(bomb)
    assert "decompression bomb" in message and "gzip" in message


def test_zip_bomb_is_refused_from_its_declared_sizes():
    bomb = zipped([("report.xml", b"<feedback>" + b"\0" * (30 * 1024 * 1024))])
    assert "decompression bomb" in refused(bomb)


def test_decompressed_size_cap_is_counted_as_it_streams(monkeypatch):
    monkeypatch.setattr(dmarc_parse, "MAX_XML_BYTES", 64 * 1024)
    big = report_xml(records=400)
    assert len(big) > 64 * 1024
    assert "Loft reads reports up to that size" in refused(gzip.compress(big))
    assert "Loft reads reports up to that size" in refused(big)
    assert parse(report_xml(records=10)).records == 10


def test_compressed_input_cap(monkeypatch):
    monkeypatch.setattr(dmarc_parse, "MAX_INPUT_BYTES", 1000)
    assert "compressed report or a report email" in refused(gzip.compress(os.urandom(5000)))


def test_zip_with_many_members_or_none_is_refused():
    many = zipped([(f"r{i}.xml", report_xml()) for i in range(dmarc_parse.MAX_ZIP_MEMBERS + 1)])
    assert "entries" in refused(many)
    empty = io.BytesIO()
    zipfile.ZipFile(empty, "w").close()
    assert "zip" in refused(empty.getvalue())


def test_truncated_and_damaged_gzip():
    data = gzip.compress(report_xml(records=50))
    assert "cut short" in refused(data[: len(data) // 2])
    damaged = bytearray(data)
    damaged[len(data) // 2] ^= 0xFF
    assert "damaged" in refused(bytes(damaged)) or "not well-formed" in refused(bytes(damaged))


def test_damaged_zip_member():
    data = bytearray(zipped([("report.xml", report_xml(records=50))]))
    start = data.index(b"report.xml") + len("report.xml") + 20
    data[start] ^= 0xFF
    assert "damaged" in refused(bytes(data)) or "not well-formed" in refused(bytes(data))


def test_nesting_is_bounded():
    data = report_xml()
    for _ in range(6):
        data = gzip.compress(data)
    assert "packed too many times" in refused(data)


def test_files_that_are_not_reports():
    assert "not a DMARC aggregate report" in refused(b"hello, this is text")
    assert "not a DMARC aggregate report" in refused(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    assert "root element is <html>" in refused(b"<html><body>hi</body></html>")
    assert "not well-formed" in refused(b"<feedback><report_metadata>")
    assert "empty" in refused(b"")
    assert "no DMARC report attached" in refused(email_with(b"plain words", "text/plain", "notes.txt"))
    assert "gzip file does not hold an XML report" in refused(gzip.compress(b"just text"))


def test_missing_fields_and_bad_numbers_are_named():
    assert "no report_id" in refused(report_xml(report_id=""))
    assert "no date range" in refused(report_xml().replace(b"<end>1700086399</end>", b""))
    assert "ends (1) before it begins" in refused(report_xml(end=1))
    assert "Record 1: the message count “many”" in refused(report_xml().replace(b"<count>3</count>",
                                                                               b"<count>many</count>", 1))
    assert "is negative" in refused(report_xml(count=-2))
    assert "not a unix time" in refused(report_xml(begin="yesterday"))


def test_cli_prints_the_summary_or_exits_1_with_the_reason(app, tmp_path):
    good = tmp_path / "r.xml.gz"
    good.write_bytes(gzip.compress(report_xml(records=3, count=2)))
    runner = app.test_cli_runner()
    printed = runner.invoke(args=["dmarc", "parse", str(good)])
    assert printed.exit_code == 0
    assert json.loads(printed.output) == {"org_name": "mail.example.net", "report_id": "r-1", "begin": 1700000000,
                                          "end": 1700086399, "policy": {"domain": "example.com", "adkim": "r",
                                                                        "aspf": "r", "p": "none"},
                                          "records": 3, "total_messages": 6}
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    refused_cli = runner.invoke(args=["dmarc", "parse", str(bad)])
    assert refused_cli.exit_code == 1 and "not a DMARC aggregate report" in refused_cli.output
    assert "Traceback" not in refused_cli.output
    missing = runner.invoke(args=["dmarc", "parse", str(tmp_path / "nothing.xml")])
    assert missing.exit_code == 1 and "is not a file" in missing.output
