"""The code's shape, checked like behaviour: leftovers that hide breakage do not come back.

- No `has_endpoint(...)` guard in a template: a link to a renamed or removed route must fail
  loudly (url_for raises, every page test catches it), not vanish from the page.
- No `except ImportError` around an import of Loft's own modules (app.*, tasks.*): every module
  is always there, and such a guard turns a broken import into a missing feature. Optional
  third-party packages (uvloop) may still be guarded.
- No "issue N" in comments, docstrings or templates: a comment says why the code is the way it
  is; which issue changed it is the history's job (git log).
"""
import ast
import io
import re
import tokenize

from app.config import ROOT

CODE_DIRS = ("app", "tasks", "migrations")
ISSUE = re.compile(r"\bissues?\s*#?\s*\d+", re.I)


def python_files():
    for folder in CODE_DIRS:
        yield from sorted((ROOT / folder).rglob("*.py"))


def template_files():
    return sorted(path for path in (ROOT / "templates").rglob("*") if path.is_file())


def rel(path):
    return str(path.relative_to(ROOT))


def docstrings(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield node.body[0].lineno, doc


def comments(source):
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string


def project_imports(body):
    """The app.* / tasks.* modules that the statements in `body` import (relative imports count too)."""
    found = []
    for statement in body:
        for node in ast.walk(statement):
            if isinstance(node, ast.Import):
                found += [alias.name for alias in node.names if alias.name.split(".")[0] in ("app", "tasks")]
            elif isinstance(node, ast.ImportFrom):
                if node.level or (node.module or "").split(".")[0] in ("app", "tasks"):
                    found.append("." * node.level + (node.module or ""))
    return found


def catches_import_error(handler):
    names = {"ImportError", "ModuleNotFoundError"}
    kinds = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(kind, ast.Name) and kind.id in names for kind in kinds)


def test_no_template_hides_a_link_behind_has_endpoint():
    guarded = [f"{rel(path)}:{number}" for path in template_files()
               for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
               if "has_endpoint" in line]
    assert guarded == [], "link straight to the route (url_for fails loudly when it is renamed)"


def test_no_import_error_guard_around_project_modules():
    guarded = []
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Try) and any(catches_import_error(h) for h in node.handlers if h.type):
                modules = project_imports(node.body)
                if modules:
                    guarded.append(f"{rel(path)}:{node.lineno} {', '.join(modules)}")
    assert guarded == [], "import project modules plainly: a guard turns a broken import into a missing feature"


def test_no_issue_numbers_in_comments_docstrings_or_templates():
    found = []
    for path in python_files():
        source = path.read_text(encoding="utf-8")
        for number, text in [*comments(source), *docstrings(ast.parse(source))]:
            if ISSUE.search(text):
                found.append(f"{rel(path)}:{number} {ISSUE.search(text).group(0)}")
    for path in template_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if ISSUE.search(line):
                found.append(f"{rel(path)}:{number} {ISSUE.search(line).group(0)}")
    assert found == [], "say why, not which issue (git log keeps the history)"


def test_the_checks_see_what_they_look_for():
    """The detectors themselves, on small samples, so a check cannot pass by finding nothing."""
    guarded = ast.parse("try:\n    from app.x import y\nexcept ImportError:\n    y = None\n").body[0]
    assert catches_import_error(guarded.handlers[0]) and project_imports(guarded.body) == ["app.x"]
    optional = ast.parse("try:\n    import uvloop\nexcept ImportError:\n    uvloop = None\n").body[0]
    assert project_imports(optional.body) == []
    assert [text for _, text in comments("x = 1  # issue 5: why\n")] == ["# issue 5: why"]
    assert ISSUE.search("# issue 9 point 10") and ISSUE.search("(Issue #3)") and not ISSUE.search("no issues here")
    assert [doc for _, doc in docstrings(ast.parse('"""Views (issue 4)."""\n'))] == ["Views (issue 4)."]
    assert any(path.name == "base.html" for path in template_files())
    assert any(path.name == "engine.py" for path in python_files())
