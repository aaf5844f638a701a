"""UTM tagging: the utm_* parameters a campaign adds to its web links, so the team's web analytics
can tell the visits an email brought.

A campaign's settings are Campaign.utm: {"enabled", "source", "medium", "campaign", "content"}.
prepare() tags every literal http(s) link of a body with tag(), before the click-tracking rewrite
(so the Link row keeps the tagged address the click redirects to) and also when clicks are not
tracked. Left alone: mailto:, tel: and #anchors, links built from a merge tag (the unsubscribe,
preference-center and web-version links are merge tags too), links to Loft itself, and any link
that already carries a utm_* parameter: whoever tagged it meant those values, and mixing theirs
with ours would split its visits between two campaigns in their analytics.
"""
import re
import unicodedata
from urllib.parse import parse_qsl
from urllib.parse import quote
from urllib.parse import urlsplit

from app.errors import Problem

PARAMETERS = ("source", "medium", "campaign", "content")  # in the order they are added
DEFAULT_SOURCE = "loft"
DEFAULT_MEDIUM = "email"
MAX_VALUE = 100
_WEB_LINK = re.compile(r"https?://", re.IGNORECASE)
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


class UtmError(Problem):
    pass


def slug(name):
    """A campaign name as a utm_campaign value: "Spring Sale – 20% off!" -> "spring-sale-20-off"."""
    ascii_name = unicodedata.normalize("NFKD", name or "").encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:MAX_VALUE]


def defaults(campaign_name):
    """The settings of a new campaign: tagging on, as source "loft", medium "email"."""
    return {"enabled": True, "source": DEFAULT_SOURCE, "medium": DEFAULT_MEDIUM, "campaign": slug(campaign_name),
            "content": ""}


def settings_from_form(form, campaign_name):
    """The UTM settings typed in the campaign form, or UtmError naming the field. An emptied source,
    medium or campaign gets its default back; content may stay empty (it is then not added)."""
    settings = {"enabled": bool(form.get("utm_enabled"))}
    fallback = {"source": DEFAULT_SOURCE, "medium": DEFAULT_MEDIUM, "campaign": slug(campaign_name), "content": ""}
    for name in PARAMETERS:
        value = (form.get(f"utm_{name}") or "").strip()
        if _UNSAFE.search(value):
            raise UtmError(f"utm_{name} must be one line of text.", field=f"utm_{name}")
        if len(value) > MAX_VALUE:
            raise UtmError(f"utm_{name} can be at most {MAX_VALUE} characters.", field=f"utm_{name}")
        settings[name] = value or fallback[name]
    return settings


def active(settings):
    """The (name, value) pairs to add, or () when tagging is off or settings are missing."""
    if not isinstance(settings, dict) or not settings.get("enabled"):
        return ()
    return tuple((f"utm_{name}", str(settings.get(name) or "")) for name in PARAMETERS if settings.get(name))


def tag(url, settings, own_base=""):
    """`url` with the campaign's utm_* parameters added, or unchanged when it is not an http(s) link,
    points at Loft (`own_base`), already has a utm_* parameter, or tagging is off.

    The link's own text is kept byte for byte (its query, its percent-escapes, an IDN host, the
    #fragment): the parameters are appended to the query, before the fragment."""
    pairs = active(settings)
    if not pairs or not _WEB_LINK.match(url or ""):
        return url
    if own_base and (url == own_base or url.startswith(own_base.rstrip("/") + "/")):
        return url
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed [IPv6 bracket: not a link to tag
        return url
    if not parts.netloc:
        return url
    if any(key.lower().startswith("utm_") for key, _value in parse_qsl(parts.query, keep_blank_values=True)):
        return url
    before, hash_sign, fragment = url.partition("#")
    added = "&".join(f"{key}={quote(value, safe='')}" for key, value in pairs)
    if "?" in before:
        joiner = "" if before.endswith(("?", "&")) else "&"
    else:
        joiner = "?"
    return before + joiner + added + hash_sign + fragment


def example_link(settings, url="https://www.example.com/spring-sale"):
    """One link as the campaign would tag it, for the preview beside the settings."""
    return tag(url, settings)
