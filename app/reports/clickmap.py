"""The click map: the campaign's email as it was sent, each tracked link marked with its share of clicks.

Clicks are counted per URL (one Link row per address in a campaign, app/content/message.py), so a
link that appears in several places of the email carries the same count at each of them; the
marks and the table say in how many places it appears. The email is rendered again like the
preview (the saved content, UTM parameters included, a sample person, nothing tracked), which gives
the same addresses the Link rows hold, and is shown in a sandboxed frame
(app.security.untrusted_html_response); the table beside it is the accessible reading of it.
"""
import html
import re

from markupsafe import escape

from app.content import prepare
from app.content.sandbox import RenderError
from app.models import Link
from app.models import LinkStat
from app.models import Variant

_ANCHOR = re.compile(r"""<a(\s[^>]*?\bhref=(?:"([^"]*)"|'([^']*)')[^>]*)>""", re.IGNORECASE)
_HEAD_END = re.compile(r"</head>", re.IGNORECASE)
MARK_STYLE = ("a[data-loft-link]{outline:2px dashed #b45309;outline-offset:2px;}"
              ".loft-share{display:inline-block;margin:0 4px 0 0;padding:1px 6px;border-radius:9px;"
              "background:#1e1b4b;color:#ffffff;font:bold 12px/16px Arial,Helvetica,sans-serif;"
              "text-decoration:none;vertical-align:middle;}")


def _href(match):
    value = match.group(2) if match.group(2) is not None else match.group(3)
    return html.unescape(value).strip()


def _percent(part, whole):
    return f"{100 * part / whole:.0f}%" if whole else "0%"


def link_rows(campaign):
    """Every tracked link of the campaign with its clicks (0 for one nobody clicked), most clicked first."""
    stats = {row["link_id"]: row for row in LinkStat.select(LinkStat.link_id, LinkStat.clicks, LinkStat.clicks_unique)
             .where(LinkStat.campaign == campaign.id).dicts()}
    rows = [{"link_id": link_id, "url": url, "clicks": stats.get(link_id, {}).get("clicks", 0),
             "clicks_unique": stats.get(link_id, {}).get("clicks_unique", 0)}
            for link_id, url in Link.select(Link.id, Link.url).where(Link.campaign == campaign.id).tuples()]
    known = {row["link_id"] for row in rows}
    rows += [dict(row, url="(a link no longer in the campaign)") for link_id, row in stats.items()
             if link_id not in known]
    return sorted(rows, key=lambda row: (-row["clicks_unique"], -row["clicks"], row["link_id"]))


def variant_to_show(campaign, label=None):
    """The variant whose content the map shows: the one asked for, else the winner of a content test,
    else None (the campaign as written)."""
    content = content_variants(campaign)
    if label:
        return next((v for v in content if v.label == label.strip().upper()[:1]), None)
    return next((v for v in content if v.is_winner), None)


def content_variants(campaign):
    """The variants with content of their own (a content test's B to D): the map can show each."""
    return [v for v in Variant.select().where(Variant.campaign == campaign.id).order_by(Variant.label) if v.body]


def _places(rendered):
    """{address: how many links of the rendered email point at it}."""
    places = {}
    for match in _ANCHOR.finditer(rendered or ""):
        url = _href(match)
        places[url] = places.get(url, 0) + 1
    return places


def _rendered(campaign, variant):
    try:
        return prepare.preview(campaign, None, variant=variant)[1]
    except RenderError:
        return None


def with_shares(campaign, links, variant=None):
    """The report's link rows with their share of the unique and of all clicks, and `places`: how many
    times the address appears in the email shown (0 when it is only in another variant's content)."""
    places = _places(_rendered(campaign, variant))
    unique_total = sum(row["clicks_unique"] for row in links)
    total = sum(row["clicks"] for row in links)
    return [dict(row, share_unique=row["clicks_unique"] / unique_total if unique_total else 0.0,
                 share_total=row["clicks"] / total if total else 0.0, places=places.get(row["url"], 0))
            for row in links]


def marked_html(campaign, links, variant=None):
    """The email's HTML with each tracked link outlined and preceded by its share of unique clicks, or a
    short explanation when the content cannot be rendered any more."""
    rendered = _rendered(campaign, variant)
    if rendered is None:
        return ('<p style="font-family:sans-serif">This email can no longer be shown: its content has an '
                'error. The table beside it still has every link.</p>')
    by_url = {row["url"]: row for row in links}
    unique_total = sum(row["clicks_unique"] for row in links)
    total = sum(row["clicks"] for row in links)
    places = _places(rendered)

    def mark(match):
        row = by_url.get(_href(match))
        if row is None:
            return match.group(0)  # not a tracked link: mailto:, a personal link, or tracking was off
        count = places[row["url"]]
        share = _percent(row["clicks_unique"], unique_total)
        title = (f"{share} of unique clicks ({row['clicks_unique']} people); {_percent(row['clicks'], total)} of all "
                 f"clicks ({row['clicks']} of {total})"
                 + (f"; this address is in {count} places, counted together" if count > 1 else ""))
        label = share + (f" ×{count}" if count > 1 else "")
        return (f'<a data-loft-link="{row["link_id"]}"{match.group(1)}>'
                f'<span class="loft-share" title="{escape(title)}">{escape(label)}</span>')

    marked = _ANCHOR.sub(mark, rendered)
    style = f"<style>{MARK_STYLE}</style>"
    if _HEAD_END.search(marked):
        return _HEAD_END.sub(lambda _m: style + "</head>", marked, count=1)
    return style + marked
