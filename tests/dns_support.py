"""A real DNS server on 127.0.0.1 for the sender-domain and address-validation tests, and its fixtures."""
import socket

import pytest
from dnslib import QTYPE
from dnslib import RCODE
from dnslib import RR
from dnslib import TXT
from dnslib.dns import DNSError
from dnslib.server import DNSLogger
from dnslib.server import DNSServer

from tests.ports import free_port


class Zone:
    """A tiny authoritative DNS server: TXT records from a dict, NXDOMAIN for anything else.

    publish(name, value) adds a TXT record; add(name, qtype, value) a record of any type in zone-file
    form ("A", "192.0.2.10"; "AAAA", "2001:db8::25"; "MX", "10 mx.example.com."), remove(name) takes a
    name's records away mid-test, silence(name) makes the server drop questions about it (the client
    times out), and `queries` lists every (name, type) asked, so a test can count questions.
    """

    def __init__(self):
        self.txt = {}  # "name." -> [value, ...]
        self.records = {}  # ("name.", "A") -> [zone-file value, ...]
        self.silent = set()  # "name." -> no reply at all
        self.queries = []  # ("name.", "A") in the order asked

    def publish(self, name, value):
        self.txt.setdefault(name.rstrip(".").lower() + ".", []).append(value)

    def add(self, name, qtype, value):
        self.records.setdefault((name.rstrip(".").lower() + ".", qtype.upper()), []).append(str(value))

    def remove(self, name, qtype=None):
        name = name.rstrip(".").lower() + "."
        if qtype is None or qtype.upper() == "TXT":
            self.txt.pop(name, None)
        for key in [key for key in self.records if key[0] == name and qtype in (None, key[1])]:
            del self.records[key]

    def silence(self, name):
        self.silent.add(name.rstrip(".").lower() + ".")

    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).lower()
        qtype = QTYPE[request.q.qtype]
        self.queries.append((name, qtype))
        if name in self.silent:
            raise DNSError(f"not answering {name}")  # dnslib's handler sends nothing back
        if name not in self.txt and not any(key[0] == name for key in self.records):
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype == QTYPE.TXT and name in self.txt:
            for value in self.txt[name]:
                data = value.encode()
                chunks = [data[i:i + 255] for i in range(0, len(data), 255)]  # as DNS hosts split long values
                reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(chunks), ttl=60))
        for value in self.records.get((name, qtype), []):
            reply.add_answer(*RR.fromZone(f"{request.q.qname} 60 IN {qtype} {value}"))
        return reply


@pytest.fixture
def dns_zone(app):
    """A real UDP DNS server on 127.0.0.1; Loft's resolver points at it through DNS_NAMESERVER."""
    zone = Zone()
    port = free_udp_port()
    server = DNSServer(zone, address="127.0.0.1", port=port, logger=DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data"))
    server.start_thread()
    app.config["DNS_NAMESERVER"] = f"127.0.0.1:{port}"
    yield zone
    server.stop()
    app.config["DNS_NAMESERVER"] = ""


@pytest.fixture
def silent_dns(app):
    """A UDP socket on 127.0.0.1 that takes DNS questions and never answers: a dead name server."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        app.config["DNS_NAMESERVER"] = f"127.0.0.1:{sock.getsockname()[1]}"
        yield sock
        app.config["DNS_NAMESERVER"] = ""


def free_udp_port():
    return free_port(socket.SOCK_DGRAM)
