"""SQL text has one home, the app/db/ package (the one place that knows which database it talks to), and JSON
columns are read as JSONFields, never parsed by hand. Checked on the source like behaviour:

- No module of app/ or tasks/ outside app/db/ runs SQL text (db.execute_sql, a cursor's execute,
  executemany or executescript, peewee's SQL(...)) or holds a string that starts like a statement
  (SELECT, INSERT, UPDATE, DELETE, PRAGMA, WITH, CREATE). Docstrings may describe SQL. The modules
  that still do are listed in RAW_SQL_ALLOWED, each with the reason; the list only shrinks.
- Nothing outside app/models/ applies json.loads to a model column (`json.loads(x.data)`,
  `json.loads(x.attributes or "{}")`) or writes json.dumps text into one (`data=json.dumps(...)`,
  `x.audience = json.dumps(...)`): a JSON column is a JSONField and takes and gives Python.
"""
import ast
import re

from app.config import ROOT

CODE_DIRS = ("app", "tasks")
HOME = "app/db/"
RUNS_SQL = {"execute_sql", "executemany", "executescript"}
STATEMENT = re.compile(r"\s*(SELECT|INSERT|UPDATE|DELETE|PRAGMA|WITH|CREATE)\s")

# Modules that still hold SQL text, and why. Each entry is a debt: the PostgreSQL port rewrites or
# moves it (the dialect-specific parts already go through app.db: json_text, upsert_adding,
# id_window_end, max_id).
RAW_SQL_ALLOWED = {
    # Set-based aggregation over a temp table: a dozen INSERT ... SELECT ... GROUP BY statements that
    # only ever run together; its SQLite-only parts are app.db calls.
    "app/reports/rollup.py": "the report aggregator's statements",
}


def python_files():
    for folder in CODE_DIRS:
        yield from sorted((ROOT / folder).rglob("*.py"))


def rel(path):
    return str(path.relative_to(ROOT))


def _docstrings(tree):
    """The Constant nodes that are docstrings (module, class, function)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _leading_text(node):
    """The text a string expression starts with: a str constant, or an f-string's first literal part."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values:
        return _leading_text(node.values[0])
    return None


def raw_sql(source):
    """(line, what) for every piece of SQL text in `source`."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
            if name in RUNS_SQL:
                found.append((node.lineno, f"{name}()"))
            elif name == "execute" and node.args and _leading_text(node.args[0]) is not None:
                found.append((node.lineno, "execute(<SQL text>)"))
            elif name == "SQL":
                found.append((node.lineno, "SQL(...)"))
        elif isinstance(node, (ast.Constant, ast.JoinedStr)) and id(node) not in docstrings:
            text = _leading_text(node)
            if text is not None and STATEMENT.match(text):
                found.append((node.lineno, f"SQL text {text.strip()[:30]!r}"))
    return sorted(set(found))


def column_names():
    """Every field name of every model in app/models/ (`name = SomethingField(...)` in a class body)."""
    names = set()
    trees = [ast.parse(path.read_text()) for path in sorted((ROOT / "app" / "models").glob("*.py"))]
    for node in (node for tree in trees for node in ast.walk(tree)):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.Assign) and isinstance(item.value, ast.Call):
                    func = item.value.func
                    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                    if called.endswith("Field"):
                        names.update(t.id for t in item.targets if isinstance(t, ast.Name))
    return names


def json_loads_on_columns(source, columns):
    """(line, column) for every json.loads(<obj>.<column>) in `source`, also `<obj>.<column> or "{}"`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        func = node.func
        is_loads = (isinstance(func, ast.Attribute) and func.attr == "loads" and isinstance(func.value, ast.Name)
                    and func.value.id == "json") or (isinstance(func, ast.Name) and func.id == "loads")
        if not is_loads:
            continue
        arg = node.args[0]
        candidates = arg.values if isinstance(arg, ast.BoolOp) else [arg]
        for candidate in candidates:
            if isinstance(candidate, ast.Attribute) and candidate.attr in columns:
                found.append((node.lineno, candidate.attr))
    return found


def _is_dumps(node):
    func = node.func if isinstance(node, ast.Call) else None
    return (isinstance(func, ast.Attribute) and func.attr == "dumps" and isinstance(func.value, ast.Name)
            and func.value.id == "json")


def json_dumps_into_columns(source, columns):
    """(line, column) for every `<column>=json.dumps(...)` keyword and `x.<column> = json.dumps(...)`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.keyword) and node.arg in columns and _is_dumps(node.value):
            found.append((node.value.lineno, node.arg))
        elif isinstance(node, ast.Assign) and _is_dumps(node.value):
            found += [(node.lineno, t.attr) for t in node.targets
                      if isinstance(t, ast.Attribute) and t.attr in columns]
    return found


def test_the_detectors_find_what_they_look_for():
    sample = '''
"""INSERT ... SELECT in a docstring is prose."""
def f(cursor, db, query):
    """SELECT described here is fine too."""
    db.execute_sql("SELECT 1")
    cursor.executemany(sql, rows)
    cursor.execute(f"UPDATE {table} SET a = 1")
    where = SQL("1 = 1")
    text = """
        DELETE FROM event"""
    pragma = f"PRAGMA cache_size = {n}"
    query.execute()
    message = "Select the lists first."  # prose, not a statement
    return "WITHOUT ROWID"
'''
    assert sorted(what for _, what in raw_sql(sample)) == [
        "SQL text 'DELETE FROM event'", "SQL text 'PRAGMA cache_size ='", "SQL text 'SELECT 1'",
        "SQL text 'UPDATE'", "SQL(...)", "execute(<SQL text>)", "execute_sql()", "executemany()"]

    columns = {"data", "attributes", "audience"}
    sample = '''
import json
a = json.loads(event.data)
b = json.loads(campaign.audience or "{}")
c = loads(contact.attributes)
d = json.loads(request.body)
e = json.loads(text)
'''
    assert json_loads_on_columns(sample, columns) == [(3, "data"), (4, "audience"), (5, "attributes")]
    sample = '''
import json
Event.create(team=team, data=json.dumps({}))
campaign.audience = json.dumps(selected)
print(json.dumps(summary), file=out)
response = post(url, payload=json.dumps(body))
'''
    assert sorted(json_dumps_into_columns(sample, columns)) == [(3, "data"), (4, "audience")]


def test_sql_text_lives_in_app_db_only():
    offenders = []
    for path in python_files():
        name = rel(path)
        if name.startswith(HOME) or name in RAW_SQL_ALLOWED:
            continue
        offenders += [f"{name}:{line}: {what}" for line, what in raw_sql(path.read_text())]
    assert not offenders, ("SQL text outside app/db/ (put it behind a named function there, with its "
                           "PostgreSQL counterpart):\n" + "\n".join(offenders))


def test_the_allowed_modules_still_need_it():
    # An entry whose module no longer holds SQL text goes, so the list only shrinks.
    stale = [name for name in RAW_SQL_ALLOWED
             if not (ROOT / name).exists() or not raw_sql((ROOT / name).read_text())]
    assert not stale, f"remove from RAW_SQL_ALLOWED: {stale}"


def test_json_columns_are_not_parsed_by_hand():
    columns = column_names()
    assert {"data", "attributes", "audience", "rules"} <= columns
    offenders = []
    for path in python_files():
        name = rel(path)
        if name.startswith("app/models/"):
            continue
        source = path.read_text()
        offenders += [f"{name}:{line}: json.loads(….{column})"
                      for line, column in json_loads_on_columns(source, columns)]
        offenders += [f"{name}:{line}: {column} = json.dumps(…)"
                      for line, column in json_dumps_into_columns(source, columns)]
    assert not offenders, "a JSON column is a JSONField and reads as Python:\n" + "\n".join(offenders)
