"""Media library paths in an email made absolute, as the email is prepared.

Emails keep an image of the team's library as the path "/m/<key>.<ext>" (the block editor's image block
stores it so), never as a full address: each time an email is prepared for a preview, the web version
or a send, the path gets the instance's current address (app.settings.base_url), so a change of that
address is followed by every draft and every later send.
"""
import html
import re

from app import settings

MEDIA_PREFIX = "/m/"
# An attribute that loads or links an address, whose value starts with the media path. Cleaned HTML
# (bleach) always quotes attribute values, with ' when the value holds a ".
_MEDIA_ATTRIBUTE = re.compile(r"""(\s(?:src|href|background)=)(["'])/m/""", re.IGNORECASE)


def absolute_media_urls(markup, base_url=None):
    """`markup` with every src, href and background that starts with /m/ prefixed by `base_url` (without a
    trailing slash; the instance's address when not given). Other addresses are left as they are."""
    if not _MEDIA_ATTRIBUTE.search(markup):
        return markup
    base = (base_url or settings.base_url()).rstrip("/")
    # The result is compiled as a template: a brace in the address must stay text.
    safe_base = html.escape(base, quote=True).replace("{", "&#123;").replace("}", "&#125;")
    return _MEDIA_ATTRIBUTE.sub(lambda match: f"{match.group(1)}{match.group(2)}{safe_base}{MEDIA_PREFIX}", markup)
