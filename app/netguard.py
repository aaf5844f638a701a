"""The one address guard for every connection a team's settings can aim (SSRF).

A team types a host (a webhook URL, an SMTP server, an IMAP server) and Loft's
server then connects to it and shows what answered. Without a guard that is a
way to reach this machine (127.0.0.1, the admin pages behind a proxy), the
private network, or a cloud metadata service (169.254.169.254), and "Test
connection" becomes a port scanner. So, for webhooks (app/webhooks/ssrf.py),
SMTP accounts (app/senders/accounts.py) and bounce mailboxes (app/bounces/imap.py):

  * the host is RESOLVED (so `127.1`, `0x7f000001`, `2130706433`,
    `017700000001`, `0` and names from /etc/hosts are seen for what they are)
    and EVERY address it resolves to must be public: not loopback, private,
    shared (100.64/10), link-local, multicast, reserved or unspecified, in IPv4
    or IPv6, including IPv4 wrapped in IPv6 (::ffff:a.b.c.d, NAT64
    64:ff9b::/96, 6to4, Teredo);
  * the connection goes to the exact address that was checked (the name is
    kept for TLS), so a DNS answer that changes between the check and the
    connect (DNS rebinding) cannot sneak a private address in.

The instance administrator can allow private targets, per kind of connection
(LOFT_WEBHOOKS_ALLOW_PRIVATE; the "private mail servers" instance setting).
"""
import ipaddress
import socket

from app.errors import Problem

NAT64 = ipaddress.ip_network("64:ff9b::/96")
SHARED = ipaddress.ip_network("100.64.0.0/10")


class Refused(Problem):
    """A host Loft will not connect to: `shown` (the host, with the address it resolved to) is `reason`."""

    def __init__(self, shown, reason=""):
        super().__init__(f"{shown} is {reason}" if reason else shown)
        self.shown = shown
        self.reason = reason


def _embedded_ipv4(address):
    """The IPv4 address hidden in an IPv6 one (mapped, NAT64, 6to4, Teredo), else None."""
    if address.version != 6:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.ip_address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def why_not_public(address):
    """None when `address` (an ipaddress object) is a public unicast address, else the reason in words."""
    inner = _embedded_ipv4(address)
    if inner is not None:
        reason = why_not_public(inner)
        return f"{reason} (inside the IPv6 address {address})" if reason else None
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "an address of this machine (loopback)"
    if address.is_link_local:
        return "a link-local address (this includes cloud metadata services)"
    if address.is_multicast:
        return "a multicast address"
    if address.version == 4 and address in SHARED:
        return "a shared (carrier-grade NAT) address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private-network address"
    if not address.is_global:
        return "an address that is not publicly routable"
    return None


def resolve(host, port):
    """Every address the system resolver gives for host (IPv4 and IPv6), without duplicates.

    getaddrinfo also reads /etc/hosts and accepts the old numeric spellings
    (127.1, 0x7f000001, 2130706433, 017700000001, 0), which is exactly why the
    check runs on its answers and never on the text typed.
    """
    seen = []
    for family, _, _, _, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = sockaddr[0].split("%", 1)[0]  # drop an IPv6 zone id
        if address not in seen:
            seen.append(address)
    return seen


def literal(host):
    """The ipaddress object when host is a standard IP literal (brackets allowed), else None."""
    try:
        return ipaddress.ip_address(host.strip().strip("[]"))
    except ValueError:
        return None


def check_addresses(host, addresses, allow_private=False):
    """Raise Refused when any of `addresses` (strings) is not public, unless allow_private."""
    if allow_private:
        return
    for text in addresses:
        reason = why_not_public(ipaddress.ip_address(text))
        if reason:
            shown = host if text == host.strip("[]") else f"{host} ({text})"
            raise Refused(shown, reason)


def check_host(host, port, allow_private=False, resolver=None):
    """The checked addresses (strings) to connect to, or Refused.

    `resolver(host, port)` returns IP address strings; the default asks the
    system (getaddrinfo). Every address must pass, so a name that resolves to
    one public and one private address is refused too. A name that cannot be
    resolved raises OSError (socket.gaierror), for the caller to put in words.
    """
    host = host.strip().rstrip(".")
    found = literal(host)
    if found is not None:
        addresses = [str(found)]
    else:
        addresses = (resolver or resolve)(host, port)
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    check_addresses(host, addresses, allow_private)
    return list(addresses)
