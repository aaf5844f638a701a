"""Address validation: is an address worth sending to, and what a person most likely meant.

    validate(address, *, dns=True) -> Verdict
    validate_many(addresses, *, dns=True, progress=None) -> [Verdict, ...]   (in the same order)

A Verdict's status is "invalid" for a reason mail cannot be delivered (syntax, no_domain, null_mx),
"risky" for one it may be delivered but should be looked at (disposable, role, dns_timeout, typo), else
"valid". The checks:

* syntax: app.addresses.normalise_email (email-validator without DNS, Loft's one normaliser).
* the domain (RFC 5321 §5.1): its MX records, else its A/AAAA records (the implicit MX); NXDOMAIN or
  neither is "no_domain"; a null MX (RFC 7505: one MX "0 .") says the domain accepts no mail, "null_mx".
  A server that does not answer in time (or answers SERVFAIL) is "dns_timeout": unknown, never invalid.
  Lookups go through dnspython's asyncio resolver, configured like app.senders.domains.resolver()
  (LOFT_DNS_NAMESERVER), at most MAX_IN_FLIGHT at once, each domain with a time limit; every domain is
  looked up once per validate_many call and its outcome kept in an in-process cache (POSITIVE_TTL /
  NEGATIVE_TTL; timeouts are not kept), keyed by the name servers asked.
* disposable: the domain, or a parent of it, on the list of the `disposable-email-domains` package
  (PyPI, maintained from github.com/disposable-email-domains). Update it with
  `pip install -U disposable-email-domains` (and the pin in requirements.txt); an instance adds its own
  domains with LOFT_DISPOSABLE_DOMAINS (comma-separated), read when the list is first used.
* role: the local part (before any +tag) names a function, not a person: RFC 2142's mailbox names and
  common ones (ROLE_LOCAL_PARTS).
* typo: the domain is close to a common mailbox provider's (Damerau-Levenshtein distance 1, or 2 for a
  long name), or its top-level domain is a known slip of .com / .net / .org; the suggestion is the
  corrected address.
"""
import asyncio
import dataclasses
import ipaddress
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver
from flask import current_app
from flask import has_app_context

from app import addresses
from app.senders.domains import DnsLookupError
from app.senders.domains import resolver

log = logging.getLogger(__name__)

STATUSES = ("valid", "risky", "invalid")
INVALID_REASONS = ("syntax", "no_domain", "null_mx")
RISKY_REASONS = ("disposable", "role", "dns_timeout", "typo")
REASON_WORDS = {
    "syntax": "This is not a valid email address",
    "no_domain": "the domain does not exist or receives no mail (no MX or address records)",
    "null_mx": "the domain says it accepts no mail (a null MX record)",
    "disposable": "the domain hands out disposable, throw-away addresses",
    "role": "the address is a role account (a team or function, not a person)",
    "dns_timeout": "the domain's DNS did not answer in time, so it could not be checked",
    "typo": "the domain looks like a typo",
}

DNS_TIMEOUT = 3.0  # seconds for one domain's lookups (MX, then A and AAAA)
MAX_IN_FLIGHT = 64  # domains looked up at once
POSITIVE_TTL = 3600.0  # seconds a domain that receives mail is kept
NEGATIVE_TTL = 600.0  # seconds a missing domain or a null MX is kept (it may be fixed soon)
CACHE_LIMIT = 200_000  # domains kept; the oldest go first

# RFC 2142 (mailbox names for common services, roles and functions), then the ones seen most on
# lists: shared inboxes, automated senders and mailing-list software.
ROLE_LOCAL_PARTS = frozenset("""
info marketing sales support abuse noc security postmaster hostmaster usenet news webmaster www uucp ftp
admin administrator root contact contacts hello help helpdesk office billing accounts accounting finance
hr jobs careers recruiting team staff enquiries enquiry inquiries inquiry feedback orders order service
customerservice press media legal privacy compliance noreply no-reply donotreply do-not-reply mailer-daemon
newsletter list listserv majordomo reception all everyone dev devnull it sysadmin
""".split())

# Mailbox providers people type by hand; an exact match is never a typo. Short names (me, aol, gmx, web,
# live, msn, mail, email) are here so that they are not "corrected", and are never suggested
# (MIN_TARGET_LABEL): one letter away from them are countless real domains.
PROVIDERS = (
    "gmail.com", "googlemail.com", "yahoo.com", "ymail.com", "rocketmail.com", "hotmail.com", "outlook.com",
    "live.com", "msn.com", "icloud.com", "me.com", "mac.com", "aol.com", "protonmail.com", "proton.me",
    "pm.me", "zoho.com", "gmx.com", "gmx.net", "gmx.de", "gmx.at", "web.de", "t-online.de", "freenet.de",
    "mail.com", "email.com", "yandex.ru", "yandex.com", "mail.ru", "comcast.net", "verizon.net", "att.net",
    "sbcglobal.net", "bellsouth.net", "cox.net", "charter.net", "earthlink.net", "btinternet.com",
    "yahoo.co.uk", "hotmail.co.uk", "yahoo.fr", "hotmail.fr", "orange.fr", "wanadoo.fr", "free.fr", "laposte.net",
    "libero.it", "virgilio.it", "yahoo.de", "hotmail.de", "outlook.de", "hotmail.it", "yahoo.it", "yahoo.es",
    "hotmail.es", "yahoo.ca", "shaw.ca", "rogers.com", "bigpond.com", "optusnet.com.au", "qq.com", "163.com",
    "naver.com", "fastmail.com", "tutanota.com", "hey.com",
)
MIN_TARGET_LABEL = 5  # a provider is suggested only when the name before its first dot is this long
LONG_LABEL = 9  # ... and two edits away only when it is this long (protonmail, googlemail, btinternet)
# Top-level domains that do not exist and are one slip away from .com, .net or .org (transposed,
# doubled, next key on the keyboard). Each is corrected to the nearest of the three.
TLD_TYPOS = frozenset("""
con cmo ocm cpm cim clm vom xom comm coom cm0 co0 c0m om0 ney nrt nwt nte ent nett orgg ogr rog prg irg
""".split())
COMMON_TLDS = ("com", "net", "org")


@dataclasses.dataclass(frozen=True)
class Verdict:
    address: str
    normalized: str
    status: str
    reasons: tuple
    suggestion: str
    message: str

    def as_json(self):
        """A dict of plain values (json.dumps writes it as it is)."""
        return {"address": self.address, "normalized": self.normalized, "status": self.status,
                "reasons": list(self.reasons), "suggestion": self.suggestion, "message": self.message}


def validate(address, *, dns=True, timeout=None):
    """The Verdict on one address; `timeout` (seconds) bounds its domain's lookups (default DNS_TIMEOUT)."""
    return validate_many([address], dns=dns, timeout=timeout)[0]


def validate_many(addresses_, *, dns=True, progress=None, timeout=None):
    """The Verdicts on `addresses_`, in order. Each domain is looked up once (and cached), MAX_IN_FLIGHT
    at a time. `progress(done, total)` is called now and then, in this thread, as addresses get their
    verdicts, and once at the end."""
    items = list(addresses_)
    total = len(items)
    parsed = [_parse(raw) for raw in items]
    outcomes = {}
    if dns:
        by_domain = {}
        for normalized, reasons in parsed:
            if normalized:
                domain = normalized.rpartition("@")[2]
                by_domain[domain] = by_domain.get(domain, 0) + 1
        done = total - sum(by_domain.values())
        reporter = _Reporter(progress, total, done)
        outcomes = lookup_domains(by_domain, timeout=timeout, on_done=reporter.add if progress else None)
    about = _DomainFacts()
    verdicts = [_verdict(raw, normalized, reasons, outcomes, about) for raw, (normalized, reasons) in zip(items, parsed)]
    if progress:
        progress(total, total)
    return verdicts


class _Reporter:
    """Calls progress(done, total) at most about every 1 % of the addresses."""

    def __init__(self, progress, total, done):
        self.progress, self.total, self.done = progress, total, done
        self.step = max(1, total // 100)
        self.last = done

    def add(self, count):
        self.done += count
        if self.done - self.last >= self.step and self.done < self.total:
            self.last = self.done
            self.progress(self.done, self.total)


def _parse(raw):
    """(normalized address, the local part's reasons), or ("", email-validator's reason) for bad syntax."""
    text = raw if isinstance(raw, str) else ""
    if not text.strip():
        return "", "There is no address."
    try:
        normalized = addresses.normalise_email(text)
    except addresses.InvalidEmail as exc:
        return "", str(exc)
    local = normalized.rpartition("@")[0]
    return normalized, ("role",) if local.partition("+")[0] in ROLE_LOCAL_PARTS else ()


class _DomainFacts(dict):
    """domain -> (disposable?, suggested domain): worked out once per domain of a call (the typo
    distances to every provider were most of the time of a large call before)."""

    def __missing__(self, domain):
        facts = self[domain] = (is_disposable(domain), suggest_domain(domain))
        return facts


def _verdict(raw, normalized, reasons, outcomes, about):
    if not normalized:  # `reasons` is email-validator's words for what is wrong
        return Verdict(raw if isinstance(raw, str) else "", "", "invalid", ("syntax",), "",
                       f"{REASON_WORDS['syntax']}: {reasons}")
    local, _, domain = normalized.rpartition("@")
    found = []
    outcome = outcomes.get(domain)
    if outcome in ("no_domain", "null_mx", "dns_timeout"):
        found.append(outcome)
    disposable, corrected = about[domain]
    if disposable:
        found.append("disposable")
    found.extend(reasons)
    suggestion = f"{local}@{corrected}" if corrected else ""
    if corrected:
        found.append("typo")
    reasons = tuple(sorted(found, key=_ORDER.index))
    if any(r in INVALID_REASONS for r in reasons):
        status = "invalid"
    elif reasons:
        status = "risky"
    else:
        status = "valid"
    return Verdict(raw, normalized, status, reasons, suggestion, _message(status, reasons, suggestion))


_ORDER = list(INVALID_REASONS + RISKY_REASONS)


def _message(status, reasons, suggestion):
    if not reasons:
        return "The address looks deliverable."
    words = [REASON_WORDS[r] for r in reasons]
    head = "Undeliverable: " if status == "invalid" else "Risky: "
    text = head + "; ".join(words) + "."
    if suggestion:
        text += f" Did you mean {suggestion}?"
    return text


# --- Disposable domains ---------------------------------------------------------

_disposable = None
_disposable_lock = threading.Lock()


def disposable_domains():
    """The package's blocklist, less its allowlist, plus LOFT_DISPOSABLE_DOMAINS; loaded once."""
    global _disposable
    if _disposable is None:
        with _disposable_lock:
            if _disposable is None:
                from disposable_email_domains import allowlist
                from disposable_email_domains import blocklist
                extra = ""
                if has_app_context():
                    extra = current_app.config.get("DISPOSABLE_DOMAINS", "") or ""
                mine = {d.strip().lower().strip(".") for d in extra.split(",") if d.strip()}
                _disposable = frozenset((set(blocklist) - set(allowlist)) | mine)
    return _disposable


def reload_disposable_domains():
    """Read the list (and LOFT_DISPOSABLE_DOMAINS) again at the next use."""
    global _disposable
    _disposable = None


def is_disposable(domain):
    """Whether `domain` or one of its parents (a.b.mailinator.com) is a disposable-address domain."""
    listed = disposable_domains()
    labels = domain.split(".")
    return any(".".join(labels[i:]) in listed for i in range(len(labels) - 1))


# --- Typos ----------------------------------------------------------------------

def distance(a, b, limit=3):
    """Damerau-Levenshtein distance (optimal string alignment: one transposition of neighbours is one
    edit), stopping early once every path is past `limit` (then any value > limit is returned)."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2 = None
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            value = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                value = min(value, previous2[j - 2] + 1)
            current[j] = value
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


_PROVIDER_SET = frozenset(PROVIDERS)
_TARGETS = tuple(p for p in PROVIDERS if len(p.partition(".")[0]) >= MIN_TARGET_LABEL)


def suggest_domain(domain):
    """The domain a person most likely meant, or "" when `domain` looks intended."""
    if domain in _PROVIDER_SET:
        return ""
    name, dot, tld = domain.rpartition(".")
    fixed = domain
    if dot and tld in TLD_TYPOS:
        fixed = f"{name}.{min(COMMON_TLDS, key=lambda t: (distance(tld, t), COMMON_TLDS.index(t)))}"
        if fixed in _PROVIDER_SET:
            return fixed
    best, best_distance = "", None
    for target in _TARGETS:
        allowed = 2 if len(target.partition(".")[0]) >= LONG_LABEL else 1
        d = distance(fixed, target, allowed)
        if d <= allowed and (best_distance is None or d < best_distance):
            best, best_distance = target, d
    if best:
        return best
    return fixed if fixed != domain else ""


# --- DNS ------------------------------------------------------------------------

_cache = {}  # (name servers, port, domain) -> (outcome, expires at, monotonic)
_cache_lock = threading.Lock()


def clear_cache():
    with _cache_lock:
        _cache.clear()


def _async_resolver(lifetime):
    """dnspython's asyncio resolver with the name servers app.senders.domains.resolver() would ask."""
    configured = resolver(lifetime)
    result = dns.asyncresolver.Resolver(configure=False)
    result.nameservers = list(configured.nameservers)
    result.port = configured.port
    result.timeout = lifetime
    result.lifetime = lifetime
    result.cache = None  # ours is per domain and outcome
    return result


def lookup_domains(counts, *, timeout=None, on_done=None):
    """{domain: "ok" | "no_domain" | "null_mx" | "dns_timeout"} for the domains of `counts` (a dict or
    any iterable of domains); `on_done(count)` is called with counts[domain] as each domain is settled."""
    domains = list(counts)
    weight = counts if isinstance(counts, dict) else {}
    if not domains:
        return {}
    lifetime = timeout or DNS_TIMEOUT
    try:
        where = _async_resolver(lifetime)
    except DnsLookupError as exc:
        # No name server to ask (no /etc/resolv.conf, a bad LOFT_DNS_NAMESERVER): every domain is unknown,
        # as if nothing answered, so an import or a sign-up goes on instead of failing.
        log.warning("address validation without DNS: %s", exc)
        if on_done:
            for domain in domains:
                on_done(weight.get(domain, 1))
        return {domain: "dns_timeout" for domain in domains}
    server_key = (tuple(where.nameservers), where.port)
    now = time.monotonic()
    outcomes, missing = {}, []
    with _cache_lock:
        for domain in domains:
            hit = _cache.get((server_key, domain))
            if hit is not None and hit[1] > now:
                outcomes[domain] = hit[0]
            else:
                missing.append(domain)
    if on_done:
        for domain in outcomes:
            on_done(weight.get(domain, 1))
    if missing:
        found = _run(_lookup_all(where, missing, lifetime, lambda d: on_done(weight.get(d, 1)) if on_done else None))
        outcomes.update(found)
        _remember(server_key, found)
    return outcomes


def _remember(server_key, found):
    now = time.monotonic()
    with _cache_lock:
        for domain, outcome in found.items():
            if outcome == "dns_timeout":
                continue
            _cache.pop((server_key, domain), None)
            _cache[(server_key, domain)] = (outcome, now + (POSITIVE_TTL if outcome == "ok" else NEGATIVE_TTL))
        while len(_cache) > CACHE_LIMIT:
            del _cache[next(iter(_cache))]  # the oldest entry: dicts keep insertion order


def _run(coroutine):
    """Run `coroutine` to its end from synchronous code, even under a running event loop (then on a
    thread of its own)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _lookup_all(where, domains, lifetime, settled):
    gate = asyncio.Semaphore(MAX_IN_FLIGHT)
    results = {}

    async def one(domain):
        async with gate:
            results[domain] = await _lookup(where, domain, lifetime)
        if settled:
            settled(domain)

    await asyncio.gather(*(one(domain) for domain in domains))
    return results


async def _lookup(where, domain, lifetime):
    """One domain's outcome: MX first; without MX records, A and AAAA (RFC 5321 §5.1)."""
    try:
        name = dns.name.from_text(domain + ".")
    except (dns.exception.DNSException, UnicodeError, ValueError):
        return "no_domain"
    deadline = time.monotonic() + lifetime
    try:
        answer = await where.resolve(name, dns.rdatatype.MX, lifetime=lifetime, search=False)
    except dns.resolver.NXDOMAIN:
        return "no_domain"
    except dns.resolver.NoAnswer:
        answer = None
    except (dns.exception.Timeout, dns.resolver.NoNameservers):
        return "dns_timeout"
    except dns.exception.DNSException:
        return "dns_timeout"
    if answer is not None:
        exchanges = [record for record in answer if not record.exchange == dns.name.root]
        if exchanges:
            return "ok"
        return "null_mx"  # RFC 7505: "0 ." alone
    left = max(0.1, deadline - time.monotonic())
    answers = await asyncio.gather(*(_has(where, name, rdtype, left) for rdtype in (dns.rdatatype.A,
                                                                                     dns.rdatatype.AAAA)))
    if True in answers:
        return "ok"
    if None in answers:
        return "dns_timeout"
    return "no_domain"


async def _has(where, name, rdtype, lifetime):
    """True / False whether `name` has an address of `rdtype` that mail could reach; None when the server
    did not answer."""
    try:
        answer = await where.resolve(name, rdtype, lifetime=lifetime, search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return False
    except dns.exception.DNSException:
        return None
    return any(_reachable(record.address) for record in answer)


_UNREACHABLE = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16",
    "224.0.0.0/3", "::/127", "fc00::/7", "fe80::/10", "ff00::/8"))


def _reachable(address):
    """Whether mail from elsewhere could reach `address`: not this host, a private or shared network
    (RFC 1918, RFC 6598, RFC 4193), link-local or multicast. (email-validator asks for a globally
    routable address; the documentation ranges of RFC 5737 / RFC 3849 stay usable, for tests.)"""
    ip = ipaddress.ip_address(address)
    return not any(ip in network for network in _UNREACHABLE if network.version == ip.version)
