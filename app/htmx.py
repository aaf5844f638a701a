"""HTMX conventions in one place.

A view returns its fragment (templates/<area>/_<name>.html) when is_htmx(),
else the full page that includes the same fragment. Responses vary on the
HX-Request header so a cache never serves one in place of the other.
"""
from flask import Response
from flask import render_template
from flask import request
from flask import session


def is_htmx():
    return "HX-Request" in request.headers and "HX-History-Restore-Request" not in request.headers


def hx_redirect(url, status=200):
    """Full-page navigation from an HTMX request (htmx follows HX-Redirect)."""
    response = Response("", status=status)
    response.headers["HX-Redirect"] = url
    return response


def add_vary(response):
    response.vary.add("HX-Request")
    return response


# Responses that make htmx load another page: the flashes stay for that page.
NAVIGATING = ("HX-Redirect", "HX-Location", "HX-Refresh")


def deliver_flashes(response):
    """Show what a view flashed in the fragment htmx swaps in, out of band into #flashes.

    A fragment does not extend base.html, so without this a message flashed by an HTMX
    request (or by the view it was redirected to) stayed in the session and appeared
    on whatever full page the person opened next. Doing it here covers every view.
    """
    if (not is_htmx() or "_flashes" not in session or response.is_streamed or response.direct_passthrough
            or response.mimetype != "text/html" or any(name in response.headers for name in NAVIGATING)
            or not (200 <= response.status_code < 300 or response.status_code == 422)
            or response.status_code == 204):
        return response
    response.set_data(response.get_data() + render_template("_flashes.html", oob=True).encode())
    return response


def init_app(app):
    app.after_request(add_vary)
    app.after_request(deliver_flashes)
