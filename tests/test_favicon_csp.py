"""Issue 9, point 19: a favicon on every page (no more 404 on /favicon.ico), and no inline styles in Loft's
own pages, which the CSP (style-src 'self') refuses and browsers report in the console."""
import json
import re

from app.config import ROOT
from tests.conftest import soup

TEMPLATES = ROOT / "templates"
# Not Loft's pages: mail (inline styles are how email is styled) and the sign-up snippet teams paste into
# their own sites, a list's or a built form's (shown escaped in a textarea).
NOT_APP_PAGES = ("system_mail/", "consent/_embed_snippet.html", "consent/_built_snippet.html")
INLINE_STYLE = re.compile(r"<style[\s>]|\sstyle\s*=", re.I)


def test_favicon_ico_is_served(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response.data[:4] == b"\x00\x00\x01\x00"  # an ICO file
    assert response.mimetype in ("image/vnd.microsoft.icon", "image/x-icon")


def test_every_layout_links_an_icon_that_exists(app, client, admin):
    layouts = [path for path in TEMPLATES.rglob("*.html") if "<html" in path.read_text()
               and not str(path.relative_to(TEMPLATES)).startswith(NOT_APP_PAGES)]
    assert {p.name for p in layouts} == {"base.html", "public_base.html"}
    for layout in layouts:
        assert 'rel="icon"' in layout.read_text(), f"{layout} links no icon"
    icons = soup(client.get("/dashboard")).select("link[rel=icon]")
    assert icons
    for icon in icons:
        assert client.get(icon["href"]).status_code == 200


def test_no_inline_styles_in_app_templates():
    offenders = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        name = str(path.relative_to(TEMPLATES))
        if name.startswith(NOT_APP_PAGES):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if INLINE_STYLE.search(line):
                offenders.append(f"{name}:{number}: {line.strip()[:100]}")
    assert not offenders, "inline styles break the CSP; use a class in static/app.css:\n" + "\n".join(offenders)


def test_no_inline_styles_on_any_page_a_signed_in_admin_opens(app, client, admin):
    """Pages are also built in Python (charts, QR codes): check what is actually served."""
    checked = 0
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.arguments or rule.endpoint in ("static", "auth.logout"):
            continue
        response = client.get(rule.rule)
        if response.status_code != 200 or response.mimetype != "text/html":
            continue
        if "sandbox" in response.headers.get("Content-Security-Policy", ""):
            continue  # untrusted email HTML, shown in a sandboxed iframe under its own CSP
        page = soup(response)
        assert not page.select("style, [style]"), f"{rule.rule} has inline styles"
        checked += 1
    assert checked >= 15


def test_htmx_injects_no_style_element_and_its_indicator_rules_are_in_app_css(client, admin):
    meta = soup(client.get("/dashboard")).select_one("meta[name=htmx-config]")
    assert json.loads(meta["content"])["includeIndicatorStyles"] is False
    css = (ROOT / "static" / "app.css").read_text()
    assert ".htmx-indicator {" in css and ".htmx-request .htmx-indicator" in css
