"""A team's brand kit: logo, colours, font and footer, checked here and nowhere else.

Every value that reaches an email or a stylesheet passes these checks, whether it was typed in the form
or found in the database (a row written by something else, or before a check tightened): a colour is
#rgb or #rrggbb, a font is one of FONTS (chosen by name, its CSS stack written here), a logo is a path
into the media library or an https URL. What fails is replaced by the default, never passed on.
"""
import re
from urllib.parse import urlsplit

from app.content.blocks.render import render_html
from app.errors import Problem
from app.models import BrandKit
from app.models import utcnow

# Fonts every mail client has (or falls back from gracefully): name for people -> CSS font stack.
FONTS = {
    "system": ("System font of the reader's device",
               "-apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"),
    "arial": ("Arial / Helvetica", "Arial, Helvetica, sans-serif"),
    "verdana": ("Verdana (wide, very legible)", "Verdana, Geneva, sans-serif"),
    "trebuchet": ("Trebuchet MS", "'Trebuchet MS', 'Lucida Grande', sans-serif"),
    "tahoma": ("Tahoma", "Tahoma, Geneva, sans-serif"),
    "georgia": ("Georgia (serif)", "Georgia, 'Times New Roman', Times, serif"),
    "times": ("Times New Roman (serif)", "'Times New Roman', Times, serif"),
    "courier": ("Courier New (typewriter)", "'Courier New', Courier, monospace"),
}
DEFAULTS = {"logo_url": "", "primary_color": "#4338ca", "background_color": "#f6f6f7",
            "text_color": "#18181b", "font": "system", "footer_text": ""}
COLOR_FIELDS = {"primary_color": "Primary colour", "background_color": "Background colour",
                "text_color": "Text colour"}
MAX_FOOTER = 500
MAX_LOGO_URL = 500
AA_CONTRAST = 4.5  # WCAG 2 AA for normal text

_COLOR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
_MEDIA_PATH = re.compile(r"/m/[A-Za-z0-9_-]{8,100}\.(?:png|jpe?g|gif|webp)")


class BrandError(Problem):
    """A brand kit value refused, with the field it belongs to."""


# --- Checks -------------------------------------------------------------------

def clean_color(value):
    """"#rrggbb" in lower case for a valid #rgb/#rrggbb, else None."""
    value = (value or "").strip()
    if not _COLOR.fullmatch(value):
        return None
    digits = value[1:].lower()
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return "#" + digits


def clean_logo_url(value):
    """A media-library path or an https URL with no characters that could leave a quoted attribute or a
    CSS string; "" for none; None when refused."""
    value = (value or "").strip()
    if not value:
        return ""
    if len(value) > MAX_LOGO_URL or any(c in value for c in "\"'()<>\\ \t\r\n") or any(ord(c) < 32 for c in value):
        return None
    if _MEDIA_PATH.fullmatch(value):
        return value
    parts = urlsplit(value)
    if parts.scheme == "https" and parts.hostname and not parts.username and not parts.password:
        return value
    return None


def font_stack(font_key):
    return FONTS.get(font_key, FONTS[DEFAULTS["font"]])[1]


def _luminance(color):
    channels = [int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(first, second):
    """The WCAG 2 contrast ratio of two #rrggbb colours (1 to 21)."""
    lighter, darker = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def text_on(color):
    """Black or white, whichever reads better on `color` (the text of a button in the primary colour)."""
    return "#ffffff" if contrast_ratio(color, "#ffffff") >= contrast_ratio(color, "#000000") else "#000000"


def contrast_warnings(values):
    """Sentences about colour pairs under WCAG AA (4.5:1), for a saved or previewed kit."""
    warnings = []
    ratio = contrast_ratio(values["text_color"], values["background_color"])
    if ratio < AA_CONTRAST:
        warnings.append(f"Text on the background has a contrast of {ratio:.1f}:1, under the 4.5:1 that people "
                        "with low vision need (WCAG AA). Choose a darker text or a lighter background.")
    button_text = text_on(values["primary_color"])
    ratio = contrast_ratio(values["primary_color"], button_text)
    if ratio < AA_CONTRAST:
        warnings.append(f"Button text on the primary colour has a contrast of {ratio:.1f}:1, under 4.5:1. "
                        "Choose a darker or a lighter primary colour.")
    return warnings


# --- Reading ------------------------------------------------------------------

def kit_of(team):
    """The team's BrandKit row, or None when it never set one."""
    return BrandKit.get_or_none(BrandKit.team == team)


def values_of(kit):
    """The checked values of a kit (or of none: the defaults), keyed like DEFAULTS."""
    if kit is None:
        return dict(DEFAULTS)
    values = {}
    for name in COLOR_FIELDS:
        values[name] = clean_color(getattr(kit, name)) or DEFAULTS[name]
    values["font"] = kit.font if kit.font in FONTS else DEFAULTS["font"]
    values["logo_url"] = clean_logo_url(kit.logo_url) or ""
    values["footer_text"] = (kit.footer_text or "")[:MAX_FOOTER]
    return values


def lenient_values(form):
    """Checked values from a preview's query: anything refused becomes its default (the form shows why)."""
    values = {}
    for name in COLOR_FIELDS:
        values[name] = clean_color(form.get(name)) or DEFAULTS[name]
    values["font"] = form.get("font") if form.get("font") in FONTS else DEFAULTS["font"]
    values["logo_url"] = clean_logo_url(form.get("logo_url")) or ""
    values["footer_text"] = (form.get("footer_text") or "")[:MAX_FOOTER]
    return values


def public_logo(logo_url):
    """The logo a public page may show: a media-library image. Public pages load images from Loft only
    (their Content-Security-Policy), so an https logo elsewhere is for emails."""
    return logo_url if _MEDIA_PATH.fullmatch(logo_url or "") else ""


def brand_dict(values):
    """The `brand` the block renderer takes (app/content/blocks/render.py) from checked values."""
    return {"logo_url": values["logo_url"], "primary_color": values["primary_color"],
            "background_color": values["background_color"], "text_color": values["text_color"],
            "font_family": font_stack(values["font"]), "footer_text": values["footer_text"]}


def brand_for(team):
    """The team's brand for rendering block emails."""
    return dict(brand_dict(values_of(kit_of(team))), logo_alt=team.name)


# A short email of the usual blocks, to see a brand on before saving it.
SAMPLE_DOCUMENT = {"version": 1, "blocks": [
    {"id": "sample-heading", "type": "heading", "text": "Our spring collection is here", "level": 1,
     "align": "left"},
    {"id": "sample-text", "type": "text",
     "html": "<p>Fresh colours, lighter fabrics and a few <strong>favourites back in stock</strong>. "
             "Have a look before the weekend: <a href=\"https://example.com/spring\">see what is new</a>.</p>"},
    {"id": "sample-button", "type": "button", "text": "Shop the collection", "href": "https://example.com/spring",
     "align": "left", "color": ""},
    {"id": "sample-divider", "type": "divider"},
    {"id": "sample-footer", "type": "footer", "text": "You get this email because you signed up on our website."},
]}


def sample_email(values, team_name=""):
    """The sample email rendered with checked brand values (a preview before saving)."""
    return render_html(SAMPLE_DOCUMENT, dict(brand_dict(values), logo_alt=team_name or "Logo"))


def public_key_of(team):
    """The key of the team's public stylesheet, or None when it has no brand kit (the defaults apply)."""
    kit = kit_of(team)
    return kit.public_key if kit else None


def kit_for_public_key(public_key):
    return BrandKit.get_or_none(BrandKit.public_key == public_key)


# --- Public pages ---------------------------------------------------------------

def stylesheet(values, selector="body.public"):
    """CSS custom properties for a public page, from checked values only: every value written here is a
    #rrggbb colour or a font stack from FONTS, so nothing typed by a person reaches the stylesheet."""
    primary = clean_color(values.get("primary_color")) or DEFAULTS["primary_color"]
    background = clean_color(values.get("background_color")) or DEFAULTS["background_color"]
    text = clean_color(values.get("text_color")) or DEFAULTS["text_color"]
    font = values.get("font") if values.get("font") in FONTS else DEFAULTS["font"]
    return (f"{selector} {{\n  --accent: {primary};\n  --accent-fg: {text_on(primary)};\n  --bg: {background};\n"
            f"  --card: {background};\n  --fg: {text};\n  --muted: {text};\n  font-family: {font_stack(font)};\n}}\n")


# --- Changing -------------------------------------------------------------------

def parse_form(form):
    """Checked values from the brand form, or BrandError naming every refused field."""
    errors = {}
    values = {}
    for name, label in COLOR_FIELDS.items():
        raw = (form.get(name) or "").strip()
        color = clean_color(raw) if raw else DEFAULTS[name]
        if color is None:
            errors[name] = f"{label}: write it as # and 3 or 6 hexadecimal digits, for example #1d4ed8."
        values[name] = color
    font = (form.get("font") or DEFAULTS["font"]).strip()
    if font not in FONTS:
        errors["font"] = "Choose one of the fonts in the list."
    values["font"] = font
    logo = clean_logo_url(form.get("logo_url"))
    if logo is None:
        errors["logo_url"] = ("Choose an image from your media library, or give an address starting with https:// "
                              "(without quotes, spaces or brackets).")
    values["logo_url"] = logo or ""
    footer = (form.get("footer_text") or "").strip()
    if len(footer) > MAX_FOOTER:
        errors["footer_text"] = f"Keep the footer under {MAX_FOOTER} characters."
    values["footer_text"] = footer
    if errors:
        raise BrandError("Some values were not saved: see the fields marked below.", errors=errors)
    return values


def save(team, form):
    """Store the team's brand kit from the form; returns (the kit, contrast warnings). Nothing is
    stored when a value is refused; a low contrast is stored and reported, not refused."""
    values = parse_form(form)
    kit = kit_of(team) or BrandKit(team=team)
    for name, value in values.items():
        setattr(kit, name, value)
    kit.updated_at = utcnow()
    kit.save()
    return kit, contrast_warnings(values)
