"""Public tracking, web-view and unsubscribe endpoints.

  GET  /o/<token>.gif           open pixel: always the same 43-byte GIF
  GET  /c/<token>/<link_id>     click: 302 to the link's URL, looked up server-side
  GET  /u/<token>               unsubscribe confirmation page (never unsubscribes)
  POST /u/<token>               RFC 8058 one-click unsubscribe, and the page's own form
  GET  /v/<token>               the web version of the recipient's message

The token in each URL is the only credential (app.tokens, one key
per purpose). These pages need no sign-in and set no cookie. A token that
does not verify gets the same answer as a genuine one where the answer must
not reveal anything (the pixel, the unsubscribe page), and a plain 404
otherwise: a tampered click link is never redirected anywhere.
"""
from flask import Blueprint
from flask import Response
from flask import render_template
from flask import request
from werkzeug.urls import iri_to_uri

from app import settings
from app import tokens
from app.security import csrf_exempt
from app.security import untrusted_html_response
from app.tracking import fastpath
from app.tracking import services
from app.tracking import webview
from app.transactional import tracking as tx_tracking

bp = Blueprint("tracking", __name__)


@bp.record_once
def _install_fast_path(state):
    # The open pixel and the click redirect are answered in front of Flask for speed
    # (app/tracking/fastpath.py); these views still answer every other case.
    fastpath.install(state.app)


PIXEL_HEADERS = {"Content-Type": "image/gif", "Cache-Control": "no-store, private", "Pragma": "no-cache",
                 "Expires": "0"}
NO_STORE = {"Cache-Control": "no-store, private", "Referrer-Policy": "no-referrer",
            "X-Robots-Tag": "noindex, nofollow"}


def public(view):
    """An endpoint anyone may call (the role-matrix test skips these)."""
    view.public = True
    return view


def _send_id(purpose, token):
    """The Send id a token of `purpose` carries, or None (tampered, truncated, another purpose)."""
    ids = tokens.verify(purpose, token)
    if not ids or len(ids) != 1:
        return None
    return ids[0]


def _tx_ids(purpose, token):
    """(team id, message id) a transactional message's token of `purpose` carries, or None."""
    ids = tokens.verify(purpose, token)
    return ids if ids and len(ids) == 2 else None


def _client_ip():
    # Behind a TLS proxy set LOFT_PROXIES so remote_addr is the visitor (ProxyFix in create_app).
    return request.remote_addr or ""


def _not_found():
    return Response(render_template("tracking/not_found.html"), 404, headers=NO_STORE)


@bp.route("/o/<token>.gif")
@public
def open_pixel(token):
    send_id = _send_id("open", token)
    if send_id is not None and request.method == "GET":
        services.record_open(send_id, request.headers.get("User-Agent", ""), _client_ip())
    elif send_id is None and request.method == "GET" and (tx_ids := _tx_ids("tx_open", token)) is not None:
        tx_tracking.record_open(*tx_ids, request.headers.get("User-Agent", ""), _client_ip())
    return Response(services.PIXEL, 200, headers=PIXEL_HEADERS)


@bp.route("/c/<token>/<int:link_id>")
@public
def click(token, link_id):
    send_id = _send_id("click", token)
    if send_id is None:
        return _tx_click(token, link_id)
    found = services.click_target(send_id, link_id)
    if found is None:
        return _not_found()
    url, facts = found
    services.record_click(send_id, link_id, url, facts, request.method, request.headers.get("User-Agent", ""),
                          _client_ip())
    response = Response("", 302, headers=NO_STORE)
    # Set directly, never through url_for or redirect(): the stored URL is used as written,
    # only made ASCII (an IRI with non-ASCII characters becomes its URI form).
    response.headers["Location"] = iri_to_uri(url)
    return response


def _tx_click(token, place):
    tx_ids = _tx_ids("tx_click", token)
    url = tx_tracking.click_target(*tx_ids, place) if tx_ids is not None else None
    if url is None:
        return _not_found()
    tx_tracking.record_click(*tx_ids, url, request.method, request.headers.get("User-Agent", ""))
    response = Response("", 302, headers=NO_STORE)
    response.headers["Location"] = iri_to_uri(url)
    return response


def _unsubscribe_page(target, token, status=200, **context):
    preference_url = webview.preference_url(target.contact) if target is not None else None
    body = render_template("tracking/unsubscribe.html", target=target, token=token,
                           team=target.team if target is not None else None,
                           preference_url=preference_url, **context)
    return Response(body, status, headers=NO_STORE)


@bp.route("/u/<token>")
@public
def unsubscribe_page(token):
    """The confirmation page: a GET never unsubscribes (link scanners prefetch GETs)."""
    send_id = _send_id("unsubscribe", token)
    target = services.unsubscribe_target(send_id) if send_id is not None else None
    return _unsubscribe_page(target, token)


@bp.route("/u/<token>", methods=["POST"])
@public
@csrf_exempt
def unsubscribe(token):
    """RFC 8058 one-click (body "List-Unsubscribe=One-Click", urlencoded or multipart, no
    cookies) and the confirmation page's form. Always 200, never a redirect, safe to repeat;
    an invalid token gets the same page and changes nothing."""
    send_id = _send_id("unsubscribe", token)
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    everything = not one_click and request.form.get("scope") == "all"
    result = None
    if send_id is not None:
        result = services.unsubscribe(send_id, everything=everything,
                                      source="one-click" if one_click else "unsubscribe page")
    if one_click:
        # Mail providers read only the status; no page, no personal data in the answer.
        return Response("Unsubscribed.\n", 200, headers={**NO_STORE, "Content-Type": "text/plain; charset=utf-8"})
    target = services.unsubscribe_target(send_id) if result is not None else None
    return _unsubscribe_page(target, token, done=True, everything=everything, result=result)


@bp.route("/v/<token>")
@public
def web_view(token):
    send_id = _send_id("view", token)
    page = webview.render(send_id) if send_id is not None else None
    if page is None:
        return _not_found()
    return untrusted_html_response(page, page=True, headers=NO_STORE, own_origin=settings.base_url())
