"""The automation engine's "now": naive UTC, from the real clock, or in tests from a file.

A test moves time for every process at once (the web app, a real huey consumer it started) by writing an ISO
time into the file LOFT_CLOCK_FILE names (app config CLOCK_FILE). Nothing in production sets it; a clock file
outside testing is refused with an error rather than quietly making every automation run at the wrong time.
The file is read on every call (a few microseconds), so a write is seen by the next call in any process."""
import datetime
import os
from pathlib import Path

from flask import current_app
from flask import has_app_context

from app.errors import Problem


class ClockFileRefused(Problem):
    """LOFT_CLOCK_FILE set on an instance that is not a test: the operator is told to unset it."""


def _clock_file():
    if has_app_context():
        path = current_app.config.get("CLOCK_FILE") or ""
        testing = bool(current_app.config.get("TESTING"))
    else:
        path, testing = os.environ.get("LOFT_CLOCK_FILE", ""), False
    if not path:
        return None
    if not (testing or os.environ.get("LOFT_TESTING", "").strip() == "1"):
        raise ClockFileRefused("LOFT_CLOCK_FILE is for tests only: unset it (or run under TESTING)")
    return Path(path)


def real_now():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def now():
    """Naive UTC now (the clock file's time in tests that set one; the real time while it is missing or empty)."""
    path = _clock_file()
    if path is None:
        return real_now()
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return real_now()
    if not text:
        return real_now()
    value = datetime.datetime.fromisoformat(text)
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return value


# --- Test helpers ---------------------------------------------------------------------------------

def set_time(path, when):
    """Write `when` (naive UTC, or aware) into the clock file atomically: a reader never sees half a time."""
    if when.tzinfo is not None:
        when = when.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(when.isoformat())
    os.replace(partial, path)
    return when


def advance(path, **delta):
    """Move the clock file's time on by datetime.timedelta(**delta) and return the new time."""
    path = Path(path)
    try:
        current = datetime.datetime.fromisoformat(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        current = real_now()
    return set_time(path, current + datetime.timedelta(**delta))
