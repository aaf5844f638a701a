"""The address guard of outgoing webhooks (SSRF, ../shared/reference/deliverability.md §9).

A team types a URL; Loft's server then POSTs to it. The checks on addresses
are the shared guard in app/netguard.py (also used by SMTP accounts and bounce
mailboxes); this module adds what is particular to URLs:

  * only http and https, no user name or password in the URL;
  * the host is resolved and EVERY address must pass app.netguard;
  * checked when the URL is saved AND again before every delivery, and the
    connection goes to the exact address that was checked (see delivery.py), so
    a DNS answer that changes between the check and the connect (DNS rebinding)
    cannot sneak a private address in;
  * redirects are never followed.

The instance administrator can allow private targets (LOFT_WEBHOOKS_ALLOW_PRIVATE),
e.g. for a receiver on the same machine or network.
"""
import dataclasses
import urllib.parse

from app import netguard
from app.errors import Problem
from app.netguard import resolve  # noqa: F401 - the default resolver, kept importable from here
from app.netguard import why_not_public  # noqa: F401

ALLOW_HINT = ("Webhooks go to public addresses only. The instance administrator can allow private "
              "targets with the setting LOFT_WEBHOOKS_ALLOW_PRIVATE.")


class Refused(Problem):
    """A URL Loft will not send to, with the reason in words."""


@dataclasses.dataclass
class Target:
    scheme: str
    host: str  # the name as typed (the Host header and the TLS server name)
    port: int
    path: str  # path and query, as sent in the request line
    addresses: list  # the checked IP addresses (strings), in resolver order


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
        addresses = netguard.check_host(host, port, allow_private=allow_private, resolver=resolver)
    except netguard.Refused as exc:
        raise Refused(f"This URL points at {exc.shown}, {exc.reason}. {ALLOW_HINT}") from None
    except OSError as exc:
        raise Refused(f"The host name {host} could not be found ({exc.strerror or exc}).") from None
    return Target(scheme=scheme, host=host, port=port, path=path, addresses=addresses)
