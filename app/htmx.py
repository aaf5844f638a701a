"""HTMX conventions in one place.

A view returns its fragment (templates/<area>/_<name>.html) when is_htmx(),
else the full page that includes the same fragment. Responses vary on the
HX-Request header so a cache never serves one in place of the other.
"""
from flask import Response
from flask import request


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


def init_app(app):
    app.after_request(add_vary)
