"""One home for each concept, checked like behaviour, so a second home cannot come back.

- Usage rows (messages sent per team and month) are written only by app/usage.py, which also
  reads them: the engine calls usage.count_sent, the dashboard usage.sent_this_month.
"""
import ast
import re

from app.config import ROOT

CODE_DIRS = ("app", "tasks", "migrations")
USAGE_HOME = ROOT / "app" / "usage.py"
WRITING = {"create", "insert", "insert_many", "insert_from", "bulk_create", "replace", "replace_many",
           "get_or_create", "update", "delete", "save"}
USAGE_SQL = re.compile(r"""\b(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|UPDATE)\s+["'`]?usage["'`]?(?![\w.])""", re.I)


def python_files(*folders):
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def rel(path):
    return str(path.relative_to(ROOT))


def is_model(node, name):
    """`Name` or `models.Name`."""
    if isinstance(node, ast.Name):
        return node.id == name
    return isinstance(node, ast.Attribute) and node.attr == name and isinstance(node.value, ast.Name) \
        and node.value.id == "models"


def model_writes(source, name):
    """(line, what) for every write of model `name` in `source`: a writing classmethod, or an instance."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in WRITING and is_model(func.value, name):
            found.append((node.lineno, f"{name}.{func.attr}"))
        elif is_model(func, name):
            found.append((node.lineno, f"{name}(...)"))
    return found


def usage_statements(source):
    return [(source.count("\n", 0, match.start()) + 1, match.group(0)) for match in USAGE_SQL.finditer(source)]


def test_only_app_usage_writes_usage_rows():
    found = []
    for path in python_files("app", "tasks"):
        if path == USAGE_HOME:
            continue
        source = path.read_text(encoding="utf-8")
        found += [f"{rel(path)}:{line} {what}"
                  for line, what in model_writes(source, "Usage") + usage_statements(source)]
    assert found == [], "count and read usage through app.usage (count_sent, usage_for, sent_this_month)"


def test_the_checks_see_what_they_look_for():
    """The detectors themselves, on small samples, so the checks cannot pass by finding nothing."""
    assert [what for _, what in model_writes("Usage.insert(team=1).on_conflict().execute()\n", "Usage")] \
        == ["Usage.insert"]
    assert [what for _, what in model_writes("models.Usage.update(messages_sent=0).execute()\n", "Usage")] \
        == ["Usage.update"]
    assert [what for _, what in model_writes("Usage(team=1, month='2026-01').save()\n", "Usage")] == ["Usage(...)"]
    assert model_writes("Usage.select().where(Usage.team == 1)\nshutil.disk_usage('/')\n", "Usage") == []
    assert usage_statements('sql = "INSERT INTO usage (team_id) VALUES (?)"\n')
    assert usage_statements("sql = 'update \"usage\" set messages_sent = 0'\n")
    assert not usage_statements('sql = "UPDATE usage_log SET x = 1"\n')
    assert any(path == USAGE_HOME for path in python_files("app"))
    assert model_writes(USAGE_HOME.read_text(encoding="utf-8"), "Usage"), "app/usage.py itself is seen writing"
