"""Email addresses as people type them: the one normaliser, and the checks for header values.

normalise_email is how every address Loft stores (users, invitations, contacts, imports,
suppressions, senders) is checked and written. one_address and one_line guard what ends up in
mail headers (From, Reply-To, names). It imports nothing from the app but app.errors, so every
area can use the same rule.
"""
import re

from email_validator import EmailNotValidError
from email_validator import validate_email

from app.errors import Problem


class InvalidEmail(Problem):
    """Not an email address: the message is email-validator's reason; each area words its refusal."""


# The fast path for the common case, a plain ASCII address. It accepts a strict subset of what
# email-validator accepts, with the same result (tests/test_imports.py compares the two over
# thousands of addresses): an import checks every row, and the validator takes about 20 times as
# long for a plain address (timeit, ann.smith@example.com).
_ATOM = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_SPECIAL_TLD = r"(?:arpa|invalid|local|localhost|onion|test)"  # email_validator.SPECIAL_USE_DOMAIN_NAMES
FAST_EMAIL = re.compile(rf"(?=[^@]{{1,64}}@){_ATOM}(?:\.{_ATOM})*@(?:{_LABEL}\.)+(?!{_SPECIAL_TLD}\Z)[a-z]{{2,63}}")


def is_fast_email(email):
    """Whether `email` (stripped and lower-cased) is one the fast path accepts as it is."""
    # "--" would need email-validator's rules on hyphens in labels (and Punycode).
    return FAST_EMAIL.fullmatch(email) is not None and len(email) <= 254 and "--" not in email


def normalise_email(raw, allow_test_domains=False):
    """`raw` as Loft stores an address: stripped, syntax-checked (no DNS lookups), lower-cased.

    Else InvalidEmail with the reason. `allow_test_domains` accepts the special-use domains
    (.test, .localhost, ...), which no contact can have but an instance's own sender may."""
    text = (raw or "").strip()
    email = text.lower()
    if is_fast_email(email):
        return email
    try:
        return validate_email(text, check_deliverability=False, test_environment=allow_test_domains).normalized.lower()
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from None


def lookup_form(raw):
    """`raw` as normalise_email stores it, to look an address up (sign-in, a reset, a bounce report,
    "preview as"): "Ann@xn--bcher-kva.example" finds "ann@bücher.example". Text that is no address
    comes back stripped and lower-cased: it matches nothing stored and still names the attempt."""
    try:
        return normalise_email(raw)
    except InvalidEmail:
        return (raw or "").strip().lower()


def normalise_domain(raw):
    """The domain of an address as normalise_email writes it ("Bücher.example" and its Punycode
    "xn--bcher-kva.example" alike, so a domain entry matches the domain stored on contacts), else
    InvalidEmail."""
    return normalise_email("x@" + (raw or "").strip()).rpartition("@")[2]

# One addr-spec and nothing else: no display name, list, group, comment, quoting or whitespace.
_ONE_ADDRESS = re.compile(r"^[^\s@,;:<>()\[\]\\\"\x00-\x1f\x7f]+@[^\s@,;:<>()\[\]\\\"/?#&=%\x00-\x1f\x7f]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_address(value):
    """`value` (stripped) if it is exactly one plain email address, else "".

    A comma, angle bracket or line break in a From or Reply-To would add recipients or
    headers, or a second target to List-Unsubscribe's mailto:."""
    value = (value or "").strip()
    return value if _ONE_ADDRESS.match(value) else ""


def one_line(value):
    """Whether `value` (a display name) has no line breaks or other control characters."""
    return not _CONTROL.search(value or "")
