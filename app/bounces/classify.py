"""Classify one failed delivery into a Loft outcome.

Input: what a bounce says about one recipient — the RFC 3463 status code
("5.1.1"), the remote server's words (Diagnostic-Code or the prose of a
non-standard bounce), the SMTP reply code and command when known. Output:
a reason token (the vocabulary of sisimai, whose test suite labels the
corpus: userunknown, mailboxfull, blocked, ...) and a Loft kind:

  hard    the address is dead (no such user, no such domain, moved away,
          the domain takes no mail): suppress after one.
  soft    the mailbox is there but could not take it now (full, suspended,
          expired in a queue, a broken receiving system): suppress after N
          in M days.
  block   the receiver refused *us* (spam filter, blocklist, policy, relay,
          reverse DNS, content, size, rate): never blame the contact.
  auth    our own SPF/DKIM/DMARC failed: alert and stop the campaign.
  limit   the sending account hit its own quota: pause the account.

The most specific evidence wins: words in the reply beat a generic status
code (a "Status: 5.0.0" whose reply says "452 4.2.2 mailbox full" is a full
mailbox), and a specific status code (5.1.1) beats vague prose. The words of
each reason, and the order they are tried in, are in reason_words.py.
"""
import re

from app.bounces.reason_words import PATTERNS
from app.bounces.reason_words import text_reasons
from app.senders.accounts import is_account_limit_reply

KINDS = ("hard", "soft", "block", "auth", "limit", "complaint", "none")

# reason -> Loft kind (notaccept is hard only when permanent; see kind_of)
KIND_OF_REASON = {
    "userunknown": "hard", "hostunknown": "hard", "hasmoved": "hard", "notaccept": "hard",
    "mailboxfull": "soft", "suspend": "soft", "filtered": "soft", "expired": "soft", "networkerror": "soft",
    "systemerror": "soft", "systemfull": "soft", "mailererror": "soft", "onhold": "soft", "undefined": "soft",
    "blocked": "block", "spamdetected": "block", "policyviolation": "block", "rejected": "block",
    "badreputation": "block", "virusdetected": "block", "notcompliantrfc": "block", "norelaying": "block",
    "requireptr": "block", "securityerror": "block", "toomanyconn": "block", "speeding": "block",
    "syntaxerror": "block", "contenterror": "block", "mesgtoobig": "block", "exceedlimit": "block",
    "failedstarttls": "block",
    "authfailure": "auth",
    "accountlimit": "limit",
}

ENHANCED = re.compile(r"(?<![\w.])([245])\.(\d{1,3})\.(\d{1,3})(?![\w-]|\.\d)")
REPLY = re.compile(r"(?<![\w.#-])([245][0-5]\d)(?:[ -]|$)")
# A reply code given as a labelled field ("ERROR_CODE :550," in Zoho Mail's reports).
LABELLED_REPLY = re.compile(r"\berror[_ ]?code\s*:\s*([245][0-5]\d)\b", re.I)


# RFC 3463 subject.detail -> reason, for when the words say nothing useful.
STATUS_REASONS = {
    "1.0": "userunknown", "1.1": "userunknown", "1.2": "hostunknown", "1.3": "userunknown", "1.4": "filtered",
    "1.5": "userunknown", "1.6": "hasmoved", "1.7": "rejected", "1.8": "rejected", "1.9": "systemerror",
    "1.10": "notaccept",
    "2.0": "filtered", "2.1": "suspend", "2.2": "mailboxfull", "2.3": "exceedlimit", "2.4": "filtered",
    "3.0": "systemerror", "3.1": "systemfull", "3.2": "notaccept", "3.3": "systemerror", "3.4": "mesgtoobig",
    "3.5": "systemerror",
    "4.0": "networkerror", "4.1": "networkerror", "4.2": "networkerror", "4.3": "systemerror", "4.4": "hostunknown",
    "4.5": "networkerror", "4.6": "networkerror", "4.7": "expired",
    "5.0": "syntaxerror", "5.1": "syntaxerror", "5.2": "syntaxerror", "5.3": "exceedlimit", "5.4": "syntaxerror",
    "5.5": "syntaxerror", "5.6": "syntaxerror",
    "6.0": "contenterror", "6.1": "contenterror", "6.2": "contenterror", "6.3": "contenterror", "6.4": "contenterror",
    "6.5": "contenterror",
    "7.0": "securityerror", "7.1": "blocked", "7.2": "securityerror", "7.3": "securityerror", "7.4": "securityerror",
    "7.5": "securityerror", "7.6": "securityerror", "7.7": "securityerror", "7.8": "securityerror",
    "7.9": "securityerror", "7.10": "securityerror", "7.13": "suspend", "7.14": "securityerror",
    "7.20": "authfailure", "7.21": "authfailure", "7.22": "authfailure", "7.23": "authfailure",
    "7.24": "authfailure", "7.25": "requireptr", "7.26": "authfailure", "7.27": "notaccept",
    "7.17": "hasmoved", "7.18": "hasmoved",  # mailbox / domain owner has changed (RFC 7293)
    "7.28": "spamdetected", "7.29": "authfailure", "7.30": "failedstarttls",
}

# Codes that say only the class of the failure ("5.0.0", "5.5.0" from qmail's "(#5.5.0)").
VAGUE = {"", "0.0", "5.0", "3.0", "4.0", "0.1"}

# A precise status code keeps its reason unless the words name one of these.
OVERRIDES = {
    "userunknown": {"mailboxfull", "mesgtoobig", "exceedlimit", "suspend", "hasmoved", "norelaying", "authfailure",
                    "requireptr", "rejected", "notaccept", "blocked", "spamdetected", "virusdetected",
                    "policyviolation", "badreputation", "speeding", "toomanyconn", "hostunknown", "filtered"},
    "hostunknown": {"mailboxfull", "norelaying", "authfailure", "requireptr", "rejected", "notaccept", "blocked",
                    "spamdetected", "policyviolation", "userunknown"},
    "hasmoved": set(),
    "rejected": {"authfailure", "requireptr", "blocked", "spamdetected", "policyviolation", "badreputation",
                 "norelaying"},
    "mailboxfull": set(),
    "notaccept": set(),
}


# Words that name a missing mailbox whatever SMTP step they answered.
DEFINITE_USER_UNKNOWN = re.compile(r"(?:doesn't|does not) have an? \S+ account|no mailbox here by that name|"
                                   r"resolver\.adr\.recipi?ent ?notfound|"
                                   r"(?<!domain )\baddress (?:couldn't|could not|can't|cannot) be found")
EMPTY_USER_UNKNOWN = re.compile(r"\b5\d\d\s*:?\s*:\s*user unknown")
# Postfix's reply when its access table refuses a recipient (access(5): "<addr>: Recipient address
# rejected: Access denied"), the wording Exchange Online also uses for an address its directory does
# not hold. It names the recipient as what is refused, so as the answer to RCPT TO it says the address
# cannot be reached (sisimai counts it as an unknown user). "Access denied" about the sender, a relay or
# the client, or said after DATA, stays a policy refusal.
RECIPIENT_ACCESS_DENIED = re.compile(r"recipient address rejected: access denied")


def normalise(text):
    return re.sub(r"\s+", " ", (text or "").lower()).strip()


def find_status(text):
    """Every RFC 3463 code in `text`, in order ("5.1.1", ...)."""
    return [".".join(m.groups()) for m in ENHANCED.finditer(text or "")]


def find_reply(text):
    match = REPLY.search(text or "") or LABELLED_REPLY.search(text or "")
    return int(match.group(1)) if match else None


def is_generic(status):
    """x.0.0 and empty codes carry only the class."""
    return not status or status.split(".", 1)[-1] in ("0.0", "")


def best_status(status, text):
    """The most specific status: a code in the server's words beats a generic Status field."""
    status = (status or "").strip()
    found = [s for s in find_status(text) if s[0] in "45"]
    specific = [s for s in found if not is_generic(s)]
    if status and not is_generic(status) and status[0] in "245":
        # A 5.x Status whose reply says 4.2.2 (a relay gave up on a full mailbox): keep the mailbox-full one.
        if any(s.endswith(".2.2") for s in specific) and not status.endswith(".2.2"):
            return next(s for s in specific if s.endswith(".2.2"))
        return status
    if specific:
        return specific[0]
    if found:
        return found[0]
    if status:
        return status
    reply = find_reply(text)
    if reply:
        return f"{str(reply)[0]}.0.0"
    return ""


# --- Layer 1: receivers whose own words mean something specific ----------------------------------
# A few receiving services word their refusals in documented ways that the generic rules below
# would misread. They are recognised by the recipient's domain or the remote MTA's name, like
# sisimai's "rhost" modules. Each rule cites the behaviour it encodes.

# Which service received the message: by the recipient's domain or a remote/reporting MTA name.
RECEIVER_NAMES = (
    ("kddi", r"ezweb\.ne\.jp|au\.com"),
    ("docomo", r"docomo\.ne\.jp"),
    ("microsoft", r"(?:hotmail|outlook|live|msn)\.[a-z.]+|(?:protection|prod)\.outlook\.com|onmicrosoft\.com|"
                  r"exchangelabs\.com"),
    ("apple", r"icloud\.com|me\.com|mac\.com|apple\.com"),
    ("yahoo", r"yahoo\.[a-z.]+|yahoodns\.net|ymail\.com|rocketmail\.com"),
    ("aol", r"aol\.[a-z.]+"),
    ("godaddy", r"secureserver\.net"),
    ("cox", r"cox\.net"),
    ("orange", r"orange\.fr|wanadoo\.fr|laposte\.net"),
    ("tencent", r"qq\.com|foxmail\.com"),
    ("mimecast", r"mimecast\.com"),
    ("messagelabs", r"messagelabs\.com"),
)


def _receiver(domain, remote):
    """The receiving service, judged first by the recipient's domain, then by each MTA name in turn."""
    for name in [domain, *(remote or "").split()]:
        name = f".{name.lower().strip('[]();:,<>')}"
        for receiver, pattern in RECEIVER_NAMES:
            if re.search(rf"\.(?:{pattern})$", name):
                return receiver
    return ""


# Words a receiver documents for its refusals (its postmaster pages, as collected by sisimai's
# rhost modules): receiver -> ((words, reason), ...). The first match wins.
RECEIVER_WORDS = {
    "apple": (  # https://support.apple.com/102322
        ("s dmarc policy", "authfailure"), ("failing both spf and dkim", "authfailure"),
        ("spamhaus", "blocked"), ("dnsbl-lookup", "blocked"), ("not accepting connections", "blocked"),
        ("recipient no longer on server", "hasmoved"), ("user is over quota", "mailboxfull"),
        ("relay access denied", "norelaying"), ("host/domain does not accept mail", "notaccept"),
        ("due to local policy", "policyviolation"), ("sender address rejected", "rejected"),
        ("due to excessive volume", "speeding"),
        ("inactive email address", "userunknown"), ("user does not exist", "userunknown"),
        ("unknown or illegal alias", "userunknown")),
    "yahoo": (  # https://senders.yahooinc.com/smtp-error-codes
        ("requires all senders to authenticate", "authfailure"), ("spamhaus", "blocked"),
        ("relaying denied for", "norelaying"), ("headers are not rfc compliant", "notcompliantrfc"),
        ("not accepted for policy reasons", "policyviolation"),
        ("deferred due to unexpected volume or user complaints", "rejected"),
        ("unresolvable rfc.5321", "rejected"), ("will be permanently deferred", "rejected"),
        ("receiving mail too quickly", "speeding"), ("max message per connection", "toomanyconn"),
        # "554 delivery error: dd x@yahoo.com is no longer valid." is a disabled account, not a dead one
        (" is no longer valid", "suspend"), ("this mailbox is disabled", "suspend"),
        ("this user doesn't have a ", "userunknown"), ("mailbox not found", "userunknown")),
    "aol": (("host or domain name not found", "hostunknown"),
            ("malformed or unexpected name server reply", "notaccept")),
    "godaddy": (  # https://www.godaddy.com/help/fix-rejected-email-with-a-bounce-error-40685
        ("rbl reject", "blocked"), ("spamhaus.org/query", "blocked"),
        ("in the queue too long", "expired"), ("delivery timeout", "expired"),
        ("account storage limit", "mailboxfull"), ("rejected for spam or virus content", "spamdetected"),
        ("account disabled", "suspend"), ("message is looping", "systemerror"),
        ("recipient not found", "userunknown"), ("account does not exist", "userunknown")),
    "cox": (  # https://www.cox.com/residential/support/cox-postmaster-email-administration.html
        ("too many bad commands", "blocked"), ("too many invalid recipients", "blocked"),
        ("dns check failure", "requireptr"), ("no rdns", "requireptr"),
        ("no data before greeting", "policyviolation"), ("attachment extension is forbidden", "policyviolation"),
        ("sender rejected", "rejected"), ("temporarily not available", "systemerror"),
        ("too many sessions", "toomanyconn"), ("message threshold exceeded", "toomanyconn"),
        ("recipient rejected", "userunknown")),
    "tencent": (  # https://service.mail.qq.com/detail/122
        ("spf check failed", "authfailure"), ("dmarc check failed", "authfailure"),
        ("suspected bounce attacks", "blocked"), ("suspected spam ip", "blocked"), ("connection denied", "blocked"),
        ("message too large", "mesgtoobig"), ("suspected spam", "rejected"),
        ("mail is rejected by recipients", "rejected"), ("spam is embedded", "spamdetected"),
        ("mail content denied", "spamdetected"), ("mailbox unavailable or access deni", "speeding"),
        ("frequency of receiving messages is limited", "speeding"), ("is a deactivated mailbox", "suspend"),
        ("bad address syntax", "syntaxerror"), ("frequency limited", "toomanyconn"),
        ("mailbox not found", "userunknown")),
    "mimecast": (  # https://community.mimecast.com (Mimecast SMTP error codes)
        ("sender invalid - envelope rejected", "authfailure"), ("ip reputation", "badreputation"),
        ("sender address blocked", "blocked"), ("ip temporarily blacklisted", "blocked"),
        ("maximum email size exceeded", "mesgtoobig"), ("mail loop detected", "networkerror"),
        ("open relay", "norelaying"), ("account inbounds disabled", "notaccept"),
        ("anti-spoofing policy", "policyviolation"), ("content examination policy", "policyviolation"),
        ("host network not allowed", "policyviolation"), ("envelope blocked", "rejected"),
        ("blocked senders", "rejected"), ("block policy for envelope from", "rejected"),
        ("invalid recipient", "userunknown"), ("503 user unknown", "userunknown"),
        ("501 invalid address", "userunknown")),
    "messagelabs": (  # https://knowledge.broadcom.com/external/article/169652
        ("domain authentication fail", "authfailure"), ("connection rejected by policy", "badreputation"),
        ("your ip is in the pbl", "blocked"), ("your ip address has been", "blocked"),
        ("stray linefeeds in message", "contenterror"), ("connection required", "failedstarttls"),
        (" as a relay, ", "norelaying"), ("not rfc 5322", "notcompliantrfc"),
        ("sender envelope domain not allowed", "rejected"), ("your domain has been", "rejected"),
        ("your email address has been", "rejected"), ("badmailfrom", "rejected"),
        ("message filtered", "spamdetected"), ("filtered by outbound scanning", "spamdetected"),
        ("too many recipients received this hour", "toomanyconn"), ("too many messages", "toomanyconn"),
        ("no such user", "userunknown"), ("invalid recipient", "userunknown"),
        ("mailbox is not allowed", "userunknown")),
}

# Orange / La Poste number their refusals ("OFR_416", "LPN007_420"): the last three digits say why.
ORANGE_CODES = {
    "101": "blocked", "102": "blocked", "103": "blocked", "104": "toomanyconn", "305": "securityerror",
    "401": "authfailure", "402": "securityerror", "403": "rejected", "405": "rejected", "415": "rejected",
    "416": "userunknown", "417": "mailboxfull", "420": "suspend", "421": "rejected", "426": "suspend",
    "505": "systemerror", "506": "spamdetected", "510": "blocked", "514": "mesgtoobig", "517": "authfailure",
    "630": "policyviolation", "999": "blocked",
}


# Microsoft's published NDR codes (Exchange Server and Exchange Online "Email non-delivery reports
# and SMTP errors"; Outlook.com postmaster troubleshooting). (status pattern, words, reason).
MICROSOFT_NDR = (
    (r"5\.1\.1", "resolver.adr.exrecipnotfound", "userunknown"),
    (r"5\.1\.1", "bad destination mailbox address", "userunknown"),
    (r"5\.1\.10", "recipient not found", "userunknown"),
    (r"5\.1\.351", "unknown recipient or mailbox unavailable", "userunknown"),
    (r"5\.4\.1", "recipient address rejected: access denied", "userunknown"),
    # Outlook.com answers a missing mailbox with the generic 550 text and 5.5.0 (like 5.1.10).
    (r"5\.[05]\.0", "requested action not taken: mailbox unavailable", "userunknown"),
    (r"5\.7\.50[45]", "", "suspend"),  # "recipient address rejected: access denied" / "banned recipient"
    (r"5\.2\.1", "mailbox cannot be accessed", "suspend"),
    (r"5\.2\.2", "submission quota exceeded", "speeding"),
    (r"5\.4\.4", "nonexistent domain", "networkerror"),  # our own DNS resolution (smtpsend.dns)
    (r"5\.4\.310", "does not exist", "norelaying"),  # "DNS domain ... does not exist" at the sending side
    (r"[45]\.4\.31[26]", "", "networkerror"),  # DNS query failed / connection refused
    (r"[45]\.4\.(?:7|300)", "expired", "expired"),
    (r"5\.4\.(?:6|14)", "loop", "networkerror"),
    (r"5\.7\.1", "unable to relay", "norelaying"),
    (r"5\.7\.1", "client was not authenticated", "securityerror"),
    (r"5\.7\.1", "delivery not authorized", "rejected"),
    (r"5\.7\.(?:12|13[3-6]?)", "not authenticated", "rejected"),
    (r"5\.7\.9\d\d", "", "policyviolation"),  # rejected by a mail flow (transport) rule
    (r"5\.7\.(?:23|509|515)", "", "authfailure"),
    (r"5\.7\.(?:50[6-8]|51[013]|6[0-4]\d)", "", "blocked"),
    (r"5\.1\.[078]", "sender", "rejected"),
)


def receiver_reason(domain, remote, text, code, command):
    """A reason from a receiver's documented wording, or ""."""
    receiver = _receiver(domain, remote)
    if receiver == "kddi":
        # au (KDDI) answers "550 <address>: User unknown" for a missing mailbox, and the same words
        # without the address ("550 : User unknown") when the recipient's own filter refused us.
        if re.search(r">\s*:\s*user unknown", text):
            return "userunknown"
        if EMPTY_USER_UNKNOWN.search(text):
            return "filtered"
    elif receiver == "docomo":
        # NTT docomo: "550 Unknown user" is a missing mailbox at RCPT; the same after DATA or
        # with Status 5.2.0 is the receiver's domain/sender filter.
        if code == "5.2.0" or command == "DATA":
            return "filtered"
        if "552 too much mail data" in text:
            return "mailboxfull"
        if "unknown user" in text or code == "5.1.1":
            return "userunknown"
    elif receiver == "orange":
        label = re.search(r"\b(?:lpnaaa|lpn|ofr|ouk)[\d_-]*?(\d{3})\b", text)
        if label and ORANGE_CODES.get(label.group(1)):
            return ORANGE_CODES[label.group(1)]
        if "spf/dns de votre nom de domaine" in text:
            return "authfailure"
    elif receiver in RECEIVER_WORDS:
        return next((reason for words, reason in RECEIVER_WORDS[receiver] if words in text), "")
    elif receiver == "microsoft" and code:
        codes = [code] + find_status(text)
        for pattern, words, reason in MICROSOFT_NDR:
            if any(re.fullmatch(pattern, c) for c in codes) and words in text:
                return reason
    return ""


# --- Layers 2 and 3: status code meaning, then the words --------------------------------------------

# Words that say the receiver refused *us* or *this message* (spam or content filters, policy,
# block lists). With these in the reply, "user unknown"-like words elsewhere in it (Exchange and
# Office 365 append "Requested action not taken: mailbox unavailable" to any 550) do not make the
# address dead.
POLICY_WORDS = re.compile(
    r"\bspam|\bpolicy\b|polic(?:y|ies) (?:violation|reasons)|content (?:filter|restriction|rejected)|"
    r"\bfilter(?:ed|ing)?\b|black ?list|block ?list|\bblocked\b|(?<!not )\blisted (?:in|at|on|by)|\brbl\b|"
    r"\bdnsbl\b|spamhaus|reputation|\bvirus|malware|phish|not authori[sz]ed|unsolicited|bulk mail|"
    r"(?:rejected|refused|denied) (?:by|due to|because of) (?:the |our |a |an |local |remote )?(?:\S+ )?"
    r"(?:filter|polic|spam|content|anti|security|rule|firewall|reputation)")


# A delivery given up on (expired) or a network failure: "host not found" in such a report names
# the cause of the retries, not a domain that does not exist.
GAVE_UP = re.compile(r"expired|giving up|gave up|retry time(?:out)? (?:exceeded|not reached)|"
                     r"too long in (?:the )?queue|could not be delivered (?:with)?in|undeliverable for|"
                     r"maximum time|delivery time")
TEMPORARY_NETWORK = re.compile(r"try again|temporar|timed? ?out|connection (?:refused|reset|lost|closed)|"
                               r"no route to host|network is unreachable|host is unreachable|servfail|lost connection")

# Advice to the sender to fix the address and send again ("Please check the domain and try again",
# "check for typos ... and try again"): it says the address is wrong, not that the trouble is passing.
# "... and try again later" still says to wait, so it is left alone.
FIX_AND_RETRY = re.compile(r"\b(?:check|verify|correct|confirm|fix)\b[^.;!]{0,80}?\b(?:and|then)\s+"
                           r"(?:try|send)(?!(?: \S+){0,3} later\b)(?: (?:it|the message|sending|again))*")

# A failed or temporary DNS lookup, or a mail loop: not proof that the domain does not exist.
DNS_TROUBLE = re.compile(r"try again|host name lookup failure|malformed (?:or unexpected )?name server reply|"
                         r"unrouteable mail domain|servfail|temporary (?:dns|lookup) failure|\bloop")

# Reasons about the receiver refusing us or the message: never the contact's fault.
POLICY_REASONS = {"spamdetected", "virusdetected", "policyviolation", "blocked", "badreputation", "rejected",
                  "filtered", "authfailure", "requireptr", "norelaying", "securityerror", "contenterror"}


def classify(status="", diagnostic="", action="failed", command="", reply_code=None, context="",
             diagnostic_type="", recipient="", remote_mta=""):
    """(kind, reason, status) for one recipient.

    `diagnostic` is the server's reply for this recipient; `context` is
    other prose of the bounce, consulted only when the reply decides nothing.
    `command` is the SMTP command the reply answered (RCPT, DATA, MAIL,
    HELO) when the bounce says so. `recipient` and `remote_mta` identify
    the receiving service, whose documented wording is read first.

    Order of evidence (as sisimai does it): the receiver's own documented
    wording; then the RFC 3463 status code, which the words may only refine
    within what the code allows; then the words alone; then the context.
    """
    action = (action or "failed").lower()
    command = (command or "").upper()
    diagnostic_type = (diagnostic_type or "").upper()
    text = normalise(diagnostic)
    code = best_status(status, text)
    if code.startswith("2") or action in ("delivered", "relayed", "expanded"):
        return "none", "delivered", code
    if text and is_account_limit_reply(reply_code or find_reply(text) or 0, text):
        return "limit", "accountlimit", code
    domain = (recipient or "").rpartition("@")[2]
    reason = receiver_reason(domain, remote_mta, text, code, command) if text else ""
    if reason:
        return kind_of(reason, code, text), reason, code
    detail = code.split(".", 1)[1] if code.count(".") == 2 else ""
    by_status = "" if detail in VAGUE else STATUS_REASONS.get(detail, "")
    if not by_status and detail.startswith("1.") and detail not in VAGUE:
        by_status = "userunknown"  # vendor details such as Microsoft's 5.1.351
    found = text_reasons(text)
    # Addresses and links are left out: "filtered@..." or ".../reason/#filtered" say nothing of a filter.
    policy = bool(POLICY_WORDS.search(re.sub(r"\S+@\S+|\w+://\S+", " ", text)))
    reason = ""
    if by_status in OVERRIDES:
        allowed = OVERRIDES[by_status]
        reason = next((r for r in found if r in allowed), by_status)
    elif detail.startswith("7.") and by_status:
        # X.7.x is security or policy (RFC 3463): the words may name which kind, but "user unknown"
        # counts only as the plain answer to RCPT TO with no policy words beside it.
        reason = next((r for r in found if r not in ("userunknown", "hostunknown", "hasmoved", "notaccept")), "")
        if not reason and "userunknown" in found and command == "RCPT" and not policy:
            reason = "userunknown"
        elif reason == "blocked" and command == "RCPT" and not policy and RECIPIENT_ACCESS_DENIED.search(text) \
                and not PATTERNS["blocked"].search(RECIPIENT_ACCESS_DENIED.sub(" ", text)):
            reason = "userunknown"  # the only "denied" in the reply is the recipient's own refusal
        reason = reason or by_status
    elif detail == "4.7":
        # Expired in the queue: only a full mailbox named inside it says more (deliverability §2.3).
        reason = "mailboxfull" if "mailboxfull" in found else "expired"
    elif found:
        reason = found[0]
        if reason == "userunknown" and policy:
            # "550 Message rejected by spam filter ... mailbox unavailable": the filter refused us.
            reason = next((r for r in found if r in POLICY_REASONS), "filtered")
    if reason == "" and DEFINITE_USER_UNKNOWN.search(text):
        reason = "userunknown"
    if reason == "userunknown" and by_status not in ("userunknown", "hostunknown", "hasmoved") \
            and not DEFINITE_USER_UNKNOWN.search(text):
        # "User unknown" without a x.1.x code. At RCPT TO it means what it says; after DATA the
        # mailbox was there and a filter refused the message (the reply came to the content); at
        # MAIL FROM it is about our sender address. With only the bare class code (5.0.0, or a
        # reply code alone) and nothing naming the SMTP step, the words may be a content filter's
        # (sisimai reads them so, and so do its labels); any other code, 5.5.0 included, is taken
        # at its word.
        if command == "MAIL":
            reason = "rejected"
        elif command == "DATA" or (command != "RCPT" and EMPTY_USER_UNKNOWN.search(text)):
            reason = "filtered"
        elif command != "RCPT" and by_status in ("filtered", "suspend"):
            reason = by_status
        elif command != "RCPT" and detail in ("", "0.0") and (status or find_reply(text)):
            reason = "filtered"
    if command == "MAIL" and reason in ("userunknown", "hostunknown", "filtered", "notaccept", ""):
        reason = "rejected"  # the refusal came at MAIL FROM: it is about our envelope sender
    if diagnostic_type.startswith("X-UNIX") and reason not in ("mailboxfull",):
        reason = "mailererror"  # a local delivery program failed, not an SMTP refusal
    unadvised = FIX_AND_RETRY.sub(" ", text)  # "check the address and try again" is no transient trouble
    if reason == "hostunknown" and DNS_TROUBLE.search(unadvised):
        reason = "networkerror"  # the lookup failed, which does not say the domain is missing
    if reason == "hostunknown" and detail != "1.2":
        # "Host not found" inside a report of a given-up or failing delivery names why the retries
        # failed (a DNS outage, a dead MX), which is not a domain that does not exist.
        if GAVE_UP.search(text):
            reason = "expired"
        elif code.startswith("4") or TEMPORARY_NETWORK.search(unadvised):
            reason = "networkerror"
    if not reason:
        reason = by_status
    if not reason and context:
        prose = normalise(context)
        reason = next(iter(text_reasons(prose)), "")
        if reason == "userunknown" and command != "RCPT" and not DEFINITE_USER_UNKNOWN.search(prose):
            # Loose "unknown user" words in the report's prose, with no reply to place them, may be a
            # filter's; the reporter's own plain statement that the address could not be found is not.
            reason = "filtered"
    if not reason:
        if action == "delayed" or code.startswith("4"):
            reason = "expired"
        elif command in ("HELO", "EHLO"):
            reason = "blocked"
        elif command == "MAIL":
            reason = "rejected"
        elif text:
            reason = "onhold"
        else:
            reason = "undefined"
    return kind_of(reason, code, text), reason, code


def kind_of(reason, status="", text=""):
    if reason == "notaccept" and status.startswith("4"):
        return "soft"  # "this domain takes no mail" said only as a temporary failure
    return KIND_OF_REASON.get(reason, "soft")
