"""Modules stay small enough to hold one concept. Checked like behaviour.

The review behind this rule found four modules holding four to six nouns each (contacts, lists,
fields, filters, bulk jobs, export and timeline wording in one file; an import's workflow with its
chunked run and test hooks; four bounce formats; an engine with run, lease, lanes, SMTP and usage),
and every one of them was over 1,000 lines, pylint's default max-module-lines. A module that grows
past it is split by noun, as app/contacts/, app/imports/, app/bounces/parse/ and the engine (lease.py,
lanes.py and smtp.py beside app/sending/engine.py) were. A module may wait in WAITING, with the reason,
only while its split is under way; when it is split, it leaves the list.

Models have one home, the app/models/ package, one module per area (teams, contacts, campaigns, ...),
each re-exported by app/models/__init__.py: a newcomer finds every table in one folder, and the
backup copy, which walks app.models, sees every table.
"""
import ast

from app import models
from app.config import ROOT
from app.db import BaseModel

CODE_DIRS = ("app", "tasks")
MAX_LINES = 1000
WAITING = {}


def long_modules(root, limit=MAX_LINES):
    """{path relative to root: line count} of the Python modules over `limit` lines."""
    found = {}
    for folder in CODE_DIRS:
        for path in sorted((root / folder).rglob("*.py")):
            with open(path, encoding="utf-8") as handle:
                count = sum(1 for _ in handle)
            if count > limit:
                found[str(path.relative_to(root))] = count
    return found


def test_no_module_is_over_the_limit():
    found = long_modules(ROOT)
    over = {path: count for path, count in found.items() if path not in WAITING}
    assert not over, (f"over {MAX_LINES} lines: {over}; split the module by noun (one module per concept) "
                      "instead of growing it")


def test_the_waiting_list_holds_only_modules_still_over_the_limit():
    found = long_modules(ROOT)
    assert set(WAITING) <= set(found), f"no longer over {MAX_LINES} lines, take off WAITING: " \
                                       f"{sorted(set(WAITING) - set(found))}"


def test_the_check_sees_a_long_module(tmp_path):
    (tmp_path / "app" / "area").mkdir(parents=True)
    (tmp_path / "tasks").mkdir()
    (tmp_path / "app" / "area" / "big.py").write_text("x = 1\n" * (MAX_LINES + 1))
    (tmp_path / "app" / "area" / "fits.py").write_text("x = 1\n" * MAX_LINES)
    (tmp_path / "tasks" / "big.py").write_text("x = 1\n" * (MAX_LINES + 5))
    assert long_modules(tmp_path) == {"app/area/big.py": MAX_LINES + 1, "tasks/big.py": MAX_LINES + 5}


def model_classes_outside_models(root):
    """(path, class name) of each class defined under app/ or tasks/ outside app/models/ that derives
    from BaseModel or a peewee Model by name."""
    found = []
    for folder in CODE_DIRS:
        for path in sorted((root / folder).rglob("*.py")):
            name = str(path.relative_to(root))
            if name.startswith("app/models/"):
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ClassDef):
                    bases = {base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
                             for base in node.bases}
                    if bases & {"BaseModel", "Model"}:
                        found.append((name, node.name))
    return found


def test_every_model_lives_in_the_models_package():
    # app.db.BaseModel is the base itself: it carries the database binding, not a table.
    assert model_classes_outside_models(ROOT) == [("app/db/connection.py", "BaseModel")]


def test_every_model_module_is_re_exported():
    defined = {node.name for path in (ROOT / "app" / "models").glob("*.py")
               for node in ast.parse(path.read_text(encoding="utf-8")).body if isinstance(node, ast.ClassDef)}
    exported = {name for name, value in vars(models).items() if isinstance(value, type)}
    assert defined <= exported, f"add to app/models/__init__.py: {sorted(defined - exported)}"
    assert len([value for value in vars(models).values()
                if isinstance(value, type) and issubclass(value, BaseModel)]) > 50


def test_the_model_check_sees_a_stray_model(tmp_path):
    (tmp_path / "app" / "models").mkdir(parents=True)
    (tmp_path / "tasks").mkdir()
    (tmp_path / "app" / "models" / "area.py").write_text("class Fine(BaseModel):\n    pass\n")
    (tmp_path / "app" / "stray.py").write_text("class Stray(BaseModel):\n    pass\n"
                                               "class Other(peewee.Model):\n    pass\nclass Plain:\n    pass\n")
    assert model_classes_outside_models(tmp_path) == [("app/stray.py", "Stray"), ("app/stray.py", "Other")]
