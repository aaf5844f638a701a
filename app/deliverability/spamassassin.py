"""SpamAssassin's score of a message, asked of a running spamd over the SPAMC/SPAMD protocol (version 1.5).

The campaign builder's "SpamAssassin score" card (app/campaigns/spam_score.py) sends the rendered message here.
This is not app/ai/spam_check.py (an AI-free word list for subject lines and AI suggestions): this asks the real
filter many receiving servers run, and shows its score and the rules that fired.

Why the protocol and not `spamc`: a check is one short TCP exchange (REPORT, Content-length, the message; the
answer "Spam: True ; 7.2 / 5.0" and the report), so a web thread needs no subprocess per check, no spamc binary
on the web host (spamd may run on another machine), and gets its own timeouts and size limit. The protocol
(spamd/PROTOCOL in SpamAssassin's source) is small and stable since 1.5.

Where spamd is: the instance setting `spamd_address` (app/settings.py; Admin > Settings; LOFT_SPAMD_ADDRESS),
"host:port", default 127.0.0.1:783; blank turns the check off. Only the instance administrator sets it, so no
team member can aim it anywhere; the address is still resolved once and checked (app/netguard.py's resolver
and address rules: never link-local, which includes cloud metadata services, multicast, unspecified or
reserved addresses), and the connection goes to the exact address checked. Loopback and private-network
addresses are allowed: spamd on this machine or the local network is the normal case.

check() never raises for a spamd that is absent, slow or confused: it returns a SpamVerdict with `available`
False and `problem` in words, which the card shows with how to enable SpamAssassin.
"""
import ipaddress
import re
import socket
import time
from dataclasses import dataclass
from dataclasses import field

from app import netguard
from app.errors import Problem

DEFAULT_PORT = 783
# spamc's own default limit (-s 512000): spamd skips larger messages, so we refuse them before sending.
MAX_MESSAGE_BYTES = 512_000
MAX_RESPONSE_BYTES = 256_000  # a REPORT answer is a few KB; anything near this is not spamd
CONNECT_TIMEOUT = 3.0         # seconds; spamd on loopback answers at once
CHECK_TIMEOUT = 30.0          # seconds for the whole answer; a check takes well under a second locally
PROTOCOL = b"SPAMC/1.5"

_STATUS = re.compile(rb"^SPAMD/(\d+\.\d+)\s+(\d+)\s+(.*)$")
_SPAM = re.compile(r"^\s*(True|False|Yes|No)\s*;\s*(-?\d+(?:\.\d+)?)\s*/\s*(-?\d+(?:\.\d+)?)\s*$", re.IGNORECASE)
# A report line: " 1.2 RULE_NAME  description", the score right-aligned in 4 columns ("1000", "-0.0").
_RULE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Za-z0-9_]+)\s+(.*?)\s*$")
_CONTINUATION = re.compile(r"^\s{10,}(\S.*?)\s*$")  # a long description wraps onto lines indented past the name


@dataclass(frozen=True)
class SpamRule:
    name: str
    score: float
    description: str


@dataclass
class SpamVerdict:
    """What spamd said, or why it could not be asked (`available` False, `problem` in words)."""
    available: bool
    score: float = 0.0
    threshold: float = 5.0
    is_spam: bool = False
    rules: list = field(default_factory=list)  # SpamRule, highest score first
    problem: str = ""
    address: str = ""
    size: int = 0

    @property
    def percent(self):
        """The score as a share of twice the threshold, 0-100, for the meter (the threshold sits in the middle)."""
        if self.threshold <= 0:
            return 100 if self.score > 0 else 0
        return max(0, min(100, round(self.score / (2 * self.threshold) * 100)))


def unavailable(problem, address="", size=0):
    return SpamVerdict(available=False, problem=problem, address=address, size=size)


class SpamdAnswerError(Problem):
    """An answer that is not SPAMD/1.x as expected; check() turns it into an unavailable SpamVerdict."""


def parse_address(text):
    """(host, port) from "host", "host:port", "[v6]:port" or "v6"; ValueError with words when it is not one."""
    text = (text or "").strip()
    if not text:
        raise ValueError("No SpamAssassin address is set.")
    if any(ch.isspace() for ch in text) or "/" in text:
        raise ValueError(f"“{text}” is not host:port (such as 127.0.0.1:783).")
    host, port = text, DEFAULT_PORT
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"“{text}” is not [address]:port.")
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        port = int(port)
    except ValueError:
        raise ValueError(f"The port in “{text}” is not a number.") from None
    if not 0 < port < 65536:
        raise ValueError(f"The port in “{text}” is not between 1 and 65535.")
    if not host:
        raise ValueError(f"“{text}” names no host.")
    return host, port


def validate_address(text):
    """The setting's value cleaned ("" turns the check off), or ValueError in words (Admin > Settings).

    A literal address is checked now; a name is checked by what it resolves to at each check."""
    text = (text or "").strip()
    if not text:
        return ""
    host, port = parse_address(text)
    found = netguard.literal(host)
    if found is not None and (reason := _refusal(found)):
        raise ValueError(f"{host} is {reason}: Loft will not connect to it.")
    return text


def _refusal(address):
    """Why spamd may not be at `address` (an ipaddress object), or None. Loopback and private are fine."""
    inner = netguard._embedded_ipv4(address) if address.version == 6 else None
    if inner is not None:
        return _refusal(inner)
    if address.is_loopback:
        return None
    if address.is_link_local:
        return "a link-local address (this includes cloud metadata services)"
    if address.is_multicast or address.is_unspecified or address.is_reserved:
        return netguard.why_not_public(address)
    return None


def resolve_checked(host, port, resolver=None):
    """The one address to connect to for host:port: resolved once, every answer checked; ValueError in words."""
    found = netguard.literal(host)
    if found is not None:
        addresses = [str(found)]
    else:
        try:
            addresses = (resolver or netguard.resolve)(host, port)
        except OSError:
            raise ValueError(f"The SpamAssassin host {host} cannot be resolved.") from None
        if not addresses:
            raise ValueError(f"The SpamAssassin host {host} cannot be resolved.")
    for text in addresses:
        reason = _refusal(ipaddress.ip_address(text))
        if reason:
            raise ValueError(f"SpamAssassin's address {host} ({text}) is {reason}: Loft will not connect to it.")
    return addresses[0]


def request_bytes(message, command=b"REPORT"):
    """The request spamd expects: the command line, Content-length, a blank line, the message as is."""
    return b"%s %s\r\nContent-length: %d\r\n\r\n%s" % (command, PROTOCOL, len(message), message)


def parse_report(text):
    """The rules of a REPORT answer's "Content analysis details" table, highest score first.

    The table follows a line of dashes; each row is "score NAME description" and a long description goes
    on over indented lines. Rows before the dashes (the preview) are never read as rules."""
    rules, lines, started = [], text.splitlines(), False
    for line in lines:
        if not started:
            started = line.startswith("----")
            continue
        if not line.strip():
            continue
        match = _RULE.match(line)
        if match and not _CONTINUATION.match(line):
            rules.append([match.group(2), float(match.group(1)), match.group(3)])
        elif rules and (more := _CONTINUATION.match(line)):
            rules[-1][2] = f"{rules[-1][2]} {more.group(1)}".strip()
    parsed = [SpamRule(name, score, description) for name, score, description in rules]
    return sorted(parsed, key=lambda rule: (-rule.score, rule.name))


def parse_response(raw, command=b"REPORT"):
    """A SpamVerdict from spamd's whole answer (bytes); SpamdAnswerError when it is not a SPAMD answer or an error."""
    head, separator, body = raw.partition(b"\r\n\r\n")
    if not separator:
        head, body = raw.rstrip(b"\r\n"), b""
    lines = head.split(b"\r\n")
    status = _STATUS.match(lines[0])
    if not status:
        raise SpamdAnswerError("The answer does not start with SPAMD/1.x: is this a spamd port?")
    if status.group(2) != b"0":
        raise SpamdAnswerError(f"spamd refused the check: {status.group(3).decode('utf-8', 'replace')} "
                               f"(code {status.group(2).decode()}).")
    headers = {}
    for line in lines[1:]:
        name, colon, value = line.decode("utf-8", "replace").partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    spam = _SPAM.match(headers.get("spam", ""))
    if not spam:
        raise SpamdAnswerError("spamd's answer has no “Spam: … ; score / threshold” line.")
    result = SpamVerdict(available=True, is_spam=spam.group(1).lower() in ("true", "yes"),
                    score=float(spam.group(2)), threshold=float(spam.group(3)))
    text = body.decode("utf-8", "replace")
    if command == b"REPORT":
        result.rules = parse_report(text)
    elif command == b"SYMBOLS":
        result.rules = [SpamRule(name.strip(), 0.0, "") for name in text.strip().split(",") if name.strip()]
    return result


def _exchange(address, port, payload):
    deadline = time.monotonic() + CHECK_TIMEOUT  # for the whole exchange: a server dripping bytes cannot hold us
    with socket.create_connection((address, port), timeout=CONNECT_TIMEOUT) as sock:
        sock.settimeout(CHECK_TIMEOUT)
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)  # spamd reads Content-length bytes; the half-close says nothing follows
        chunks, total = [], 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no complete answer in time")
            sock.settimeout(left)
            chunk = sock.recv(65536)
            if not chunk:
                break
            total += len(chunk)
            if total > MAX_RESPONSE_BYTES:
                raise SpamdAnswerError("spamd's answer is far longer than a report: is this a spamd port?")
            chunks.append(chunk)
    return b"".join(chunks)


def check(message, address_text, command=b"REPORT", resolver=None):
    """SpamAssassin's verdict on `message` (bytes, CRLF lines) from the spamd at `address_text` ("host:port").

    Never raises for spamd's sake: an unset, refused, unreachable, slow or odd spamd, and a message over
    MAX_MESSAGE_BYTES, give a SpamVerdict with available False and the reason in `problem`."""
    size = len(message)
    if not (address_text or "").strip():
        return unavailable("SpamAssassin is not set up on this Loft (no spamd address is set).", size=size)
    try:
        host, port = parse_address(address_text)
        connect_to = resolve_checked(host, port, resolver)
    except ValueError as exc:
        return unavailable(str(exc), address_text, size)
    if size > MAX_MESSAGE_BYTES:
        return unavailable(f"The message is {size // 1000:,} KB; SpamAssassin checks messages of at most "
                           f"{MAX_MESSAGE_BYTES // 1000:,} KB (as spamc does): make the email smaller.",
                           address_text, size)
    try:
        raw = _exchange(connect_to, port, request_bytes(message, command))
        result = parse_response(raw, command)
    except ConnectionRefusedError:
        return unavailable(f"Nothing answers at {address_text}: spamd is not running there.", address_text, size)
    except (socket.timeout, TimeoutError):
        return unavailable(f"spamd at {address_text} did not answer in time.", address_text, size)
    except SpamdAnswerError as exc:
        return unavailable(str(exc), address_text, size)
    except OSError as exc:
        return unavailable(f"spamd at {address_text} cannot be reached ({exc.strerror or exc}).", address_text, size)
    result.address, result.size = address_text, size
    return result
