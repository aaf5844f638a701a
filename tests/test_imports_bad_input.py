"""Bad input to the CSV import: every kind gets a clear message, and nothing stored is changed by a failed import."""
import codecs

import pytest

from app.imports import services
from app.models import Contact
from app.models import ImportJob
from tests.conftest import soup
from tests.imports_support import map_form
from tests.imports_support import rejects_of
from tests.imports_support import run_file
from tests.imports_support import start
from tests.imports_support import upload
from tests.imports_support import uploaded_job

NAMES = "email,name\nzoe@example.com,Zoë Ærø\nrene@example.com,René “Quote”\n"


@pytest.mark.parametrize("encoded, encoding, label", [
    (NAMES.encode("utf-8"), "utf-8", "UTF-8"),
    (codecs.BOM_UTF8 + NAMES.encode("utf-8"), "utf-8-sig", "UTF-8 (with byte order mark)"),
    (NAMES.encode("utf-16"), "utf-16", "UTF-16"),
    (NAMES.encode("utf-16-le"), "utf-16-le", "UTF-16 (little-endian, no byte order mark)"),
    (NAMES.encode("utf-16-be"), "utf-16-be", "UTF-16 (big-endian, no byte order mark)"),
    (NAMES.encode("cp1252"), "cp1252", "Windows-1252 (Latin-1)"),
    (NAMES.replace("“Quote”", "").encode("latin-1") + "x@example.com,\x81\n".encode("latin-1"), "latin-1",
     "Latin-1 (ISO-8859-1)"),
])
def test_encodings_are_detected(web, team, encoded, encoding, label):
    job = uploaded_job(web, encoded)
    assert job.encoding == encoding
    page = soup(web.get(f"/imports/{job.id}/map"))
    assert page.select_one("#detected-encoding").text == label
    assert [th.text for th in page.select("#preview thead th")] == ["email", "name"]
    start(web, job)
    assert Contact.get(Contact.email == "zoe@example.com").name == "Zoë Ærø"
    assert Contact.get(Contact.email == "rene@example.com").name.startswith("René")


def test_latin1_after_a_long_utf8_looking_start_is_still_latin1(web, team):
    """The encoding check reads the whole file, not only its first block."""
    body = "".join(f"user{i}@example.com,Plain {i}\n" for i in range(20000))
    data = ("email,name\n" + body + "late@example.com,Zoë\n").encode("cp1252")
    assert len(data) > 64 * 1024
    job = run_file(web, data)
    assert job.encoding == "cp1252"
    assert Contact.get(Contact.email == "late@example.com").name == "Zoë"


@pytest.mark.parametrize("delimiter, label", [(";", "semicolon"), ("\t", "tab"), ("|", "vertical bar"), (",", "comma")])
def test_delimiters_are_detected(web, team, delimiter, label):
    data = delimiter.join(["email", "name", "city"]) + "\n" + \
        delimiter.join(["a@example.com", "Ann, the first", "Paris"]) + "\n"
    if delimiter == ",":
        data = 'email,name,city\na@example.com,"Ann, the first",Paris\n'
    job = uploaded_job(web, data, "people.tsv" if delimiter == "\t" else "people.csv")
    page = soup(web.get(f"/imports/{job.id}/map"))
    assert page.select_one("#detected-delimiter").text == label
    assert [td.text for td in page.select("#preview tbody tr td")] == ["a@example.com", "Ann, the first", "Paris"]
    start(web, job)
    assert Contact.get(Contact.email == "a@example.com").name == "Ann, the first"


def test_quoted_newlines_and_quotes(web, team):
    data = ('email,name,notes\r\n'
            'a@example.com,"Ann ""Nan"" Lee","first line\r\nsecond line"\r\n'
            'b@example.com,Bob,"x"\r\n')
    job = run_file(web, data, **{"column-2": "new:notes"})
    assert (job.total_rows, job.created, job.rejected) == (2, 2, 0)
    ann = Contact.get(Contact.email == "a@example.com")
    assert ann.name == 'Ann "Nan" Lee'
    assert ann.attributes == {"notes": "first line\r\nsecond line"}


def test_ragged_rows_are_rejected_with_the_reason(web, team):
    data = ("email,name,city\n"
            "a@example.com,Ann,Paris\n"
            "b@example.com,Bob\n"
            "c@example.com,Cy,Rome,extra\n"
            "d@example.com,Di,Oslo,,\n")  # empty trailing fields are harmless
    page = soup(web.get(f"/imports/{uploaded_job(web, data).id}/map"))
    assert "do not have 3 fields" in page.select_one("#file-facts .flash-warning").text
    job = run_file(web, data)
    assert (job.created, job.rejected) == (2, 2)
    reasons = {r["row"]: r["reason"] for r in rejects_of(web, job)}
    assert reasons == {"3": "This row has 2 fields but the header has 3.",
                       "4": "This row has 4 fields but the header has 3."}


def test_stray_quotes_reject_only_their_row(web, team):
    data = 'email,name\na@example.com,Ann\n"b@example.com"x,Bob\nc@example.com,Cy\n'
    job = run_file(web, data)
    assert (job.created, job.rejected) == (2, 1)
    assert "quote" in rejects_of(web, job)[0]["reason"]


def test_duplicate_headers_are_refused_at_upload(web, team):
    response = upload(web, "email,Name,name\na@example.com,A,B\n")
    assert response.status_code == 422
    assert soup(response).select_one("#e-file").text == (
        "The header row has the column “name” twice (columns 2 and 3). Rename or remove one of them and upload "
        "the file again.")
    assert ImportJob.select().count() == 0


@pytest.mark.parametrize("data, message", [
    (b"", "The file is empty."),
    (b"\r\n\r\n", "The file is empty."),
    (b"email,name\r\n", "The file has a header row but no contacts below it."),
    (b"PK\x03\x04\x14\x00\x06\x00" + bytes(200), "This is an Excel workbook (.xlsx) or another zip archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(200), "old-style Excel workbook (.xls)"),
    (b"%PDF-1.7\n" + bytes(range(256)), "This is a PDF document"),
    (bytes(range(256)) * 40, "This looks like a binary file"),
    (b"email\x00name\x00\x01\x02" * 100 + b"\xff\xfe", "This looks like a binary file"),
])
def test_files_that_are_not_csv_get_a_clear_message(web, team, data, message):
    response = upload(web, data)
    assert response.status_code == 422
    assert message in soup(response).select_one("#e-file").text
    assert ImportJob.select().count() == 0


def test_no_file_chosen(web, team):
    response = web.post("/imports/", {})
    assert response.status_code == 422
    assert soup(response).select_one("#e-file").text == "Choose a CSV file to upload."


def test_a_file_over_the_size_limit(app, web, team):
    app.config["MAX_UPLOAD_LENGTH"] = 2 * 1024 * 1024
    response = upload(web, b"email\n" + b"someone@example.com\n" * 150000)
    assert response.status_code == 413
    message = soup(response).select_one("#e-file").text
    assert "larger than the upload limit of 2 MB" in message
    assert ImportJob.select().count() == 0


def test_missing_email_column_is_said_before_the_import_starts(web, team):
    job = uploaded_job(web, "first,last\nAnn,Lee\n")
    response = start(web, job)
    assert response.status_code == 422
    assert "Choose the column that holds the email addresses." in soup(response).select_one("#e-mapping").text
    assert ImportJob.get_by_id(job.id).status == "uploaded"


def test_invalid_addresses_are_rejected_with_the_reason(web, team):
    data = "email\nok@example.com\nno-at-sign\ntwo@@example.com\nspace in@example.com\nx@example..com\n"
    job = run_file(web, data)
    assert (job.created, job.rejected) == (1, 4)
    for row in rejects_of(web, job):
        assert row["reason"].startswith("Not a valid email address: ")


def test_a_truncated_file_rejects_only_its_cut_off_last_row(web, team):
    data = 'email,name,notes\na@example.com,Ann,"fine"\nb@example.com,Bob,"cut off in the mi'
    job = run_file(web, data)
    assert (job.total_rows, job.created, job.rejected) == (2, 1, 1)
    reason = rejects_of(web, job)[0]["reason"]
    assert reason.startswith("The file ends inside a quoted field; it may have been cut off")


def test_a_file_cut_inside_a_character(web, team):
    data = "email,name\na@example.com,Ann\nb@example.com,Zoë".encode("utf-8")[:-1]
    job = uploaded_job(web, data)
    assert job.encoding == "utf-8"  # not mistaken for Latin-1 because of the cut
    page = soup(web.get(f"/imports/{job.id}/map"))
    assert "may have been cut off" in page.select_one("#file-facts").text
    start(web, job)
    job = ImportJob.get_by_id(job.id)
    assert (job.created, job.rejected) == (1, 1)
    assert "cut off" in rejects_of(web, job)[0]["reason"]


def test_a_mostly_unreadable_file_fails_and_changes_nothing(web, team):
    Contact.create(team=team, email="keep@example.com", domain="example.com", name="Keep",
                   attributes={"city": "Oslo"})
    # Three columns in the header, then a different layout on almost every row.
    data = "email,name,city\nkeep@example.com,Changed,Rome\n" + "".join(f"x{i}@example.com;Name {i}\n" for i in range(40))
    job = uploaded_job(web, data)
    start(web, job, mode="upsert", **{"column-2": "new:city"})
    job = ImportJob.get_by_id(job.id)
    assert job.status == "failed"
    assert job.error.startswith("Most rows of this file cannot be read as CSV (40 of 41; the first is row 3 has 1 "
                                "fields but the header has 3)")
    page = soup(web.get(f"/imports/{job.id}"))
    assert page.select_one("#import-error").text == job.error
    assert page.select_one("a.button").text == "Upload another file"
    keep = Contact.get(Contact.email == "keep@example.com")
    assert keep.name == "Keep" and keep.attributes == {"city": "Oslo"}
    assert Contact.select().count() == 1


def test_a_vanished_upload_fails_clearly(web, team):
    import os
    job = uploaded_job(web, "email\na@example.com\n")
    page = soup(web.get(f"/imports/{job.id}/map"))
    form = map_form(page)
    os.remove(job.path)
    response = web.post(f"/imports/{job.id}/map", dict(form, mode="add"))
    assert response.status_code == 302
    assert "can no longer be read" in soup(web.get("/imports/")).select_one(".flash-error").text


def test_huge_cells_are_rejected_not_swallowed(web, team):
    data = 'email,notes\na@example.com,"' + "x" * 200000 + '"\nb@example.com,ok\n'
    job = run_file(web, data)
    assert job.created == 1 and job.rejected >= 1
    assert "longer than 131,072 characters" in rejects_of(web, job)[0]["reason"]
    assert services.csvsniff.FIELD_LIMIT == 131072


def test_an_oversized_upload_by_someone_who_may_not_import(app, team):
    from app.models import Team
    from tests.accounts_support import make_member
    app.config["MAX_UPLOAD_LENGTH"] = 1024 * 1024
    _, guest = make_member(app, Team.get(Team.name == "Acme"), "guest")
    response = upload(guest, b"email\n" + b"someone@example.com\n" * 60000)
    assert response.status_code == 413
    page = soup(response)
    assert page.select_one("#import-upload") is None  # the error page, not the upload form
    assert "larger than the upload limit of 1 MB" in page.text
