"""The DNS health of a sender domain, as pure functions over DNS answers.

Every check takes an `answers` object (`answers.get(name, rdtype) -> [str]`, [] for NXDOMAIN or an
empty answer, LookupFailed when the server gave none) and returns a Check: status pass / warn / fail /
unknown, the reason in words, the exact record to publish, and `gate`: whether the finding alone would
get mail rejected. gate.py feeds them real answers (dnspython); tests feed them a dict (StaticAnswers)
or a DNS server on loopback.

    check_spf(domain, answers, sender_ips, expected_includes)   RFC 7208: one record, syntax, the
        DNS-querying terms (include, a, mx, ptr, exists, redirect) counted over the whole include
        tree, at most 10 (§4.6.4), at most 2 void lookups, at most 10 MX names per mx term; the
        `all` policy; whether the SMTP account is covered, where that is knowable
    check_dkim(domain, selector, public_key, answers)   the TXT at <selector>._domainkey.<domain>
        holds the key Loft signs with
    check_dmarc(from_domain, answers, dkim_domain, spf_domain)   RFC 7489: the record at
        _dmarc.<from domain>, else at the organisational domain (the public suffix list, through
        publicsuffixlist); a valid p=; alignment (adkim / aspf, relaxed or strict)
    check_mx(domain, answers)   MX, a null MX (RFC 7505 "0 ."), or at least an address (RFC 5321 §5.1)
    evaluate(checks)   the overall status and the reasons mail would be rejected; evaluate_scope the
        same for mail From one subdomain of the sender domain (its own SPF, DMARC and MX, the domain's DKIM)

What would get mail rejected (the gate), from the providers' rules (shared reference
deliverability.md §1: Gmail's, Yahoo's and Outlook.com's 2024 bulk-sender requirements, and the
rejection codes they answer with):
  - no DMARC record, or one receivers ignore (two records, no valid policy and no rua): Gmail answers
    4.7.31 / Yahoo and Outlook.com refuse bulk mail without "at least p=none";
  - neither a DKIM signature with the published key nor an SPF pass: "unauthenticated", Gmail 5.7.26,
    Outlook.com 5.7.515;
  - an SPF permerror (more than 10 lookups, more than 2 void lookups, two records, bad syntax): DMARC
    evaluates it as a fail (RFC 7489 §4.2), so SPF cannot pass for anyone; and `+all`, which lets anyone
    send as the domain: receivers' filters treat such a record as no protection at all and it is a
    known spam signal;
  - DMARC cannot pass: neither an aligned DKIM pass nor an aligned SPF pass is possible (e.g. Loft's
    d=example.com under adkim=s for mail From news.example.com, whose own SPF is missing), Gmail 4.7.32;
  - the domain has neither MX nor address records: receivers that check the envelope domain refuse
    mail from a domain nobody can answer (Postfix reject_unknown_sender_domain).
A null MX, `?all`, no `all`, a missing rua address and an SPF coverage Loft cannot know are warnings:
mail still gets through, but something is worth fixing. A lookup that timed out is unknown: it never
pauses or resumes anything.
"""
import ipaddress
import re
from dataclasses import asdict
from dataclasses import dataclass

from publicsuffixlist import PublicSuffixList

PASS, WARN, FAIL, UNKNOWN = "pass", "warn", "fail", "unknown"
_RANK = {PASS: 0, UNKNOWN: 1, WARN: 2, FAIL: 3}

MAX_LOOKUPS = 10  # RFC 7208 §4.6.4: DNS-querying terms over the whole evaluation
MAX_VOID_LOOKUPS = 2  # RFC 7208 §4.6.4, the SHOULD limit receivers apply
MAX_MX_NAMES = 10  # RFC 7208 §4.6.4: names looked up for one mx term
MAX_INCLUDE_DEPTH = 10

_psl = None


class LookupFailed(Exception):
    """The DNS server gave no answer (timeout, SERVFAIL): unknown, not absent."""


class SpfError(Exception):
    """A permanent error in the SPF record tree (RFC 7208 permerror), in words."""


@dataclass
class Check:
    key: str
    label: str
    status: str
    reason: str
    record: dict | None = None  # {"type", "name", "value"}: what to publish to fix (or keep) it
    gate: bool = False
    detail: dict | None = None
    scope: str = ""  # the From domain it is about, when not the sender domain itself (a subdomain sender)

    def as_dict(self):
        return asdict(self)


class StaticAnswers:
    """DNS answers from a dict {(name, rdtype): [values]}; a value of LookupFailed raises it."""

    def __init__(self, records):
        self.records = {(name.rstrip(".").lower(), rdtype.upper()): value for (name, rdtype), value in records.items()}
        self.queries = []

    def get(self, name, rdtype):
        key = (name.rstrip(".").lower(), rdtype.upper())
        self.queries.append(key)
        value = self.records.get(key, [])
        if value is LookupFailed or isinstance(value, LookupFailed):
            raise LookupFailed(f"no answer for {key[0]} {key[1]}")
        return list(value)


def organisational_domain(domain):
    """The registered domain (RFC 7489 §3.2) by the public suffix list: news.example.co.uk -> example.co.uk."""
    global _psl
    if _psl is None:
        _psl = PublicSuffixList()
    return _psl.privatesuffix(domain.lower().rstrip(".")) or domain.lower().rstrip(".")


def aligned(from_domain, auth_domain, mode="r"):
    """DMARC identifier alignment (RFC 7489 §3.1): strict needs the same name, relaxed the same
    organisational domain."""
    if not from_domain or not auth_domain:
        return False
    a, b = from_domain.lower().rstrip("."), auth_domain.lower().rstrip(".")
    if mode == "s":
        return a == b
    return organisational_domain(a) == organisational_domain(b)


# --- SPF ---------------------------------------------------------------------------------------

_MODIFIER = re.compile(r"^([a-z][a-z0-9_.-]*)=(.*)$", re.I)
_DIRECTIVE = re.compile(r"^([+?~-]?)([a-z0-9]+)(?::([^/]*))?((?:/\d+)?(?://\d+)?)$", re.I)
_MECHANISMS = {"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"}
_LOOKUP_TERMS = {"include", "a", "mx", "ptr", "exists"}  # and the redirect modifier
_QUALIFIER_WORDS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}


@dataclass
class Term:
    qualifier: str
    mechanism: str
    value: str  # the domain-spec or network ("" when none)
    cidr4: int | None = None
    cidr6: int | None = None

    def text(self):
        qualifier = "" if self.qualifier == "+" and self.mechanism != "all" else self.qualifier
        return f"{qualifier}{self.mechanism}{':' + self.value if self.value else ''}"


def spf_records(txt_values):
    """The TXT values that are SPF records (RFC 7208 §4.5: "v=spf1" then a space or the end)."""
    return [v for v in txt_values if v.lower() == "v=spf1" or v.lower().startswith("v=spf1 ")]


def parse_spf(record):
    """(terms, modifiers) of one SPF record, or SpfError saying what is wrong (RFC 7208 §4.6, §12)."""
    terms, modifiers = [], {}
    for part in record.split()[1:]:
        modifier = _MODIFIER.match(part)
        if modifier:
            name, value = modifier.group(1).lower(), modifier.group(2)
            if name in modifiers and name in ("redirect", "exp"):
                raise SpfError(f"the {name}= modifier appears twice")
            if name in ("redirect", "exp") and not value:
                raise SpfError(f"{part} names no domain")
            modifiers[name] = value
            continue
        match = _DIRECTIVE.match(part)
        if not match or match.group(2).lower() not in _MECHANISMS:
            raise SpfError(f"“{part}” is not an SPF mechanism")
        qualifier, mechanism, value, cidr = match.group(1) or "+", match.group(2).lower(), match.group(3), match.group(4)
        if value is not None and value == "":
            raise SpfError(f"“{part}” has a colon but no value")
        value = value or ""
        cidr4 = cidr6 = None
        if cidr:
            lengths = re.findall(r"/(/?)(\d+)", cidr)
            for double, number in lengths:
                if double:
                    cidr6 = int(number)
                else:
                    cidr4 = int(number)
        if mechanism == "ip6" and cidr6 is None:  # ip6's own prefix is written with one slash
            cidr4, cidr6 = None, cidr4
        elif mechanism == "ip4" and cidr6 is not None:
            raise SpfError(f"“{part}” is not a valid ip4 network")
        if (cidr4 is not None and cidr4 > 32) or (cidr6 is not None and cidr6 > 128):
            raise SpfError(f"“{part}” has a prefix length out of range")
        if mechanism in ("include", "exists") and not value:
            raise SpfError(f"“{part}” needs a domain")
        if mechanism == "all" and (value or cidr):
            raise SpfError(f"“{part}” takes no value")
        if mechanism in ("ip4", "ip6"):
            try:
                network = ipaddress.ip_network(value + (f"/{cidr4 if mechanism == 'ip4' else cidr6}"
                                                        if (cidr4 if mechanism == "ip4" else cidr6) is not None
                                                        else ""), strict=False)
            except ValueError:
                raise SpfError(f"“{part}” is not a valid {mechanism} network") from None
            if network.version != (4 if mechanism == "ip4" else 6) or (mechanism == "ip6" and cidr4 is not None):
                raise SpfError(f"“{part}” is not a valid {mechanism} network")
        terms.append(Term(qualifier, mechanism, value, cidr4, cidr6))
    return terms, modifiers


def _has_macro(value):
    return "%" in value


class _Walk:
    """The state of one static walk over an SPF tree: the limits RFC 7208 §4.6.4 puts on an evaluation."""

    def __init__(self, answers):
        self.answers = answers
        self.lookups = 0
        self.void = 0
        self.includes = []  # every domain reached through include: or redirect=
        self.macros = False
        self.trees = {}  # domain -> (terms, modifiers)

    def count(self, term_text):
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            raise SpfError(f"it needs more than {MAX_LOOKUPS} DNS lookups (include, a, mx, ptr, exists and "
                           f"redirect count, in included records too; the 11th was {term_text})")

    def void_lookup(self, what):
        self.void += 1
        if self.void > MAX_VOID_LOOKUPS:
            raise SpfError(f"more than {MAX_VOID_LOOKUPS} of its lookups find nothing (the last: {what})")

    def record_of(self, domain, via):
        values = spf_records(self.answers.get(domain, "TXT"))
        if not values:
            raise SpfError(f"{via} points at {domain}, which has no SPF record")
        if len(values) > 1:
            raise SpfError(f"{domain} (reached through {via}) has {len(values)} SPF records")
        return values[0]

    def walk(self, domain, record, depth=0, seen=()):
        if depth > MAX_INCLUDE_DEPTH or domain in seen:
            raise SpfError(f"the includes loop back to {domain}")
        terms, modifiers = parse_spf(record)
        self.trees[domain] = (terms, modifiers)
        for term in terms:
            if term.mechanism not in _LOOKUP_TERMS:
                continue
            self.count(term.text())
            target = term.value or domain
            if _has_macro(target):
                self.macros = True
                continue
            if term.mechanism == "include":
                self.includes.append(target)
                self.walk(target, self.record_of(target, term.text()), depth + 1, seen + (domain,))
            elif term.mechanism == "a":
                if not self.answers.get(target, "A") and not self.answers.get(target, "AAAA"):
                    self.void_lookup(term.text())
            elif term.mechanism == "mx":
                hosts = mx_hosts(self.answers.get(target, "MX"))
                if not hosts:
                    self.void_lookup(term.text())
                if len(hosts) > MAX_MX_NAMES:
                    raise SpfError(f"{term.text()} has {len(hosts)} MX hosts; receivers look up at most {MAX_MX_NAMES}")
            elif term.mechanism == "exists":
                if not self.answers.get(target, "A"):
                    self.void_lookup(term.text())
            # ptr: the name depends on the connecting address; counted, never looked up here
        has_all = any(t.mechanism == "all" for t in terms)
        redirect = modifiers.get("redirect")
        if redirect and not has_all:  # RFC 7208 §6.1: redirect is ignored when all is present
            self.count(f"redirect={redirect}")
            if _has_macro(redirect):
                self.macros = True
            else:
                self.includes.append(redirect)
                self.walk(redirect, self.record_of(redirect, f"redirect={redirect}"), depth + 1, seen + (domain,))


def mx_hosts(mx_values):
    """Exchange names of MX answers ("10 mx.example.com."), without a null MX."""
    hosts = []
    for value in mx_values:
        parts = value.split()
        host = parts[-1].rstrip(".") if parts else ""
        if host:
            hosts.append(host.lower())
    return hosts


def _matches(walk, domain, ip, depth=0):
    """check_host() (RFC 7208 §4) for one address over the walked tree: the qualifier word of the first
    matching term, "neutral" when none matches, "unknown" when a ptr, exists or macro term decides."""
    terms, modifiers = walk.trees[domain]
    address = ipaddress.ip_address(ip)
    for term in terms:
        target = term.value or domain
        if term.mechanism in ("ptr", "exists") or _has_macro(target):
            return "unknown"
        hit = False
        if term.mechanism == "all":
            hit = True
        elif term.mechanism in ("ip4", "ip6"):
            prefix = term.cidr4 if term.mechanism == "ip4" else term.cidr6
            network = ipaddress.ip_network(term.value + (f"/{prefix}" if prefix is not None else ""), strict=False)
            hit = address.version == network.version and address in network
        elif term.mechanism == "include":
            inner = _matches(walk, target, ip, depth + 1)
            if inner == "unknown":
                return "unknown"
            hit = inner == "pass"
        elif term.mechanism in ("a", "mx"):
            names = [target] if term.mechanism == "a" else mx_hosts(walk.answers.get(target, "MX"))[:MAX_MX_NAMES]
            prefix = term.cidr4 if address.version == 4 else term.cidr6
            for name in names:
                for value in walk.answers.get(name, "A" if address.version == 4 else "AAAA"):
                    network = ipaddress.ip_network(value + (f"/{prefix}" if prefix is not None else ""), strict=False)
                    if address in network:
                        hit = True
        if hit:
            return _QUALIFIER_WORDS[term.qualifier]
    redirect = modifiers.get("redirect")
    if redirect and not any(t.mechanism == "all" for t in terms) and redirect in walk.trees:
        return _matches(walk, redirect, ip, depth + 1)
    return "neutral"


def suggested_spf(domain, includes=()):
    return "v=spf1 " + " ".join([f"include:{i}" for i in includes] or ["mx"]) + " ~all"


def _fixed_spf(record, missing_includes=()):
    """The found record with its all policy made ~all and missing includes added before it."""
    parts = record.split()
    body = [p for p in parts[1:] if p.lower().lstrip("+?~-") != "all"]
    body += [f"include:{i}" for i in missing_includes]
    return " ".join(["v=spf1"] + body + ["~all"])


def check_spf(domain, answers, sender_ips=(), expected_includes=()):
    """The SPF check of `domain`. sender_ips: public addresses of the team's SMTP servers (Loft connects
    to them; a relay's outgoing servers may differ); expected_includes: the includes the account's
    provider documents (known presets), which decide coverage when given."""
    def record(value):
        return {"type": "TXT", "name": domain, "value": value}

    try:
        found = spf_records(answers.get(domain, "TXT"))
    except LookupFailed as exc:
        return Check("spf", "SPF", UNKNOWN, f"Could not look up the SPF record of {domain}: {exc}")
    if not found:
        return Check("spf", "SPF", FAIL, f"{domain} has no SPF record, so SPF cannot pass for its mail.",
                     record(suggested_spf(domain, expected_includes)), detail={"coverage": "not covered"})
    if len(found) > 1:
        return Check("spf", "SPF", FAIL, f"{domain} has {len(found)} SPF records; receivers treat more than one "
                     "as a permanent error (RFC 7208 §4.5), so SPF fails for all of its mail. Merge them into one.",
                     record(suggested_spf(domain, expected_includes)), gate=True, detail={"coverage": "not covered"})
    text = found[0]
    walk = _Walk(answers)
    try:
        walk.walk(domain, text)
    except SpfError as exc:
        return Check("spf", "SPF", FAIL, f"The SPF record of {domain} is a permanent error: {exc}. Receivers "
                     f"treat that as an SPF fail. Found: {text}", record(suggested_spf(domain, expected_includes)),
                     gate=True, detail={"coverage": "not covered", "lookups": walk.lookups})
    except LookupFailed as exc:
        return Check("spf", "SPF", UNKNOWN, f"Could not follow the SPF record of {domain}: {exc}")
    terms, modifiers = walk.trees[domain]
    detail = {"lookups": walk.lookups, "void": walk.void, "includes": walk.includes}
    policy = next((t for t in terms if t.mechanism == "all"), None)
    if policy is not None and policy.qualifier == "+":
        detail["coverage"] = "covered"
        return Check("spf", "SPF", FAIL, f"The SPF record of {domain} ends with +all (or a bare all), which lets "
                     f"anyone in the world send as {domain}: receivers treat it as no protection. Found: {text}",
                     record(_fixed_spf(text)), gate=True, detail=detail)
    # Coverage: the provider's documented include decides when we know it; else the addresses Loft
    # connects to, when public and matched; else nobody can tell from here.
    missing = [i for i in expected_includes if i not in walk.includes]
    try:
        if expected_includes:
            coverage = "not covered" if missing else "covered"
        else:
            results = {ip: _matches(walk, domain, ip) for ip in sender_ips}
            coverage = "covered" if results and all(r == "pass" for r in results.values()) else "unknown"
    except LookupFailed:
        coverage = "unknown"
    detail["coverage"] = coverage
    lookups = f"{walk.lookups} of {MAX_LOOKUPS} DNS lookups"
    if coverage == "not covered":
        return Check("spf", "SPF", WARN, f"The SPF record of {domain} does not include "
                     f"{', '.join('include:' + i for i in missing)}, which your SMTP provider needs: its servers "
                     f"fail SPF. Found: {text}", record(_fixed_spf(text, missing)), detail=detail)
    if policy is None and "redirect" not in modifiers:
        return Check("spf", "SPF", WARN, f"The SPF record of {domain} has no all term, so servers it does not "
                     f"list get a neutral result instead of a softfail. Add ~all at the end. Found: {text}",
                     record(_fixed_spf(text)), detail=detail)
    if policy is not None and policy.qualifier == "?":
        return Check("spf", "SPF", WARN, f"The SPF record of {domain} ends with ?all (neutral): it says nothing "
                     f"about servers it does not list. Use ~all. Found: {text}", record(_fixed_spf(text)),
                     detail=detail)
    if coverage == "covered":
        words = "covers your SMTP account's servers"
    elif walk.macros:
        words = "uses macros, so whether it covers your SMTP account is unknown here"
    else:
        words = ("may or may not cover your SMTP provider's outgoing servers (unknown: Loft only knows the "
                 "server it connects to); check that it has the include your provider documents")
    return Check("spf", "SPF", PASS, f"SPF record found ({lookups}); it {words}. Found: {text}", record(text),
                 detail=detail)


# --- DKIM ------------------------------------------------------------------------------------

def _tags(record):
    tags = {}
    for part in record.split(";"):
        if "=" in part:
            name, value = part.split("=", 1)
            tags[name.strip().lower()] = value.strip()
    return tags


def check_dkim(domain, selector, public_key, answers):
    """The DKIM key published at <selector>._domainkey.<domain> is the one Loft signs with."""
    name = f"{selector}._domainkey.{domain}"
    wanted = {"type": "TXT", "name": name, "value": f"v=DKIM1; k=rsa; p={public_key}"}
    try:
        values = answers.get(name, "TXT")
    except LookupFailed as exc:
        return Check("dkim", "DKIM", UNKNOWN, f"Could not look up {name}: {exc}", wanted)
    keys = [_tags(v) for v in values if "p=" in v]
    if not keys:
        return Check("dkim", "DKIM", FAIL, f"No DKIM key at {name}: receivers cannot check Loft's signature.",
                     wanted, detail={"match": False})
    published = [re.sub(r"\s+", "", k.get("p", "")) for k in keys]
    if public_key in published:
        return Check("dkim", "DKIM", PASS, "The DKIM key matches the one Loft signs with.", wanted,
                     detail={"match": True})
    if all(not p for p in published):
        return Check("dkim", "DKIM", FAIL, f"The DKIM record at {name} has an empty key (p=), which means revoked.",
                     wanted, detail={"match": False})
    return Check("dkim", "DKIM", FAIL, f"The DKIM record at {name} is not the key Loft signs with, so every "
                 "signature fails. Replace its value.", wanted, detail={"match": False})


# --- DMARC -----------------------------------------------------------------------------------

def suggested_dmarc(domain):
    return f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}"


def dmarc_records(answers, name):
    return [v for v in answers.get(name, "TXT") if re.match(r"^v\s*=\s*DMARC1\s*(;|$)", v.strip(), re.I)]


def check_dmarc(from_domain, answers, dkim_domain=None, spf_domain=None):
    """The DMARC record that applies to mail From `from_domain` (RFC 7489 §6.6.3), its policy, and the
    alignment of the DKIM signing domain and the SPF (envelope) domain with the From domain."""
    org = organisational_domain(from_domain)
    wanted = {"type": "TXT", "name": f"_dmarc.{from_domain}", "value": suggested_dmarc(org)}
    try:
        found, where = dmarc_records(answers, f"_dmarc.{from_domain}"), from_domain
        if not found and org != from_domain:
            found, where = dmarc_records(answers, f"_dmarc.{org}"), org
    except LookupFailed as exc:
        return Check("dmarc", "DMARC", UNKNOWN, f"Could not look up the DMARC record of {from_domain}: {exc}", wanted)
    if org != from_domain:
        wanted = {"type": "TXT", "name": f"_dmarc.{org}", "value": suggested_dmarc(org)}
    if not found:
        return Check("dmarc", "DMARC", FAIL, f"{from_domain} has no DMARC record. Gmail, Yahoo and Outlook.com "
                     "refuse bulk mail without one; p=none is enough.", wanted, gate=True)
    if len(found) > 1:
        return Check("dmarc", "DMARC", FAIL, f"_dmarc.{where} has {len(found)} DMARC records; receivers ignore "
                     "them all (RFC 7489 §6.6.3). Keep one.", wanted, gate=True)
    text = found[0]
    tags = _tags(text)
    key = "sp" if where != from_domain and tags.get("sp") else "p"
    policy = tags.get(key, "").lower()
    detail = {"found_at": f"_dmarc.{where}", "policy": policy}
    if policy not in ("none", "quarantine", "reject"):
        if tags.get("rua", "").lower().startswith("mailto:"):
            return Check("dmarc", "DMARC", WARN, f"The DMARC record at _dmarc.{where} has no valid p= policy; "
                         f"receivers read it as p=none because it has a rua address. Say p=none outright. Found: {text}",
                         {"type": "TXT", "name": f"_dmarc.{where}", "value": "v=DMARC1; p=none; " + "; ".join(
                             f"{k}={v}" for k, v in tags.items() if k not in ("v", "p"))}, detail=detail)
        return Check("dmarc", "DMARC", FAIL, f"The DMARC record at _dmarc.{where} has no valid policy (p=none, "
                     f"quarantine or reject), so receivers ignore it. Found: {text}", wanted, gate=True, detail=detail)
    adkim, aspf = tags.get("adkim", "r").lower()[:1] or "r", tags.get("aspf", "r").lower()[:1] or "r"
    detail.update(adkim=adkim, aspf=aspf, from_domain=from_domain, dkim_domain=dkim_domain, spf_domain=spf_domain,
                  dkim_aligned=aligned(from_domain, dkim_domain, adkim) if dkim_domain else None,
                  spf_aligned=aligned(from_domain, spf_domain, aspf) if spf_domain else None)
    keep = {"type": "TXT", "name": f"_dmarc.{where}", "value": text}
    mode = {"r": "relaxed", "s": "strict"}
    if dkim_domain and spf_domain and not detail["dkim_aligned"] and not detail["spf_aligned"]:
        return Check("dmarc", "DMARC", FAIL, f"DMARC cannot pass for mail From {from_domain}: the DKIM domain "
                     f"{dkim_domain} is not aligned ({mode.get(adkim, adkim)}) and neither is the SPF domain "
                     f"{spf_domain} ({mode.get(aspf, aspf)}). Set adkim=r, or send From {dkim_domain}.",
                     keep, gate=True, detail=detail)
    meaning = {"none": "monitoring only", "quarantine": "failing mail goes to spam",
               "reject": "failing mail is refused"}[policy]
    if not tags.get("rua"):
        return Check("dmarc", "DMARC", WARN, f"DMARC policy {key}={policy} ({meaning}) at _dmarc.{where}, but no "
                     "rua address: nobody gets the reports that show who sends as this domain.",
                     {"type": "TXT", "name": f"_dmarc.{where}", "value": text.rstrip("; ") + f"; rua=mailto:dmarc-reports@{org}"},
                     detail=detail)
    return Check("dmarc", "DMARC", PASS, f"DMARC policy {key}={policy} ({meaning}) at _dmarc.{where}; "
                 f"alignment {mode.get(adkim, adkim)} for DKIM, {mode.get(aspf, aspf)} for SPF; reports go to "
                 f"{tags['rua']}.", keep, detail=detail)


# --- MX --------------------------------------------------------------------------------------

def check_mx(domain, answers):
    """Somewhere for bounces and replies to go: MX records, else (RFC 5321 §5.1) an address."""
    try:
        values = answers.get(domain, "MX")
        hosts = mx_hosts(values)
        if not values:
            addresses = answers.get(domain, "A") + answers.get(domain, "AAAA")
    except LookupFailed as exc:
        return Check("mx", "MX (bounces)", UNKNOWN, f"Could not look up the MX records of {domain}: {exc}")
    suggestion = {"type": "MX", "name": domain, "value": f"10 mail.{domain}."}
    if values and not hosts:
        return Check("mx", "MX (bounces)", WARN, f"{domain} publishes a null MX (RFC 7505 “0 .”): it receives no "
                     "mail, so bounces and replies to it cannot come back, and some receivers refuse mail from "
                     "such a domain. Point MX at a mailbox server if you can.", suggestion, detail={"null_mx": True})
    if hosts:
        return Check("mx", "MX (bounces)", PASS, f"Bounces and replies go to {', '.join(hosts[:3])}.",
                     {"type": "MX", "name": domain, "value": values[0]}, detail={"hosts": hosts})
    if addresses:
        return Check("mx", "MX (bounces)", WARN, f"{domain} has no MX record; mail to it goes to its address "
                     f"({addresses[0]}), which may not accept mail. Publish an MX record.", suggestion)
    return Check("mx", "MX (bounces)", FAIL, f"{domain} has neither MX nor address records: receivers that check "
                 "the sender's domain refuse mail from a domain nobody can answer.", suggestion, gate=True)


# --- Overall ---------------------------------------------------------------------------------

def worst(checks):
    return max((c.status for c in checks), key=lambda s: _RANK[s], default=UNKNOWN)


def evaluate(checks):
    """{"status": the worst, "gate": [the Checks that would get mail rejected], "unknown": any lookup failed}.

    The authentication rule spans two checks: mail is unauthenticated when the DKIM key does not match
    and SPF cannot pass (no record, a permanent error, or the provider's include missing).
    """
    by_key = {c.key: c for c in checks}
    gating = [c for c in checks if c.gate]
    dkim, spf = by_key.get("dkim"), by_key.get("spf")
    if dkim is not None and spf is not None and dkim.status == FAIL and spf.status != UNKNOWN and not spf.gate \
            and (spf.detail or {}).get("coverage") == "not covered":
        gating.append(Check("auth", "Authentication", FAIL, "mail from it would be unauthenticated: the DKIM key "
                            "does not match and SPF cannot pass.", dkim.record, gate=True))
    dmarc = by_key.get("dmarc")
    if dkim is not None and spf is not None and dmarc is not None and not gating \
            and UNKNOWN not in (dkim.status, spf.status, dmarc.status) and (dmarc.detail or {}).get("dkim_domain"):
        # DMARC passes through an aligned DKIM pass or an aligned SPF pass (RFC 7489 §4.2): each may pass
        # on its own and still not count, e.g. d=example.com under adkim=s for mail From news.example.com.
        found = dmarc.detail
        dkim_counts = dkim.status == PASS and found.get("dkim_aligned")
        spf_counts = (spf.detail or {}).get("coverage") != "not covered" and found.get("spf_aligned")
        if not dkim_counts and not spf_counts:
            mode = {"r": "relaxed", "s": "strict"}
            gating.append(Check(
                "alignment", "DMARC alignment", FAIL,
                f"DMARC cannot pass for mail From {found['from_domain']}: the DKIM signature of "
                f"{found['dkim_domain']} {'is not aligned (' + mode[found['adkim']] + ')' if dkim.status == PASS else 'fails'} "
                f"and SPF for {found['spf_domain']} cannot pass. Publish its SPF record, or set adkim=r.",
                spf.record, gate=True))
    status = max((c.status for c in checks), key=lambda s: _RANK[s], default=UNKNOWN)
    unknown = any(c.status == UNKNOWN for c in checks)
    return {"status": status, "gate": gating, "unknown": unknown}


def evaluate_scope(checks, scope=""):
    """evaluate() of the checks about mail From `scope` ("" the sender domain itself): its own SPF, DMARC and
    MX, with the domain's one DKIM key (Loft signs with d=<sender domain> whatever the From subdomain)."""
    chosen = []
    for check in checks:
        if check.scope == scope or (check.key == "dkim" and not check.scope):
            base = check.key.split(":", 1)[0]
            chosen.append(check if base == check.key else Check(**dict(check.as_dict(), key=base)))
    return evaluate(chosen)


def reason_words(domain, gating):
    """“example.com has no DMARC record. Publish TXT _dmarc.example.com "v=DMARC1; …".” for the gate's findings."""
    parts = []
    for check in gating:
        text = check.reason
        if not text.startswith(domain):
            lowered = text[:1].lower() + text[1:] if text[1:2].islower() else text  # "DMARC ..." stays
            text = f"{domain}: {lowered}" if text else domain
        if check.record:
            record = check.record
            text += f" Publish {record['type']} {record['name']} \"{record['value']}\"."
        parts.append(text)
    return " ".join(parts)
