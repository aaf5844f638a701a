"""Passwords, tokens, secrets at rest, CSRF and safe redirects: one module.

Every other module asks here rather than rolling its own hashing or checks.
"""
import base64
import hashlib
import hmac
import re
import secrets
import unicodedata
from urllib.parse import quote
from urllib.parse import urlsplit

from argon2 import PasswordHasher
from argon2 import profiles
from argon2.exceptions import InvalidHashError
from argon2.exceptions import VerificationError
from cryptography.fernet import Fernet
from cryptography.fernet import InvalidToken
from flask import Response
from flask import abort
from flask import current_app
from flask import has_app_context
from flask import request
from flask import session

# argon2-cffi's default parameters (RFC 9106's low-memory choice: argon2id, 64 MiB, 3 passes, 4 lanes),
# about 0.2 s a hash: what every real instance uses. A hash carries its own parameters, so verifying
# reads them from the stored hash whichever hasher checks it.
_STRONG = PasswordHasher()
# Only under TESTING (the test suite's apps): argon2-cffi's CHEAPEST profile (8 KiB, one pass), so the
# ~200 sign-ups and logins of the tests cost nothing. tests/test_auth.py checks that anything else gets
# the strong parameters.
_CHEAPEST = PasswordHasher.from_parameters(profiles.CHEAPEST)

MIN_PASSWORD_LENGTH = 10


def _hasher():
    return _CHEAPEST if has_app_context() and current_app.config.get("TESTING") else _STRONG


def hash_password(password):
    return _hasher().hash(password)


def verify_password(password_hash, password):
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def password_problem(password):
    """Why a new password is unacceptable, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"Use at least {MIN_PASSWORD_LENGTH} characters."
    if len(password) > 1024:
        return "That password is too long (1024 characters at most)."
    return None


def hash_token(token):
    """Tokens sent by email are stored only as their SHA-256, so a leaked
    database cannot be used to reset passwords or accept invites."""
    return hashlib.sha256(token.encode()).hexdigest()


def _fernet():
    key = current_app.config["ENCRYPTION_KEY"]
    if not key:
        digest = hashlib.sha256(b"loft-encryption:" + current_app.config["SECRET_KEY"].encode()).digest()
        key = base64.urlsafe_b64encode(digest)
    return Fernet(key)


def encrypt(plaintext):
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext):
    """The plaintext, or None when the key has changed since it was stored."""
    try:
        return _fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        return None


# --- Request size ---------------------------------------------------------
# MAX_CONTENT_LENGTH (LOFT_MAX_BODY_KB) holds for every request; the few views that take a file
# upload are marked and get MAX_UPLOAD_LENGTH (or their own limit). werkzeug enforces
# request.max_content_length on the Content-Length before reading, and on a chunked body
# (no length) while reading it, so a huge body is refused without being held in memory.

def accepts_upload(limit=None):
    """Mark a view as a file upload: its body may be `limit` bytes (default MAX_UPLOAD_LENGTH).
    Put it directly under @bp.route."""
    def mark(view):
        view.upload_limit = limit or "config"
        return view
    return mark


def body_limit():
    """The largest body the current request's view accepts, in bytes."""
    view = current_app.view_functions.get(request.endpoint)
    limit = getattr(view, "upload_limit", None)
    if limit is None:
        return current_app.config["MAX_CONTENT_LENGTH"]
    return current_app.config["MAX_UPLOAD_LENGTH"] if limit == "config" else limit


def limit_body():
    """before_request hook (the first): set this request's limit, and refuse a declared length over it
    at once, whether or not the view would read the body."""
    limit = request.max_content_length = body_limit()
    if request.content_length is not None:
        if request.content_length > limit:
            abort(413)
    elif request.method not in CSRF_SAFE_METHODS and request.environ.get("wsgi.input_terminated"):
        # A chunked body (no length). werkzeug stops reading it at the limit *silently*, so an
        # oversized form would be taken as a shorter, complete one: read one byte more to tell.
        # (Upload views are left to their multipart parser, which refuses a cut-off form.)
        if getattr(current_app.view_functions.get(request.endpoint), "upload_limit", None) is None:
            request.max_content_length = limit + 1
            too_long = len(request.get_data(cache=True)) > limit  # kept: the form is parsed from it
            request.max_content_length = limit
            if too_long:
                abort(413)


# --- CSRF -----------------------------------------------------------------
# One random token per session, sent back by every form (hidden input) and by
# every HTMX request (the X-CSRF-Token header set on <body hx-headers>).

CSRF_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def csrf_token():
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf():
    """before_request hook: refuse an unsafe request without the session's token."""
    if request.method in CSRF_SAFE_METHODS:
        return
    if request.blueprint == "api":
        # The API reads no cookie: each request carries its key in Authorization, which a page on
        # another site cannot make a browser send, so there is no session to forge a request for.
        return
    view = current_app.view_functions.get(request.endpoint)
    if view is None or getattr(view, "csrf_exempt", False):
        return
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token", "")
    expected = session.get("csrf")
    if not expected or not hmac.compare_digest(sent, expected):
        abort(400, description="This form has expired or did not come from Loft. Reload the page and try again.")


def csrf_exempt(view):
    """For endpoints that other machines call (e.g. RFC 8058 one-click unsubscribe)."""
    view.csrf_exempt = True
    return view


# --- Redirects ------------------------------------------------------------

def safe_next(target, default="/"):
    """`target` if it is a path on this site, else `default`.

    Only a single leading slash followed by a path is accepted: '//evil.com',
    '/\\evil.com' and 'https:evil.com' all have an empty netloc yet browsers
    treat them as off-site, so a netloc check alone is not enough.
    """
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    if any(ord(c) < 32 for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


# --- Downloads --------------------------------------------------------------

def attachment(filename):
    """A Content-Disposition value for a download named after user text (a campaign called “日本”).

    HTTP headers are Latin-1, so a raw non-ASCII name made the response fail (500). Browsers get the
    real name as RFC 5987 `filename*` (UTF-8, percent-encoded) and older clients an ASCII fallback;
    neither can carry a quote, CR/LF or a path separator.
    """
    stem, _, extension = filename.rpartition(".") if "." in filename else (filename, "", "")
    extension = _ascii_part(extension)
    ascii_name = (_ascii_part(stem) or "download") + ("." + extension if extension else "")
    value = f'attachment; filename="{ascii_name}"'
    if ascii_name != filename:
        value += "; filename*=UTF-8''" + quote(filename, safe="")
    return value


def _ascii_part(text):
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"-{2,}", "-", re.sub(r"[^A-Za-z0-9._-]+", "-", text)).strip("-.")


# --- Untrusted HTML ---------------------------------------------------------

# Email HTML (campaign and template previews, caught messages, the web version) is hostile
# in our own pages. It is served only through untrusted_html_response, under a policy of its
# own: inline styles (email needs them) but no scripts, no forms, no same-origin.
_UNTRUSTED_HTML_CSP = ("{sandbox}; default-src 'none'; style-src 'unsafe-inline'; img-src {images}; "
                       "font-src {fonts}; frame-ancestors {ancestors}; form-action 'none'; base-uri 'none'")
# The web version is a page of its own, opened from the email: its links may open (a new tab, or
# this one after a click), and no site may frame it.
_PAGE_SANDBOX = "sandbox allow-popups allow-popups-to-escape-sandbox allow-top-navigation-by-user-activation"


# An uploaded image opened on its own (GET /m/<key>.<ext>): the browser may show the image and nothing else
# runs, loads or submits, whatever the file turned out to hold.
UPLOADED_IMAGE_CSP = ("default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox; "
                      "form-action 'none'; base-uri 'none'")


# A CSP source for the instance's own origin: scheme and host[:port] only, so an odd base URL
# can never add a directive to the policy.
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-]+(:\d{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


def origin_source(url):
    """`scheme://host[:port]` of `url` as a CSP source, or "" when it is not a plain http(s) origin."""
    parts = urlsplit(url or "")
    origin = f"{parts.scheme}://{parts.netloc}"
    return origin if _ORIGIN.match(origin) else ""


def untrusted_html_response(html, remote_images=True, page=False, headers=None, own_origin=""):
    """`html` from an email, answered under its sandbox policy and never stored by a cache.

    By default for an <iframe sandbox> of our own pages (the sandbox directive again for anyone
    opening the URL directly). `remote_images=False` for mail the catcher received: it loads
    nothing remote (an open pixel in a caught campaign would count an open). `page=True` for the web version, opened
    on its own: images over https only (deliverability reference, section 9), and no site may
    frame it. `own_origin` (the instance's base URL) may serve its images too, so the team's
    media library shows on an instance reached over plain http."""
    if page:
        own = origin_source(own_origin)
        images, fonts = "https: data:" + (f" {own}" if own else ""), "https: data:"
    else:
        images, fonts = ("https: http: data: cid:", "https: data:") if remote_images else ("data: cid:", "data:")
    response = Response(html, mimetype="text/html", headers=headers)
    response.headers["Content-Security-Policy"] = _UNTRUSTED_HTML_CSP.format(
        sandbox=_PAGE_SANDBOX if page else "sandbox", images=images, fonts=fonts,
        ancestors="'none'" if page else "'self'")
    response.headers["X-Frame-Options"] = "DENY" if page else "SAMEORIGIN"
    response.headers.setdefault("Cache-Control", "no-store")
    return response
