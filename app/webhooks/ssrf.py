"""The address guard of outgoing webhooks (SSRF, ../shared/reference/deliverability.md §9).

A team types a URL; Loft's server then POSTs to it. Without a guard that is a
way to reach this machine (127.0.0.1, the admin pages behind a proxy), the
private network, or a cloud metadata service (169.254.169.254). So:

  * only http and https, no user name or password in the URL;
  * the host is resolved and EVERY address it resolves to must be public: not
    loopback, private, shared (100.64/10), link-local, multicast, reserved or
    unspecified, in IPv4 or IPv6, including IPv4 wrapped in IPv6 (::ffff:a.b.c.d,
    NAT64 64:ff9b::/96, 6to4, Teredo);
  * checked when the URL is saved AND again before every delivery, and the
    connection goes to the exact address that was checked (see delivery.py), so
    a DNS answer that changes between the check and the connect (DNS rebinding)
    cannot sneak a private address in;
  * redirects are never followed.

The instance administrator can allow private targets (LOFT_WEBHOOKS_ALLOW_PRIVATE),
e.g. for a receiver on the same machine or network.
"""
import dataclasses
import ipaddress
import socket
import urllib.parse

NAT64 = ipaddress.ip_network("64:ff9b::/96")
ALLOW_HINT = ("Webhooks go to public addresses only. The instance administrator can allow private "
              "targets with the setting LOFT_WEBHOOKS_ALLOW_PRIVATE.")


class Refused(ValueError):
    """A URL Loft will not send to, with the reason in words."""


@dataclasses.dataclass
class Target:
    scheme: str
    host: str  # the name as typed (the Host header and the TLS server name)
    port: int
    path: str  # path and query, as sent in the request line
    addresses: list  # the checked IP addresses (strings), in resolver order


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
    if address.version == 4 and address in ipaddress.ip_network("100.64.0.0/10"):
        return "a shared (carrier-grade NAT) address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private-network address"
    if not address.is_global:
        return "an address that is not publicly routable"
    return None


def parse(url):
    """(scheme, host, port, path) of an http(s) URL, or Refused with what is wrong."""
    url = (url or "").strip()
    if not url:
        raise Refused("Enter the URL that should receive the events.")
    if len(url) > 2000:
        raise Refused("This URL is too long (at most 2,000 characters).")
    if any(ch.isspace() for ch in url) or any(ord(ch) < 32 for ch in url):
        raise Refused("A URL cannot contain spaces or control characters.")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        raise Refused("This is not a valid URL (check the port number and brackets).") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise Refused("The URL must start with https:// (or http://).")
    if parts.username is not None or parts.password is not None:
        raise Refused("Put no user name or password in the URL: receivers check the X-Loft-Signature header.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise Refused("The URL has no host name.")
    scheme = parts.scheme.lower()
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return scheme, host, port or (443 if scheme == "https" else 80), path


def check(url, allow_private=False, resolver=None):
    """A Target with the addresses to connect to, or Refused.

    `resolver(host, port)` returns IP address strings; the default asks the
    system (getaddrinfo). Every address must pass, so a name that resolves to
    one public and one private address is refused too.
    """
    scheme, host, port, path = parse(url)
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = (resolver or resolve)(host, port)
        except OSError as exc:
            raise Refused(f"The host name {host} could not be found ({exc.strerror or exc}).") from None
        if not addresses:
            raise Refused(f"The host name {host} has no address.")
    if not allow_private:
        for text in addresses:
            reason = why_not_public(ipaddress.ip_address(text))
            if reason:
                shown = host if literal is not None else f"{host} ({text})"
                raise Refused(f"This URL points at {shown}, {reason}. {ALLOW_HINT}")
    return Target(scheme=scheme, host=host, port=port, path=path, addresses=list(addresses))


def resolve(host, port):
    """Every address the system resolver gives for host (IPv4 and IPv6), without duplicates."""
    seen = []
    for family, _, _, _, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = sockaddr[0].split("%", 1)[0]  # drop an IPv6 zone id
        if address not in seen:
            seen.append(address)
    return seen
