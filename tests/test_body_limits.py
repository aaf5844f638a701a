"""Request size (issue 9, point 5): a small limit on every route, refused before the body is read;
only the upload routes (contact CSV import, suppression import) accept big files."""
import io

import pytest
from flask import Response
from werkzeug.test import EnvironBuilder
from werkzeug.test import run_wsgi_app

from app.models import ImportJob
from tests.conftest import soup
from tests.imports_support import upload

MB = 1024 * 1024


class Body(io.RawIOBase):
    """A request body of `size` bytes made up as it is read, counting what the server actually read."""

    def __init__(self, size, prefix=b"email=a%40example.com&password=x&junk="):
        self.size, self.prefix, self.read_bytes = size, prefix, 0

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), self.size - self.read_bytes)
        if n <= 0:
            return 0
        chunk = (self.prefix + b"x" * n)[:n] if self.read_bytes == 0 else b"x" * n
        buffer[:n] = chunk
        self.read_bytes += n
        return n


def post_stream(app, path, body, length, content_type="application/x-www-form-urlencoded"):
    """POST `body` with a declared Content-Length, or chunked (no length; the server ends the stream)."""
    environ = EnvironBuilder(path=path, method="POST", content_type=content_type).get_environ()
    environ["wsgi.input"] = body
    environ.pop("CONTENT_LENGTH", None)
    if length is None:
        environ["wsgi.input_terminated"] = True  # what gunicorn and werkzeug's server say for chunked bodies
    else:
        environ["CONTENT_LENGTH"] = str(length)
    app_iter, status, headers = run_wsgi_app(app, environ, buffered=True)
    return Response(b"".join(app_iter), status=status, headers=headers)


def test_the_default_limit_is_small_and_uploads_keep_a_large_one(app):
    assert app.config["MAX_CONTENT_LENGTH"] == 4096 * 1024
    assert app.config["MAX_UPLOAD_LENGTH"] == 512 * MB
    assert app.view_functions["imports.index"].upload_limit == "config"
    assert app.view_functions["consent.import_suppression"].upload_limit > 20 * MB


def test_an_anonymous_200_mb_post_is_refused_unread(app, client):
    body = Body(200 * MB)
    response = post_stream(app, "/login", body, 200 * MB)
    assert response.status_code == 413
    assert body.read_bytes == 0
    page = soup(response)
    assert "larger than Loft accepts here (4 MB)" in page.text
    assert page.select_one("main") is not None  # the site's error page, not a bare werkzeug one


def test_a_chunked_body_without_length_is_cut_at_the_limit(app, client):
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    body = Body(200 * MB)
    response = post_stream(app, "/login", body, None)
    assert response.status_code == 413
    assert body.read_bytes <= 64 * 1024 + 64 * 1024  # the limit and at most one read buffer more
    assert "larger than Loft accepts here (64 KB)" in soup(response).text


def test_a_signed_in_form_over_the_limit_gets_the_clear_page(app, admin, client, web):
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    response = web.post("/campaigns/new", {"name": "x" * (100 * 1024)})
    assert response.status_code == 413
    assert "larger than Loft accepts here (64 KB)" in soup(response).text
    # A form under the limit still works.
    assert web.post("/logout").status_code == 302


def test_the_csv_import_still_accepts_a_big_file(app, admin, web):
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    data = b"email\n" + b"".join(b"someone%d@example.com\n" % i for i in range(60000))  # about 1.5 MB
    assert len(data) > 20 * app.config["MAX_CONTENT_LENGTH"]
    response = upload(web, data)
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    assert ImportJob.select().count() == 1


def test_the_csv_import_has_its_own_limit(app, admin, web):
    app.config["MAX_UPLOAD_LENGTH"] = 1 * MB
    response = upload(web, b"email\n" + b"someone@example.com\n" * 60000)
    assert response.status_code == 413
    assert "larger than the upload limit of 1 MB" in soup(response).select_one("#e-file").text


def test_the_suppression_import_still_accepts_a_big_file(app, admin, web):
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    data = b"".join(b"gone%d@example.com\n" % i for i in range(20000))
    response = web.post("/contacts/suppression/import", {"file": (io.BytesIO(data), "list.txt")},
                        content_type="multipart/form-data")
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    assert "20,000" in soup(response).text or "20000" in soup(response).text


@pytest.mark.parametrize("path", ["/feedback/hooks/generic/nope", "/login"])
def test_a_declared_length_over_the_limit_is_refused_on_any_route(app, client, path):
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    body = Body(10 * MB, prefix=b"{")
    response = post_stream(app, path, body, 10 * MB, content_type="application/json")
    assert response.status_code == 413
    assert body.read_bytes == 0


def test_a_small_chunked_form_is_still_read_whole(app, client):
    body = Body(2000, prefix=b"email=a%40example.com&password=x&csrf_token=forged&junk=")
    response = post_stream(app, "/login", body, None)
    assert response.status_code == 400  # read and judged by the CSRF check, not refused for its size
    assert "did not come from Loft" in soup(response).text
    assert body.read_bytes == 2000
