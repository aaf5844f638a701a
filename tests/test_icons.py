"""Icons are drawn from the vendored Lucide sprite with the icon() macro, not with Unicode glyphs: a glyph's look
depends on the reader's fonts (a box on some phones), and screen readers read it out ("black star", "rightwards
arrow"). An arrow inside a sentence ("Settings → Mail") is text and stays; an arrow at the edge of a link or
label ("← Contacts", "Older →") is an icon."""
import re
import xml.etree.ElementTree as ElementTree

from bs4 import BeautifulSoup

from app.config import ROOT
from app.models import MailingList
from app.navigation import SECTIONS
from tests.conftest import soup

TEMPLATES = ROOT / "templates"
SPRITE = ROOT / "static" / "icons-lucide-1.62.0.svg"
# Email is read in mail apps, which show no sprite: glyphs stay there.
NOT_APP_PAGES = ("system_mail/",)
# Symbols that are only ever icons, wherever they are written.
SYMBOLS = "✓✔✕✖✗✘⚠★☆▲▼▶◀►◄⌂☰✈▤☺✉⚙●○◉⋯⋮✎✏⬆⬇⇧⇩⊕⊖⠿"
ARROWS = "←→↑↓⇐⇒⟵⟶↩↪"
SYMBOL = re.compile(f"[{SYMBOLS}]")
# An arrow at the start or end of an element's text, or alone in a template string ('→').
EDGE_ARROW = re.compile(rf">\s*[{ARROWS}]|[{ARROWS}]\s*<|[{ARROWS}]\s*$|^\s*[{ARROWS}]|(['\"])\s*[{ARROWS}]\s*\1")
# A multiplication sign alone in an element is a close or remove button; between numbers it is text.
LONE_TIMES = re.compile(r">\s*(×|&times;)\s*<")
ICON_CALL = re.compile(r"""\bicon\(\s*["']([a-z0-9-]+)["']""")


def template_files():
    for path in sorted(TEMPLATES.rglob("*.html")):
        name = str(path.relative_to(TEMPLATES))
        if not name.startswith(NOT_APP_PAGES):
            yield name, path


def glyph_icons(text):
    """(line number, line) of each line using a glyph as an icon."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if SYMBOL.search(line) or EDGE_ARROW.search(line) or LONE_TIMES.search(line):
            found.append((number, line.strip()))
    return found


def sprite_ids():
    return {symbol.get("id") for symbol in ElementTree.parse(SPRITE).getroot()
            if symbol.tag.endswith("symbol")}


def test_no_template_uses_a_glyph_as_an_icon():
    found = [f"{name}:{number}: {line[:100]}" for name, path in template_files()
             for number, line in glyph_icons(path.read_text(encoding="utf-8"))]
    assert found == [], "draw icons with {{ icon('name') }} from templates/_macros.html:\n" + "\n".join(found)


def test_the_glyph_check_sees_icons_and_leaves_text_alone():
    assert glyph_icons('<a href="/contacts/">← Contacts</a>')
    assert glyph_icons('<a rel="next" href="?p=2">Older →</a>')
    assert glyph_icons("<span aria-hidden=\"true\">{{ '✓' if done else '○' }}</span>")
    assert glyph_icons("{{ '→' }}")
    assert glyph_icons("<span>⚠ Paused</span>")
    assert glyph_icons('<span class="block-handle">⠿</span>')
    assert glyph_icons('<button aria-label="Remove the tag vip">×</button>')
    assert not glyph_icons("<p>{{ item.width }} × {{ item.height }} px</p>")
    assert glyph_icons("Next\n→</a>")
    assert not glyph_icons("<p>Under Team → Settings, or Favourite colour → favourite_colour.</p>")
    assert not glyph_icons("<p>“Quoted” – dashed — and Delete…</p>")


def test_every_icon_named_in_templates_and_navigation_is_in_the_sprite():
    ids = sprite_ids()
    named = {(name, icon) for name, path in template_files() for icon in ICON_CALL.findall(path.read_text())}
    named |= {("app/navigation.py", section.icon) for section in SECTIONS}
    assert len(named) > 10  # the check reads the calls it is meant to read
    missing = sorted(f"{where}: {icon}" for where, icon in named if icon not in ids)
    assert missing == [], "not in static/icons-lucide-1.62.0.svg (add the symbol from lucide-static 1.62.0):\n" \
        + "\n".join(missing)


def test_the_sprite_keeps_its_licence_and_draws_with_the_text_colour():
    text = SPRITE.read_text(encoding="utf-8")
    assert text.startswith("<!-- @license lucide-static v1.62.0 - ISC")
    assert "Permission to use, copy, modify, and/or distribute this software" in text
    assert not re.search(r'(fill|stroke)="(?!currentColor|none)', text.split("-->", 1)[1])  # the text colour
    assert {"arrow-left", "arrow-right", "check", "x", "triangle-alert", "ellipsis"} <= sprite_ids()


def test_icon_macro_is_hidden_as_decoration_and_named_when_labelled(app):
    with app.test_request_context():
        macros = app.jinja_env.get_template("_macros.html").module
        plain = BeautifulSoup(str(macros.icon("check")), "html.parser").select_one("svg")
        labelled = BeautifulSoup(str(macros.icon("triangle-alert", label="Warning")), "html.parser").select_one("svg")
    assert plain["aria-hidden"] == "true" and plain.get("role") is None and plain.select_one("title") is None
    assert plain.select_one("use")["href"].endswith("/static/icons-lucide-1.62.0.svg#check")
    assert labelled.get("aria-hidden") is None and labelled["role"] == "img"
    assert labelled.select_one("title").get_text() == "Warning"


def test_pages_draw_icons_from_the_sprite_that_is_served(client, admin):
    page = soup(client.get("/dashboard"))
    uses = page.select("svg.icon use")
    assert uses
    sprite = client.get(uses[0]["href"].split("#")[0])
    assert sprite.status_code == 200 and sprite.mimetype == "image/svg+xml"
    assert {use["href"].split("#")[1] for use in uses} <= sprite_ids()


def test_signed_in_signed_out_and_public_pages_link_the_favicon(app, web, team):
    news = MailingList.create(team=team, visibility="public", name="News")
    client = app.test_client()  # signed out
    pages = [web.get("/dashboard"), web.get("/contacts/"), client.get("/login"), client.get(f"/f/{news.public_id}")]
    for response in pages:
        assert response.status_code == 200
        icons = {link["href"] for link in soup(response).select("link[rel=icon]")}
        assert "/static/favicon.svg" in icons, response.request.path
        assert client.get("/static/favicon.svg").status_code == 200
