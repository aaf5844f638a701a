"""What the stored DMARC reports say about one domain: the digest page and the weekly email read this.

    domains(team)                        the policy domains the team has reports for, with their last 30 days
    digest(team, domain, days)           totals, SPF / DKIM / DMARC pass and fail, sources, top failing
                                         sources and a per-day trend, or None when the team has no report of it
    reverse_name(ip)                     the PTR name of a source, looked up through the senders' resolver
                                         (LOFT_DNS_NAMESERVER) with a short timeout, cached

Counts are messages (each record's count), summed in the database per source and per day.
"""
import datetime
import ipaddress
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import dns.exception
import dns.reversename
from flask import current_app
from peewee import Case
from peewee import fn

from app.models import DmarcRecord
from app.models import DmarcReport
from app.senders import domains as sender_domains

PTR_TIMEOUT = 1.0  # seconds a lookup may take; a page looks up at most PTR_LOOKUPS sources
PTR_LOOKUPS = 25
PTR_TTL = 3600
_ptr_cache = {}  # (name server setting, ip) -> (expires, name)
_ptr_lock = threading.Lock()
PERIODS = (7, 30, 90)


def _sums(query_fields):
    aligned = (DmarcRecord.dkim_aligned == True) | (DmarcRecord.spf_aligned == True)  # noqa: E712
    return query_fields + [
        fn.SUM(DmarcRecord.count).alias("messages"),
        fn.SUM(Case(None, [(aligned, DmarcRecord.count)], 0)).alias("passed"),
        fn.SUM(Case(None, [(DmarcRecord.dkim_aligned == True, DmarcRecord.count)], 0)).alias("dkim"),  # noqa: E712
        fn.SUM(Case(None, [(DmarcRecord.spf_aligned == True, DmarcRecord.count)], 0)).alias("spf"),  # noqa: E712
        fn.SUM(Case(None, [(DmarcRecord.disposition == "quarantine", DmarcRecord.count)], 0)).alias("quarantined"),
        fn.SUM(Case(None, [(DmarcRecord.disposition == "reject", DmarcRecord.count)], 0)).alias("rejected"),
    ]


def _figures(row):
    messages = int(row.messages or 0)
    figures = {"messages": messages}
    for key in ("passed", "dkim", "spf", "quarantined", "rejected"):
        figures[key] = int(getattr(row, key) or 0)
    figures["failed"] = messages - figures["passed"]
    figures["pass_rate"] = round(100 * figures["passed"] / messages, 1) if messages else None
    return figures


def _window(team, domain, since):
    return ((DmarcRecord.team == team.id) & (DmarcRecord.domain == domain) & (DmarcRecord.day >= since))


def domains(team, days=30):
    """[{domain, reports, last, messages, pass_rate}] newest report first."""
    since = datetime.date.today() - datetime.timedelta(days=days - 1)
    reports = (DmarcReport.select(DmarcReport.domain, fn.COUNT(DmarcReport.id).alias("reports"),
                                  fn.MAX(DmarcReport.end).alias("last"))
               .where(DmarcReport.team == team.id).group_by(DmarcReport.domain))
    recent = {row.domain: _figures(row) for row in
              DmarcRecord.select(*_sums([DmarcRecord.domain]))
              .where((DmarcRecord.team == team.id) & (DmarcRecord.day >= since)).group_by(DmarcRecord.domain)}
    rows = [{"domain": row.domain, "reports": row.reports, "last": row.last,
             **recent.get(row.domain, {"messages": 0, "pass_rate": None})} for row in reports]
    return sorted(rows, key=lambda r: str(r["last"]), reverse=True)


def digest(team, domain, days=30, today=None, lookup=True):
    if not DmarcReport.select().where((DmarcReport.team == team.id) & (DmarcReport.domain == domain)).exists():
        return None
    today = today or datetime.date.today()
    since = today - datetime.timedelta(days=days - 1)
    where = _window(team, domain, since)
    totals = _figures(DmarcRecord.select(*_sums([])).where(where).get())
    sources = [dict(ip=row.source_ip, **_figures(row)) for row in
               DmarcRecord.select(*_sums([DmarcRecord.source_ip])).where(where)
               .group_by(DmarcRecord.source_ip).order_by(fn.SUM(DmarcRecord.count).desc(), DmarcRecord.source_ip)
               .limit(50)]
    failing = sorted((s for s in sources if s["failed"]), key=lambda s: (-s["failed"], s["ip"]))[:10]
    for source in failing:
        source["cause"] = _likely_cause(team, domain, since, source["ip"])
    if lookup:
        names = reverse_names([source["ip"] for source in sources[:PTR_LOOKUPS] + failing])
        for source in sources + failing:
            source["name"] = names.get(source["ip"], "")
    by_day = {str(row.day): _figures(row) for row in
              DmarcRecord.select(*_sums([DmarcRecord.day])).where(where).group_by(DmarcRecord.day)}
    trend = []
    for offset in range(days):
        day = since + datetime.timedelta(days=offset)
        figures = by_day.get(str(day)) or {"messages": 0, "passed": 0, "failed": 0}
        trend.append({"day": day, "messages": figures["messages"], "passed": figures["passed"],
                      "failed": figures["failed"]})
    reports = list(DmarcReport.select().where((DmarcReport.team == team.id) & (DmarcReport.domain == domain))
                   .order_by(DmarcReport.begin.desc(), DmarcReport.id.desc()).limit(20))
    reporters = sorted({r.org_name or "(no name)" for r in reports})
    return {"domain": domain, "days": days, "since": since, "until": today, "totals": totals, "sources": sources,
            "failing": failing, "trend": trend, "reports": reports, "reporters": reporters,
            "policy": reports[0].policy if reports else {}}


def _likely_cause(team, domain, since, ip):
    """The auth results behind a failing source's biggest failing record, in words."""
    row = (DmarcRecord.select().where(_window(team, domain, since) & (DmarcRecord.source_ip == ip) &
                                      (DmarcRecord.dkim_aligned == False) & (DmarcRecord.spf_aligned == False))  # noqa: E712
           .order_by(DmarcRecord.count.desc()).first())
    if row is None:
        return ""
    parts = []
    parts.append(f"DKIM {row.dkim_results}" if row.dkim_results else "no DKIM signature")
    parts.append(f"SPF {row.spf_results}" if row.spf_results else "no SPF result")
    if row.header_from and row.envelope_from and not row.envelope_from.endswith(row.header_from):
        parts.append(f"envelope from {row.envelope_from} does not align with {row.header_from}")
    if row.reasons:
        parts.append(f"override: {row.reasons}")
    return "; ".join(parts)


def reverse_names(ips):
    """{ip: PTR name} for `ips`, the ones not cached looked up at once (a dead DNS server costs about
    PTR_TIMEOUT for the whole page, not per source). Cached per name server, as answers differ by server."""
    ips = list(dict.fromkeys(ips))
    server = current_app.config.get("DNS_NAMESERVER") or ""
    names, missing = {}, []
    now = time.monotonic()
    with _ptr_lock:
        for ip in ips:
            cached = _ptr_cache.get((server, ip))
            if cached and cached[0] > now:
                names[ip] = cached[1]
            else:
                missing.append(ip)
    if not missing:
        return names
    try:
        resolver = sender_domains.resolver(PTR_TIMEOUT)
    except sender_domains.DnsLookupError:
        return {**names, **{ip: "" for ip in missing}}
    with ThreadPoolExecutor(max_workers=min(16, len(missing))) as pool:
        for ip, name in zip(missing, pool.map(lambda ip: _lookup(resolver, ip), missing)):
            names[ip] = name
    with _ptr_lock:
        if len(_ptr_cache) > 10_000:
            _ptr_cache.clear()
        for ip in missing:
            _ptr_cache[(server, ip)] = (now + PTR_TTL, names[ip])
    return names


def reverse_name(ip):
    """The PTR name of `ip` ("" when it has none, is not an address, or DNS does not answer in time)."""
    return reverse_names([ip])[ip]


def _lookup(resolver, ip):
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ""
    try:
        answer = resolver.resolve(dns.reversename.from_address(str(address)), "PTR")
        return str(answer[0].target).rstrip(".")[:253]
    except (dns.exception.DNSException, OSError, IndexError):
        return ""
