"""Helpers of the import tests: upload a CSV through the pages, map it as a browser would, run it,
read the rejects file."""
import csv
import io

from app.models import ImportJob
from tests.conftest import soup


def upload(web, data, name="contacts.csv"):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return web.post("/imports/", {"file": (io.BytesIO(data), name)}, content_type="multipart/form-data")


def uploaded_job(web, data, name="contacts.csv"):
    response = upload(web, data, name)
    assert response.status_code == 302, response.get_data(as_text=True)
    job_id = int(response.headers["Location"].rstrip("/").split("/")[-2])
    return ImportJob.get_by_id(job_id)


def map_form(page):
    """The mapping form's current choices, as a browser would submit them."""
    form = {}
    for select in page.select("#import-map select"):
        chosen = select.select_one("option[selected]")
        form[select["name"]] = chosen["value"] if chosen else ""
    return form


def start(web, job, lists=(), mode="add", **overrides):
    page = soup(web.get(f"/imports/{job.id}/map"))
    form = map_form(page)
    form.update(overrides)
    form["mode"] = mode
    form["list_ids"] = [str(lst.id) for lst in lists]
    return web.post(f"/imports/{job.id}/map", form)


def run_file(web, data, lists=(), mode="add", name="contacts.csv", **overrides):
    """Upload, map with the automatic guesses (plus overrides), import; returns the finished job."""
    job = uploaded_job(web, data, name)
    response = start(web, job, lists, mode, **overrides)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"].endswith(f"/imports/{job.id}")
    return ImportJob.get_by_id(job.id)


def rejects_of(web, job):
    response = web.get(f"/imports/{job.id}/rejects.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data().decode("utf-8-sig"))))
