"""One home for each concept, checked like behaviour, so a second home cannot come back.

- Usage rows (messages sent per team and month; UsageCount since migration 0065) are written only by app/usage.py, which also
  reads them: the engine calls usage.count_sent, the dashboard usage.sent_this_month.
- Each task module holds its own area's tasks (tasks/webhooks.py only webhooks: notices are
  emailed from tasks/notices.py; Loft's own mail is tasks/system_mail.py, a sign-up's
  confirmation tasks/consent.py), and every task keeps the name huey stores in the queue.
- One name, one meaning: no two modules under app/ and tasks/ define a class of the same name
  (three unrelated Recipient classes became Addressee, RecipientResult and UnsubscribeTarget).
- Test helpers have homes too: no test module imports from another test_*.py module; shared
  fixtures are reached through tests/conftest.py (defined there, or in a tests/<area>_support.py
  that conftest registers as a plugin), so no test module imports a fixture by name; shared plain
  helpers live in tests/<area>_support.py.
"""
import ast
import collections
import re

from app.config import ROOT
from tasks import huey
from tasks import queued_as
from tasks import tx_huey

CODE_DIRS = ("app", "tasks", "migrations")
USAGE_HOME = ROOT / "app" / "usage.py"
WRITING = {"create", "insert", "insert_many", "insert_from", "bulk_create", "replace", "replace_many",
           "get_or_create", "update", "delete", "save"}
# app.db's prepared statements that write the rows of the model whose fields they are given.
DB_WRITERS = {"insert_many", "insert_rows", "update_many", "update_rows", "add_many", "upsert_add", "insert_values"}
USAGE_SQL = re.compile(r"""\b(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|UPDATE)\s+["'`]?usage(?:_count)?["'`]?(?![\w.])""", re.I)


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
        elif (func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)) in DB_WRITERS and any(
                isinstance(part, ast.Attribute) and is_model(part.value, name)
                for argument in node.args for part in ast.walk(argument)):
            found.append((node.lineno, f"{name} through app.db"))
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
                  for line, what in model_writes(source, "Usage") + model_writes(source, "UsageCount")
                  + usage_statements(source)]
    assert found == [], "count and read usage through app.usage (count_sent, usage_for, sent_this_month)"


def test_the_checks_see_what_they_look_for():
    """The detectors themselves, on small samples, so the checks cannot pass by finding nothing."""
    assert [what for _, what in model_writes("Usage.insert(team=1).on_conflict().execute()\n", "Usage")] \
        == ["Usage.insert"]
    assert [what for _, what in model_writes("models.Usage.update(messages_sent=0).execute()\n", "Usage")] \
        == ["Usage.update"]
    assert [what for _, what in model_writes("Usage(team=1, month='2026-01').save()\n", "Usage")] == ["Usage(...)"]
    assert model_writes("Usage.select().where(Usage.team == 1)\nshutil.disk_usage('/')\n", "Usage") == []
    assert [what for _, what in model_writes("db.upsert_add([Usage.team, Usage.month], Usage.messages_sent)\n",
                                             "Usage")] == ["Usage through app.db"]
    assert model_writes("upsert_add([Tag.team], Tag.uses)\n", "Usage") == []
    assert usage_statements('sql = "INSERT INTO usage (team_id) VALUES (?)"\n')
    assert usage_statements("sql = 'update \"usage\" set messages_sent = 0'\n")
    assert not usage_statements('sql = "UPDATE usage_log SET x = 1"\n')
    sample = ('@huey.periodic_task(crontab(minute="*"), name="notices.email")\n@huey.lock_task("x")\n'
              'def email_notices():\n    pass\n\n@huey.task(retries=3, name="webhooks.deliver")\n'
              'def deliver(i):\n    pass\n\ndef plain():\n    pass\n')
    assert task_names(sample) == ["notices.email", "webhooks.deliver"]
    assert "webhooks" in task_modules() and "__init__" not in task_modules()
    assert any(path == USAGE_HOME for path in python_files("app"))
    assert model_writes(USAGE_HOME.read_text(encoding="utf-8"), "UsageCount"), "app/usage.py itself is seen writing"


# huey stores a queued task as "<module>.<name>"; messages in a queue (an invitation's retry, a
# periodic run) outlive a deploy, so these strings stay even when a task moves (tasks.queued_as).
QUEUED_NAMES = {
    "tasks.ai.ai.run_ai_job", "tasks.api.api.prune_idempotency",
    "tasks.feedback.feedback.check_bounce_mailbox", "tasks.feedback.feedback.check_bounce_mailboxes",
    "tasks.deliverability.deliverability.check_blocklists",
    "tasks.contacts.contacts.run_bulk", "tasks.imports.imports.resume_stalled", "tasks.imports.imports.run_import",
    "tasks.contacts.contacts.validate_list",
    "tasks.mail.mail.send_confirmation", "tasks.mail.mail.send_system_email",
    "tasks.reports.reports.retention", "tasks.reports.reports.rollup",
    "tasks.sending.sending.send_campaign", "tasks.sending.sending.tick",
    "tasks.webhooks.notices.email",
    "tasks.webhooks.webhooks.deliver", "tasks.webhooks.webhooks.prune", "tasks.webhooks.webhooks.tick",
    "tasks.transactional.transactional.requeue_stalled",
    "tasks.deliverability.deliverability.check_all_domains",
    "tasks.deliverability.deliverability.check_sending_domains",
    "tasks.dmarc.dmarc.weekly_digest",
    "tasks.automations.automations.tick", "tasks.automations.automations.advance",
    "tasks.automation_triggers.automation_triggers.check_segments",
    "tasks.automation_triggers.automation_triggers.check_dates",
}
# The transactional stream's own queue (tasks.tx_huey) keeps its names the same way.
TX_QUEUED_NAMES = {"tasks.transactional.send_tx"}


def task_modules():
    return sorted(path.stem for path in (ROOT / "tasks").glob("*.py") if path.stem != "__init__")


def task_names(source):
    """The name= of every @huey.task / @huey.periodic_task in `source`."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute) \
                        and decorator.func.attr in ("task", "periodic_task"):
                    names += [k.value.value for k in decorator.keywords if k.arg == "name"]
    return names


def test_every_task_keeps_its_queued_name():
    for module in task_modules():
        __import__(f"tasks.{module}")
    for name in QUEUED_NAMES:
        huey._registry.string_to_task(name)  # raises when a queued message could no longer find its task
    assert set(huey._registry._registry) == QUEUED_NAMES, "a new task? add its name here"
    for name in TX_QUEUED_NAMES:
        tx_huey._registry.string_to_task(name)
    assert set(tx_huey._registry._registry) == TX_QUEUED_NAMES, "a new transactional task? add its name here"


# Names kept from before a move, because the queue holds them (QUEUED_NAMES): name -> its module now.
KEPT_NAMES = {"mail.send_system_email": "system_mail", "mail.send_confirmation": "consent",
              "feedback.check_bounce_mailbox": "bounces", "feedback.check_bounce_mailboxes": "bounces"}


def test_each_task_module_holds_its_own_areas_tasks():
    # A task's area is the first part of its name, and it lives in tasks/<area>.py.
    misplaced = []
    for module in task_modules():
        for name in task_names((ROOT / "tasks" / f"{module}.py").read_text(encoding="utf-8")):
            if KEPT_NAMES.get(name, name.split(".")[0]) != module:
                misplaced.append(f"tasks/{module}.py: {name}")
    assert misplaced == []


def test_queued_as_keeps_the_old_module_of_a_moved_task():
    @queued_as("tasks.somewhere_else")
    def moved():
        return 42

    task = huey.task(name="structure.moved")(moved)
    try:
        assert huey._registry.string_to_task("tasks.somewhere_else.structure.moved") is task.task_class
        assert moved() == 42
    finally:
        task.unregister()


# Classes that share a name on purpose: each area's refusal is a Problem subclass it raises itself
# (app/errors.py).
SHARED_CLASS_NAMES = {"Refused"}


def class_names(source):
    """The names of the classes a module defines at its top level."""
    return [node.name for node in ast.parse(source).body if isinstance(node, ast.ClassDef)]


def modules_by_class(paths, root=ROOT):
    """{class name: [the modules defining it]}."""
    found = collections.defaultdict(list)
    for path in paths:
        for name in class_names(path.read_text(encoding="utf-8")):
            found[name].append(str(path.relative_to(root)))
    return found


def test_no_two_modules_define_a_class_of_the_same_name():
    found = modules_by_class(python_files("app", "tasks"))
    doubles = {name: modules for name, modules in found.items() if len(modules) > 1}
    assert {name: modules for name, modules in doubles.items() if name not in SHARED_CLASS_NAMES} == {}, \
        "give each class a name that says what it is"


def test_the_class_name_check_sees_doubles(tmp_path):
    (tmp_path / "a.py").write_text("class Recipient:\n    pass\n\ndef f():\n    class Local:\n        pass\n")
    (tmp_path / "b.py").write_text("import dataclasses\n\n@dataclasses.dataclass\nclass Recipient:\n    email: str\n")
    paths = [tmp_path / "a.py", tmp_path / "b.py"]
    assert modules_by_class(paths, tmp_path) == {"Recipient": ["a.py", "b.py"]}


def imports_of_test_modules(source):
    """(line, module) for every import of a test_*.py module in `source`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if is_test_module(a.name)]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if is_test_module(module):
                found.append((node.lineno, module))
            elif module in ("", "tests"):
                found += [(node.lineno, f"{module}.{a.name}") for a in node.names if a.name.startswith("test_")]
    return found


def is_test_module(name):
    return name.split(".")[-1].startswith("test_")


def test_no_test_module_imports_another():
    found = [f"{rel(path)}:{line} {module}" for path in sorted((ROOT / "tests").rglob("*.py"))
             for line, module in imports_of_test_modules(path.read_text(encoding="utf-8"))]
    assert found == [], "move what is shared to tests/conftest.py (fixtures) or tests/<area>_support.py"


def test_the_test_import_check_sees_them():
    sample = ("from tests.test_teams import make_member\nimport tests.test_engine\nfrom tests import test_auth\n"
              "from .test_reports import build_campaign\ndef f():\n    from tests.test_tracking import make_send\n"
              "from tests.conftest import soup\nfrom tests.sending_support import TestSmtp\nimport pytest\n")
    assert [module for _, module in imports_of_test_modules(sample)] == [
        "tests.test_teams", "tests.test_engine", "tests.test_auth", "test_reports", "tests.test_tracking"]


def support_fixtures():
    """{support module name: the fixtures it defines}, for every tests/*_support.py."""
    found = {}
    for path in sorted((ROOT / "tests").glob("*_support.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found[path.stem] = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)
                            and any("fixture" in ast.unparse(d) for d in node.decorator_list)}
    return found


def fixture_imports(source, fixtures):
    """(line, name) of each fixture that `source` imports by name from a support module."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            stem = node.module.split(".")[-1]
            found += [(node.lineno, a.name) for a in node.names if a.name in fixtures.get(stem, ())]
    return found


def test_fixtures_are_reached_through_conftest():
    fixtures = support_fixtures()
    conftest = (ROOT / "tests" / "conftest.py").read_text(encoding="utf-8")
    registered = {name.split(".")[-1] for name in re.findall(r'"((?:tests\.)?\w+_support)"', conftest)}
    assert {stem for stem, names in fixtures.items() if names} <= registered, \
        "a support module with fixtures must be in conftest.py's pytest_plugins"
    found = [f"{rel(path)}:{line} {name}" for path in sorted((ROOT / "tests").rglob("test_*.py"))
             for line, name in fixture_imports(path.read_text(encoding="utf-8"), fixtures)]
    assert found == []


def test_the_fixture_import_check_sees_them():
    fixtures = {"smtp_support": {"smtp_server"}, "browser_support": {"page"}}
    sample = ("from tests.smtp_support import smtp_server\nfrom tests.smtp_support import PASSWORD\n"
              "from browser_support import page, sign_up_admin\n")
    assert fixture_imports(sample, fixtures) == [(1, "smtp_server"), (3, "page")]
    assert "receiver" in support_fixtures()["webhooks_support"]
