"""app/tokens.py signs every link and header token, and links already in delivered mail keep working.

The CAPTURED strings were made by the code before app/tokens.py existed (app.tracking.tokens for
the tracking purposes, itsdangerous in app.consent.tokens for the preference center and the
double opt-in link), with the SECRET_KEY the test app uses ("test-secret", tests/conftest.py).
"""
import ast
import base64
import hmac
import time

import pytest
from itsdangerous import TimestampSigner
from itsdangerous import URLSafeSerializer
from itsdangerous import URLSafeTimedSerializer

from app import tokens
from app.config import ROOT
from app.consent import forms
from app.consent import preferences
from app.models import Contact
from app.models import MailingList
from app.models import Subscription
from app.models import Team
from tests.conftest import soup

SECRET = "test-secret"
ANN_DIGEST = 0x2DF02F0412AD392A  # the old hex digest of ann@example.com, "2df02f0412ad392a"
CAPTURED = {
    ("open", 42): "Kk_g_-CfrpfmdLl3skn4G4s", ("open", 1234567): "h61L2aqhPtFNgjhVm_5waqPJLA",
    ("click", 42): "KkLn_ajs63cwedYbKRvGvlQ", ("click", 1234567): "h61L2X_VciljBZ-vXBOOJ_KXGQ",
    ("unsubscribe", 42): "KnKCpL8es9yl9RQixU5K504", ("unsubscribe", 1234567): "h61LS8QpMtqitvTEuRlV5tNbxg",
    ("view", 42): "Kuv3BmgH-XSlJAStvazAa9g", ("view", 1234567): "h61L_LbCIiCm2J4VwBbmcHZSSA",
    ("header", 42): "Kiy1VWfaNc_1-9rQCIbdgdo", ("header", 1234567): "h61LiqYhu6LZ4jRNUAi67P3-iQ",
    ("header", 7, 42): "Byrpz3tWj3PZ0DIxwRsABZad",  # the Message-ID tag's source (campaign 7, send 42)
}
# itsdangerous: [team 3, contact 42, digest] and [subscription 9, digest] issued at 1796291172.
CAPTURED_PREFERENCES = "WzMsNDIsIjJkZjAyZjA0MTJhZDM5MmEiXQ.DM-OkK9DrJJV6DgZMSemT2KJAmg"
CAPTURED_CONFIRM = "WzksIjJkZjAyZjA0MTJhZDM5MmEiXQ.axE6ZA.JIg_DAmaX05DCpQo7vHaKh5XjE8"
CAPTURED_CONFIRM_AT = 1796291172


def old_preferences_token(secret, team_id, contact_id, digest):
    """What app.consent.tokens.sign("preferences", ...) made."""
    return URLSafeSerializer(secret, salt="loft.consent.preferences").dumps([team_id, contact_id, f"{digest:016x}"])


def old_confirm_token(secret, subscription_id, digest, at):
    """What app.consent.tokens.sign("confirm", ..., timed=True) made, at the time `at`."""
    class At(TimestampSigner):
        def get_timestamp(self):
            return at
    return URLSafeTimedSerializer(secret, salt="loft.consent.signup-confirm", signer=At).dumps(
        [subscription_id, f"{digest:016x}"])


def test_tokens_made_before_still_verify():
    signer = tokens.Signer(SECRET)
    for (purpose, *ids), token in CAPTURED.items():
        assert signer.verify(purpose, token) == tuple(ids), purpose
        assert signer.sign(purpose, *ids) == token  # and are still what is written
    assert signer.email_digest("ann@example.com") == ANN_DIGEST
    assert signer.verify("preferences", CAPTURED_PREFERENCES) == (3, 42, ANN_DIGEST)
    assert signer.verify("confirm", CAPTURED_CONFIRM) == (9, ANN_DIGEST, CAPTURED_CONFIRM_AT)
    # The reconstructions of the old writers used below make exactly the captured strings.
    assert old_preferences_token(SECRET, 3, 42, ANN_DIGEST) == CAPTURED_PREFERENCES
    assert old_confirm_token(SECRET, 9, ANN_DIGEST, CAPTURED_CONFIRM_AT) == CAPTURED_CONFIRM


def test_old_format_is_accepted_only_where_it_was_made_and_only_when_genuine():
    signer = tokens.Signer(SECRET)
    assert signer.verify("unsubscribe", CAPTURED_PREFERENCES) is None  # never made for tracking
    assert signer.verify("confirm", CAPTURED_PREFERENCES) is None  # another salt
    assert signer.verify("preferences", CAPTURED_CONFIRM) is None
    assert signer.verify("preferences", CAPTURED_PREFERENCES[:-2] + "AA") is None
    assert tokens.Signer("another-secret").verify("preferences", CAPTURED_PREFERENCES) is None
    assert signer.verify("preferences", URLSafeSerializer(SECRET, salt="loft.consent.preferences")
                         .dumps(["3", 42, "zz"])) is None  # genuine but not ids
    assert signer.verify("preferences", "x." * 150) is None


def test_one_format_for_every_purpose():
    signer = tokens.Signer(SECRET)
    for purpose in tokens.PURPOSES:
        token = signer.sign(purpose, 3, 42, ANN_DIGEST, 1796291172)
        assert signer.verify(purpose, token) == (3, 42, ANN_DIGEST, 1796291172)
        assert "." not in token and len(token) <= tokens.MAX_TOKEN_LENGTH
        assert all(signer.verify(other, token) is None for other in tokens.PURPOSES if other != purpose)
    with pytest.raises(ValueError):
        signer.sign("nonsense", 1)


def test_tags_are_hmac_sha256_for_secrets_of_every_length():
    """The tags come from hash states computed once per key: the same as hmac.digest whether the secret is
    empty, shorter than SHA-256's 64-byte block, exactly one block, or longer (then hashed first)."""
    for length in (0, 1, 32, 63, 64, 65, 200):
        secret = bytes(range(256))[:length]
        signer = tokens.Signer(secret)
        for purpose in tokens.PURPOSES:
            key = hmac.digest(secret, b"loft.token." + purpose.encode(), "sha256")
            for value in (0, 127, 128, 1234567, 2 ** 40):
                payload = tokens._varint(value)
                tag = hmac.digest(key, payload, "sha256")[:tokens.TAG_BYTES]
                expected = base64.urlsafe_b64encode(payload + tag).rstrip(b"=").decode("ascii")
                assert signer.sign_one(purpose, value) == signer.sign(purpose, value) == expected, (length, purpose)
                assert signer.verify(purpose, expected) == (value,)
        assert signer.email_digest("ann@example.com") == int.from_bytes(
            hmac.digest(secret, b"contact-email:ann@example.com", "sha256")[:8], "big")


@pytest.fixture
def people(app):
    team = Team.create(name="Tokens")
    news = MailingList.create(team=team, visibility="public", name="News")
    ann = Contact.create(team=team, email="ann@example.com", domain="example.com", name="Ann")
    subscribed = Subscription.create(contact=ann, list=news, status="subscribed")
    bob = Contact.create(team=team, email="bob@example.com", domain="example.com", name="Bob")
    waiting = Subscription.create(contact=bob, list=news, status="unconfirmed")
    return team, news, ann, subscribed, bob, waiting


def test_a_preference_link_from_delivered_mail_opens_the_page(app, public, people):
    team, _news, ann, _subscribed, _bob, _waiting = people
    with app.app_context():
        digest = tokens.email_digest(ann.email)
        assert digest == ANN_DIGEST
        new = preferences.preference_token(ann)
    old = old_preferences_token(SECRET, team.id, ann.id, digest)
    for token in (old, new):
        page = public.get(f"/p/{token}")
        assert page.status_code == 200 and "ann@example.com" in page.get_data(as_text=True)
    assert public.get(f"/p/{old_preferences_token(SECRET, team.id + 1, ann.id, digest)}").status_code == 404


def test_a_confirmation_link_from_delivered_mail_confirms(app, public, people):
    _team, news, _ann, _subscribed, bob, waiting = people
    with app.app_context():
        digest = tokens.email_digest(bob.email)
    now = int(time.time())
    expired = old_confirm_token(SECRET, waiting.id, digest, now - 8 * 86400)
    assert public.post(f"/f/{news.public_id}/confirm/{expired}").status_code == 410
    old = old_confirm_token(SECRET, waiting.id, digest, now)
    confirmed = public.post(f"/f/{news.public_id}/confirm/{old}")
    assert confirmed.status_code == 200 and soup(confirmed).select_one("h1").text == "You are subscribed"
    assert Subscription.get_by_id(waiting.id).status == "subscribed"


def test_new_confirmation_and_form_tokens_carry_their_time(app, people):
    _team, news, _ann, _subscribed, bob, waiting = people
    with app.app_context():
        made = tokens.verify("confirm", forms.confirmation_token(waiting, bob.email))
        assert made[:2] == (waiting.id, tokens.email_digest(bob.email)) and made[2] > CAPTURED_CONFIRM_AT - 10**9
        assert tokens.verify("form", forms.form_stamp(news, at=1796291172)) == (news.id, 1796291172)


# --- Structure: one home for signing ---------------------------------------------------------------

HOME = ROOT / "app" / "tokens.py"
KEY_LABELS = ("loft.token.", "contact-email:", "loft.consent.")


def signing_elsewhere(source):
    """(line, what) for an itsdangerous import, or a token key label, in `source`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "itsdangerous"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "itsdangerous":
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
            text = node.value.decode("latin-1") if isinstance(node.value, bytes) else node.value
            found += [(node.lineno, label) for label in KEY_LABELS if label in text]
    return found


def test_only_app_tokens_signs_links():
    found = []
    for folder in ("app", "tasks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path != HOME:
                found += [f"{path.relative_to(ROOT)}:{line} {what}"
                          for line, what in signing_elsewhere(path.read_text(encoding="utf-8"))]
    assert found == [], "sign and verify link tokens with app.tokens (sign, verify, email_digest)"


def test_the_check_sees_what_it_looks_for():
    assert [what for _, what in signing_elsewhere("from itsdangerous import URLSafeSerializer\n")] == ["itsdangerous"]
    assert [what for _, what in signing_elsewhere("import itsdangerous\n")] == ["itsdangerous"]
    assert [what for _, what in signing_elsewhere('d = hmac.new(k, b"contact-email:" + e, sha256)\n')] \
        == ["contact-email:"]
    assert signing_elsewhere('SALT = "loft.consent.preferences"\n')
    assert signing_elsewhere("import hmac\nhmac.compare_digest(a, b)\n") == []
    assert signing_elsewhere(HOME.read_text(encoding="utf-8")), "app/tokens.py itself is seen signing"
