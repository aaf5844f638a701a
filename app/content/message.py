"""The per-recipient message factory: campaign mail assembled from a skeleton.

Building every message with email.message.EmailMessage tops out near 550
messages a second, far below what the engine needs, so a MessageFactory does
all the expensive work once per campaign (and A/B variant) at the start of a
batch run:

* freezes the content: composes layout and body, cleans it, compiles the HTML,
  text and subject templates (app.content.prepare.prepare);
* registers a Link row for every tracked link and rewrites it, once, in the
  template, to /c/{{ click token }}/<link id>;
* pre-encodes every static piece of the HTML and text parts in
  quoted-printable, and pre-joins the headers that are the same for everyone.

build(send, contact) then renders the templates with a small context (the
contact's fields and this recipient's signed tokens), quoted-printable-encodes
only the personalised pieces (QP is line-local, so pieces joined with soft
line breaks decode to exactly the rendered text), and joins bytes. The result
is a complete RFC 5322 message with CRLF line endings.

Every message carries: a unique Message-ID on the sender's domain, From, To,
Subject, Date, MIME-Version, List-Unsubscribe (one https URL for RFC 8058
one-click, then a mailto), List-Unsubscribe-Post, Feedback-ID, X-Loft-Token (the
send id signed for "header", to match bounces and complaints), Precedence:
bulk, and multipart/alternative text + HTML, with the team's postal address and
an unsubscribe link in the footer.

Header values never contain CR or LF (they are replaced by spaces), so a
contact's name or a subject cannot add headers. Addresses a person typed (From,
Reply-To) must be exactly one plain address: the forms refuse anything else, and
a stored value that is not (saved before those checks, or written behind them) is
refused for From and left out for Reply-To, so it can never add a recipient, a
header, or a second target to List-Unsubscribe.
"""
import base64
import email.utils
import hashlib
import itertools
import re
import secrets
import time
import typing
from urllib.parse import quote
from urllib.parse import urlsplit

from app import settings as instance_settings
from app import tokens
from app.addresses import one_address
from app.content import fields
from app.content import prepare
from app.content import sandbox
from app.content import sources
from app.content.sandbox import CLICK_TOKEN
from app.content.sandbox import OPEN_TOKEN
from app.content.sandbox import Record
from app.models import CustomField
from app.models import Link

CRLF = b"\r\n"
_HEADER_UNSAFE = re.compile(r"[\x00-\x1f\x7f]+")
_ATEXT_PHRASE = re.compile(r"^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~ ]*$")


def header_text(value):
    """A header value on one line: CR, LF and other control characters become spaces."""
    return _HEADER_UNSAFE.sub(" ", value or "").strip()


def encoded_words(text):
    """RFC 2047 "B" encoded-words of at most 64 characters, never splitting a character."""
    words = []
    chunk = []
    size = 0
    for char in text:
        length = len(char.encode("utf-8"))
        if size + length > 39:  # 39 bytes -> 52 base64 characters + 12 for =?utf-8?b??=; fits after "Reply-To: "
            words.append("".join(chunk))
            chunk, size = [], 0
        chunk.append(char)
        size += length
    if chunk:
        words.append("".join(chunk))
    return ["=?utf-8?b?" + base64.b64encode(word.encode("utf-8")).decode("ascii") + "?=" for word in words]


def unstructured(name, value):
    """A complete header line (CRLF-terminated bytes) for free text such as Subject."""
    value = header_text(value)
    if value.isascii() and "=?" not in value:
        line = f"{name}: {value}"
        if len(line) <= 78:
            return line.encode("ascii") + CRLF
        # Fold at spaces so no line passes 78 characters where words allow it.
        lines, current = [], f"{name}:"
        for word in value.split(" "):
            if current and len(current) + 1 + len(word) > 78 and current != f"{name}:":
                lines.append(current)
                current = ""
            current = f"{current} {word}"
        lines.append(current)
        return "\r\n".join(lines).encode("ascii") + CRLF
    return (f"{name}: " + "\r\n ".join(encoded_words(value))).encode("ascii") + CRLF


def _ascii_address(address):
    """The address with an IDNA domain; a non-ASCII local part stays UTF-8 (it needs SMTPUTF8)."""
    address = header_text(address).replace(" ", "")
    local, at, domain = address.rpartition("@")
    if not at:
        return address
    try:
        domain = domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        pass
    return f"{local}@{domain}"


def address_header(name, display_name, address):
    """A From/To/Reply-To line: `Name: "Display Name" <addr>`, encoding the name when needed."""
    display_name = header_text(display_name)
    address = _ascii_address(address)
    if not display_name:
        return f"{name}: {address}".encode("utf-8") + CRLF
    if display_name.isascii() and "=?" not in display_name:
        if _ATEXT_PHRASE.match(display_name) and "  " not in display_name:
            phrase = display_name
        else:
            phrase = '"' + display_name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        line = f"{name}: {phrase} <{address}>"
        if len(line) <= 78:
            return line.encode("utf-8") + CRLF
        return f"{name}: {phrase}\r\n <{address}>".encode("utf-8") + CRLF
    return _fold(f"{name}:", _phrase_items(display_name) + [f"<{address}>"]).encode("utf-8") + CRLF


def _phrase_items(display_name):
    """A non-ASCII display name as atoms and encoded-words.

    Plain ASCII words stay readable atoms; runs of other words become
    encoded-words with their inner spaces encoded, split only between words
    (the space going at the end of the earlier word), because parsers disagree
    about the whitespace between two adjacent encoded-words.
    """
    items, run = [], []

    def flush():
        if not run:
            return
        chunk = ""
        for index, word in enumerate(run):
            piece = word + (" " if index < len(run) - 1 else "")
            if chunk and len((chunk + piece).encode("utf-8")) > 39:
                items.extend(encoded_words(chunk))
                chunk = ""
            chunk += piece
        items.extend(encoded_words(chunk))
        run.clear()

    for word in display_name.split():
        if word.isascii() and _ATEXT_PHRASE.match(word) and "=?" not in word:
            flush()
            items.append(word)
        else:
            run.append(word)
    flush()
    return items


def _fold(start, items):
    """Join header items with spaces, folding (CRLF + space) so lines stay within 78 characters."""
    lines, current = [], start
    for item in items:
        if len(current) + 1 + len(item) > 78 and current.strip() and current != start:
            lines.append(current)
            current = ""
        current = f"{current} {item}"
    lines.append(current)
    return "\r\n".join(lines)


def sender_domain(from_email):
    domain = (from_email or "").rpartition("@")[2].strip().strip(">").lower() or "localhost"
    try:
        return domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        return "localhost"


class _DateHeader:
    """The Date header, formatted once per second rather than once per message."""

    def __init__(self):
        self.second = None
        self.line = b""

    def __call__(self):
        now = int(time.time())
        if now != self.second:
            self.second = now
            self.line = b"Date: " + email.utils.formatdate(now).encode("ascii") + CRLF
        return self.line


def _static_pieces(template):
    """{text: encoded} for the static pieces of a compiled template.

    Jinja yields template text as the code object's own constants, so the same
    str objects come back for every recipient: their hash is computed once and
    a lookup is an identity match.
    """
    pieces = {}
    for function in [template.root_render_func, *template.blocks.values()]:
        stack = [function.__code__]
        while stack:
            code = stack.pop()
            for constant in code.co_consts:
                if isinstance(constant, str) and constant:
                    pieces[constant] = sandbox.qp_piece(constant)
                elif hasattr(constant, "co_consts"):
                    stack.append(constant)
    return pieces


def canonical_body_piece(piece):
    """True when DKIM's relaxed body canonicalization leaves these complete lines as they are."""
    return (b"\t" not in piece and b"  " not in piece and b" \r\n" not in piece
            and piece.count(b"\n") == piece.count(b"\r\n"))


_BARE_LF = re.compile(rb"\r?\n")
_TRAILING_WSP = re.compile(rb"[\t ]+\r\n")
_WSP_RUN = re.compile(rb"[\t ]+")


def relaxed_lines(piece):
    """DKIM relaxed body canonicalization (RFC 6376 3.4.4, as dkimpy reads it) of complete lines.

    Without the rule for empty lines at the end of a body: that one applies to the
    whole body only (a factory's body always ends with its closing boundary line).
    """
    piece = _BARE_LF.sub(b"\r\n", piece)
    return _WSP_RUN.sub(b" ", _TRAILING_WSP.sub(b"\r\n", piece))


def needs_dot_stuffing(lines):
    """True when one of these complete lines starts with "." (SMTP would read a lone one as the end)."""
    return lines.startswith(b".") or b"\n." in lines


def dot_stuffed(lines):
    """RFC 5321 4.5.2 transparency for complete lines: a line that starts with "." gets another."""
    lines = lines.replace(b"\n.", b"\n..")
    return b"." + lines if lines.startswith(b".") else lines


def dot_unstuffed(lines):
    """dot_stuffed's lines as they were: the dot it added at a line start taken away again."""
    lines = lines.replace(b"\n..", b"\n.")
    return lines[1:] if lines.startswith(b"..") else lines


def stuffed_qp_piece(text):
    """sandbox.qp_piece, dot-stuffed: a piece of the SMTP payload (pieces end with a line break)."""
    piece = sandbox.qp_piece(text)
    return dot_stuffed(piece) if needs_dot_stuffing(piece) else piece


class MessageParts(typing.NamedTuple):
    """A built message for DKIM signing: the message is head + CRLF + body; what is sent is the
    signature header + payload_head + CRLF + payload_body (dot-stuffed, with the final "." line).
    The body itself is not joined on the sending path (body() gives it from the payload)."""
    head: bytes
    canonical_body: bytes
    payload_head: bytes
    payload_body: bytes

    def body(self):
        return dot_unstuffed(self.payload_body[:-3])  # without the final "." line


class MessageFactory:
    """Builds the messages of one campaign (or one A/B variant), fast.

    Create it inside an app context (it reads settings, custom fields and
    registers Link rows); build() itself touches neither the app nor the
    database. With test=True nothing is tracked or registered, the subject gets
    a "[Test] " prefix, and tokens carry send id 0, which matches no send.
    source (a sources.Source) replaces the campaign's own content, for test
    sends of a template. subject_prefix overrides the "[Test] " of a test (the
    SpamAssassin score checks the subject as recipients will read it).
    """

    def __init__(self, campaign, variant=None, base_url=None, *, test=False, unsubscribe_mailbox=None,
                 custom_fields=None, secret=None, source=None, subject_prefix=None):
        self.campaign = campaign
        self.variant = variant
        self.test = test
        team = campaign.team
        if base_url is None:
            base_url = instance_settings.base_url()
        self.base_url = base_url.rstrip("/")
        self.signer = tokens.signer(secret)
        if custom_fields is None:
            custom_fields = list(CustomField.select().where(CustomField.team == team.id))
        self.field_types = fields.field_types(custom_fields)

        source = source or sources.source_of(campaign, variant)
        self.track_opens = bool(campaign.track_opens) and not test
        self.track_clicks = bool(campaign.track_clicks) and not test and campaign.id is not None
        self._links = {}
        self.prepared = prepare.prepare(
            source.body, source.kind, source.subject, layout=source.layout, preheader=source.preheader,
            track_opens=self.track_opens, track_clicks=self.track_clicks, base_url=self.base_url,
            link_id=self._register_link if self.track_clicks else None, utm_settings=source.utm)
        names = self.prepared.names
        self.personal = "contact" in names
        self.needs = {name: name in names for name in ("webview_url", "preferences_url")}
        self._pieces = _static_pieces(self.prepared.html_template)
        self._pieces.update(_static_pieces(self.prepared.text_template))

        from_name = (source.from_name if source.from_name is not None else campaign.from_name) or team.default_from_name
        from_email = campaign.from_email or team.default_from_email
        if not from_email:
            defaults = instance_settings.get_settings()  # one read per request or task (app/settings.py)
            from_email = defaults["default_from_email"]
            from_name = from_name or defaults["default_from_name"]
        if not one_address(from_email):
            raise sandbox.RenderError(f"The From address “{header_text(from_email)}” is not one email address: "
                                      "correct it in the campaign (or the team's settings).")
        reply_to = one_address(campaign.reply_to)  # a hostile stored value is left out, never spliced in
        self.from_email = from_email
        self.domain = sender_domain(from_email)
        self.base_context = fields.base_context(team, self.base_url, source.subject, from_name, from_email)
        self.mailbox = one_address(unsubscribe_mailbox) or reply_to or from_email

        self.subject_prefix = ("[Test] " if test else "") if subject_prefix is None else subject_prefix
        self._static_subject = None
        if "contact" not in self.prepared.subject_names:
            self._static_subject = self._subject_line(self.base_context)

        install = hashlib.sha256((urlsplit(self.base_url).netloc or self.base_url).encode()).hexdigest()[:6]
        feedback_id = f"{campaign.id or 0}:{team.id}:news:loft{install}"
        self.boundary = "=_loft_" + secrets.token_hex(12)  # "=_" never occurs in quoted-printable output
        static = [address_header("From", from_name, from_email)]
        if reply_to:
            static.append(address_header("Reply-To", "", reply_to))
        static += [
            b"MIME-Version: 1.0" + CRLF,
            b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" + CRLF,
            b"Feedback-ID: " + feedback_id.encode("ascii") + CRLF,
            b"Precedence: bulk" + CRLF,
            b'Content-Type: multipart/alternative;\r\n boundary="' + self.boundary.encode("ascii") + b'"' + CRLF,
        ]
        self._static_headers = b"".join(static)
        # The body starts after the header block's blank line (sent as its own CRLF, between head and body).
        self._text_opening = (b"--" + self.boundary.encode("ascii") + CRLF
                              + b'Content-Type: text/plain; charset="utf-8"' + CRLF
                              + b"Content-Transfer-Encoding: quoted-printable" + CRLF + CRLF)
        self._html_opening = (b"\r\n--" + self.boundary.encode("ascii") + CRLF
                              + b'Content-Type: text/html; charset="utf-8"' + CRLF
                              + b"Content-Transfer-Encoding: quoted-printable" + CRLF + CRLF)
        self._closing = b"\r\n--" + self.boundary.encode("ascii") + b"--" + CRLF
        self._date = _DateHeader()
        # DKIM's relaxed body canonicalization works line by line, and every encoded piece ends with a line
        # break, so a body's canonical form is its pieces' canonical forms joined. The static pieces'
        # forms are found here once (most are their own); build_parts() checks only a recipient's pieces.
        self._static_count = len(self._pieces)
        structure = [*self._pieces.values(), self._text_opening, self._html_opening, self._closing]
        self._canonical_forms = {piece: relaxed_lines(piece) for piece in structure
                                 if not canonical_body_piece(piece)}
        # SMTP's dot-stuffing is line-local too: the payload is rendered straight into stuffed pieces, from
        # a cache whose static encodings are stuffed here once (a recipient's own by stuffed_qp_piece).
        stuffed = {piece: dot_stuffed(piece) for piece in structure if needs_dot_stuffing(piece)}
        self._stuffed_pieces = {text: stuffed.get(piece, piece) for text, piece in self._pieces.items()}
        self._stuffed_structure = tuple(stuffed.get(piece, piece)
                                        for piece in (self._text_opening, self._html_opening, self._closing))
        # The canonical form of each static stuffed piece that is not that piece itself (for build_parts).
        self._canonical_of_stuffed = {stuffed.get(piece, piece): self._canonical_forms.get(piece, piece)
                                      for piece in structure
                                      if piece in stuffed or piece in self._canonical_forms}

    # -- set-up helpers --------------------------------------------------------

    def _register_link(self, url):
        """The Link id for url in this campaign, created once (looked up again on later runs)."""
        found = self._links.get(url)
        if found is None:
            row = (Link.select(Link.id).where((Link.campaign == self.campaign.id) & (Link.url == url))
                   .order_by(Link.id).first())
            if row is None:
                row = Link.create(campaign=self.campaign.id, url=url)
            found = self._links[url] = row.id
        return found

    def _preferences_url(self, contact, fallback):
        """The contact's preference center (app.consent.preferences), or the unsubscribe page without a contact.

        Same token as preference_url(contact), with the signer the factory already holds
        (a test checks the two agree).
        """
        if contact is None or self.test or not getattr(contact, "id", None):
            return fallback
        token = self.signer.sign("preferences", contact.team_id, contact.id, self.signer.email_digest(contact.email))
        return f"{self.base_url}/p/{token}"

    def _subject_line(self, context):
        subject = sandbox.render(self.prepared.subject_template, context, sandbox.MAX_SUBJECT * 4)
        subject = fields.one_line(subject)[:sandbox.MAX_SUBJECT]
        return unstructured("Subject", self.subject_prefix + subject)

    @property
    def links(self):
        """The tracked URLs of this campaign, in order of appearance."""
        return list(self.prepared.links)

    # -- per recipient ---------------------------------------------------------------

    def message_id(self, send):
        """The Message-ID header value for this send (angle brackets included); stable across retries."""
        if self.test or not send.id:
            return f"<loft.test.{secrets.token_hex(10)}@{self.domain}>"
        tag = self.signer.sign("header", self.campaign.id, send.id)[-10:]
        return f"<loft.{self.campaign.id}.{send.id}.{tag}@{self.domain}>"

    def context(self, send, contact):
        """The template context for one recipient: base values, signed links, contact fields."""
        send_id = 0 if self.test else send.id
        sign = self.signer.sign_one
        base = self.base_url
        context = dict(self.base_context)
        context["unsubscribe_url"] = f"{base}/u/{sign('unsubscribe', send_id)}"
        if self.needs["webview_url"]:
            context["webview_url"] = f"{base}/v/{sign('view', send_id)}"
        if self.needs["preferences_url"]:
            context["preferences_url"] = self._preferences_url(contact, context["unsubscribe_url"])
        if self.track_opens:
            context[OPEN_TOKEN] = sign("open", send_id)
        if self.track_clicks:
            context[CLICK_TOKEN] = sign("click", send_id)
        if self.personal:
            if contact is None:
                contact = fields.sample_contact(getattr(send, "email", ""), "")
            context["contact"] = Record(fields.contact_fields(contact, self.field_types))
        return context

    def render_html(self, send, contact):
        """The HTML this recipient gets, as text (for the web view)."""
        return sandbox.render(self.prepared.html_template, self.context(send, contact))

    def build(self, send, contact):
        """The complete message for one recipient, as bytes with CRLF line endings."""
        head, body, _ = self._pieces_of(send, contact)
        head.append(CRLF)
        head += body
        return b"".join(head)

    def payload(self, send, contact, message_id=None):
        """build()'s message as the SMTP DATA payload: lines that start with "." get another, then
        the final "." line. Same bytes as app.sending.smtp.smtp_payload(build()), rendered from
        stuffed pieces: no pass over the message or its pieces. `message_id`: this send's
        message_id(), when the caller has it already (it is a signature to compute)."""
        head, body, _ = self._pieces_of(send, contact, stuffed=True, message_id=message_id)
        body.append(b".\r\n")
        body[0:0] = (self._stuffed_head(b"".join(head)), CRLF)
        return b"".join(body)

    def build_parts(self, send, contact, message_id=None):
        """One recipient's message in the parts DKIM signing needs (MessageParts).

        The message is head + CRLF + body; the canonical body is DKIM's relaxed body
        canonicalization of body, put together from the payload's stuffed pieces: most are
        their own canonical form, the static ones that are not were found once per campaign, and
        only a recipient's own pieces are checked here. So the signer scans nothing again.
        """
        head, body, cache = self._pieces_of(send, contact, stuffed=True, message_id=message_id)
        forms = self._canonical_of_stuffed
        for piece in itertools.islice(cache.values(), self._static_count, None):
            if needs_dot_stuffing(piece):  # only a stuffed piece has a line starting with "."
                form = relaxed_lines(dot_unstuffed(piece))
            elif not canonical_body_piece(piece):
                form = relaxed_lines(piece)
            else:
                continue
            if forms is self._canonical_of_stuffed:
                forms = dict(forms)
            forms[piece] = form
        canonical = b"".join([forms.get(piece, piece) for piece in body]) if forms else None
        body.append(b".\r\n")
        payload_body = b"".join(body)
        head = b"".join(head)
        return MessageParts(head, canonical if canonical is not None else payload_body[:-3],
                            self._stuffed_head(head), payload_body)

    @staticmethod
    def _stuffed_head(head):
        # Header lines start with a field name or folding white space; checked all the same (600 bytes).
        return dot_stuffed(head) if needs_dot_stuffing(head) else head

    def _pieces_of(self, send, contact, stuffed=False, message_id=None):
        """The header lines and body pieces of one recipient's message, and the piece cache used (a
        recipient's own pieces come after the static ones); the body's pieces dot-stuffed for the SMTP
        payload when `stuffed`."""
        context = self.context(send, contact)
        send_id = 0 if self.test else send.id
        recipient = getattr(send, "email", None) or contact.email
        if stuffed:
            cache, encode = self._stuffed_pieces.copy(), stuffed_qp_piece
            text_opening, html_opening, closing = self._stuffed_structure
        else:
            cache, encode = self._pieces.copy(), sandbox.qp_piece
            text_opening, html_opening, closing = self._text_opening, self._html_opening, self._closing
        # A recipient's pieces are added to a copy of the cache, shared by both parts.
        body = [text_opening]
        sandbox.encode_pieces(self.prepared.text_template, context, cache, body, encode=encode)
        body.append(html_opening)
        sandbox.encode_pieces(self.prepared.html_template, context, cache, body, encode=encode)
        body.append(closing)
        subject = self._static_subject or self._subject_line(context)
        name = contact.name if contact is not None else ""
        unsubscribe = context["unsubscribe_url"]
        token = self.signer.sign_one("header", send_id)
        mailto = (f"mailto:{quote(self.mailbox, safe='@')}?subject=unsubscribe%20{unsubscribe.rpartition('/')[2]}"
                  if self.mailbox else "")
        head = [
            self._date(),
            self._static_headers,
            address_header("To", name, recipient),
            subject,
            b"Message-ID: " + (message_id or self.message_id(send)).encode("ascii") + CRLF,
            (b"List-Unsubscribe: <" + unsubscribe.encode("ascii") + b">"
             + ((b",\r\n <" + mailto.encode("utf-8") + b">") if mailto else b"") + CRLF),
            b"X-Loft-Token: " + token.encode("ascii") + CRLF,
        ]
        return head, body, cache
