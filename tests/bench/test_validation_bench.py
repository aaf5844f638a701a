"""Benchmark: address validation of 100,000 addresses over 5,000 domains against a loopback DNS server
(issue 15: at most 60 s).

Run with `make bench` or:
    .venv/bin/python -m pytest -q -s tests/bench/test_validation_bench.py

A dnslib server on 127.0.0.1 answers for 5,000 domains: most with an MX, some with only an A record (the
implicit MX: two more questions), some NXDOMAIN, some a null MX, and a few that never answer (each costs
the whole per-domain timeout, concurrently with the rest). The addresses mix role accounts, typos of
mailbox providers, disposable domains and bad syntax. The first validate_many call starts with an empty
cache (every domain asked once); the second shows the cached figure. Every verdict is checked against
what the zone says, so a fast wrong answer fails.
"""
import random
import time

from dnslib import MX
from dnslib import QTYPE
from dnslib import RCODE
from dnslib import RR
from dnslib import A
from dnslib.dns import DNSError
from dnslib.server import DNSLogger
from dnslib.server import DNSServer

from app.deliverability import validation
from tests.dns_support import free_udp_port

ADDRESSES = 100_000
DOMAINS = 5_000
SILENT = 10
TIMEOUT = 2.0


class BenchZone:
    """Answers from one dict lookup per question: {name.: ("mx" | "a" | "null" | "silent")}; NXDOMAIN else."""

    def __init__(self, kinds):
        self.kinds = kinds
        self.asked = 0

    def resolve(self, request, handler):
        self.asked += 1
        reply = request.reply()
        name = str(request.q.qname).lower()
        kind = self.kinds.get(name)
        qtype = request.q.qtype
        if kind is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif kind == "silent":
            raise DNSError("not answering")  # dnslib sends nothing back
        elif qtype == QTYPE.MX and kind in ("mx", "null"):
            exchange, preference = ("mx." + name, 10) if kind == "mx" else (".", 0)
            reply.add_answer(RR(request.q.qname, QTYPE.MX, rdata=MX(exchange, preference), ttl=300))
        elif qtype == QTYPE.A and kind == "a":
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("192.0.2.25"), ttl=300))
        return reply


def build(rng):
    kinds, expected_domain = {}, {}
    domains = []
    for n in range(DOMAINS):
        domain = f"shop{n}.example.{('com', 'net', 'org')[n % 3]}"
        if n < SILENT:
            kind = "silent"
        else:
            kind = rng.choices(["mx", "a", "nx", "null"], weights=[90, 5, 3, 2])[0]
        if kind != "nx":
            kinds[domain + "."] = kind
        domains.append(domain)
        expected_domain[domain] = {"mx": (), "a": (), "nx": ("no_domain",), "null": ("null_mx",),
                                   "silent": ("dns_timeout",)}[kind]
    # A few typo and disposable domains among them (their own reasons come on top of the DNS answer).
    for domain in ("gmial.com", "hotmal.com", "yaho.com", "mailinator.com"):
        kinds[domain + "."] = "mx"
        domains.append(domain)
        expected_domain[domain] = ()
    addresses, expected = [], []
    for i in range(ADDRESSES):
        domain = domains[i % len(domains)] if i % 50 else rng.choice(domains)
        local = "info" if i % 20 == 0 else f"user.{i}"
        if i % 500 == 7:
            addresses.append(f"broken {i}@@{domain}")
            expected.append(("syntax",))
            continue
        addresses.append(f"{local}@{domain}")
        reasons = list(expected_domain[domain])
        if domain == "mailinator.com" or domain == "gmial.com":  # gmial.com is on the disposable list too
            reasons.append("disposable")
        if local == "info":
            reasons.append("role")
        if domain in ("gmial.com", "hotmal.com", "yaho.com"):
            reasons.append("typo")
        expected.append(tuple(reasons))
    return kinds, addresses, expected


def test_validation_speed(app):
    rng = random.Random(15)
    kinds, addresses, expected = build(rng)
    zone = BenchZone(kinds)
    port = free_udp_port()
    server = DNSServer(zone, address="127.0.0.1", port=port, logger=DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data"))
    server.start_thread()
    app.config["DNS_NAMESERVER"] = f"127.0.0.1:{port}"
    try:
        with app.app_context():
            validation.clear_cache()
            calls = []
            started = time.perf_counter()
            verdicts = validation.validate_many(addresses, timeout=TIMEOUT, progress=lambda d, t: calls.append(d))
            cold = time.perf_counter() - started
            asked = zone.asked
            started = time.perf_counter()
            again = validation.validate_many(addresses, timeout=TIMEOUT)
            warm = time.perf_counter() - started
    finally:
        server.stop()
        app.config["DNS_NAMESERVER"] = ""
        validation.clear_cache()

    wrong = [(a, v.reasons, e) for a, v, e in zip(addresses, verdicts, expected) if tuple(sorted(v.reasons)) != tuple(sorted(e))]
    assert not wrong, wrong[:5]
    assert [v.status for v in again[SILENT * 2:]] == [v.status for v in verdicts[SILENT * 2:]]
    assert calls[-1] == len(addresses) and len(calls) > 10
    statuses = {s: sum(1 for v in verdicts if v.status == s) for s in validation.STATUSES}
    domains = len({a.rpartition("@")[2] for a in addresses})
    print(f"\n{len(addresses):,} addresses over {domains:,} domains ({SILENT} never answer, timeout {TIMEOUT:g} s): "
          f"cold cache {cold:.1f} s ({len(addresses) / cold:,.0f} addresses/s, {asked:,} DNS questions); "
          f"cached {warm:.2f} s; {statuses}")
