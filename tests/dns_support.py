"""A real DNS server on 127.0.0.1 for the sender-domain tests, and its fixture."""
import socket

import pytest
from dnslib import QTYPE
from dnslib import RCODE
from dnslib import RR
from dnslib import TXT
from dnslib.server import DNSLogger
from dnslib.server import DNSServer


class Zone:
    """A tiny authoritative DNS server: TXT records from a dict, NXDOMAIN for anything else."""

    def __init__(self):
        self.txt = {}  # "name." -> [value, ...]

    def publish(self, name, value):
        self.txt.setdefault(name.rstrip(".") + ".", []).append(value)

    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).lower()
        if name not in self.txt:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype == QTYPE.TXT:
            for value in self.txt[name]:
                data = value.encode()
                chunks = [data[i:i + 255] for i in range(0, len(data), 255)]  # as DNS hosts split long values
                reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(chunks), ttl=60))
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


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
