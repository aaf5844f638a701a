"""DKIM signing of factory-built messages from their pieces (MessageFactory.build_parts + domains.sign_parts).

The factory puts the relaxed canonical body together from its pieces instead of
letting the signer scan the whole body; dkimpy's own verification is the oracle,
and its body canonicalization must equal the one the factory gave, for
personal data and templates that canonicalization changes.
"""
import dkim
import pytest
from dkim.canonicalization import Relaxed

from app.content.message import MessageFactory
from app.content.message import canonical_body_piece
from app.content.message import relaxed_lines
from app.senders import domains
from tests.message_support import make_campaign
from tests.message_support import make_contact
from tests.message_support import make_send

pytestmark = pytest.mark.usefixtures("ctx")

CLEAN_BODY = """<table role="presentation" width="100%"><tr><td style="font-family:Arial;color:#333333;">
<p>Hello {{ contact.first_name or "friend" }}, welcome to {{ team.name }}!</p>
<p>Your plan: {{ contact.plan }}; seats: {{ (contact.seats or 0) + 1 }}.</p>
<p><a href="https://example.com/docs">read the docs</a></p>
</td></tr></table>
"""

# Static text that relaxed canonicalization rewrites: runs of spaces, tabs, spaces before line breaks.
UNTIDY_BODY = """<table>
    <tr>\t<td>\t\tHello   {{ contact.first_name or "friend" }}   </td></tr>
<tr><td>Plan:  {{ contact.plan }}\t</td></tr>   \n\n\n
</table>   \n\n"""


@pytest.fixture
def domain_row(message_team):
    return domains.add_domain(message_team, "acme.example")


def verify(signed, domain_row):
    record = f"v=DKIM1; k=rsa; p={domains.dkim_keys(domain_row)[1]}".encode()
    return dkim.verify(signed, dnsfunc=lambda name, timeout=5: record)


def signed_message(factory, send, contact, domain_row):
    parts = factory.build_parts(send, contact)
    head, body, canonical = parts.head, parts.body(), parts.canonical_body
    built = factory.build(send, contact)
    assert built[built.index(b"\r\n\r\n") + 4:] == body and head.endswith(b"\r\n")
    # The factory's canonical body is exactly dkimpy's canonicalization of the body it sent.
    assert canonical == Relaxed.canonicalize_body(dkim.rfc822_parse(head + b"\r\n" + body)[1])
    return domains.sign_parts(head, body, domain_row, canonical), head, body, canonical


@pytest.mark.parametrize("name,plan", [
    ("Ada Lovelace", "Pro"),
    ("Zoë Ångström", "Pro ✓ — équipe"),  # non-ASCII in the body and the To header
    ("Ada   Lovelace   ", "Pro   "),  # trailing spaces and runs of spaces in personal data
    ("Ada\tLovelace", "Pro\t\tplus\t"),  # tabs
    ("Ada", "two\nlines\n\n\n"),  # line breaks and empty lines in a value
    ("Ada", " "),
])
def test_signed_factory_messages_verify_with_dkimpy(app, message_team, domain_row, name, plan):
    for body in (CLEAN_BODY, UNTIDY_BODY):
        contact = make_contact(message_team, f"reader{len(body)}{len(plan)}@example.org", name, plan=plan, seats=2)
        campaign = make_campaign(message_team, body=body, subject="Hi {{ contact.name }}  \t news")
        send = make_send(campaign, contact)
        factory = MessageFactory(campaign)
        signed, head, body_bytes, canonical = signed_message(factory, send, contact, domain_row)
        assert signed.endswith(head + b"\r\n" + body_bytes)
        assert verify(signed, domain_row)
        # A changed word in the body or a signed header breaks it.
        assert not verify(signed.replace(b"welcome to", b"welcome in").replace(b"Plan:", b"Plam:"), domain_row)
        assert not verify(signed.replace(b"Precedence: bulk", b"Precedence: list"), domain_row)


def test_a_tidy_body_is_its_own_canonical_form(app, message_team, domain_row):
    contact = make_contact(message_team, "ada@example.org", "Ada Lovelace", plan="Pro", seats=2)
    factory = MessageFactory(make_campaign(message_team, body=CLEAN_BODY))
    parts = factory.build_parts(make_send(factory.campaign, contact), contact)
    assert parts.canonical_body == parts.body()  # the payload's body as it is: no piece was changed
    untidy = make_contact(message_team, "bob@example.org", "Bob", plan="a   b\t", seats=2)
    parts = factory.build_parts(make_send(factory.campaign, untidy), untidy)
    assert parts.canonical_body != parts.body() and b"a b" in parts.canonical_body


@pytest.mark.parametrize("piece", [
    b"", b"plain=\r\n", b"two  spaces\r\n", b"tab\there\r\n", b"trailing \r\n", b"trailing\t\r\n",
    b"bare\nline feed\r\n", b"mixed \t \r\n\r\n  \r\n", b"lone\rcarriage  return\r\n", b"a =20\r\n",
])
def test_relaxed_lines_match_dkimpy_on_complete_lines(piece):
    # A piece of complete lines followed by a final line that is not empty, as in every factory body.
    body = piece + b"--end--\r\n"
    expected = Relaxed.canonicalize_body(dkim.rfc822_parse(b"From: a@example.com\r\n\r\n" + body)[1])
    assert relaxed_lines(piece) + b"--end--\r\n" == expected
    assert canonical_body_piece(piece) == (relaxed_lines(piece) == piece)


def test_sign_parts_without_a_canonical_body_and_odd_headers(app, domain_row):
    head = (b"From: Acme  News <news@acme.example>\r\nTo:\treader@example.org \r\nSubject: folded\r\n"
            b"  over\tlines  \r\nsubject: second copy\r\n")
    body = b"Hello  there \r\n\r\n\r\n"
    signed = domains.sign_parts(head, body, domain_row)
    assert signed.endswith(head + b"\r\n" + body)
    assert verify(signed, domain_row)
    assert verify(domains.sign(head + b"\r\n" + body, domain_row), domain_row)
    assert not verify(signed.replace(b"second copy", b"third copy"), domain_row)


DOTTED_BODY = """<p>
.starts with a dot
..two dots
.
</p>
<pre>{{ contact.plan }}</pre>
<p>""" + "wrap me so a soft line break lands right before a dot. " * 8 + """</p>
"""


@pytest.mark.parametrize("plan", ["plain", ".", "..", "a\n.\nb", ".leading\n.\n", "x" * 74 + ".dot"])
def test_the_payload_is_the_message_dot_stuffed_for_smtp(app, message_team, domain_row, plan):
    from app.sending.smtp import smtp_payload
    contact = make_contact(message_team, "ada@example.org", "Ada", plan=plan, seats=1)
    factory = MessageFactory(make_campaign(message_team, body=DOTTED_BODY))
    send = make_send(factory.campaign, contact)
    message = factory.build(send, contact)
    payload = factory.payload(send, contact)
    assert payload == smtp_payload(message) or payload[payload.index(b"\r\n"):] == smtp_payload(message)[
        message.index(b"\r\n"):]  # two builds may straddle a second (the Date line)
    assert b"\r\n.\r\n" not in payload[:-3] and payload.endswith(b"\r\n.\r\n")
    parts = factory.build_parts(send, contact)
    assert parts.payload_head + b"\r\n" + parts.payload_body == smtp_payload(parts.head + b"\r\n" + parts.body())
    # What the engine sends for a signed message: the signature, then the stuffed message; undone by
    # the receiving server, it verifies.
    sent = domains.signature_header(parts.head, parts.canonical_body, domain_row) + parts.payload_head + (
        b"\r\n" + parts.payload_body)
    received = sent[:-3].replace(b"\r\n..", b"\r\n.")
    assert received.endswith(parts.body()) and verify(received, domain_row)


HEADS = [
    # From signed twice over (over-signing), a folded Subject, tabs and runs of spaces
    b"From: Acme  News <news@acme.example>\r\nTo:\treader@example.org \r\nSubject: folded\r\n  over\tlines  \r\n",
    # Names that appear twice: the bottom one is signed first, then the one above (RFC 6376 5.4.2)
    b"From: a@acme.example\r\nTo: one@example.org\r\nCc: x@example.org\r\nTo: two@example.org\r\n"
    b"Cc: y@example.org\r\nSubject: first\r\nSubject: second\r\nX-Other: not signed\r\n",
    # Every signed name, one a long line, mixed case names
    b"FROM: a@acme.example\r\nto: b@example.org\r\nSubject: " + b"long " * 60 + b"\r\nDate: Fri, 4 Dec 2026 06:00:00"
    b" +0000\r\nMessage-ID: <1@acme.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Reply-To: r@acme.example\r\nList-ID: <news.acme.example>\r\nList-Unsubscribe: <https://loft.test/u/x>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nFeedback-ID: 1:1:news:loft\r\nPrecedence: bulk\r\n"
    b"X-Loft-Token: abc\r\n",
]
BODIES = [
    b"",
    b"Hello  there \r\n\r\n\r\n",  # runs of spaces, a space at a line end, empty lines at the end
    b"\t tabs\t \r\nline \t\r\n \r\n",  # white space only lines, tabs
    b"x" * 5000 + b"\r\n" + b"y" * 998 + b"\r\n",  # long lines
    "Zoë, déjà vu — 8-bit UTF-8 \r\n".encode() + b"and quoted-=\r\nprintable =C3=A9t=C3=A9 \r\n",
    b"no line break at the end  ",
]


@pytest.mark.parametrize("head", HEADS)
def test_the_signature_agrees_with_dkimpy_over_varied_heads_and_bodies(app, domain_row, head):
    """The signer's own pieces (which instance of a repeated field is signed, the relaxed form of the
    DKIM-Signature field itself, put together without rescanning it, the body hash) against dkimpy."""
    import base64
    import hashlib
    pem, _ = domains.dkim_keys(domain_row)
    fields = domains._relaxed_header_fields(head)
    include = [name for name in domains.SIGNED_HEADERS if name in {n for n, _ in fields}]
    include += [name for name in domains.OVERSIGNED if name in {n for n, _ in fields}]
    theirs = Relaxed.canonicalize_headers(dkim.select_headers(dkim.rfc822_parse(head + b"\r\n")[0], include))
    assert [line + b"\r\n" for line in domains._selected_fields(fields, include)] == [n + b":" + v for n, v in theirs]
    for body in BODIES:
        message = head + b"\r\n" + body
        signed = domains.sign_parts(head, body, domain_row)
        assert signed.endswith(message) and verify(signed, domain_row)
        assert verify(domains.sign(message, domain_row), domain_row)
        # The same body hash as dkimpy's own signature of the message, with the same key.
        ours = dict(dkim.util.parse_tag_value(dkim.rfc822_parse(signed)[0][0][1]))
        assert ours[b"bh"] == base64.b64encode(hashlib.sha256(domains.relaxed_body(body)).digest())
        dkimpy_signed = dkim.sign(message, domain_row.dkim_selector.encode(), b"acme.example", pem,
                                  canonicalize=(b"relaxed", b"relaxed"), include_headers=include)
        assert dict(dkim.util.parse_tag_value(dkim.rfc822_parse(dkimpy_signed)[0][0][1]))[b"bh"] == ours[b"bh"]
        assert ours[b"h"] == b":".join(include) and ours[b"d"] == b"acme.example"
        # Any signed header changed, added below (over-signed names) or taken away breaks it.
        assert not verify(signed.replace(b"acme.example>", b"acme.example >", 1)
                          .replace(b"From: a@", b"From: b@").replace(b"FROM: a@", b"FROM: b@"), domain_row)
        assert not verify(signed.replace(b"\r\n\r\n", b"\r\nSubject: added\r\n\r\n", 1), domain_row)


def test_header_blocks_with_a_bad_field_name_or_a_line_without_colon_go_to_dkimpy():
    for _ in range(2):  # the second time with the names already seen
        assert domains._relaxed_header_fields(b"From: a@x.example\r\nSubject:  Hi \r\n") == [
            (b"from", b"a@x.example"), (b"subject", b"Hi")]
        assert domains._relaxed_header_fields(b"From: a@x.example\r\nBad Name: v\r\n") is None
        assert domains._relaxed_header_fields(b"From: a@x.example\r\nFrom\r\n") is None
        assert domains._relaxed_header_fields(b"From: a@x.example\r\nSubject\r\n") is None
