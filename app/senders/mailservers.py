"""What SMTP accounts (app/senders/accounts.py) and bounce mailboxes (app/bounces/imap.py) share:
the checks on a host a team types, before Loft's server connects to it.

    valid_host(host)                 a well-formed name or address
    host_problem(host, port)         why Loft will not connect there (the shared guard, app.netguard), or None
    is_loopback(host)                only then may a connection go without encryption
    private_hosts_allowed()          the instance setting "private mail servers"
    PRIVATE_HINT                     what to do about a refused private host, in words

and what Loft knows of each provider, for both forms (iCloud's app-specific password serves both):
    SMTP_PRESETS, TLS_LABELS         the SMTP account form
    IMAP_PRESETS, SECURITY_LABELS    the bounce mailbox form
"""
import ipaddress
import re

from app import netguard
from app import settings


def is_loopback(host):
    """Only literal loopback names: a DNS name that resolves to 127.0.0.1 could change tomorrow."""
    host = host.strip().strip("[]").lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def private_hosts_allowed():
    """The instance setting "private mail servers" (off unless the instance administrator turns it on)."""
    return bool(settings.get_setting("private_mail_hosts"))


PRIVATE_HINT = ("Loft connects only to public mail servers. The instance administrator can allow servers on this "
                "machine or a private network under Instance settings (“Private mail servers”).")


def host_problem(host, port, allow_private=None, resolver=None):
    """Why Loft will not connect to host (words for the form), or None.

    The host is resolved and every address checked by the shared guard
    (app.netguard), so 127.1, 0x7f000001, 2130706433, a name from /etc/hosts
    or a 6to4 wrapping of 127.0.0.1 are seen for what they are. A name that
    does not resolve (yet) is not refused here: the connection test says so.
    """
    allow_private = private_hosts_allowed() if allow_private is None else allow_private
    try:
        netguard.check_host(host, port or 0, allow_private=allow_private, resolver=resolver)
    except netguard.Refused as exc:
        return f"{exc.shown} is {exc.reason}. {PRIVATE_HINT}"
    except (OSError, UnicodeError):
        return None
    return None


_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def valid_host(host):
    """A well-formed host name or IP address (whether Loft may connect to it is host_problem's call)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        pass
    try:
        ascii_host = host.encode("idna").decode("ascii").lower().rstrip(".")
    except UnicodeError:
        return False
    return 0 < len(ascii_host) <= 253 and all(_LABEL.match(label) for label in ascii_host.split("."))


def host_field_error(host, protocol, allow_private=None):
    """What is wrong with the host a person typed for an SMTP or IMAP server (`protocol` "smtp" or
    "imap"), in words for the form, or None: empty, a URL instead of a name, malformed, or a place Loft
    does not connect to."""
    example = f"{protocol}.example.com"
    if not host:
        return f"Enter the {protocol.upper()} server's host name, e.g. {example}."
    if "://" in host or "/" in host or (":" in host and not host.strip("[]").count(":") > 1):
        return (f"Enter only the host name, e.g. {example}: no {protocol}://, path or port "
                "(the port has its own field).")
    if not valid_host(host):
        return f"That is not a valid host name: use letters, digits, dots and hyphens, e.g. {example}."
    return host_problem(host, None, allow_private)


# --- Providers -----------------------------------------------------------------

TLS_LABELS = {
    "starttls": "STARTTLS (usually port 587)",
    "tls": "Implicit TLS (usually port 465)",
    "none": "None: only for a server on this machine (loopback)",
}

ICLOUD_DAILY_CAP = 1000

SMTP_PRESETS = {
    "icloud": {
        "label": "iCloud Mail",
        "host": "smtp.mail.me.com",
        "port": 587,
        "tls_mode": "starttls",
        "per_second": 0,
        "per_hour": 0,
        "per_day": ICLOUD_DAILY_CAP,
        "max_connections": 2,
        "weight": 1,
        "warmup": True,  # a mailbox that suddenly sends hundreds a day is what Apple's filters look for
        "note": ("iCloud Mail needs an app-specific password, not your Apple Account password: sign in at "
                 "account.apple.com, open Sign-In and Security, then App-Specific Passwords, create one "
                 "named “Loft” and paste it here. The user name is your full iCloud Mail address. "
                 "Apple allows about 1,000 messages a day per account and forbids unsolicited bulk email; "
                 "when the daily limit is reached iCloud refuses mail until the next day and Loft pauses "
                 "the account instead of blaming your contacts."),
    },
    "generic": {
        "label": "Another provider",
        "host": "",
        "port": 587,
        "tls_mode": "starttls",
        "per_second": 0,
        "per_hour": 0,
        "per_day": 0,
        "max_connections": 4,
        "weight": 1,
        "note": ("Enter the SMTP details your provider gives you (often called “SMTP relay” or "
                 "“SMTP submission”) and the limits of your plan, so Loft never sends faster than it allows."),
    },
}

SECURITY_LABELS = {
    "ssl": "SSL/TLS (usually port 993)",
    "starttls": "STARTTLS (usually port 143)",
    "none": "None: only for a server on this machine (loopback)",
}

IMAP_PRESETS = {
    "icloud": {
        "label": "iCloud Mail",
        "host": "imap.mail.me.com",
        "port": 993,
        "security": "ssl",
        "note": ("iCloud Mail's IMAP server is imap.mail.me.com, port 993 with SSL. Use your full iCloud Mail "
                 "address as the user name and an app-specific password (account.apple.com → Sign-In and "
                 "Security → App-Specific Passwords); the one your iCloud SMTP account uses works here too. "
                 "Bounces come back to that inbox: Loft moves only bounces, complaints and auto-replies to the "
                 "processed folder and leaves everything else alone."),
    },
    "generic": {
        "label": "Another provider",
        "host": "",
        "port": 993,
        "security": "ssl",
        "note": ("Enter the IMAP server of the mailbox your bounces return to (the envelope sender, or the SMTP "
                 "account's own address when the relay sets it). Loft moves the bounces, complaints and "
                 "auto-replies it has read to the processed folder and leaves other mail alone."),
    },
}
