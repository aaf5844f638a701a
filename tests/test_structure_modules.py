"""Modules stay small enough to hold one concept. Checked like behaviour.

The review behind this rule found four modules holding four to six nouns each (contacts, lists,
fields, filters, bulk jobs, export and timeline wording in one file; an import's workflow with its
chunked run and test hooks; four bounce formats; an engine with run, lease, lanes, SMTP and usage),
and every one of them was over 1,000 lines, pylint's default max-module-lines. A module that grows
past it is split by noun, as app/contacts/, app/imports/, app/bounces/parse/ and the engine (lease.py,
lanes.py and smtp.py beside app/sending/engine.py) were. A module may wait in WAITING, with the reason,
only while its split is under way; when it is split, it leaves the list.
"""
from app.config import ROOT

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
