"""Problem: the one base of the errors a person is shown, and the one way a view shows one.

A service refuses with its area's subclass (AuthError, ContactError, SegmentError, ...), so a
view catches exactly the refusals of the service it called; every one of them carries the
same three things:

- `message`: the whole refusal in words;
- `errors`: {form field: message} ("" is the form as a whole, a segment uses rule paths);
- `field`: the field the message belongs to (the first of `errors`), None for the whole form.

A view re-renders its form with `render_problem` (the person's input kept, the message at its
field, 422 so htmx swaps the answer in and tests see a refusal). Exceptions that never reach a
person (control flow inside one module, a test's stand-in for a crash) are not Problems; each is
listed with its reason in tests/test_structure_errors.py.
"""
from flask import render_template
from flask import request


class Problem(ValueError):
    """A refusal with a message for the person: `Problem(message, field=None)` or `Problem(errors={...})`.

    A ValueError, as every area's error was before it had this base: code that turns bad input
    into a refusal with `except ValueError` keeps doing so."""

    def __init__(self, message=None, field=None, errors=None):
        self.errors = dict(errors or {})
        if field and message:
            self.errors.setdefault(field, message)
        if message is None:
            message = " ".join(self.errors.values())
        super().__init__(message)
        self.message = message
        self.field = field or next((name for name in self.errors if name), None)


def render_problem(template, problem, status=422, **context):
    """`template` again with the submitted form, each message at its field (`errors`) and the whole
    refusal as `error` (the form_error() macro shows it when no field does)."""
    return render_template(template, form=request.form, error=problem.message, errors=problem.errors,
                           **context), status
