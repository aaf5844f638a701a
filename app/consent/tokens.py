"""Signed tokens for the public pages: one salt per purpose, the instance secret as key.

A token names rows by id, and SQLite reuses the highest deleted rowid, so
every token also carries a short keyed digest of the contact's address: a
link made for someone who was later deleted can never open the page of a
new contact who happens to get the same id.
"""
import hashlib
import hmac

from flask import current_app
from itsdangerous import BadSignature
from itsdangerous import SignatureExpired
from itsdangerous import URLSafeSerializer
from itsdangerous import URLSafeTimedSerializer

__all__ = ["BadSignature", "SignatureExpired", "sign", "unsign", "email_digest"]

SALTS = {
    "form": "loft.consent.signup-form",  # the hidden timestamp of a hosted form
    "confirm": "loft.consent.signup-confirm",  # the double opt-in link
    "preferences": "loft.consent.preferences",  # the preference center
}


def _serializer(purpose, timed):
    secret = current_app.config["SECRET_KEY"]
    kind = URLSafeTimedSerializer if timed else URLSafeSerializer
    return kind(secret, salt=SALTS[purpose])


def sign(purpose, payload, timed=False):
    return _serializer(purpose, timed).dumps(payload)


def unsign(purpose, token, max_age=None):
    """The payload; raises BadSignature (tampered) or SignatureExpired (a subclass: too old)."""
    if max_age is not None:
        return _serializer(purpose, True).loads(token, max_age=max_age)
    return _serializer(purpose, False).loads(token)


def email_digest(email):
    secret = current_app.config["SECRET_KEY"].encode()
    return hmac.new(secret, b"contact-email:" + email.encode(), hashlib.sha256).hexdigest()[:16]
