"""One email is built in one package, app/content/, checked like behaviour so a second home cannot
come back.

- Only app/content/ imports what cleans, renders or converts content: bleach (sanitize.py),
  markdown and jinja2's sandbox (prepare.py, sandbox.py), html.parser (text.py, the one HTML to
  text, which bounce parsing uses too).
- No module outside app/content/ strips tags with a regular expression (a second HTML to text).
- The built-in layouts are read by app.content.sources (builtin_layout, builtin_layouts), never by a
  path into app/content.
"""
import ast
import re

from app.config import ROOT

CODE_DIRS = ("app", "tasks", "migrations")
CONTENT = ROOT / "app" / "content"
CONTENT_LIBRARIES = ("bleach", "markdown", "jinja2.sandbox", "html.parser")
TAG_STRIPPER = re.compile(r"<\[\^>\][*+]")  # <[^>]+> or <[^>]*> in the pattern's source
LAYOUT_FOLDER = re.compile(r"content/layouts|email_templates/builtin/")


def python_files():
    for folder in CODE_DIRS:
        yield from sorted((ROOT / folder).rglob("*.py"))


def rel(path):
    return str(path.relative_to(ROOT))


def outside_content():
    return [path for path in python_files() if CONTENT not in path.parents]


def content_imports(source):
    """(line, module) for every import of a content library."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if any(name == library or name.startswith(library + ".") for library in CONTENT_LIBRARIES):
                found.append((node.lineno, name))
                break
    return found


def strings(tree):
    """The string constants of the code, not its docstrings (which may name a path to say where it is)."""
    prose = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    return [node for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose]


def tag_strippers(source):
    """(line, pattern) for every string that looks like a tag-stripping regular expression."""
    return [(node.lineno, node.value) for node in strings(ast.parse(source)) if TAG_STRIPPER.search(node.value)]


def layout_paths(source):
    """(line, text) for a path into the layouts: a string naming their folder, or one joined with `/`."""
    tree = ast.parse(source)
    found = [(node.lineno, node.value) for node in strings(tree) if LAYOUT_FOLDER.search(node.value)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "LAYOUTS_DIR":
            found.append((node.lineno, "LAYOUTS_DIR"))
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            for side in (node.left, node.right):
                if isinstance(side, ast.Constant) and side.value in ("layouts", "builtin"):
                    found.append((node.lineno, side.value))
    return found


def test_only_app_content_cleans_renders_and_converts_content():
    found = []
    for path in outside_content():
        source = path.read_text(encoding="utf-8")
        found += [f"{rel(path)}:{line} imports {name}" for line, name in content_imports(source)]
        found += [f"{rel(path)}:{line} strips tags with {pattern!r}" for line, pattern in tag_strippers(source)]
        found += [f"{rel(path)}:{line} reads layouts by path: {value!r}" for line, value in layout_paths(source)]
    assert found == [], "build email content in app/content/ (sanitize, prepare, sandbox, text, sources)"


def test_the_checks_see_what_they_look_for():
    """The detectors themselves, on small samples, so the check cannot pass by finding nothing."""
    assert [name for _, name in content_imports("import bleach\n")] == ["bleach"]
    assert [name for _, name in content_imports("from bleach.css_sanitizer import CSSSanitizer\n")] \
        == ["bleach.css_sanitizer"]
    assert [name for _, name in content_imports("from html.parser import HTMLParser\n")] == ["html.parser"]
    assert [name for _, name in content_imports("from jinja2.sandbox import SandboxedEnvironment\n")] \
        == ["jinja2.sandbox"]
    assert [name for _, name in content_imports("import markdown as md\n")] == ["markdown"]
    assert content_imports("import html\nfrom jinja2 import Environment\nimport markdownify_not\n") == []
    assert tag_strippers('text = re.sub(r"<[^>]+>", " ", html)\n')
    assert tag_strippers("TAG = re.compile('<[^>]*>')\n")
    assert not tag_strippers('ADDRESS = re.compile(r"<([^<>@]+@[^<>]+)>")\n')
    assert layout_paths('BUILTIN = Path(__file__).parent.parent / "email_templates" / "builtin"\n')
    assert layout_paths('path = "app/content/layouts/newsletter.html"\n')
    assert layout_paths('for path in sources.LAYOUTS_DIR.glob("*.html"):\n    pass\n')
    assert not layout_paths('"""Layouts live in app/content/layouts/."""\nkey = "builtin"\n'
                            'page = render_template("email_templates/builtin.html")\n')
    # and the package itself is seen doing it, so the check is not vacuous
    inside = [path for path in python_files() if CONTENT in path.parents]
    assert any(content_imports(path.read_text(encoding="utf-8")) for path in inside)
    assert len(outside_content()) > 50
