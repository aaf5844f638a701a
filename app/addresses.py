"""Checks for values a person types that end up in mail headers (From, Reply-To, names).

A plain function module with no imports from the app, so settings, teams, campaigns and the
message builder can all use the same rule.
"""
import re

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
