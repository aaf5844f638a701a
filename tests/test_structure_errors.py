"""One error convention and one load-or-404, checked like behaviour so a second one cannot come back.

- Every exception class defined under app/ and tasks/ derives from app.errors.Problem (message,
  field, errors), or is listed in INTERNAL with the reason it never reaches a person.
- No view module loads a row of the current team itself: app.teams.context.team_object_or_404
  does (no `_x_or_404` helper, no `return <lookup>(g.team, ...) or abort(404)`).
- Only app/addresses.py checks email syntax (email_validator); it and the one untrusted-HTML
  response behave as their callers rely on.
"""
import ast
import builtins
import re

import pytest
from flask import g

from app import addresses
from app.config import ROOT
from app.errors import Problem
from app.models import Segment
from app.models import Team
from app.security import untrusted_html_response
from app.teams.context import team_object_or_404

CODE_DIRS = ("app", "tasks")
BUILTIN_EXCEPTIONS = {name for name, value in vars(builtins).items()
                      if isinstance(value, type) and issubclass(value, BaseException)}

# Exceptions that stay inside the code: each is caught and turned into something else before a
# person could see its text, so it does not carry Problem's message/field/errors.
INTERNAL = {
    "Superseded": "imports: another run of the same job committed the chunk first; the run moves on",
    "_AlreadyQueued": "automations: another call set the visit's email first; this call rolls back and says queued",
    "Reject": "imports: one row turned away inside the parse loop; its text becomes that row's reason",
    "LimitError": "content: a cap hit inside a render; turned into a RenderError",
    "LinkInvalid": "consent: a confirmation link the view answers with 404 (tampered) or 410 (expired)",
    "DnsLookupError": "sender domains: an unanswered DNS query, stored as the check's 'error' state",
    "NotFound": "contacts: a filter names another team's list or segment; the pages answer 404, a bulk action "
                "refuses with a ContactError",
    "HostRefused": "senders: an aiosmtplib connect error, so the SMTP client and the engine treat the guard's "
                   "refusal as a failed connection (smtp_client.explain words it)",
    "ConfirmationNotSent": "tasks/consent: the team's server refused the confirmation; huey retries the task",
    "LookupFailed": "deliverability: an unanswered DNS query inside a domain-health check, stored as 'unknown'",
    "SpfError": "deliverability: an SPF permerror found while walking a record tree, worded into the SPF check",
}


def python_files(folders=CODE_DIRS):
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def rel(path):
    return str(path.relative_to(ROOT))


def _base_name(node):
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def class_bases(sources):
    """{class name: [base names]} for every class in `sources` (name -> source text), with where it is."""
    found = {}
    for where, source in sources.items():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef):
                found[node.name] = ([_base_name(base) for base in node.bases], f"{where}:{node.lineno}")
    return found


def exceptions_outside_problem(sources):
    """[(where, name)] for each exception class that does not derive from Problem (by name, through the
    classes of `sources`: `class A(Problem)`, `class B(A)` both derive from it)."""
    classes = class_bases(sources)

    def ancestry(name, seen=()):
        if name in seen or name not in classes:
            return {name}
        names = {name}
        for base in classes[name][0]:
            if base:
                names |= ancestry(base, seen + (name,))
        return names

    offenders = []
    for name, (_, where) in classes.items():
        if name == "Problem":
            continue
        line = ancestry(name)
        is_exception = bool(line & BUILTIN_EXCEPTIONS) or any(
            base.endswith(("Error", "Exception")) for base in line - {name} if base)
        if is_exception and "Problem" not in line:
            offenders.append((where, name))
    return sorted(offenders)


def own_load_or_404(source):
    """(line, what) for each place that loads a row of the current team or aborts 404 by itself: a
    `_x_or_404` helper, or an expression `<lookup using g.team> or abort(404)`."""
    found = []
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and re.fullmatch(r"_\w*_or_404", node.name):
            found.append((node.lineno, node.name))
    for node in ast.walk(tree):
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or) and _aborts_404(node.values[-1]) \
                and any(_is_g_team(n) for value in node.values[:-1] for n in ast.walk(value)):
            found.append((node.lineno, "... or abort(404)"))
    return sorted(found)


def _aborts_404(node):
    return isinstance(node, ast.Call) and _base_name(node.func) == "abort" and node.args \
        and isinstance(node.args[0], ast.Constant) and node.args[0].value == 404


def _is_g_team(node):
    return isinstance(node, ast.Attribute) and node.attr == "team" and isinstance(node.value, ast.Name) \
        and node.value.id == "g"


def view_modules():
    return [path for path in python_files(("app",)) if path.name == "views.py"]


def test_every_exception_is_a_problem_or_listed_as_internal():
    sources = {rel(path): path.read_text(encoding="utf-8") for path in python_files()}
    offenders = [f"{where} {name}" for where, name in exceptions_outside_problem(sources) if name not in INTERNAL]
    assert offenders == [], ("derive from app.errors.Problem (a refusal with a message for the person), "
                             "or list the class in INTERNAL with the reason no person sees it")


def test_internal_exceptions_still_exist():
    """A listed name that no longer exists would let a new class of that name through unchecked."""
    sources = {rel(path): path.read_text(encoding="utf-8") for path in python_files()}
    assert set(INTERNAL) <= set(class_bases(sources))


def test_no_view_loads_a_team_object_its_own_way():
    found = [f"{rel(path)}:{line} {name}" for path in view_modules()
             for line, name in own_load_or_404(path.read_text(encoding="utf-8"))]
    assert found == [], "load the current team's row with app.teams.context.team_object_or_404(Model, id)"


def test_the_checks_see_what_they_look_for():
    """The detectors themselves, on small samples, so a check cannot pass by finding nothing."""
    sample = {"a.py": "class Problem(ValueError): pass\n"
                      "class AuthError(Problem): pass\n"
                      "class TooLong(AuthError): pass\n"
                      "class Stray(ValueError): pass\n"
                      "class Remote(smtplib.SMTPException): pass\n"
                      "class Child(Stray): pass\n"
                      "class Plain: pass\n"
                      "class Row(BaseModel): pass\n"}
    assert sorted(name for _, name in exceptions_outside_problem(sample)) == ["Child", "Remote", "Stray"]
    assert [name for _, name in own_load_or_404("def _list_or_404(list_id):\n    return get_list(g.team, list_id)\n")] \
        == ["_list_or_404"]
    assert [what for _, what in own_load_or_404(
        "def _campaign(campaign_id):\n    return services.get_campaign(g.team, campaign_id) or abort(404)\n")] \
        == ["... or abort(404)"]
    assert [line for line, _ in own_load_or_404(
        "def show(entry_id):\n    x = 1\n    entry = services.get_entry(g.team, entry_id) or abort(404)\n")] == [3]
    assert own_load_or_404("def show(key):\n    return services.builtin(key) or abort(404)\n") == []
    assert own_load_or_404("def show(id):\n    return team_object_or_404(Segment, id)\n") == []
    assert len(view_modules()) > 10


# --- The shared pieces --------------------------------------------------------------------------

def test_problem_carries_message_field_and_errors():
    at_field = Problem("Enter a name.", field="name")
    assert (str(at_field), at_field.message, at_field.field, at_field.errors) == \
        ("Enter a name.", "Enter a name.", "name", {"name": "Enter a name."})
    several = Problem(errors={"host": "Enter a host.", "port": "Enter a port."})
    assert several.field == "host" and several.message == "Enter a host. Enter a port."
    whole = Problem(errors={"": "This template cannot be sent."})
    assert whole.field is None and whole.message == "This template cannot be sent."
    assert isinstance(whole, ValueError)  # `except ValueError` around parsing input still catches every refusal


def test_team_object_or_404_never_finds_another_teams_row(app):
    from werkzeug.exceptions import NotFound
    with app.test_request_context():
        ours, theirs = Team.create(name="Ours"), Team.create(name="Theirs")
        mine = Segment.create(team=ours, name="Mine")
        other = Segment.create(team=theirs, name="Other")
        g.team = ours
        assert team_object_or_404(Segment, mine.id) == mine
        assert team_object_or_404(Segment, name="Mine") == mine
        for missing in ((Segment, other.id), (Segment, other.id + 1000)):
            with pytest.raises(NotFound):
                team_object_or_404(*missing)
        with pytest.raises(NotFound):
            team_object_or_404(Segment, name="Other")


@pytest.mark.parametrize("raw, stored", [
    ("  Ann.Smith@Example.COM ", "ann.smith@example.com"),  # the fast path
    ("ann@Bücher.example", "ann@bücher.example"),  # the validator's path
    ("ann@xn--bcher-kva.example", "ann@bücher.example"),
])
def test_normalise_email_stores_one_form(raw, stored):
    assert addresses.normalise_email(raw) == stored


@pytest.mark.parametrize("raw", ["", "ann", "ann@", "ann@example", "a b@example.com", "ann@example.com, bob@example.com",
                                 "ann@site.test"])
def test_normalise_email_refuses_with_the_reason(raw):
    with pytest.raises(addresses.InvalidEmail) as refused:
        addresses.normalise_email(raw)
    assert str(refused.value)


def test_an_instances_own_sender_may_use_a_test_domain():
    assert addresses.normalise_email("News@Loft.TEST", allow_test_domains=True) == "news@loft.test"


def test_a_domain_is_normalised_like_the_domain_of_an_address():
    assert addresses.normalise_domain(" Bücher.Example ") == addresses.normalise_domain("xn--bcher-kva.example") \
        == addresses.normalise_email("ann@xn--bcher-kva.example").rpartition("@")[2] == "bücher.example"
    with pytest.raises(addresses.InvalidEmail):
        addresses.normalise_domain("not a domain")


def test_a_lookup_finds_the_stored_form_of_an_address(ctx):
    from app.auth import services as auth
    assert addresses.lookup_form(" Ann@XN--BCHER-KVA.example ") == "ann@bücher.example"
    assert addresses.lookup_form(" Not An Address ") == "not an address" and addresses.lookup_form(None) == ""
    user = auth.create_user("ann@bücher.example", "a long enough password 1")
    assert auth.authenticate("ANN@xn--bcher-kva.example", "a long enough password 1", "127.0.0.1") == user


def email_validator_users(sources):
    """The modules of `sources` that import email_validator (only app/addresses.py may)."""
    found = []
    for where, source in sources.items():
        for node in ast.walk(ast.parse(source)):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(name.split(".")[0] == "email_validator" for name in names):
                found.append(where)
    return sorted(set(found))


def test_only_app_addresses_checks_email_syntax():
    sources = {rel(path): path.read_text(encoding="utf-8") for path in python_files()}
    assert email_validator_users(sources) == ["app/addresses.py"], \
        "normalise an address with app.addresses.normalise_email (or normalise_domain)"
    assert email_validator_users({"a.py": "from email_validator import validate_email\n",
                                  "b.py": "import email_validator\n", "c.py": "import email\n"}) == ["a.py", "b.py"]


def test_untrusted_html_is_sandboxed_everywhere_it_is_served(app):
    with app.test_request_context():
        framed = untrusted_html_response("<p>Hi</p>")
        caught = untrusted_html_response("<p>Hi</p>", remote_images=False)
        page = untrusted_html_response("<p>Hi</p>", page=True, headers={"Cache-Control": "no-store, private"})
    for response in (framed, caught, page):
        csp = response.headers["Content-Security-Policy"]
        assert re.match(r"sandbox[ ;]", csp) and "default-src 'none'" in csp and "script-src" not in csp
        assert "form-action 'none'" in csp and "base-uri 'none'" in csp
        assert response.mimetype == "text/html" and response.headers["Cache-Control"].startswith("no-store")
    assert "allow-" not in framed.headers["Content-Security-Policy"]
    assert framed.headers["X-Frame-Options"] == "SAMEORIGIN" and "frame-ancestors 'self'" in \
        framed.headers["Content-Security-Policy"]
    assert "img-src data: cid:;" in caught.headers["Content-Security-Policy"]  # nothing remote
    assert page.headers["X-Frame-Options"] == "DENY" and "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert "img-src https: data:;" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store, private"


def test_no_view_sets_its_own_sandbox_policy():
    """The sandbox CSP is written once, in app/security.py; a view passes its HTML to untrusted_html_response."""
    found = [rel(path) for path in python_files(("app",))
             if path.name != "security.py" and re.search(r"""["']sandbox[ ;]""", path.read_text(encoding="utf-8"))]
    assert found == []


def test_a_refusal_no_view_catches_is_shown_with_its_message(app):
    """A Problem that escapes its view is answered 422 with its message (page, or fragment for htmx),
    not a 500 that hides what was refused."""
    def refuses():
        raise Problem("That list is archived; restore it first.", field="list")

    app.add_url_rule("/_refuses", "refuses", refuses)
    client = app.test_client()
    page = client.get("/_refuses")
    assert page.status_code == 422
    assert "That list is archived; restore it first." in page.get_data(as_text=True)
    assert "<html" in page.get_data(as_text=True).lower()
    fragment = client.get("/_refuses", headers={"HX-Request": "true"})
    assert fragment.status_code == 422 and "<html" not in fragment.get_data(as_text=True).lower()
    assert "restore it first" in fragment.get_data(as_text=True)
