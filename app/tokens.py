"""Every signed token Loft puts in a link or a header: one module, one format, one secret.

A token carries one or more non-negative integer ids and a 128-bit HMAC-SHA256
tag. Each purpose has its own key derived from the app secret, so a token made
for one purpose is worthless for another: an open-pixel token can never
unsubscribe anyone.

  open, click, unsubscribe, view, header   (send id) the open pixel, tracked links,
                       the unsubscribe page and one-click POST, the web version, and
                       X-Loft-Token / the Message-ID tag (header: campaign id, send id)
  preferences          (team id, contact id, email_digest) the preference center
  confirm              (subscription id, email_digest, issued at) the double opt-in link
  form                 (list id, issued at) the hidden timestamp of a hosted sign-up form
  tx_open, tx_click    (team id, transactional message id) the open pixel and tracked links of a
                       transactional message that asked for tracking (app/transactional/tracking.py)

API keys (app/api/keys.py) are random secrets, not signed ids: they are kept only as
api_key_digest(), so the database never holds a key that works.

A token names rows by id, and SQLite reuses the highest deleted rowid, so the
tokens that name a contact also carry email_digest() of the address: a link made
for someone who was later deleted never opens the page of a new contact who gets
the same id. Tokens never expire by themselves (CAN-SPAM wants unsubscribe links
to work for at least 30 days, and a web-view link should keep working); the
purposes that do expire carry the time they were issued and their caller checks
its age.

Format: base64url (no padding) of the ids as LEB128 varints followed by the
first 16 bytes of the tag. A send id below two million gives a 26-character
token. verify() only accepts the canonical encoding, so no two strings verify
to the same ids.
"""
import base64
import binascii
import hashlib
import hmac

from flask import current_app
from itsdangerous import BadSignature
from itsdangerous import URLSafeSerializer
from itsdangerous import URLSafeTimedSerializer

PURPOSES = ("open", "click", "unsubscribe", "view", "preferences", "header", "confirm", "form", "tx_open",
            "tx_click")
TAG_BYTES = 16
MAX_TOKEN_LENGTH = 120  # anything longer is refused before decoding

# Mail already delivered holds preference and confirmation links in itsdangerous' format (JSON, a
# salt per purpose), and a preference link must work for as long as the mail is kept: verify()
# accepts that format for these two purposes only (a "." never occurs in a token of ours). Nothing
# writes it any more.
LEGACY_SALTS = {"preferences": "loft.consent.preferences", "confirm": "loft.consent.signup-confirm"}
MAX_LEGACY_LENGTH = 200


def _varint(value):
    if value < 0:
        raise ValueError("token ids must be non-negative integers")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _unvarints(data):
    ids = []
    value = shift = 0
    for position, byte in enumerate(data):
        value |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
            if shift > 63:
                return None
        else:
            if byte == 0 and shift and position:  # a redundant zero continuation: not canonical
                return None
            ids.append(value)
            value = shift = 0
    if shift:
        return None  # ended inside a number
    return tuple(ids)


class _Hmac:
    """HMAC-SHA256 under one key, from the key's inner and outer hash states computed once (RFC 2104).

    The same tag as hmac.digest, but hmac.digest lets go of the GIL for every call, however short the
    message: on the sending engine's event loop, beside the threads that sign DKIM and write the
    ledger, each of a message's half-dozen tags then waited to get it back. Copying a hash state and
    hashing a few bytes keeps it (hashlib lets go only from 2 KB on), and is about 3 times faster alone.
    """

    def __init__(self, key):
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))

    def digest(self, message):
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


_IPAD = bytes(byte ^ 0x36 for byte in range(256))
_OPAD = bytes(byte ^ 0x5C for byte in range(256))


class Signer:
    """Signs and verifies tokens with keys derived from one secret.

    Build one per secret and reuse it: key derivation happens once per
    purpose, so signing costs a single HMAC (about 1 µs).
    """

    def __init__(self, secret):
        if isinstance(secret, str):
            secret = secret.encode()
        self._secret = secret
        self._keys = {purpose: hmac.digest(secret, b"loft.token." + purpose.encode(), "sha256")
                      for purpose in PURPOSES}
        self._macs = {purpose: _Hmac(key) for purpose, key in self._keys.items()}
        self._email_mac = _Hmac(secret)

    def email_digest(self, email):
        """64 bits of a keyed hash of an address, as an int: what ties a token to the person it was made for."""
        return int.from_bytes(self._email_mac.digest(b"contact-email:" + email.encode())[:8], "big")

    def key(self, purpose):
        try:
            return self._keys[purpose]
        except KeyError:
            raise ValueError(f"unknown token purpose {purpose!r}") from None

    def _mac(self, purpose):
        try:
            return self._macs[purpose]
        except KeyError:
            raise ValueError(f"unknown token purpose {purpose!r}") from None

    def sign(self, purpose, *ids):
        if not ids:
            raise ValueError("a token needs at least one id")
        mac = self._mac(purpose)
        payload = b"".join(_varint(int(i)) for i in ids)
        tag = mac.digest(payload)[:TAG_BYTES]
        return base64.urlsafe_b64encode(payload + tag).rstrip(b"=").decode("ascii")

    def sign_one(self, purpose, value):
        """sign(purpose, value) for a single id, without the generality (hot path)."""
        payload = _varint(value) if value >= 128 or value < 0 else bytes((value,))
        tag = self._macs[purpose].digest(payload)[:TAG_BYTES]
        return base64.urlsafe_b64encode(payload + tag).rstrip(b"=").decode("ascii")

    def verify(self, purpose, token):
        """The ids in a genuine token of this purpose, else None (never raises for bad input)."""
        if purpose in LEGACY_SALTS and isinstance(token, str) and "." in token:
            return self._verify_legacy(purpose, token)
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return None
        if len(raw) <= TAG_BYTES:
            return None
        # Canonical form only: re-encoding must give back exactly the same string.
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != token:
            return None
        payload, tag = raw[:-TAG_BYTES], raw[-TAG_BYTES:]
        mac = self._macs.get(purpose)
        if mac is None:
            return None
        expected = mac.digest(payload)[:TAG_BYTES]
        if not hmac.compare_digest(tag, expected):
            return None
        return _unvarints(payload)

    def _verify_legacy(self, purpose, token):
        """The ids of an itsdangerous link (see LEGACY_SALTS), in the shape today's tokens have."""
        if len(token) > MAX_LEGACY_LENGTH:
            return None
        try:
            if purpose == "confirm":
                (subscription_id, digest), issued = URLSafeTimedSerializer(
                    self._secret, salt=LEGACY_SALTS[purpose]).loads(token, return_timestamp=True)
                ids = (subscription_id, int(digest, 16), int(issued.timestamp()))
            else:
                team_id, contact_id, digest = URLSafeSerializer(self._secret, salt=LEGACY_SALTS[purpose]).loads(token)
                ids = (team_id, contact_id, int(digest, 16))
        except (BadSignature, ValueError, TypeError):
            return None
        if not all(type(i) is int and i >= 0 for i in ids):
            return None
        return ids


_signers = {}


def signer(secret=None):
    """The Signer for `secret` (default: the current app's SECRET_KEY), cached."""
    if secret is None:
        secret = current_app.config["SECRET_KEY"]
    found = _signers.get(secret)
    if found is None:
        if len(_signers) > 16:  # tests create many apps; never grow without bound
            _signers.clear()
        found = _signers[secret] = Signer(secret)
    return found


def sign(purpose, *ids):
    """A token for `ids`, valid only for `purpose`."""
    return signer().sign(purpose, *ids)


def verify(purpose, token):
    """The tuple of ids in `token` if it is genuine and made for `purpose`, else None."""
    return signer().verify(purpose, token)


def email_digest(email):
    """The digest of an address that tokens naming a contact carry (see the module docstring)."""
    return signer().email_digest(email)


def api_key_digest(raw_key):
    """The only form an API key is stored in, and what a presented key is looked up by: SHA-256 hex.
    A key carries 256 random bits, so a plain (unsalted, fast) hash is as strong as the key itself."""
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()
