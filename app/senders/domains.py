"""Sender domains: ownership verification through DNS, SPF/DKIM/DMARC checks, DKIM signing.

A team adds a domain; Loft generates a 2048-bit DKIM key (the private half
stored encrypted) and shows the records to publish. "Check DNS" looks them
up with dnspython and marks the domain verified once the TXT record
`_loft.<domain>` holds `loft-verification=<token>`. Campaigns may only send
from verified domains (is_verified_sender), and the engine signs each
message with sign().

The resolver's nameserver comes from LOFT_DNS_NAMESERVER ("host:port"),
so tests (and split-horizon setups) can point it at their own DNS server.
"""
import base64
import hashlib
import ipaddress
import re
import time

import dkim
import dns.exception
import dns.resolver
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric import utils
from dkim.canonicalization import CanonicalizationPolicy
from flask import current_app
from peewee import IntegrityError

from app import security
from app.errors import Problem
from app.models import SenderDomain
from app.models import SmtpAccount
from app.models import utcnow
from app.senders import warmup

VERIFY_PREFIX = "loft-verification="
DKIM_KEY_BITS = 2048
DNS_LIFETIME = 5.0  # seconds for each lookup, retries included

# Header fields covered by the DKIM signature, in this order, when present.
# The list headers are included so nobody can strip or swap the unsubscribe
# address without breaking the signature (Gmail and Yahoo expect this).
SIGNED_HEADERS = (b"from", b"to", b"subject", b"date", b"message-id", b"mime-version", b"content-type",
                  b"reply-to", b"cc", b"list-id", b"list-unsubscribe", b"list-unsubscribe-post", b"feedback-id",
                  b"precedence", b"x-loft-token")
# Signed once more than they occur ("over-signing"), so a copy added later breaks the signature.
OVERSIGNED = (b"from", b"subject", b"list-unsubscribe", b"list-unsubscribe-post")

_RELAXED = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")


class DomainError(Problem):
    pass


class DnsLookupError(Exception):
    """The DNS server did not give an answer (timeout, SERVFAIL, no resolver): unknown, not absent."""

    def __init__(self, message, timed_out=False):
        super().__init__(message)
        self.timed_out = timed_out


# --- Domains -------------------------------------------------------------------

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalise_domain(text):
    """A domain name as stored (lower-case, IDNA), or DomainError with what is wrong."""
    domain = (text or "").strip().lower().rstrip(".")
    if not domain:
        raise DomainError("Enter the domain you send from, e.g. example.com.")
    if "@" in domain:
        raise DomainError("Enter only the domain (the part after @), e.g. example.com, not an email address.")
    if "://" in domain or "/" in domain or " " in domain:
        raise DomainError("Enter only the domain, e.g. example.com: no https://, spaces or path.")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise DomainError("That is not a valid domain name.") from None
    labels = domain.split(".")
    if len(labels) < 2 or len(domain) > 253 or not all(_LABEL.match(label) for label in labels) \
            or labels[-1].isdigit():
        raise DomainError("That is not a valid domain name: use letters, digits, hyphens and dots, e.g. example.com.")
    return domain


def list_domains(team):
    return list(SenderDomain.select().where(SenderDomain.team == team).order_by(SenderDomain.domain))


def new_selector(now=None):
    """A dated selector (loft202611) so a key can be rotated later under a new name."""
    now = now or utcnow()
    return f"loft{now:%Y%m}"


def add_domain(team, text):
    """Add a domain with a fresh DKIM key; DomainError when invalid or already there."""
    domain = normalise_domain(text)
    if SenderDomain.select().where((SenderDomain.team == team) & (SenderDomain.domain == domain)).exists():
        raise DomainError(f"{domain} is already on the list.")
    private_pem = _generate_private_pem()  # outside any transaction: it takes a moment of CPU
    try:
        return SenderDomain.create(team=team, domain=domain, dkim_selector=new_selector(),
                                   dkim_private_key=security.encrypt(private_pem.decode()))
    except IntegrityError:
        raise DomainError(f"{domain} is already on the list.") from None


def delete_domain(domain_row):
    domain_row.delete_instance()


def verified_domains(team_id):
    """Names of the team's verified sender domains."""
    rows = SenderDomain.select(SenderDomain.domain).where(
        (SenderDomain.team == team_id) & SenderDomain.verified_at.is_null(False))
    return {row.domain for row in rows}


def _address_domain(from_email):
    address = (from_email or "").strip().strip("<>")
    if address.count("@") != 1:
        return None
    try:
        return normalise_domain(address.rsplit("@", 1)[1])
    except DomainError:
        return None


def domain_for_sender(team_id, from_email):
    """The verified SenderDomain that covers this From address (the most specific one), or None.

    news.example.com is covered by a verified example.com: proving control of a
    domain proves control of its subdomains, and DMARC's relaxed alignment
    accepts a DKIM signature by the parent domain.
    """
    domain = _address_domain(from_email)
    if domain is None:
        return None
    labels = domain.split(".")
    candidates = [".".join(labels[i:]) for i in range(len(labels) - 1)]
    rows = {row.domain: row for row in SenderDomain.select().where(
        (SenderDomain.team == team_id) & SenderDomain.verified_at.is_null(False)
        & SenderDomain.domain.in_(candidates))}
    for candidate in candidates:
        if candidate in rows:
            return rows[candidate]
    return None


def is_verified_sender(team_id, from_email):
    """Whether a campaign of this team may send From this address."""
    return domain_for_sender(team_id, from_email) is not None


# --- DKIM keys -------------------------------------------------------------------

def _generate_private_pem():
    key = rsa.generate_private_key(public_exponent=65537, key_size=DKIM_KEY_BITS)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


# (domain id, ciphertext) -> private key object; parsing a PEM per message would be slow. Signing from a
# thread without an app context works once the key is here (sign() it once in the app context first).
_keys = {}


def _private_key(domain_row):
    cache_key = (domain_row.id, domain_row.dkim_private_key)
    key = _keys.get(cache_key)
    if key is None:
        pem = security.decrypt(domain_row.dkim_private_key)
        if pem is None:
            raise DomainError(f"The DKIM key of {domain_row.domain} cannot be decrypted: LOFT_ENCRYPTION_KEY "
                              "(or LOFT_SECRET_KEY) changed since it was made. Remove and add the domain again.")
        key = serialization.load_pem_private_key(pem.encode(), password=None)
        if len(_keys) >= 256:  # forget the oldest, never all: signer threads rely on the key they warmed
            _keys.pop(next(iter(_keys)), None)
        _keys[cache_key] = key
    return key


def dkim_keys(domain_row):
    """(private PEM bytes, public key base64) of the domain, generating the pair if it has none yet."""
    if not domain_row.dkim_private_key:
        pem = _generate_private_pem()
        domain_row.dkim_private_key = security.encrypt(pem.decode())
        SenderDomain.update(dkim_private_key=domain_row.dkim_private_key).where(
            SenderDomain.id == domain_row.id).execute()
    key = _private_key(domain_row)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    public_der = key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem, base64.b64encode(public_der).decode()


def dkim_record(domain_row):
    """The TXT value to publish at <selector>._domainkey.<domain>."""
    return f"v=DKIM1; k=rsa; p={dkim_keys(domain_row)[1]}"


def sign(message_bytes, domain_row):
    """The message with a DKIM-Signature header prepended (rsa-sha256, relaxed/relaxed).

    Signs the header fields of SIGNED_HEADERS that are present (plus over-signing
    of OVERSIGNED). Sign the final bytes: nothing may rewrite the message after.
    The RSA operation is done by OpenSSL (cryptography), about 30 times faster
    than dkimpy's pure-Python RSA, and dkim.verify accepts the result (tests use
    it as the oracle).
    """
    end = message_bytes.find(b"\r\n\r\n")
    fields = _relaxed_header_fields(message_bytes[:end + 2]) if end >= 0 else None
    if fields is None:  # not plain CRLF header lines: dkimpy's parser decides what the fields are
        headers, body = dkim.rfc822_parse(message_bytes)
        fields = _dkimpy_fields(headers)
    else:
        body = message_bytes[end + 4:]
    return _signature_line(fields, relaxed_body(body), domain_row) + message_bytes


def sign_parts(head, body, domain_row, canonical_body=None):
    """head + CRLF + body, signed as sign() signs it.

    head is the header block with its last CRLF. canonical_body, when given, is the
    body's relaxed canonicalization, already known (MessageFactory.build_parts puts
    it together from its pieces), which spares scanning the whole body again.
    """
    line = signature_header(head, relaxed_body(body) if canonical_body is None else canonical_body, domain_row)
    return b"".join((line, head, b"\r\n", body))


def signature_header(head, canonical_body, domain_row):
    """The DKIM-Signature header line (CRLF-terminated) to put before head, for a body whose relaxed
    canonical form is canonical_body (what sign_parts puts before the message)."""
    fields = _relaxed_header_fields(head)
    if fields is None:
        fields = _dkimpy_fields(dkim.rfc822_parse(head + b"\r\n")[0])
    return _signature_line(fields, canonical_body, domain_row)


def _signature_line(fields, canonical_body, domain_row):
    """The DKIM-Signature header line (CRLF-terminated) for relaxed header fields and a relaxed body."""
    key, fixed_tags, selector_tag = _signing_key(domain_row)
    names = tuple([name for name, _ in fields])
    include = _included.get(names)
    if include is None:
        if b"from" not in names:
            raise DomainError("A message without a From header cannot be DKIM-signed.")
        include = [name for name in SIGNED_HEADERS if name in names]
        include += [name for name in OVERSIGNED if name in names]
        include = _remember(_included, names, b"h=" + b":".join(include), include)
    h_tag, include = include
    body_hash = base64.b64encode(hashlib.sha256(canonical_body).digest())
    tags = (fixed_tags, selector_tag + str(int(time.time())).encode(), h_tag, b"bh=" + body_hash, b"b=")
    # The signature's own field is hashed last, relaxed, with its b= empty and no line break after it. Its
    # tags hold no white space, so their relaxed form is the tags joined by "; ": the folds below
    # (";" CRLF TAB) unfold to ";" TAB, which relaxed canonicalization turns into "; ".
    signed = _selected_fields(fields, include)
    signed.append(b"dkim-signature:" + b"; ".join(tags))
    digest = hashlib.sha256(b"\r\n".join(signed)).digest()
    encoded = base64.b64encode(key.sign(digest, _PKCS1, _PREHASHED))
    # Fold between tags only, never inside a value, so the signed text is exactly what is sent.
    return b"".join((b"DKIM-Signature: ", b";\r\n\t".join(tags), b"\r\n\t".join(
        [encoded[i:i + 72] for i in range(0, len(encoded), 72)]), b"\r\n"))


_PKCS1 = padding.PKCS1v15()
_PREHASHED = utils.Prehashed(hashes.SHA256())
_included = {}  # the names of a message's header fields -> (its h= tag, the names signed), per head layout


def _remember(cache, key, *value):
    if len(cache) >= 256:  # heads of a few layouts recur; a stream of odd ones must not grow it for ever
        cache.pop(next(iter(cache)), None)
    cache[key] = value
    return value


def _signing_key(domain_row):
    """(the private key, "v=1; a=rsa-sha256; c=relaxed/relaxed; d=<domain>", "s=<selector>; t=") of a domain:
    the signature's first line and the start of its second, the same for every message."""
    cache_key = (domain_row.id, domain_row.dkim_private_key, domain_row.domain, domain_row.dkim_selector)
    found = _signing.get(cache_key)
    if found is None:
        found = _remember(_signing, cache_key, _private_key(domain_row),
                          b"v=1; a=rsa-sha256; c=relaxed/relaxed; d=" + domain_row.domain.encode(),
                          b"s=" + domain_row.dkim_selector.encode() + b"; t=")
    return found


_signing = {}  # (domain id, ciphertext, domain, selector) -> _signing_key's triple


def _dkimpy_fields(headers):
    """dkim.rfc822_parse's [name, value] pairs as _relaxed_header_fields gives them."""
    return [(name, value[:-2]) for name, value in _RELAXED.canonicalize_headers(headers)]


_WSP_TO_COMPRESS = re.compile(rb"\t[\t ]*| [\t ]+")  # only runs that change: a lone space stays as it is
_UNFOLD = re.compile(rb"\r\n(?=[\t ])")
_FIELD_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+")


def _relaxed_header_fields(head):
    """[(lowercase name, relaxed value)] of a header block, in order (RFC 6376 3.4.2, as dkimpy does it).

    None when the block is not plain CRLF-terminated fields (then dkimpy's parser decides).
    """
    if not head.endswith(b"\r\n") or head.count(b"\n") != head.count(b"\r\n") or head.startswith((b" ", b"\t")):
        return None
    text = _UNFOLD.sub(b"", head[:-2])
    if b"\t" in text or b"  " in text:
        text = _WSP_TO_COMPRESS.sub(b" ", text)
    fields = []
    names = _field_names
    for line in text.split(b"\r\n"):
        name, colon, value = line.partition(b":")
        if not colon:
            return None
        lower = names.get(name)
        if lower is None:  # a name not seen yet: checked once (the same dozen recur in every message)
            if not _FIELD_NAME.fullmatch(name):
                return None
            lower = name.lower()
            if len(names) < 1024:
                names[name] = lower
        fields.append((lower, value.strip()))
    return fields


_field_names = {}  # field names (as written) that are valid -> their lower-case form


def _selected_fields(fields, include):
    """The canonical "name:value" lines to hash for the h= list: for a name listed again, the next
    instance up from the bottom, none once they run out (dkim.select_headers)."""
    values = {}
    for name, value in fields:
        values.setdefault(name, []).append(value)
    lines = []
    for name in include:
        found = values.get(name)
        if found:
            lines.append(name + b":" + found.pop())
    return lines


def relaxed_body(body):
    """RFC 6376 relaxed body canonicalization, byte for byte what dkimpy computes, about 10x faster
    on HTML (dkimpy rewrites every single space)."""
    if body.count(b"\n") != body.count(b"\r\n"):
        body = re.sub(rb"\r?\n", b"\r\n", body)  # bare LF, as dkimpy's parser reads it
    if b"\t" in body or b"  " in body:  # a C-speed scan first: most bodies have nothing to compress
        body = _WSP_TO_COMPRESS.sub(b" ", body)
    body = body.replace(b" \r\n", b"\r\n")
    end = len(body)
    while body.endswith(b"\r\n", 0, end):
        end -= 2
    return body[:end] + b"\r\n" if end else b""


# --- DNS records to publish ----------------------------------------------------------

def verification_name(domain_row):
    return f"_loft.{domain_row.domain}"


def verification_value(domain_row):
    return VERIFY_PREFIX + domain_row.verification_token


def dkim_name(domain_row):
    return f"{domain_row.dkim_selector}._domainkey.{domain_row.domain}"


def _spf_includes(team_id):
    presets = {row.preset for row in SmtpAccount.select(SmtpAccount.preset).where(SmtpAccount.team == team_id)}
    return ["include:icloud.com"] if "icloud" in presets else []


def suggested_spf(domain_row):
    includes = _spf_includes(domain_row.team_id)
    return "v=spf1 " + " ".join(includes or ["mx"]) + " ~all"


def suggested_dmarc(domain_row):
    return f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain_row.domain}"


def dns_records(domain_row):
    """The records to publish, each {purpose, type, name, value, help}."""
    icloud = bool(_spf_includes(domain_row.team_id))
    return [
        {"key": "verification", "purpose": "Ownership", "type": "TXT", "name": verification_name(domain_row),
         "value": verification_value(domain_row),
         "help": "Proves this team controls the domain. Campaigns can send from it once Loft sees this record."},
        {"key": "dkim", "purpose": "DKIM signature key", "type": "TXT", "name": dkim_name(domain_row),
         "value": dkim_record(domain_row),
         "help": "Receivers check Loft's signature on every message with this public key. The value is long; "
                 "paste it whole (DNS hosts split it into 255-character pieces themselves)."},
        {"key": "spf", "purpose": "SPF", "type": "TXT", "name": domain_row.domain, "value": suggested_spf(domain_row),
         "help": ("Says which servers may send for the domain. " + (
             "include:icloud.com covers iCloud Mail. " if icloud else
             "Add the include: your SMTP provider documents (e.g. include:_spf.google.com for Google Workspace). ")
             + "Keep exactly one SPF record: if one exists, add to it instead of publishing a second.")},
        {"key": "dmarc", "purpose": "DMARC", "type": "TXT", "name": f"_dmarc.{domain_row.domain}",
         "value": suggested_dmarc(domain_row),
         "help": "Gmail and Yahoo require a DMARC record from bulk senders; p=none only asks for reports "
                 "(sent to the rua address) without affecting delivery."},
    ]


# --- Checking DNS ---------------------------------------------------------------

def resolver(lifetime=DNS_LIFETIME):
    """A dnspython resolver: LOFT_DNS_NAMESERVER ("host:port") when set, else the system's."""
    setting = (current_app.config.get("DNS_NAMESERVER") or "").strip()
    if not setting:
        try:
            result = dns.resolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            raise DnsLookupError("This server has no DNS resolver configured; set LOFT_DNS_NAMESERVER.") from None
    else:
        host, port = _host_port(setting)
        result = dns.resolver.Resolver(configure=False)
        result.nameservers = [host]
        result.port = port
    result.lifetime = lifetime
    result.timeout = lifetime
    return result


def _host_port(setting):
    match = re.fullmatch(r"\[?([0-9a-fA-F:.]+?)\]?(?::(\d+))?", setting)
    if not match:
        raise DnsLookupError(f"LOFT_DNS_NAMESERVER must be an IP address with an optional port, not {setting!r}.")
    host = match.group(1)
    if ":" in host and not setting.startswith("["):  # a bare IPv6 address: the whole thing is the host
        host, port = setting, 53
    else:
        port = int(match.group(2) or 53)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise DnsLookupError(f"LOFT_DNS_NAMESERVER must be an IP address with an optional port, not {setting!r}.") from None
    return host, port


def txt_records(res, name):
    """The TXT strings at `name` (multi-string records joined without spaces); [] when none exist."""
    try:
        answer = res.resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.resolver.LifetimeTimeout:
        raise DnsLookupError("The DNS server did not answer in time.", timed_out=True) from None
    except (dns.resolver.NoNameservers, dns.exception.DNSException) as exc:
        raise DnsLookupError(f"The DNS lookup failed: {exc}") from None
    return [b"".join(record.strings).decode("utf-8", "replace") for record in answer]


def _tags(record):
    tags = {}
    for part in record.split(";"):
        if "=" in part:
            name, value = part.split("=", 1)
            tags[name.strip().lower()] = value.strip()
    return tags


def _check_verification(domain_row, records):
    expected = verification_value(domain_row)
    if any(r.strip() == expected for r in records):
        return {"state": "ok", "text": "The verification record matches: this team controls the domain."}
    if any(r.strip().startswith(VERIFY_PREFIX) for r in records):
        return {"state": "fail", "text": f"A record at {verification_name(domain_row)} holds a different token. "
                                         f"Replace it with {expected}."}
    return {"state": "fail", "text": f"No verification record at {verification_name(domain_row)} yet. New DNS "
                                     "records can take from a few minutes to a few hours to appear."}


def _check_spf(domain_row, records):
    spf = [r for r in records if r.lower() == "v=spf1" or r.lower().startswith("v=spf1 ")]
    if not spf:
        return {"state": "fail", "text": f"No SPF record on {domain_row.domain}. Publish: {suggested_spf(domain_row)}"}
    if len(spf) > 1:
        return {"state": "fail", "text": f"{len(spf)} SPF records found; receivers treat more than one as an "
                                         "error (RFC 7208). Merge them into a single record."}
    record = spf[0]
    terms = record.lower().split()
    if "+all" in terms or "all" in terms:
        return {"state": "fail", "text": f"The SPF record ends with +all, which lets anyone send as "
                                         f"{domain_row.domain}. Use ~all. Found: {record}"}
    lookups = sum(1 for t in terms if t.lstrip("+-~?").split(":")[0].split("=")[0]
                  in ("include", "a", "mx", "ptr", "exists", "redirect"))
    if lookups > 10:
        return {"state": "fail", "text": f"The SPF record needs more than 10 DNS lookups ({lookups}), which "
                                         f"receivers treat as an error. Found: {record}"}
    for include in _spf_includes(domain_row.team_id):
        if include not in terms:
            return {"state": "warn", "text": f"The SPF record does not contain {include}, which your SMTP "
                                             f"account needs. Found: {record}"}
    return {"state": "ok", "text": f"SPF record found: {record}"}


def _check_dkim(domain_row, records):
    ours = dkim_keys(domain_row)[1]
    keys = [_tags(r) for r in records if "p=" in r]
    if not keys:
        return {"state": "fail", "text": f"No DKIM key at {dkim_name(domain_row)}. Publish the DKIM record below; "
                                         "without it receivers cannot check Loft's signature."}
    published = [re.sub(r"\s+", "", k.get("p", "")) for k in keys]
    if ours in published:
        return {"state": "ok", "text": "The DKIM key matches the one Loft signs with."}
    if all(not p for p in published):
        return {"state": "fail", "text": "The DKIM record has an empty key (p=), which means revoked."}
    return {"state": "fail", "text": "A DKIM record is published but it is not the key Loft signs with. "
                                     "Replace its value with the one below."}


def _check_dmarc(domain_row, records):
    dmarc = [r for r in records if r.strip().upper().startswith("V=DMARC1")]
    if not dmarc:
        return {"state": "warn", "text": f"No DMARC record at _dmarc.{domain_row.domain}. Gmail and Yahoo require "
                                         f"one from bulk senders; p=none is enough: {suggested_dmarc(domain_row)}"}
    if len(dmarc) > 1:
        return {"state": "fail", "text": "More than one DMARC record: receivers ignore them all. Keep one."}
    tags = _tags(dmarc[0])
    policy = tags.get("p", "")
    if policy not in ("none", "quarantine", "reject"):
        return {"state": "fail", "text": f"The DMARC record has no valid policy (p=none, quarantine or reject). "
                                         f"Found: {dmarc[0]}"}
    meaning = {"none": "monitoring only", "quarantine": "failing mail goes to spam",
               "reject": "failing mail is refused"}[policy]
    reports = f"; reports go to {tags['rua']}" if tags.get("rua") else "; no rua address, so no reports"
    return {"state": "ok", "text": f"DMARC policy p={policy} ({meaning}){reports}."}


def check_dns(domain_row, lifetime=DNS_LIFETIME):
    """Look up the four records now, store the outcome, and verify the domain when the token matches.

    Returns {"checked_at", "verification", "spf", "dkim", "dmarc"}, each check
    being {"state": ok|warn|fail|error, "text": words}. A verified domain stays
    verified when a later check cannot reach DNS.
    """
    checks = (("verification", verification_name(domain_row), _check_verification),
              ("spf", domain_row.domain, _check_spf),
              ("dkim", dkim_name(domain_row), _check_dkim),
              ("dmarc", f"_dmarc.{domain_row.domain}", _check_dmarc))
    status = {"checked_at": utcnow().strftime("%Y-%m-%d %H:%M UTC")}
    try:
        res = resolver(lifetime)
    except DnsLookupError as exc:
        res, setup_error = None, str(exc)
    for key, name, check in checks:
        if res is None:  # no usable resolver, or it already timed out: don't make the person wait again
            status[key] = {"state": "error", "text": setup_error}
            continue
        try:
            status[key] = check(domain_row, txt_records(res, name))
        except DnsLookupError as exc:
            status[key] = {"state": "error", "text": f"Could not look up {name}: {exc}"}
            if exc.timed_out:
                res, setup_error = None, f"Not checked: the DNS server did not answer for {name}."
    updates = {"dns_status": status}
    if status["verification"]["state"] == "ok" and domain_row.verified_at is None:
        updates["verified_at"] = utcnow()
    SenderDomain.update(**updates).where(SenderDomain.id == domain_row.id).execute()
    return status


def last_status(domain_row):
    """The stored outcome of the last check_dns(), or None before the first check."""
    status = domain_row.dns_status
    return status if isinstance(status, dict) and status else None


def sender_warning(team):
    """Words for the settings page when the team's default From address cannot send yet, else None.

    Any address may be saved (the domain may be verified later), but team mail only goes out From a
    verified sender domain, through the team's own SMTP account: say so where the address is set.
    """
    address = team.default_from_email
    if address and not is_verified_sender(team.id, address):
        return (f"Mail From {address} cannot go out until {address.rpartition('@')[2]} is verified under "
                "Sender domains: test sends, campaigns and sign-up confirmations use this team's verified "
                "domains and its own SMTP account only.")
    return None


def save_warmup_plan(domain_row, form, whole_number):
    """The domain's warm-up plan from its form (app/senders/warmup.py): every message From the domain,
    through any of the team's accounts, counts against it. Nothing is stored unless the whole form is
    valid; DomainError carries a message per field. `whole_number` is the forms' number parser."""
    errors = {}
    values = warmup.start_values(form, domain_row, errors, whole_number)
    if errors:
        raise DomainError(errors=errors)
    SenderDomain.update(**values).where(SenderDomain.id == domain_row.id).execute()
    return SenderDomain.get_by_id(domain_row.id)


def warmup_form_values(domain_row):
    """The domain's plan as form data (the defaults, a double-daily plan, before it has one)."""
    values = {field: getattr(domain_row, field) for field in
              ("warmup_preset", "warmup_first_day", "warmup_growth_percent", "warmup_target")}
    values["warmup"] = domain_row.warmup_started_on is not None
    return values
