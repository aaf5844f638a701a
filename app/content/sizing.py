"""How much a template render may build, counted before it is built (see app/content/sandbox.py).

Every operator, slice, filter and method of the sandbox that can make a large value asks here
first: text_size and the *_size helpers count what str(), join, replace or % would produce
without producing it, reserve refuses past MAX_VALUE / MAX_ITEMS, and all the values of one
render share an allocation budget (open_budget ... close_budget, per thread)."""

import datetime
import functools
import re
import threading

from app.content.record import Record

MAX_VALUE = 100_000  # characters in any one value a template builds
MAX_ITEMS = 10_000  # items in any one list a template builds
ALLOCATION_BUDGET = 4_000_000  # characters built by one render, all values together


class LimitError(Exception):
    """Raised inside a render when a cap is hit; turned into a RenderError."""


_state = threading.local()


def open_budget():
    """Start counting what this thread's render builds."""
    _state.budget = [0]


def close_budget():
    _state.budget = None


ITEM_COST = 8  # a list slot is an 8-byte pointer; the budget counts characters (1-4 bytes each)
TOO_LONG = f"a value in this template would be longer than {MAX_VALUE:,} characters"
TOO_MANY = f"a list in this template would have more than {MAX_ITEMS:,} items"


def _charge(length):
    budget = getattr(_state, "budget", None)
    if budget is None:
        return
    budget[0] += length
    if budget[0] > ALLOCATION_BUDGET:
        raise LimitError(f"this template builds more than {ALLOCATION_BUDGET:,} characters of text while rendering")


def reserve(chars=0, items=0):
    """Refuse, *before* it is built, a value of `chars` characters or `items` list items; else charge it."""
    if chars > MAX_VALUE:
        raise LimitError(TOO_LONG)
    if items > MAX_ITEMS:
        raise LimitError(TOO_MANY)
    _charge(chars + items * ITEM_COST)


def check_size(value):
    """Refuse an oversized value and charge a built one to the render's budget.

    Only for results whose size cannot be known beforehand (a filter's, a method's),
    and always after their inputs were sized by text_size, so what is built here is
    at most a small multiple of MAX_VALUE before it is refused."""
    if isinstance(value, str):
        reserve(chars=len(value))
    elif isinstance(value, (list, tuple)):
        reserve(items=len(value))
    return value


def _repr_length(text):
    if text.isprintable():
        return len(text) + 2 + text.count("\\") + text.count("'")  # quotes, and escapes of \ and '
    return len(repr(text))  # only after len(text) was found small enough (see text_size)


def text_size(value, limit=MAX_VALUE, quoted=False):
    if type(value) is str and not quoted:  # the common case, on every send: no walk
        if len(value) > limit:
            raise LimitError(TOO_LONG)
        return len(value)
    return _walk_size(value, limit, quoted)


def _walk_size(value, limit, quoted):
    """How long str(value) would be, counted without building it; LimitError past `limit`.

    str() of a list is its repr, which a template can make enormous cheaply:
    `[s] * 10000` is 80 KB of pointers but a gigabyte once printed, joined or passed
    to a filter. This walks the value instead (iteratively, so nesting cannot
    overflow the stack), and every step adds at least one character, so the walk
    itself stops after about `limit` steps.
    """
    total = 0
    stack = [(value, quoted)]
    while stack:
        item, in_repr = stack.pop()
        if isinstance(item, str):
            if len(item) > limit:
                raise LimitError(TOO_LONG)
            # (Markup's repr adds "Markup(" and ")")
            total += (_repr_length(item) + (0 if type(item) is str else 8)) if in_repr else len(item)
        elif item is None or isinstance(item, bool):
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 2  # decimal digits, generously
        elif isinstance(item, float):
            total += 24
        elif isinstance(item, (list, tuple)):
            total += 3 + 2 * len(item)  # brackets and ", " (and a 1-tuple's comma)
            if total <= limit:
                stack.extend((element, True) for element in item)
        elif isinstance(item, Record) and not in_repr:
            total += 0  # str() of a record is empty; only its repr, inside a list, shows the data
        elif isinstance(item, (dict, Record)):
            data = item._data if isinstance(item, Record) else item
            total += 10 + 4 * len(data)  # "Record({", "': '", ", "
            if total <= limit:
                for key, element in data.items():
                    stack.append((key, True))
                    stack.append((element, True))
        elif isinstance(item, (datetime.date, datetime.datetime)):
            total += 60
        else:
            total += 100  # Undefined, a bound method: short reprs that show no contents
        if total > limit:
            raise LimitError(TOO_LONG)
    return total


def replace_size(text, old, new, count=-1):
    if not isinstance(text, str) or not isinstance(old, str) or not isinstance(new, str):
        return None
    occurrences = text.count(old) if old else len(text) + 1
    if count is not None and count >= 0:
        occurrences = min(occurrences, count)
    return len(text) + occurrences * (len(new) - len(old))


def join_size(separator, items):
    """(items as a list, the length of the joined text), without stringifying anything."""
    if isinstance(items, (str, list, tuple)) and len(items) > MAX_ITEMS:
        raise LimitError(TOO_MANY)
    items = list(items)
    if len(items) > MAX_ITEMS:
        raise LimitError(TOO_MANY)
    total = 0
    for item in items:
        total += text_size(item, MAX_VALUE - total)
    return items, total + text_size(separator) * max(len(items) - 1, 0)


# printf-style conversions: %(key)s, flags, width, .precision, length modifier, type.
_CONVERSION = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(\*|\d*)(?:\.(\*|\d*))?[hlL]?(.?)", re.DOTALL)


def _argument_size(value):
    """The most characters one %-conversion of `value` can print (%r included)."""
    if isinstance(value, float):
        return 330  # '%f' % 1e308 has 309 digits before the point
    return text_size(value, quoted=True)


@functools.lru_cache(maxsize=256)
def _conversions(template):
    """(number of conversions, sum of their widths and precisions) in a %-format template."""
    conversions = 0
    widths = 0
    for match in _CONVERSION.finditer(template):
        width, precision, kind = match.groups()
        if "*" in (width, precision) or len(width) > 4 or len(precision or "") > 4:
            raise LimitError("formatting widths that large are not allowed")
        widths += int(width or 0) + int(precision or 0)
        if kind != "%":
            conversions += 1
    return conversions, widths


def format_size(template, arguments):
    """An upper bound on the length of `template % arguments`, from the template and the arguments' sizes."""
    conversions, widths = _conversions(str(template))
    if isinstance(arguments, tuple):
        size = 0
        for argument in arguments:
            size += _argument_size(argument)
            if size > MAX_VALUE:
                raise LimitError(TOO_LONG)
    else:  # one value, or a mapping that each %(key)s may read again
        size = _argument_size(arguments)
        if isinstance(arguments, (dict, Record)):
            data = arguments._data if isinstance(arguments, Record) else arguments
            size = max([size] + [_argument_size(value) for value in data.values()])
        size *= conversions
    return len(template) + widths + size
