"""CSV contact import: the web flow, the report, resume after a crash, the CLI, real-world files.

Everything runs for real: uploads through the Flask test client, the huey
task in immediate mode, a fresh SQLite file per test.
"""
import contextlib
import csv
import io
import json
import os
import random
import string
from pathlib import Path

import pytest
from email_validator import EmailNotValidError
from email_validator import validate_email

from app import addresses
from app.consent import suppression
from app.imports import importer
from app.imports import services
from app.imports.chunks import ChunkWriter
from app.imports.chunks import Superseded
from app.imports.chunks import commit_chunk
from app.imports.rejects import BLOCKED_REASONS
from app.imports.rejects import DUPLICATE
from app.imports.rows import ImportPlan
from app.imports.rows import check_email
from app.models import AuditLog
from app.models import Contact
from app.models import CustomField
from app.models import Event
from app.models import ImportJob
from app.models import MailingList
from app.models import Subscription
from app.models import Team
from tests.accounts_support import make_member
from tests.conftest import soup
from tests.imports_support import map_form
from tests.imports_support import rejects_of
from tests.imports_support import run_file
from tests.imports_support import start
from tests.imports_support import uploaded_job

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "contacts" / "listmonk"


@pytest.fixture
def inside(app):
    """Direct service calls run inside the app, as in the huey worker and the CLI. (Not one context
    for the whole test: requests would share its `g`, and with it the signed-in user.)"""
    return app.app_context


class Killed(BaseException):
    """A worker killed mid-import: not an Exception, so no handler in the import sees it and the
    job stays 'running' with the chunks committed so far, exactly as a real crash leaves it."""


@contextlib.contextmanager
def killed_after(chunks):
    """The import run inside dies as soon as its `chunks`-th chunk is committed."""
    submit = ChunkWriter.submit

    def submit_then_die(writer, *args):
        submit(writer, *args)
        writer._wait()  # committed (and counted) before the worker dies
        if writer.committed >= chunks:
            raise Killed(f"killed after {writer.committed} chunks")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ChunkWriter, "submit", submit_then_die)
        with pytest.raises(Killed):
            yield


def emails(team):
    return sorted(c.email for c in Contact.select().where(Contact.team == team))


# --- Pages ------------------------------------------------------------------------

def test_empty_state_and_upload_form(web, team):
    page = soup(web.get("/imports/"))
    assert page.select_one("#imports-empty")
    field = page.select_one("#import-upload input#f-file[type=file][name=file]")
    assert field and page.select_one("label[for=f-file]")
    assert page.select_one("#import-upload form")["enctype"] == "multipart/form-data"
    # The audience sub-navigation marks this page.
    assert page.select_one("nav.tabs a[aria-current=page]").text.strip() == "Import"


def test_mailchimp_export_end_to_end(web, team):
    customers = MailingList.create(team=team, name="Customers")
    MailingList.create(team=team, name="Other")
    CustomField.create(team=team, key="company", label="Company", type="text")
    data = ("\ufeffEmail Address;First Name;Last Name;Company;MEMBER_RATING;OPTIN_TIME\r\n"
            "Ann.Lee@Example.COM;Ann;Lee;Acme Ltd;2;2024-01-02 10:00:00\r\n"
            "bob@example.org;Bob;;;1;\r\n")
    job = uploaded_job(web, data, "members_export.csv")
    assert job.status == "uploaded" and job.encoding == "utf-8-sig" and job.delimiter == ";"

    page = soup(web.get(f"/imports/{job.id}/map"))
    assert page.select_one("#detected-encoding").text == "UTF-8 (with byte order mark)"
    assert page.select_one("#detected-delimiter").text == "semicolon"
    assert [th.text for th in page.select("#preview thead th")][:3] == ["Email Address", "First Name", "Last Name"]
    assert len(page.select("#preview tbody tr")) == 2
    guesses = map_form(page)
    assert guesses == {"column-0": "email", "column-1": "first_name", "column-2": "last_name",
                       "column-3": "field:company", "column-4": "", "column-5": ""}
    # A column without a field can become a new text field.
    assert page.select_one("#f-column-4 option[value='new:member_rating']")
    assert [i["value"] for i in page.select("#lists input[name=list_ids]")] == [str(customers.id),
                                                                                 str(customers.id + 1)]

    response = start(web, job, [customers], "add", **{"column-5": "new:optin_time"})
    assert response.status_code == 302
    job = ImportJob.get_by_id(job.id)
    assert job.status == "done" and (job.total_rows, job.created, job.rejected) == (2, 2, 0)

    ann = Contact.get(Contact.email == "ann.lee@example.com")
    assert (ann.name, ann.domain, ann.status, ann.source) == ("Ann Lee", "example.com", "active", "import")
    assert ann.attributes == {"company": "Acme Ltd", "optin_time": "2024-01-02 10:00:00"}
    assert Contact.get(Contact.email == "bob@example.org").attributes == {}
    assert CustomField.get(CustomField.key == "optin_time").type == "text"
    assert Subscription.select().where(Subscription.list == customers).count() == 2
    assert Subscription.select().count() == 2

    page = soup(web.get(f"/imports/{job.id}"))
    assert page.select_one("#import-progress")["data-status"] == "done"
    assert not page.select_one("#import-progress").has_attr("hx-trigger")
    assert page.select_one("#count-created").text == "2"
    assert page.select_one("#rejects-link") is None  # nothing to download
    # One audit row for the import; no timeline event per contact.
    audit = AuditLog.get(AuditLog.action == "contacts.import")
    assert audit.data["created"] == 2
    assert Event.select().count() == 0
    # The upload (personal data) is deleted once imported.
    assert not os.path.exists(job.path)

    listing = soup(web.get("/imports/"))
    row = listing.select_one(f"#imports-table tr[data-import='{job.id}']")
    assert row.select_one("a").text == "members_export.csv"
    assert row.select_one(".badge").text == "Done"


def test_progress_fragment_polls_only_while_running(web, team):
    job = ImportJob.create(team=team, filename="big.csv", path="/nonexistent", status="running",
                           total_rows=200, processed_rows=50, created=48, rejected=2,
                           heartbeat_at=services.utcnow())
    fragment = web.get(f"/imports/{job.id}", headers={"HX-Request": "true"})
    assert "HX-Request" in fragment.headers.get("Vary", "")
    section = soup(fragment).select_one("section#import-progress")
    assert soup(fragment).select_one("h1") is None  # the fragment only
    assert section["hx-trigger"] == "every 1s" and section["hx-swap"] == "outerHTML"
    assert section["hx-get"] == f"/imports/{job.id}"
    bar = section.select_one("progress#import-bar")
    assert (bar["value"], bar["max"]) == ("50", "200")
    assert "50 of 200 rows (25%)" in section.select_one("label[for=import-bar]").text

    page = soup(web.get(f"/imports/{job.id}"))
    assert page.select_one("h1") and page.select_one("section#import-progress[hx-trigger]")

    # A running import whose worker died stops polling and offers to resume.
    ImportJob.update(heartbeat_at=services.utcnow() - services.datetime.timedelta(hours=1)).execute()
    section = soup(web.get(f"/imports/{job.id}", headers={"HX-Request": "true"})).select_one("#import-progress")
    assert not section.has_attr("hx-trigger")
    assert section.select_one("#import-stalled")
    assert section.select_one(f"form[action='/imports/{job.id}/resume'] button")


def test_another_teams_import_is_not_found(app, web, team):
    other = Team.create(name="Other")
    job = ImportJob.create(team=other, filename="x.csv", path="/nonexistent", status="done")
    for url in (f"/imports/{job.id}", f"/imports/{job.id}/map", f"/imports/{job.id}/rejects.csv"):
        assert web.get(url).status_code == 404
    for url in (f"/imports/{job.id}/resume", f"/imports/{job.id}/discard", f"/imports/{job.id}/map"):
        assert web.post(url, {}).status_code == 404
    assert ImportJob.get_by_id(job.id).status == "done"


def test_guests_may_not_import(app, team):
    _, guest = make_member(app, team, "guest")
    assert guest.get("/imports/").status_code == 403
    _, author = make_member(app, team, "author")
    assert author.get("/imports/").status_code == 200


def test_email_column_is_required_before_starting(web, team):
    job = uploaded_job(web, "name,city\nAnn,Paris\nBob,Rome\n")
    page = soup(web.get(f"/imports/{job.id}/map"))
    assert "email" not in map_form(page).values()
    response = start(web, job)
    assert response.status_code == 422
    assert soup(response).select_one("#e-mapping").text == "Choose the column that holds the email addresses."
    assert soup(response).select_one("#f-column-0")["aria-describedby"].endswith("e-mapping")
    assert ImportJob.get_by_id(job.id).status == "uploaded"
    assert Contact.select().count() == 0


def test_two_columns_for_one_field_is_refused(web, team):
    job = uploaded_job(web, "email,work email\na@example.com,b@example.com\n")
    response = start(web, job, **{"column-0": "email", "column-1": "email"})
    assert response.status_code == 422
    assert "both mapped to Email address" in soup(response).select_one("#e-mapping").text


def test_a_list_of_another_team_is_refused(web, team):
    foreign = MailingList.create(team=Team.create(name="Other"), name="Theirs")
    job = uploaded_job(web, "email\na@example.com\n")
    response = start(web, job, [foreign])
    assert response.status_code == 422
    assert soup(response).select_one("#e-lists")
    assert Contact.select().count() == 0


def test_headerless_list_of_addresses(web, team):
    job = run_file(web, "ann@example.com\nbob@example.com\n\nann@example.com\n")
    assert not job.has_header
    assert (job.total_rows, job.created, job.duplicates) == (3, 2, 1)
    assert emails(team) == ["ann@example.com", "bob@example.com"]


def test_discard_an_upload(web, team):
    job = uploaded_job(web, "email\na@example.com\n")
    response = web.post(f"/imports/{job.id}/discard")
    assert response.status_code == 302
    assert ImportJob.get_or_none(ImportJob.id == job.id) is None
    assert not os.path.exists(job.path)


# --- The report ---------------------------------------------------------------------

def test_report_counts_and_rejected_rows_download(web, team):
    CustomField.create(team=team, key="age", label="Age", type="number")
    CustomField.create(team=team, key="vip", label="VIP", type="boolean")
    CustomField.create(team=team, key="joined", label="Joined", type="date")
    data = ("email,name,age,vip,joined\n"
            "good@example.com,Good,41,yes,2024-02-29\n"
            "not-an-address,Bad,1,no,2024-01-01\n"
            "user@shop.test,Reserved,1,no,2024-01-01\n"
            "GOOD@example.com,Again,2,no,2024-01-01\n"
            "age@example.com,Age,forty,no,2024-01-01\n"
            "vip@example.com,Vip,3,maybe,2024-01-01\n"
            "date@example.com,Date,3,no,31/12/2024\n"
            "short@example.com,Short\n"
            ",No address,3,no,2024-01-01\n"
            "=HYPERLINK(\"http://x\"),Formula,3,no,2024-01-01\n")
    job = run_file(web, data)
    # One bad optional value no longer costs the contact (issue 9): it is imported without that value.
    assert (job.total_rows, job.created, job.duplicates, job.rejected, job.partial) == (10, 4, 1, 5, 3)
    good = Contact.get(Contact.email == "good@example.com")
    assert good.attributes == {"age": 41, "vip": True, "joined": "2024-02-29"}
    assert Contact.get(Contact.email == "age@example.com").attributes == \
        {"vip": False, "joined": "2024-01-01"}
    assert Contact.get(Contact.email == "vip@example.com").attributes == {"age": 3, "joined": "2024-01-01"}
    assert Contact.get(Contact.email == "date@example.com").name == "Date"

    page = soup(web.get(f"/imports/{job.id}"))
    assert page.select_one("#count-rejected").text == "5"
    assert page.select_one("#count-partial").text == "3"
    assert page.select_one("#count-duplicates").text == "1"
    assert page.select_one("#rejects-link")["href"] == f"/imports/{job.id}/rejects.csv"

    rows = rejects_of(web, job)
    assert list(rows[0]) == ["row", "reason", "email", "name", "age", "vip", "joined"]
    reasons = {int(r["row"]): r["reason"] for r in rows}
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8, 9, 10, 11]
    assert reasons[3].startswith("Not a valid email address: An email address must have an @-sign")
    assert "special-use or reserved name" in reasons[4]
    assert reasons[5] == DUPLICATE
    assert reasons[6] == "Imported without this value: “forty” in “age” is not a number."
    assert reasons[7] == "Imported without this value: “maybe” in “vip” is not yes or no."
    assert reasons[8] == "Imported without this value: “31/12/2024” in “joined” is not a date; use YYYY-MM-DD."
    assert reasons[9] == "This row has 2 fields but the header has 5."
    assert reasons[10] == "No email address."
    assert "@-sign" in reasons[11] or "not valid" in reasons[11]
    by_row = {int(r["row"]): r for r in rows}
    assert by_row[6]["age"] == "forty" and by_row[9]["name"] == "Short"
    # Cells that a spreadsheet would run as a formula are neutralised in the download.
    assert not by_row[11]["email"].startswith("=")


def test_a_semicolon_file_gets_a_semicolon_rejects_file(web, team):
    """The rejects file speaks the source's dialect, so the same spreadsheet opens it and it can be re-imported."""
    CustomField.create(team=team, key="age", label="Age", type="number")
    data = "email;name;age\r\nok@example.com;Ok, Jr.;30\r\nnot-an-address;Bad;1\r\nold@example.com;Old;ninety\r\n"
    job = run_file(web, data)
    assert job.delimiter == ";" and (job.created, job.rejected, job.partial) == (2, 1, 1)
    text = web.get(f"/imports/{job.id}/rejects.csv").get_data().decode("utf-8-sig")
    assert text.splitlines()[0] == "row;reason;email;name;age"
    rows = list(csv.DictReader(io.StringIO(text), delimiter=";"))
    assert [(r["row"], r["email"], r["age"]) for r in rows] == [("3", "not-an-address", "1"),
                                                                ("4", "old@example.com", "ninety")]
    assert rows[1]["reason"] == "Imported without this value: “ninety” in “age” is not a number."
    assert Contact.get(Contact.email == "ok@example.com").name == "Ok, Jr."


def test_upsert_keeps_the_stored_value_when_the_new_one_is_bad_and_says_so(web, team):
    CustomField.create(team=team, key="age", label="Age", type="number")
    Contact.create(team=team, email="kim@example.com", domain="example.com", name="Kim",
                   attributes={"age": 40})
    job = run_file(web, "email,name,age\nkim@example.com,Kim Berg,forty-one\n", mode="upsert")
    assert (job.updated, job.rejected, job.partial) == (1, 0, 1)
    kim = Contact.get(Contact.email == "kim@example.com")
    assert kim.name == "Kim Berg" and kim.attributes == {"age": 40}
    assert rejects_of(web, job)[0]["reason"] == "Imported without this value: “forty-one” in “age” is not a number."


def test_a_bad_value_in_a_json_attributes_column_costs_only_that_value(web, team):
    CustomField.create(team=team, key="age", label="Age", type="number")
    data = ('email,name,attributes\n'
            'a@example.com,A,"{""age"": ""old"", ""city"": ""Oslo""}"\n'
            'b@example.com,B,{not json\n')
    job = run_file(web, data)
    assert (job.created, job.rejected, job.partial) == (2, 0, 2)
    assert Contact.get(Contact.email == "a@example.com").attributes == {"city": "Oslo"}
    assert Contact.get(Contact.email == "b@example.com").attributes == {}
    reasons = {r["email"]: r["reason"] for r in rejects_of(web, job)}
    assert reasons["a@example.com"] == "Imported without this value: “old” in “age” is not a number."
    assert reasons["b@example.com"] == "Imported without this value: “attributes” is not valid JSON."


def test_a_partly_imported_row_on_the_suppression_list_is_reported_once_as_not_imported(web, team, inside):
    CustomField.create(team=team, key="age", label="Age", type="number")
    with inside():
        suppression.suppress(team.id, "email", "gone@example.com")
    job = run_file(web, "email,age\ngone@example.com,ninety\n")
    assert (job.created, job.partial) == (0, 0)
    assert [r["reason"] for r in rejects_of(web, job)] == [BLOCKED_REASONS["listed_new"]]


def test_resuming_a_semicolon_import_keeps_its_rejects_file_readable(team, tmp_path, inside):
    with inside():
        path = tmp_path / "semi.csv"
        path.write_text("email;name\n" + "".join(f"s{i}@example.com;S {i}\n" if i % 7 else f"bad{i};Bad\n"
                                                 for i in range(40)))
        job = services.create_job(team, None, str(path), "semi.csv")
        job = services.configure(team, job, {"0": "email", "1": "name"}, [], "add", ["email", "name"])
        with killed_after(chunks=2):
            importer.run_import(job.id, chunk_size=10)
        job = importer.run_import(job.id, chunk_size=10)
        with open(job.rejects_path, encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle, delimiter=";"))
    assert rows[0] == ["row", "reason", "email", "name"]
    assert [row[2] for row in rows[1:]] == [f"bad{i}" for i in range(0, 40, 7)]
    assert job.rejected == len(rows) - 1


def test_never_resubscribes_blocked_or_suppressed_addresses(web, team, inside):
    news = MailingList.create(team=team, name="News")
    for status in ("unsubscribed", "bounced", "complained", "suppressed"):
        Contact.create(team=team, email=f"{status}@example.com", domain="example.com", status=status, name="Old")
    left = Contact.create(team=team, email="left@example.com", domain="example.com")
    Subscription.create(contact=left, list=news, status="unsubscribed")
    listed = Contact.create(team=team, email="listed@example.com", domain="example.com")
    with inside():
        suppression.suppress(team.id, "email", "listed@example.com")
        suppression.suppress(team.id, "email", "erased@example.com", reason="erased")
        suppression.suppress(team.id, "domain", "blocked.example", reason="manual")
    rows = ["unsubscribed", "bounced", "complained", "suppressed", "left", "listed", "erased"]
    data = "email,name\n" + "".join(f"{r}@example.com,New {r}\n" for r in rows) + \
        "someone@BLOCKED.example,Blocked\nfresh@example.com,Fresh\n"
    job = run_file(web, data, [news], "upsert")

    assert job.created == 1  # only fresh@: erased@ and someone@blocked.example stay out
    assert Contact.get_or_none(Contact.email == "erased@example.com") is None
    assert Contact.get_or_none(Contact.email == "someone@blocked.example") is None
    assert job.blocked == 7  # the 4 blocked statuses, listed@, erased@ and the blocked domain
    subscribed = {s.contact.email: s.status for s in Subscription.select().where(Subscription.list == news)}
    assert subscribed == {"left@example.com": "unsubscribed", "fresh@example.com": "subscribed"}
    for status in ("unsubscribed", "bounced", "complained", "suppressed"):
        contact = Contact.get(Contact.email == f"{status}@example.com")
        assert contact.status == status  # an import never changes a status...
        assert contact.name == f"New {status}"  # ...even when it updates the contact
    assert listed.id == Contact.get(Contact.email == "listed@example.com").id
    reasons = {r["email"]: r["reason"] for r in rejects_of(web, job)}
    assert reasons["unsubscribed@example.com"] == "Not added to lists: this address has unsubscribed."
    assert reasons["bounced@example.com"] == "Not added to lists: mail to this address bounced."
    assert reasons["listed@example.com"] == BLOCKED_REASONS["listed"]
    assert reasons["erased@example.com"] == BLOCKED_REASONS["listed_new"]
    assert reasons["someone@BLOCKED.example"] == BLOCKED_REASONS["listed_new"]
    assert "left@example.com" not in reasons  # its own unsubscribe from this list is kept, quietly


def test_add_mode_leaves_existing_contacts_alone_and_upsert_merges(web, team):
    CustomField.create(team=team, key="city", label="City", type="text")
    CustomField.create(team=team, key="plan", label="Plan", type="text")
    Contact.create(team=team, email="kim@example.com", domain="example.com", name="Kim",
                   attributes={"city": "Oslo", "plan": "pro"})
    data = "email,name,city,plan\nkim@example.com,Kim Berg,Bergen,\nnew@example.com,New,Rome,free\n"
    job = run_file(web, data, mode="add")
    assert (job.created, job.updated, job.skipped) == (1, 0, 1)
    kim = Contact.get(Contact.email == "kim@example.com")
    assert kim.name == "Kim" and kim.attributes == {"city": "Oslo", "plan": "pro"}

    job = run_file(web, data, mode="upsert")
    assert (job.created, job.updated, job.skipped) == (0, 1, 1)  # new@ is already exactly so
    kim = Contact.get(Contact.email == "kim@example.com")
    # Updated name and city; the empty plan cell does not erase the stored plan.
    assert kim.name == "Kim Berg" and kim.attributes == {"city": "Bergen", "plan": "pro"}

    job = run_file(web, data, mode="upsert")
    assert (job.created, job.updated, job.skipped) == (0, 0, 2)


def test_the_same_file_twice_creates_no_duplicates(web, team):
    news = MailingList.create(team=team, name="News")
    data = "email\n" + "".join(f"person{i}@example.com\n" for i in range(50))
    first = run_file(web, data, [news])
    second = run_file(web, data, [news])
    assert (first.created, second.created, second.skipped) == (50, 0, 50)
    assert Contact.select().count() == 50
    assert Subscription.select().count() == 50


# --- Crash and resume ---------------------------------------------------------------

def _messy_file(path, rows=2600, seed=3):
    """Rows with duplicates and invalid addresses; returns the set of addresses that must be imported."""
    rnd = random.Random(seed)
    expected = set()
    lines = ["email,name,notes"]
    for i in range(rows):
        kind = rnd.random()
        if kind < 0.08:
            lines.append(f"broken{i}-at-example.com,Broken {i},x")
        elif kind < 0.16 and expected:
            lines.append(f"{rnd.choice(sorted(expected)).upper()},Dup {i},x")
        else:
            address = f"p{i}@example{i % 7}.com"
            expected.add(address)
            lines.append(f'{address},Person {i},"line one\nline two"')
    Path(path).write_text("\n".join(lines) + "\n")
    return expected


def test_crash_mid_import_then_resume_gives_each_address_once(team, tmp_path, inside):
    with inside():
        news = MailingList.create(team=team, name="News")
        path = tmp_path / "messy.csv"
        expected = _messy_file(path)
        job = services.create_job(team, None, str(path), "messy.csv")
        job = services.configure(team, job, {"0": "email", "1": "name", "2": "new:notes"}, [news.id], "add",
                                 services.describe(job).columns)

        with killed_after(chunks=2):
            importer.run_import(job.id, chunk_size=500)
        job = ImportJob.get_by_id(job.id)
        assert (job.status, job.processed_rows, job.total_rows) == ("running", 1000, 2600)
        committed = Contact.select().count()
        assert 0 < committed < len(expected)
        assert job.created == committed
        assert Subscription.select().count() == committed

        # A crash after writing a chunk's rejects but before its commit leaves stray lines behind.
        with open(job.rejects_path, "a", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerow([2500, "stray reject from a chunk that never committed"])

        job = importer.run_import(job.id, chunk_size=500)
        assert job.status == "done"
        assert set(emails(team)) == expected
        assert Subscription.select().count() == len(expected)
        assert Contact.select(Contact.name).where(Contact.email == min(expected)).scalar().startswith("Person")
        assert Contact.get(Contact.email == min(expected)).attributes == {"notes": "line one\nline two"}
        assert job.created == len(expected)
        assert job.created + job.duplicates + job.rejected == job.total_rows == 2600
        with open(job.rejects_path, encoding="utf-8-sig", newline="") as handle:
            rejected_rows = [int(r["row"]) for r in csv.DictReader(handle)]
        assert len(rejected_rows) == len(set(rejected_rows)) == job.duplicates + job.rejected
        assert rejected_rows == sorted(rejected_rows)

        # Running the finished job again, or importing the same file again, adds nothing.
        assert importer.run_import(job.id).status == "done"
        again = services.create_job(team, None, str(path), "messy.csv")
        again = services.configure(team, again, {"0": "email", "1": "name"}, [news.id], "add", ["email", "name", "notes"])
        again = importer.run_import(again.id)
        assert (again.created, again.skipped) == (0, len(expected))
        assert Contact.select().count() == len(expected)


def test_a_second_worker_on_the_same_job_changes_nothing(team, tmp_path, inside):
    with inside():
        path = tmp_path / "small.csv"
        path.write_text("email\n" + "".join(f"w{i}@example.com\n" for i in range(30)))
        job = services.create_job(team, None, str(path), "small.csv")
        job = services.configure(team, job, {"0": "email"}, [], "add", ["email"])
        with killed_after(chunks=1):
            importer.run_import(job.id, chunk_size=10)
        # A stale worker's view of the job: it believes nothing was committed yet.
        stale = ImportJob.get_by_id(job.id)
        stale.processed_rows = 0
        with pytest.raises(Superseded):
            commit_chunk(ImportPlan(stale, ["email"]), stale, 0, 10, [], "2026-01-01 00:00:00", [], [],
                         csv.writer(io.StringIO()), io.StringIO())
        assert ImportJob.get_by_id(job.id).processed_rows == 10
        assert importer.run_import(job.id, chunk_size=10).created == 30


def test_stalled_imports_are_found_and_resumed(team, tmp_path, inside):
    with inside():
        path = tmp_path / "s.csv"
        path.write_text("email\n" + "".join(f"s{i}@example.com\n" for i in range(12)))
        job = services.create_job(team, None, str(path), "s.csv")
        job = services.configure(team, job, {"0": "email"}, [], "add", ["email"])
        with killed_after(chunks=1):
            importer.run_import(job.id, chunk_size=5)
        assert services.claim_stalled_imports() == []
        ImportJob.update(heartbeat_at=services.utcnow() - services.datetime.timedelta(minutes=10)).execute()
        from tasks import imports as import_tasks
        import_tasks.resume_stalled_imports.call_local()
        job = ImportJob.get_by_id(job.id)
        assert job.status == "done" and job.created == 12


def test_resume_button_after_a_failure(web, team, tmp_path, inside):
    path = tmp_path / "r.csv"
    path.write_text("email\n" + "".join(f"r{i}@example.com\n" for i in range(8)))
    with inside():
        job = services.create_job(team, None, str(path), "r.csv")
        job = services.configure(team, job, {"0": "email"}, [], "add", ["email"])
        with killed_after(chunks=1):
            importer.run_import(job.id, chunk_size=4)
    ImportJob.update(status="failed", error="The import stopped after 4 rows because of an internal error.").execute()
    page = soup(web.get(f"/imports/{job.id}"))
    assert page.select_one("#import-error")
    assert web.post(f"/imports/{job.id}/resume").status_code == 302
    job = ImportJob.get_by_id(job.id)
    assert job.status == "done" and job.created == 8 and not job.error


# --- Address validation -------------------------------------------------------------

def _reference(raw):
    try:
        return validate_email(raw.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


def test_fast_address_check_agrees_with_email_validator():
    rnd = random.Random(11)
    local_chars = string.ascii_letters + string.digits + ".-_+!#$%&'*/=?^`{|}~\"(),:;<>@[\\] "
    domain_chars = string.ascii_lowercase + string.digits + ".-_"
    tlds = ["com", "org", "de", "test", "localhost", "c", "co", "123", "x1", "onion", "a-b", "xn--p1ai", "museum"]
    samples = ["plain@example.com", "A.B@Example.COM", "a..b@example.com", ".a@example.com", "a.@example.com",
               "a@-example.com", "a@example-.com", "a@ex--ample.com", "a@xn--bcher-kva.com", "x" * 64 + "@example.com",
               "x" * 65 + "@example.com", "a@" + "b" * 63 + ".com", "a@" + "b" * 64 + ".com",
               "a@" + ("b" * 60 + ".") * 5 + "com", " padded@example.com ", "ü@example.de", "a@müller.de",
               "a@example", "a@b.c0m", "a@1.2.3.4", "a@[1.2.3.4]", '"q"@example.com', "a@b@example.com", ""]
    for _ in range(4000):
        local = "".join(rnd.choice(local_chars if rnd.random() < 0.3 else string.ascii_lowercase + ".")
                        for _ in range(rnd.randint(0, 12)))
        labels = ["".join(rnd.choice(domain_chars) for _ in range(rnd.randint(0, 8)))
                  for _ in range(rnd.randint(1, 3))]
        samples.append(f"{local}@{'.'.join(labels)}.{rnd.choice(tlds)}")
    fast_hits = 0
    for raw in samples:
        ours, reason = check_email(raw)
        assert ours == _reference(raw), raw
        assert (reason is None) == (ours is not None)
        fast_hits += addresses.is_fast_email(raw.strip().lower())
    assert fast_hits > 500  # the fast path was really exercised


# --- Command line ---------------------------------------------------------------------

def test_cli_import_prints_a_json_summary(app, team, tmp_path):
    news = MailingList.create(team=team, name="News")
    path = tmp_path / "cli.csv"
    path.write_text("Mail,Full name,Plan\nann@example.com,Ann,pro\nbad,Bad,free\nann@example.com,Ann2,pro\n")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["contacts", "import", str(path), "--team", "Acme", "--list", "News",
                                 "--map", "Mail=email", "--map", "Plan=plan"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert {k: summary[k] for k in ("status", "rows", "created", "duplicates", "rejected")} == \
        {"status": "done", "rows": 3, "created": 1, "duplicates": 1, "rejected": 1}
    ann = Contact.get(Contact.email == "ann@example.com")
    assert ann.name == "Ann" and ann.attributes == {"plan": "pro"}
    assert Subscription.get(Subscription.contact == ann).list_id == news.id
    assert path.exists()  # the CLI's own file is never deleted

    path.write_text("Mail,Full name\nann@example.com,Ann Smith\n")
    result = runner.invoke(args=["contacts", "import", str(path), "--team", str(team.id), "--list", str(news.id),
                                 "--update"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["updated"] == 1
    assert Contact.get(Contact.email == "ann@example.com").name == "Ann Smith"


@pytest.mark.parametrize("args, message", [
    (["--team", "Nope", "--list", "News"], "No team “Nope”"),
    (["--team", "Acme", "--list", "Missing"], "has no list “Missing”"),
    (["--team", "Acme", "--list", "News", "--map", "Nope=email"], "the file has no column “Nope”"),
    (["--team", "Acme", "--list", "News", "--map", "Mail=name"], "Choose the column that holds the email"),
])
def test_cli_refuses_clearly(app, team, tmp_path, args, message):
    MailingList.create(team=team, name="News")
    path = tmp_path / "cli.csv"
    path.write_text("Mail\nann@example.com\n")
    result = app.test_cli_runner().invoke(args=["contacts", "import", str(path)] + args)
    assert result.exit_code != 0
    assert message in result.output
    assert Contact.select().count() == 0 and ImportJob.select().count() == 0


# --- Real-world files (listmonk's own import fixtures) ----------------------------------

def _corpus(name):
    path = CORPUS / name
    if not path.exists():
        pytest.skip(f"the shared corpus is absent ({path})")
    return path


def test_listmonk_subscribers_file(web, team):
    data = _corpus("subs.csv").read_bytes()
    assert b"\r\n" in data
    job = uploaded_job(web, data, "subs.csv")
    assert map_form(soup(web.get(f"/imports/{job.id}/map"))) == {"column-0": "email", "column-1": "name",
                                                                   "column-2": "attributes"}
    start(web, job)
    job = ImportJob.get_by_id(job.id)
    assert (job.status, job.total_rows, job.created, job.rejected) == ("done", 100, 100, 0)
    first = Contact.get(Contact.email == "user0@mail.com")
    assert first.name == "First0 Last0"
    assert first.attributes == {"age": 29, "city": "Bangalore", "clientid": "DAXX79"}
    types = {f.key: f.type for f in CustomField.select().where(CustomField.team == team)}
    assert types == {"age": "number", "city": "text", "clientid": "text"}


def test_listmonk_domain_blocklist_file(web, team, inside):
    data = _corpus("subs-domain-blocklist.csv").read_bytes()
    with inside():
        suppression.suppress(team.id, "domain", "ban.net")
        suppression.suppress(team.id, "domain", "ban.org")
    news = MailingList.create(team=team, name="News")
    job = run_file(web, data, [news], name="subs-domain-blocklist.csv")
    assert (job.total_rows, job.created, job.blocked) == (4, 2, 2)
    assert emails(team) == ["noban1-import@mail.com", "noban2-import1@mail.com"]
    reasons = [r["reason"] for r in rejects_of(web, job)]
    assert reasons == [BLOCKED_REASONS["listed_new"]] * 2
