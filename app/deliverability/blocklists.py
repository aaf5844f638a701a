"""DNS blocklists (RFC 5782): are the team's sending domains or its SMTP servers' addresses listed?

How a list is asked (RFC 5782 §2): an IPv4 address is queried as its octets reversed under the list's
zone (192.0.2.10 on zen.spamhaus.org: 10.2.0.192.zen.spamhaus.org), an IPv6 address as its 32 nibbles
reversed (§2.4), a domain as itself under the zone (example.com.dbl.spamhaus.org). An A record in
127.0.0.0/8 means listed, and its value says which sub-list (Spamhaus ZEN: .2 SBL, .3 CSS, .4-.7 XBL, .9
DROP, .10-.11 PBL); the TXT record at the same name says why, often with a URL. NXDOMAIN means not listed.

What is *not* a listing, and is shown as "could not check" instead:
  - 127.255.255.0/24: Spamhaus's error range (.252 a typo in the zone, .254 asked through a public or open
    resolver, .255 over the query limit); any list may use it, so it is read that way for every list;
  - a list's own refusal codes (Spamhaus DBL 127.0.1.255: IP queries refused; SURBL 127.0.0.1: blocked);
  - an answer outside 127.0.0.0/8 (a resolver that rewrites NXDOMAIN to an advertising page);
  - a timeout, SERVFAIL or REFUSED;
  - every answer of a list that lists its own test entry (RFC 5782 §5: 127.0.0.1 for an address list,
    "invalid" for a domain list, never listed by a working one): a lapsed zone that answers every name.
Saying "listed" on these would send people chasing a listing that does not exist.

What is checked: every SMTP account's host, resolved to its A and AAAA addresses (an IP literal as it is),
against the address lists, and every sender domain against the domain lists. Private and loopback
addresses (RFC 1918, ULA, 127/8, link-local) are not asked about: no list lists them, and the question
would tell the list operator about the network. The lists are instance settings (Admin > Settings):
`blocklist_address_zones` and `blocklist_domain_zones`.

All questions go out at once (a thread pool) with a lifetime each, and answers are kept for CACHE_SECONDS
per (DNS server, name), so teams whose accounts share a provider's host ask once per periodic run. "Check
now" asks again (force) and is limited per team (CHECK_NOW_LIMIT in CHECK_NOW_WINDOW).

The last answer per (team, target, zone) is a BlocklistStatus row. An alert (a notice, emailed to the
team's Administrators by tasks/notices.py) goes out when a listing starts and when it ends; an unknown
answer changes neither, so a flaky list does not send "delisted" and then "listed" again.
"""
import concurrent.futures
import dataclasses
import ipaddress
import logging
import re
import threading
import time

import dns.exception
import dns.resolver
from flask import current_app

from app import settings as instance_settings
from app.consent import ratelimit
from app.db import db
from app.errors import Problem
from app.models import BlocklistStatus
from app.models import SenderDomain
from app.models import SmtpAccount
from app.models import Team
from app.models import utcnow
from app.notices import alerts
from app.senders import domains as domain_services

log = logging.getLogger(__name__)

LIFETIME = 3.0  # seconds for each question, retries included
CACHE_SECONDS = 900
MAX_WORKERS = 16
CHECK_NOW_LIMIT = 5
CHECK_NOW_WINDOW = 600  # seconds
MAX_ZONES = 12
LISTED, CLEAN, UNKNOWN, SKIPPED = "listed", "clean", "unknown", "skipped"
ERROR_RANGE = ipaddress.ip_network("127.255.255.0/24")
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
# Not asked about: no list holds them. Documentation ranges (192.0.2.0/24, 2001:db8::/32) are asked about,
# as any public address, so tests can use them (RFC 5737, RFC 3849).
PRIVATE = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
                                             "127.0.0.0/8", "169.254.0.0/16", "0.0.0.0/8", "fc00::/7",
                                             "fe80::/10", "::1/128", "::/128")]


class BlocklistError(Problem):
    pass


@dataclasses.dataclass(frozen=True)
class KnownList:
    name: str
    removal: str  # where to look a listing up and ask for removal
    codes: dict  # "127.0.0.2" -> words
    refusals: dict = dataclasses.field(default_factory=dict)  # codes that mean "not answered", -> words


_SPAMHAUS_REMOVAL = "https://check.spamhaus.org/"
_ZEN_CODES = {"127.0.0.2": "Spamhaus SBL: a known spam source or spam operation",
              "127.0.0.3": "Spamhaus CSS: low-reputation mail seen from this address (automated)",
              "127.0.0.4": "Spamhaus XBL: an infected or exploited machine (botnet, open proxy)",
              "127.0.0.5": "Spamhaus XBL: an infected or exploited machine",
              "127.0.0.6": "Spamhaus XBL: an infected or exploited machine",
              "127.0.0.7": "Spamhaus XBL: an infected or exploited machine",
              "127.0.0.9": "Spamhaus DROP: a hijacked or criminal network",
              "127.0.0.10": "Spamhaus PBL (set by the ISP): this address should not send mail directly",
              "127.0.0.11": "Spamhaus PBL: an end-user address that should not send mail directly",
              "127.0.0.30": "Spamhaus BCL: a botnet controller"}
_DBL_CODES = {"127.0.1.2": "Spamhaus DBL: a low-reputation (spam) domain",
              "127.0.1.4": "Spamhaus DBL: a phishing domain",
              "127.0.1.5": "Spamhaus DBL: a malware domain",
              "127.0.1.6": "Spamhaus DBL: a botnet command-and-control domain",
              "127.0.1.102": "Spamhaus DBL: a legitimate domain abused for spam",
              "127.0.1.103": "Spamhaus DBL: a legitimate domain abused as a redirector",
              "127.0.1.104": "Spamhaus DBL: a legitimate domain abused for phishing",
              "127.0.1.105": "Spamhaus DBL: a legitimate domain abused by malware",
              "127.0.1.106": "Spamhaus DBL: a legitimate domain abused for botnet command and control"}
_DBL_REFUSALS = {"127.0.1.255": "the list refuses IP addresses as queries"}
_SURBL_BITS = {2: "SURBL: spam (legacy)", 8: "SURBL PH: phishing", 16: "SURBL MW: malware",
               64: "SURBL ABUSE: spam", 128: "SURBL CR: cracked site"}
_SURBL_CODES = {f"127.0.0.{value}": ", ".join(words for bit, words in _SURBL_BITS.items() if value & bit)
                for value in range(2, 256) if any(value & bit for bit in _SURBL_BITS)}

# By the zone's last labels, so a Spamhaus DQS zone (<key>.zen.dq.spamhaus.net) is read as ZEN.
KNOWN_LISTS = {
    "zen.spamhaus.org": KnownList("Spamhaus ZEN", _SPAMHAUS_REMOVAL, _ZEN_CODES),
    "zen.dq.spamhaus.net": KnownList("Spamhaus ZEN", _SPAMHAUS_REMOVAL, _ZEN_CODES),
    "dbl.spamhaus.org": KnownList("Spamhaus DBL", _SPAMHAUS_REMOVAL, _DBL_CODES, _DBL_REFUSALS),
    "dbl.dq.spamhaus.net": KnownList("Spamhaus DBL", _SPAMHAUS_REMOVAL, _DBL_CODES, _DBL_REFUSALS),
    "b.barracudacentral.org": KnownList("Barracuda", "https://www.barracudacentral.org/rbl/removal-request",
                                        {"127.0.0.2": "Barracuda Reputation Block List: poor sending reputation"}),
    "bl.spamcop.net": KnownList("SpamCop", "https://www.spamcop.net/bl.shtml",
                                {"127.0.0.2": "SpamCop: recipients reported spam from this address"}),
    "multi.surbl.org": KnownList("SURBL", "https://surbl.org/surbl-analysis", _SURBL_CODES,
                                 {"127.0.0.1": "the list blocked this resolver's queries"}),
}
_ERROR_WORDS = {"127.255.255.252": "the list says the zone name has a typo",
                "127.255.255.254": "the list refuses queries through a public or open resolver; use a resolver "
                                   "of your own (set LOFT_DNS_NAMESERVER)",
                "127.255.255.255": "the list says this server sent too many queries"}


@dataclasses.dataclass(frozen=True)
class ListAnswer:
    status: str  # LISTED | CLEAN | UNKNOWN
    codes: tuple = ()
    meaning: str = ""
    reason: str = ""


# --- Names and answers (pure) --------------------------------------------------------------------

def known_list(zone):
    labels = zone.split(".")
    for i in range(len(labels)):
        found = KNOWN_LISTS.get(".".join(labels[i:]))
        if found:
            return found
    return None


def reversed_address(address):
    """10.2.0.192 for 192.0.2.10; the 32 nibbles of an IPv6 address, last first (RFC 5782 §2.4)."""
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        return ".".join(reversed(str(ip).split(".")))
    return ".".join(reversed(ip.exploded.replace(":", "")))


def query_name(kind, target, zone):
    if kind == "address":
        return f"{reversed_address(target)}.{zone}"
    return f"{target}.{zone}"


def interpret(zone, codes):
    """(status, meaning) for the A records a list answered with (strings); () is not listed."""
    if not codes:
        return CLEAN, "Not listed."
    known = known_list(zone)
    meanings, problems = [], []
    for code in sorted(set(codes), key=lambda c: tuple(int(p) for p in c.split(".")) if _is_ipv4(c) else (999,)):
        if not _is_ipv4(code) or ipaddress.ip_address(code) not in LOOPBACK:
            problems.append(f"the answer {code} is not a blocklist code (a resolver that rewrites "
                            "missing names?)")
        elif ipaddress.ip_address(code) in ERROR_RANGE:
            problems.append(_ERROR_WORDS.get(code, f"the list answered with its error code {code}"))
        elif known and code in known.refusals:
            problems.append(known.refusals[code])
        else:
            meanings.append(known.codes.get(code, f"{known.name}: listed (code {code})") if known
                            else f"Listed (code {code})")
    if meanings:  # a real listing beside an error code is still a listing
        return LISTED, "; ".join(dict.fromkeys(meanings))
    return UNKNOWN, "Could not check: " + "; ".join(dict.fromkeys(problems)) + "."


def _is_ipv4(text):
    try:
        return ipaddress.ip_address(text).version == 4
    except ValueError:
        return False


def removal_link(zone, reason=""):
    """Where to ask for removal: the list's own page, else an http(s) URL in its TXT reason, else ''."""
    known = known_list(zone)
    if known:
        return known.removal
    match = re.search(r"https?://[^\s\"'<>]+", reason or "")
    return match.group(0) if match else ""


def is_private(address):
    ip = ipaddress.ip_address(address)
    return any(ip.version == net.version and ip in net for net in PRIVATE)


def parse_zones(text, field):
    """The zones of a settings textarea (one per line, or separated by commas/spaces), checked, or
    BlocklistError naming the first bad one. Zone names only: no URL, IP address, port or wildcard."""
    zones = []
    for item in re.split(r"[\s,]+", (text or "").strip().lower()):
        if not item:
            continue
        zone = item.rstrip(".")
        labels = zone.split(".")
        if len(labels) < 2 or len(zone) > 200 or labels[-1].isdigit() \
                or not all(re.fullmatch(r"(?!-)[a-z0-9_-]{1,63}(?<!-)", label) for label in labels):
            raise BlocklistError(errors={field: f"{item[:80]!r} is not a DNS zone name. Enter zone names only, "
                                                "one a line, e.g. zen.spamhaus.org."})
        if zone not in zones:
            zones.append(zone)
    if len(zones) > MAX_ZONES:
        raise BlocklistError(errors={field: f"At most {MAX_ZONES} lists: each one is asked about every "
                                            "address or domain at every check."})
    return zones


def zones():
    """(address zones, domain zones) from the instance settings."""
    values = instance_settings.get_settings()
    return list(values["blocklist_address_zones"]), list(values["blocklist_domain_zones"])


# --- Asking DNS ---------------------------------------------------------------------------------

_cache = {}  # (DNS server, name) -> (expires, ListAnswer)
_cache_lock = threading.Lock()
_clock = time.monotonic  # tests move it forward


def clear_cache():
    with _cache_lock:
        _cache.clear()


def ask(res, kind, target, zone):
    """One list's answer about one target; never raises."""
    name = query_name(kind, target, zone)
    try:
        answer = res.resolve(name, "A")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return ListAnswer(CLEAN, meaning="Not listed.")
    except dns.resolver.LifetimeTimeout:
        return ListAnswer(UNKNOWN, meaning=f"Could not check: {zone} did not answer within {res.lifetime:g} s.")
    except dns.exception.DNSException as exc:  # SERVFAIL, REFUSED, a malformed answer
        return ListAnswer(UNKNOWN, meaning=f"Could not check: the query to {zone} failed ({_short(exc)}).")
    codes = tuple(sorted({record.address for record in answer}))
    status, meaning = interpret(zone, codes)
    reason = ""
    if status == LISTED:
        try:
            reason = " ".join(domain_services.txt_records(res, name))[:1000]
        except domain_services.DnsLookupError:
            reason = ""  # the listing stands without its reason
    return ListAnswer(status, codes, meaning, reason)


def _short(exc):
    return str(exc).split(";")[0][:200] or type(exc).__name__


def ask_all(res, questions, force=False):
    """{(kind, target, zone): ListAnswer} for every question, asked at once through `res`; cached answers
    reused unless `force`. An unknown answer is never cached: the next check asks again."""
    server = current_app.config.get("DNS_NAMESERVER") or "system"
    answers, missing = {}, []
    now = _clock()
    with _cache_lock:
        for question in dict.fromkeys(questions):
            cached = _cache.get((server, query_name(*question)))
            if cached and cached[0] > now and not force:
                answers[question] = cached[1]
            else:
                missing.append(question)
    if missing:
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(missing))) as pool:
            fresh = dict(zip(missing, pool.map(lambda q: ask(res, *q), missing)))
        answers.update(fresh)
        expires = _clock() + CACHE_SECONDS
        with _cache_lock:
            for key in [key for key, (until, _) in _cache.items() if until <= now]:
                del _cache[key]  # expired: the cache holds at most what the last 15 minutes asked
            for question, answer in fresh.items():
                if answer.status != UNKNOWN:
                    _cache[(server, query_name(*question))] = (expires, answer)
    return answers


# RFC 5782 §5: an IPv4 list must never list 127.0.0.1, a domain list never the name "invalid". A list that
# does is broken or lists everything (a zone that lapsed and now answers every name), so its answers mean nothing.
TEST_POINTS = {"address": "127.0.0.1", "domain": "invalid"}


def _test_points(questions):
    return list(dict.fromkeys((kind, TEST_POINTS[kind], zone) for kind, _, zone in questions))


def _without_broken_lists(answers):
    """The answers without the test points, and those of a list that listed its test point as unknown."""
    broken = {(kind, zone) for (kind, target, zone), answer in answers.items()
              if target == TEST_POINTS[kind] and answer.status == LISTED}
    result = {}
    for (kind, target, zone), answer in answers.items():
        if target == TEST_POINTS[kind]:
            continue
        if (kind, zone) in broken:
            answer = ListAnswer(UNKNOWN, meaning=f"Could not check: {zone} says its test entry "
                                                 f"{TEST_POINTS[kind]} is listed, which a working list never does "
                                                 "(RFC 5782): it is broken or lists everything.")
        result[(kind, target, zone)] = answer
    return result


def host_addresses(res, hosts):
    """({address: [hosts]}, {host: why it could not be resolved}) for the SMTP hosts, A and AAAA at once."""
    def lookup(host):
        try:
            return [str(ipaddress.ip_address(host.strip("[]")))], None
        except ValueError:
            pass
        found, errors = [], []
        for rdtype in ("A", "AAAA"):
            try:
                found += [record.address for record in res.resolve(host, rdtype)]
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except dns.resolver.LifetimeTimeout:
                errors.append(f"the DNS server did not answer for {host} within {res.lifetime:g} s")
            except dns.exception.DNSException as exc:
                errors.append(f"the lookup of {host} failed ({_short(exc)})")
        if found:
            return found, None
        return [], ("; ".join(errors) if errors else f"{host} has no A or AAAA record")

    addresses, failures = {}, {}
    hosts = sorted(set(hosts))
    if not hosts:
        return addresses, failures
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(hosts))) as pool:
        for host, (found, error) in zip(hosts, pool.map(lookup, hosts)):
            if error:
                failures[host] = error
            for address in found:
                addresses.setdefault(str(ipaddress.ip_address(address)), []).append(host)
    return addresses, failures


# --- A team's check -------------------------------------------------------------------------------

def check_team(team_id, force=False, lifetime=LIFETIME):
    """Ask every configured list about the team's SMTP addresses and sender domains, store the answers,
    and alert on listings that start or end. Returns the rows as report_for() does."""
    team_id = team_id.id if isinstance(team_id, Team) else int(team_id)
    address_zones, domain_zones = zones()
    hosts = [row.host for row in SmtpAccount.select(SmtpAccount.host).where(SmtpAccount.team == team_id)]
    names = [row.domain for row in SenderDomain.select(SenderDomain.domain).where(SenderDomain.team == team_id)]
    try:
        res = domain_services.resolver(lifetime)
    except domain_services.DnsLookupError as exc:  # no resolver configured: every answer is unknown, in words
        res, setup_error = None, str(exc)
    if res is None:
        addresses, failures = {}, {host: setup_error for host in hosts}
    else:
        addresses, failures = host_addresses(res, hosts)
    public = {address: found for address, found in addresses.items() if not is_private(address)}
    questions = [("address", address, zone) for address in public for zone in address_zones] \
        + [("domain", name, zone) for name in names for zone in domain_zones]
    if res is None:
        answers = {question: ListAnswer(UNKNOWN, meaning=f"Could not check: {setup_error}") for question in questions}
    else:
        answers = _without_broken_lists(ask_all(res, questions + _test_points(questions), force))
    rows = []
    for (kind, target, zone), answer in answers.items():
        rows.append(dict(kind=kind, target=target, zone=zone, status=answer.status, codes=list(answer.codes),
                         meaning=answer.meaning, reason=answer.reason, hosts=public.get(target, [])))
    for address in sorted(set(addresses) - set(public)):
        rows.append(dict(kind="address", target=address, zone="", status=SKIPPED, codes=[], reason="",
                         hosts=addresses[address], meaning="Not checked: a private or loopback address, which "
                                                           "no blocklist lists."))
    for host, error in failures.items():
        rows.append(dict(kind="host", target=host, zone="", status=UNKNOWN, codes=[], reason="", hosts=[host],
                         meaning=f"Could not check this SMTP host's addresses: {error}."))
    _store(team_id, rows, keep_addresses=bool(failures))
    return report_for(team_id)


def _store(team_id, rows, keep_addresses):
    """Write the answers; drop rows of targets and lists no longer configured (but keep the addresses'
    rows when a host could not be resolved this time, so a DNS hiccup does not forget a listing)."""
    now = utcnow()
    started, ended = [], []
    with db.atomic():
        for row in rows:
            key = ((BlocklistStatus.team == team_id) & (BlocklistStatus.target == row["target"])
                   & (BlocklistStatus.zone == row["zone"]))
            values = dict(row, checked_at=now)
            (BlocklistStatus.insert(team=team_id, **values)
             .on_conflict(conflict_target=[BlocklistStatus.team, BlocklistStatus.target, BlocklistStatus.zone],
                          update={getattr(BlocklistStatus, name): value for name, value in values.items()})
             .execute())
            # Conditional updates: of two checks at once, only one sees the change and alerts.
            if row["status"] == LISTED and BlocklistStatus.update(listed_since=now).where(
                    key & BlocklistStatus.listed_since.is_null()).execute():
                started.append(row)
            elif row["status"] == CLEAN and BlocklistStatus.update(listed_since=None).where(
                    key & BlocklistStatus.listed_since.is_null(False)).execute():
                ended.append(row)
        current = {(row["target"], row["zone"]) for row in rows}
        stale = [row.id for row in BlocklistStatus.select(BlocklistStatus.id, BlocklistStatus.target,
                                                          BlocklistStatus.zone, BlocklistStatus.kind)
                 .where(BlocklistStatus.team == team_id)
                 if (row.target, row.zone) not in current and not (keep_addresses and row.kind == "address")]
        if stale:
            BlocklistStatus.delete().where(BlocklistStatus.id.in_(stale)).execute()
        if started:
            _alert(team_id, started, listed=True)
        if ended:
            _alert(team_id, ended, listed=False)


def _what(row):
    if row["kind"] == "address" and row["hosts"]:
        return f"{row['target']} ({', '.join(row['hosts'])})"
    return row["target"]


def _alert(team_id, rows, listed):
    targets = list(dict.fromkeys(_what(row) for row in rows))
    if listed:
        subject = f"Blocklisted: {', '.join(targets)}"[:300]
        lines = ["Mail from these addresses or domains is likely to be refused or sent to spam by receivers "
                 "that use these blocklists:"]
        for row in rows:
            link = removal_link(row["zone"], row["reason"])
            lines.append(f"- {_what(row)} is listed on {row['zone']}: {row['meaning']}"
                         + (f" Reason given: {row['reason']}" if row["reason"] else "")
                         + (f" Look it up and ask for removal at {link}" if link else ""))
        lines.append("Find and stop the cause first (a compromised account, a purchased list, missing "
                     "consent), then ask the list for removal. See the sender domain page under Sending.")
    else:
        subject = f"No longer blocklisted: {', '.join(targets)}"[:300]
        lines = [f"- {_what(row)} is no longer listed on {row['zone']}." for row in rows]
    alerts.notify(team_id, subject, "\n".join(lines), kind="blocklist",
                  data={"listed": listed, "items": [[row["target"], row["zone"]] for row in rows]})


# --- Reading and the people's button ---------------------------------------------------------------

_RANK = {LISTED: 0, UNKNOWN: 1, CLEAN: 2, SKIPPED: 3}


def report_for(team_id, domain=None):
    """The stored answers for a page: {"domain": rows about `domain`, "addresses": {address: rows},
    "hosts": rows of hosts that did not resolve, "checked_at", "listed": how many rows say listed}."""
    rows = BlocklistStatus.select().where(BlocklistStatus.team == team_id)
    report = {"domain": [], "addresses": {}, "hosts": [], "checked_at": None, "listed": 0}
    # Each target's listings first, then what could not be checked, then the rest.
    for row in sorted(rows, key=lambda r: (r.kind, r.target, _RANK.get(r.status, 9), r.zone)):
        if row.kind == "domain" and domain is not None and row.target != domain:
            continue
        if row.kind == "domain":
            report["domain"].append(row)
        elif row.kind == "address":
            report["addresses"].setdefault(row.target, []).append(row)
        else:
            report["hosts"].append(row)
        report["listed"] += row.status == LISTED
        report["checked_at"] = max(filter(None, (report["checked_at"], row.checked_at)), default=None)
    return report


def check_now(team, domain=None, lifetime=LIFETIME):
    """"Check now" on the domain page: at most CHECK_NOW_LIMIT times in CHECK_NOW_WINDOW per team, since
    each press asks every list about every address and domain, and lists limit how often they are asked."""
    if not ratelimit.hit("blocklist-check", team.id, CHECK_NOW_LIMIT, CHECK_NOW_WINDOW):
        raise BlocklistError(f"Blocklists were checked {CHECK_NOW_LIMIT} times in the last "
                             f"{CHECK_NOW_WINDOW // 60} minutes; the results below are current. Try again later.")
    check_team(team.id, force=True, lifetime=lifetime)
    return report_for(team.id, domain)


def teams_to_check():
    """Ids of the teams with an SMTP account or a sender domain."""
    with_accounts = SmtpAccount.select(SmtpAccount.team).distinct()
    with_domains = SenderDomain.select(SenderDomain.team).distinct()
    return sorted({row.team_id for row in with_accounts} | {row.team_id for row in with_domains})


def check_all(lifetime=LIFETIME):
    """The periodic check: every team, one after the other (each asks its lists at once)."""
    checked = 0
    for team_id in teams_to_check():
        try:
            check_team(team_id, lifetime=lifetime)
        except Exception:  # noqa: BLE001 - one team's trouble must not skip the others
            log.exception("team %s: the blocklist check failed", team_id)
            continue
        checked += 1
    return checked
