"""Address validation at import: the team's policy (off / flag / reject) on the settings page and applied
per chunk by the importer (app/imports/screening.py), against a real DNS server on 127.0.0.1."""
import pytest

from app.contacts.tags import tags_of
from app.deliverability import validation
from app.imports import importer
from app.models import Contact
from app.models import ImportJob
from app.models import Team
from tests.accounts_support import make_member
from tests.conftest import soup
from tests.imports_support import rejects_of
from tests.imports_support import run_file
from tests.imports_support import uploaded_job

FILE = ("email,name\n"
        "ann@example.com,Ann\n"
        "info@example.com,Info\n"
        "bo@missing.example.com,Bo\n"
        "cy@nomail.example.net,Cy\n"
        "dee@gmaill.com,Dee\n"
        "eve@slow.example.org,Eve\n"
        "fay@example.com,Fay\n")


@pytest.fixture(autouse=True)
def fresh_cache():
    validation.clear_cache()
    yield
    validation.clear_cache()


@pytest.fixture
def zone(dns_zone):
    dns_zone.add("example.com", "MX", "10 mx.example.com.")
    dns_zone.add("nomail.example.net", "MX", "0 .")
    dns_zone.silence("slow.example.org")
    return dns_zone


@pytest.fixture
def quick_dns(monkeypatch):
    monkeypatch.setattr(validation, "DNS_TIMEOUT", 0.5)  # the silent domain's wait, per import


def set_policy(team, policy):
    Team.update(import_validation=policy).where(Team.id == team.id).execute()


def tag_names(email):
    return [tag.name for tag in tags_of(Contact.get(Contact.email == email))]


def test_reject_leaves_invalid_addresses_out_with_the_reason_and_tags_risky_ones(web, team, zone, quick_dns):
    set_policy(team, "reject")
    job = run_file(web, FILE)
    assert job.status == "done", job.error
    assert (job.total_rows, job.created, job.rejected) == (7, 4, 3)
    assert sorted(c.email for c in Contact.select()) == [
        "ann@example.com", "eve@slow.example.org", "fay@example.com", "info@example.com"]
    reasons = {int(r["row"]): r["reason"] for r in rejects_of(web, job)}
    assert sorted(reasons) == [4, 5, 6]
    assert reasons[4].startswith("Not imported: Undeliverable: the domain does not exist")
    assert "null MX" in reasons[5]
    assert reasons[6].endswith("Did you mean dee@gmail.com?")
    assert tag_names("ann@example.com") == []
    assert tag_names("info@example.com") == ["validation: risky (role)"]
    # A server that does not answer never costs a row: risky, imported, tagged.
    assert tag_names("eve@slow.example.org") == ["validation: risky (DNS timeout)"]
    # Each domain asked about once for the whole file (ann@ and fay@ share example.com).
    assert sum(1 for name, _ in zone.queries if name == "example.com.") == 1


def test_flag_imports_everyone_and_tags_invalid_and_risky_ones(web, team, zone, quick_dns):
    Contact.create(team=team, email="info@example.com", domain="example.com")  # an existing contact is tagged too
    set_policy(team, "flag")
    job = run_file(web, FILE)
    assert (job.created, job.skipped, job.rejected) == (6, 1, 0)
    assert tag_names("bo@missing.example.com") == ["validation: invalid (no domain)"]
    assert tag_names("cy@nomail.example.net") == ["validation: invalid (null MX)"]
    assert tag_names("dee@gmaill.com") == ["validation: invalid (no domain + typo)"]
    assert tag_names("info@example.com") == ["validation: risky (role)"]
    assert tag_names("fay@example.com") == []


def test_off_asks_no_dns_and_imports_as_before(web, team, zone):
    assert Team.get_by_id(team.id).import_validation == "off"  # the default
    job = run_file(web, FILE)
    assert (job.created, job.rejected) == (7, 0)
    assert zone.queries == []
    assert all(tag_names(c.email) == [] for c in Contact.select())


def test_every_chunk_is_validated_and_the_domains_are_looked_up_once(app, web, team, zone, quick_dns, monkeypatch):
    set_policy(team, "reject")
    monkeypatch.setattr(importer, "chunk_rows", lambda total: 2)  # four chunks of this file
    job = run_file(web, FILE)
    assert (job.created, job.rejected) == (4, 3)
    assert sum(1 for name, _ in zone.queries if name == "example.com.") == 1  # the cache carries it across chunks
    # Resuming a finished job changes nothing.
    importer.run_import(job.id)
    assert ImportJob.get_by_id(job.id).created == 4 and Contact.select().count() == 4


def test_the_settings_page_sets_the_policy(web, team):
    page = soup(web.get("/teams/settings"))
    select = page.select_one("select[name=import_validation]")
    assert [o["value"] for o in select.select("option")] == ["off", "flag", "reject"]
    assert select.select_one("option[selected]")["value"] == "off"
    assert page.select_one("label[for=f-import_validation]").text.strip() == "Address checks on import"
    form = {"name": "Acme", "time_zone": "UTC", "import_validation": "reject"}
    assert web.post("/teams/settings", form).status_code == 302
    assert Team.get_by_id(team.id).import_validation == "reject"
    # A form without the choice keeps it.
    assert web.post("/teams/settings", {"name": "Acme", "time_zone": "UTC"}).status_code == 302
    assert Team.get_by_id(team.id).import_validation == "reject"
    response = web.post("/teams/settings", {"name": "Renamed", "time_zone": "UTC", "import_validation": "strict"})
    assert response.status_code == 422
    page = soup(response)
    assert "Choose one of the address checks" in page.select_one("#e-import_validation").text
    team = Team.get_by_id(team.id)
    assert (team.name, team.import_validation) == ("Acme", "reject")  # nothing half-saved


def test_only_those_who_manage_settings_set_the_policy(app, team):
    _, client = make_member(app, team, "author")
    response = client.post("/teams/settings", {"name": "Acme", "time_zone": "UTC", "import_validation": "flag"})
    assert response.status_code == 403
    assert Team.get_by_id(team.id).import_validation == "off"


def test_the_mapping_page_says_which_checks_the_import_will_make(web, team):
    job = uploaded_job(web, FILE)
    note = soup(web.get(f"/imports/{job.id}/map")).select_one("#address-checks")
    assert "Off: only check that each address is well-formed" in note.text
    assert note.select_one("a")["href"] == "/teams/settings#f-import_validation"
    set_policy(team, "reject")
    note = soup(web.get(f"/imports/{job.id}/map")).select_one("#address-checks")
    assert "Reject invalid" in note.text


def test_the_api_bulk_upsert_follows_the_policy_and_names_the_refused_rows(api, zone, quick_dns):
    Team.update(import_validation="reject").where(Team.name == "Acme").execute()
    body = {"contacts": [{"email": "ann@example.com"}, {"email": "bo@missing.example.com"},
                         {"email": "sales@example.com"}]}
    job = api.post("/api/v1/contacts/bulk", json=body).get_json()
    polled = api.get(f"/api/v1/jobs/{job['id']}").get_json()
    assert (polled["status"], polled["created"], polled["rejected"]) == ("done", 2, 1), polled
    assert [(e["index"], e["field"]) for e in polled["errors"]] == [(1, "email")]
    assert "the domain does not exist" in polled["errors"][0]["message"]
    assert tag_names("sales@example.com") == ["validation: risky (role)"]
