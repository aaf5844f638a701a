"""Imports go one way, and every one of them is at the top of its module. Checked like behaviour.

- No function-local import of app.* or tasks.* inside app/ or tasks/: an import inside a function
  hides a dependency (often a two-way one) from whoever reads the top of the module. A real cycle
  is fixed by moving code or passing a callable, not by importing late.
- A service module (any module under app/ but a views.py, a cli.py, app/__init__.py or an API resource
  module, app/api/<resource>.py with its @operation views) imports no
  views module and nothing from tasks/: services return, and their callers (views and tasks) render
  and enqueue.
- Nothing under app/sending/ imports app.bounces: delivery never imports after-delivery; the
  engine takes hooks, and tasks/sending.py composes it with bounce handling.
- Nothing under app/senders/ imports app.sending or app.bounces: accounts and domains sit below
  both, which use them (the engine sends through accounts, bounce mailboxes share mailservers).
"""
import ast

from app.config import ROOT

CODE_DIRS = ("app", "tasks")
PROJECT = ("app", "tasks")
ENTRY_POINTS = {"views.py", "cli.py"}  # these may import views and tasks; so may app/__init__.py


def python_files():
    for folder in CODE_DIRS:
        yield from sorted((ROOT / folder).rglob("*.py"))


def rel(path):
    return str(path.relative_to(ROOT))


def imported_modules(node):
    """The dotted modules an import statement reaches: `from a.b import c` reaches a.b and a.b.c."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return []


def is_project(module):
    return module.split(".")[0] in PROJECT


def dynamic_import(node):
    """The project module named by __import__("app.x") or importlib.import_module("app.x"), else None."""
    if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)):
        return None
    func = node.func
    named = (isinstance(func, ast.Name) and func.id in ("__import__", "import_module")) or (
        isinstance(func, ast.Attribute) and func.attr == "import_module")
    return node.args[0].value if named and is_project(node.args[0].value) else None


def local_imports(source):
    """(line, module) for each import of a project module made inside a function (or a method)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        for inner in ast.walk(node):
            reached = imported_modules(inner)
            modules = [m for m in (reached if isinstance(inner, ast.Import) else reached[:1]) if is_project(m)]
            dynamic = dynamic_import(inner)
            found += [(inner.lineno, m) for m in modules + ([dynamic] if dynamic else [])]
    return sorted(set(found))


def all_imports(source):
    """(line, module) for every project module the source imports, anywhere in it."""
    found = []
    for node in ast.walk(ast.parse(source)):
        found += [(node.lineno, m) for m in imported_modules(node) if is_project(m)]
        if dynamic := dynamic_import(node):
            found.append((node.lineno, dynamic))
    return found


def is_service(path):
    relative = path.relative_to(ROOT)
    if relative.parts[:2] == ("app", "api") and "\n@operation(" in path.read_text(encoding="utf-8"):
        return False  # an API resource module: the /api/v1 views, one module per resource
    return relative.parts[0] == "app" and path.name not in ENTRY_POINTS and relative.as_posix() != "app/__init__.py"


def reaches_view_or_task(module):
    parts = module.split(".")
    return parts[0] == "tasks" or (parts[0] == "app" and parts[-1] == "views")


def test_no_function_local_imports_of_project_modules():
    found = []
    for path in python_files():
        found += [f"{rel(path)}:{line} {module}" for line, module in local_imports(path.read_text(encoding="utf-8"))]
    assert found == [], "import app.* and tasks.* at the top of the module (fix a cycle by moving code)"


def test_services_import_no_views_and_no_tasks():
    found = []
    for path in python_files():
        if is_service(path):
            found += [f"{rel(path)}:{line} {module}" for line, module in all_imports(path.read_text(encoding="utf-8"))
                      if reaches_view_or_task(module)]
    assert found == [], "a service returns; its view or task renders and enqueues"


def test_sending_never_imports_bounces():
    found = []
    for path in sorted((ROOT / "app" / "sending").rglob("*.py")):
        found += [f"{rel(path)}:{line} {module}" for line, module in all_imports(path.read_text(encoding="utf-8"))
                  if module == "app.bounces" or module.startswith("app.bounces.")]
    assert found == [], "give the engine a hook instead (tasks/sending.py composes it with app.bounces)"


def test_senders_sit_below_sending_and_bounces():
    found = []
    for path in sorted((ROOT / "app" / "senders").rglob("*.py")):
        found += [f"{rel(path)}:{line} {module}" for line, module in all_imports(path.read_text(encoding="utf-8"))
                  if module.split(".")[:2] in (["app", "sending"], ["app", "bounces"])]
    assert found == [], "SMTP accounts and sender domains are used by sending and bounces, never the reverse"


def test_the_checks_see_what_they_look_for():
    """The detectors themselves, on small samples, so the checks cannot pass by finding nothing."""
    inside = ("import json\nfrom app import db\n\n"
              "def f():\n    from app.bounces import outcomes\n    import tasks.mail\n    import json\n"
              "    from flask import g\n\n"
              "class C:\n    async def m(self):\n        from app.sending.engine import Run\n\n"
              "def g():\n    return __import__('app.bounces.cli', fromlist=['x'])\n")
    assert local_imports(inside) == [(5, "app.bounces"), (6, "tasks.mail"), (12, "app.sending.engine"),
                                     (15, "app.bounces.cli")]
    assert local_imports("from app import db\nimport tasks\n\ndef f():\n    return db\n") == []

    assert reaches_view_or_task("app.contacts.views") and reaches_view_or_task("tasks.mail")
    assert reaches_view_or_task("tasks") and not reaches_view_or_task("app.contacts.services")
    modules = [m for _, m in all_imports("from tasks import huey\nfrom app.auth import views\n")]
    assert any(reaches_view_or_task(m) for m in modules if m.startswith("tasks"))
    assert "app.auth.views" in modules
    assert is_service(ROOT / "app" / "contacts" / "services.py") and is_service(ROOT / "app" / "mail.py")
    assert not is_service(ROOT / "app" / "contacts" / "views.py") and not is_service(ROOT / "app" / "cli.py")
    assert not is_service(ROOT / "app" / "__init__.py") and not is_service(ROOT / "tasks" / "sending.py")

    bounces = [m for _, m in all_imports("from app.bounces import outcomes\nimport app.bounces.alerts as a\n")]
    assert "app.bounces" in bounces and "app.bounces.alerts" in bounces
    assert any((ROOT / "app" / "sending").rglob("*.py")) and len(list(python_files())) > 50
    assert any((ROOT / "app" / "senders").rglob("*.py"))
