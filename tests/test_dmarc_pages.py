"""The DMARC pages: upload (manage_domains, CSRF, size-limited), the domain digest, roles and other teams."""
import datetime
import gzip
import io

from app.deliverability.dmarc import digest
from app.deliverability.dmarc import parse
from app.deliverability.dmarc import store
from app.models import DmarcRecord
from app.models import DmarcReport
from app.models import Team
from app.senders import domains
from tests.accounts_support import make_member
from tests.conftest import soup
from tests.dmarc_support import email_with
from tests.dmarc_support import report_xml


def upload(web, data, name="report.xml.gz"):
    return web.post("/deliverability/dmarc/upload", {"report": (io.BytesIO(data), name)},
                    content_type="multipart/form-data")


def recent_xml(**kwargs):
    """A report of yesterday, so the digest's default 30 days include it."""
    begin = int(datetime.datetime.combine(datetime.date.today() - datetime.timedelta(days=1), datetime.time(),
                                          datetime.timezone.utc).timestamp())
    return report_xml(begin=begin, end=begin + 86399, **kwargs)


def test_empty_state_says_how_to_publish_rua(app, web, team):
    with app.app_context():
        domains.add_domain(team, "acme.test")
    page = soup(web.get("/deliverability/dmarc"))
    empty = page.select_one("#dmarc-empty")
    assert empty is not None and "rua=" in empty.get_text()
    assert "_dmarc.acme.test" in empty.get_text() and "rua=mailto:dmarc-reports@acme.test" in empty.get_text()
    assert page.select_one("#dmarc-upload input[type=file][name=report]") is not None


def test_upload_stores_once_and_shows_the_digest(app, web, team, dns_zone):
    dns_zone.add("1.2.0.192.in-addr.arpa", "PTR", "mail1.example.net.")
    response = upload(web, gzip.compress(recent_xml(records=4, count=5)))
    assert response.status_code == 302 and response.headers["Location"].endswith("/deliverability/dmarc/example.com")
    again = upload(web, email_with(gzip.compress(recent_xml(records=4, count=5))), "report.eml")
    assert again.status_code == 302
    with app.app_context():
        assert DmarcReport.select().count() == 1 and DmarcRecord.select().count() == 4
    page = web.get("/deliverability/dmarc/example.com")
    assert page.status_code == 200
    html = soup(page)
    totals = html.select_one("#dmarc-totals").get_text(" ", strip=True)
    assert "Messages reported 20" in totals and "DMARC pass 10 (50.0 %)" in totals and "DMARC fail 10" in totals
    assert "SPF aligned pass 0; fail 20" in totals
    assert html.select_one("#dmarc-trend svg[role=img]") is not None
    sources = html.select("#dmarc-sources-table tbody tr")
    assert len(sources) == 4
    assert "mail1.example.net" in sources[0].get_text() or any("mail1.example.net" in r.get_text() for r in sources)
    failing = html.select("#dmarc-failing-table tbody tr")
    assert [row.select_one("code").get_text() for row in failing] == ["192.0.2.2", "192.0.2.4"]
    assert "DKIM example.com:loft1:pass" in failing[0].get_text()
    listing = soup(web.get("/deliverability/dmarc")).select_one("#dmarc-domains").get_text(" ", strip=True)
    assert "example.com" in listing and "50.0 %" in listing


def test_a_bad_file_is_refused_at_the_field_and_nothing_is_stored(app, web, team):
    response = upload(web, b"<html>not a report</html>", "report.xml")
    assert response.status_code == 422
    error = soup(response).select_one("#e-report")
    assert error is not None and "root element is <html>" in error.get_text()
    bomb = gzip.compress(b"<feedback>" + b" " * (4 * 1024 * 1024))
    assert "decompression bomb" in soup(upload(web, bomb)).select_one("#e-report").get_text()
    missing = web.post("/deliverability/dmarc/upload", {}, content_type="multipart/form-data")
    assert missing.status_code == 422 and "Choose a report file" in missing.get_data(as_text=True)
    with app.app_context():
        assert DmarcReport.select().count() == 0


def test_upload_needs_csrf_and_manage_domains_and_the_digest_needs_view(app, web, team):
    response = web.client.post("/deliverability/dmarc/upload", data={"report": (io.BytesIO(recent_xml()), "r.xml")},
                               content_type="multipart/form-data")
    assert response.status_code in (400, 403)
    with app.app_context():
        store.store_report(team, recent_xml())
        _, manager = make_member(app, team, "manager")
    with app.app_context():  # one signed-in client per context (conftest's ctx)
        _, guest = make_member(app, team, "guest")
    assert upload(manager, recent_xml(report_id="m-1")).status_code == 403
    seen = guest.get("/deliverability/dmarc/example.com")
    assert seen.status_code == 200, seen.headers.get("Location")
    assert "Upload a report" not in guest.get("/deliverability/dmarc").get_data(as_text=True)
    with app.app_context():
        assert DmarcReport.select().count() == 1


def test_another_teams_domain_is_not_found(app, web, team):
    with app.app_context():
        other = Team.create(name="Other")
        store.store_report(other, recent_xml(domain="other.test"))
    assert web.get("/deliverability/dmarc/other.test").status_code == 404
    assert web.get("/deliverability/dmarc/nothing.test").status_code == 404
    upload(web, recent_xml(domain="other.test"))  # the same report uploaded here is this team's own copy
    with app.app_context():
        assert DmarcReport.select().where(DmarcReport.team == other.id).count() == 1
        assert DmarcRecord.select().where(DmarcRecord.team == other.id).count() == 2


def test_reverse_names_are_cached_and_a_dead_server_gives_none(app, silent_dns):
    with app.app_context():
        digest._ptr_cache.clear()
        assert digest.reverse_name("192.0.2.77") == ""
        assert digest.reverse_name("not an ip") == ""
        assert any(key[1] == "192.0.2.77" for key in digest._ptr_cache)


def test_the_upload_is_size_limited_before_it_is_read(app, web, team, monkeypatch):
    view = app.view_functions["dmarc.upload"]
    assert view.upload_limit == parse.MAX_XML_BYTES + 1024 * 1024
    monkeypatch.setattr(view, "upload_limit", 64 * 1024)  # the same check, at a size a test can send
    response = upload(web, report_xml(records=400), "big.xml")
    assert response.status_code == 413
    with app.app_context():
        assert DmarcReport.select().count() == 0
    assert upload(web, report_xml(records=3), "small.xml").status_code == 302


def test_a_dead_dns_server_gives_no_names_and_its_silence_is_cached(app, silent_dns):
    with app.app_context():
        digest._ptr_cache.clear()
        ips = [f"198.51.100.{i}" for i in range(1, 21)]
        names = digest.reverse_names(ips)
        assert names == {ip: "" for ip in ips}
        # Every source was asked (on parallel threads, see reverse_names), and the empty answers are kept.
        asked = 0
        silent_dns.settimeout(0.2)
        try:
            while True:
                silent_dns.recvfrom(512)
                asked += 1
        except OSError:
            pass
        assert asked >= 20
        assert set(ips) <= {ip for _, ip in digest._ptr_cache}
