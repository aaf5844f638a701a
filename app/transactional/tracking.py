"""Open and click tracking of transactional messages, when a message asks for it.

    Tracking(team_id, tx_id, opens=, clicks=)     the tokens and link registry one message is built with
    wanted(value, default_setting)                a message's track_* choice, else the instance default
    header_choice(text)                           (opens, clicks) from an X-Loft-Track header, or None
    track_html(html, tracking, base_url)          a whole message's HTML part with links rewritten and the pixel
    track_raw(message, tracking)                  every HTML part of a submitted message, tracked
    record_open(team_id, tx_id, ua, ip)           a fetch of the pixel      -> history "opened", tx_opened
    click_target(team_id, tx_id, place)           the URL of a tracked link, or None
    record_click(team_id, tx_id, place, url, ...) a click                   -> history "clicked", tx_clicked

The links are the campaigns' own: /o/<token>.gif and /c/<token>/<n> (app/tracking/), with tokens of the
purposes tx_open / tx_click (app/tokens.py), which carry (team id, message id). A campaign's token never
verifies as a transactional one, nor the reverse, and a token names its team: it records nothing for a
message of another team, or for a message that did not ask to be tracked. A click link names the link by its
place in the message's own list (TxMessage.links), so the target never travels in the URL.

The first open and the first click on each link go into the status history and fire the outgoing webhooks;
every open and click is counted (opens, clicks).
"""
import html as html_lib
import logging
import re

from flask import current_app
from peewee import PeeweeException
from peewee import fn

from app import events
from app import tokens
from app.db import db
from app.metrics.definitions import TRACKING_HITS
from app.models import EventType
from app.models import TxEvent
from app.models import TxMessage
from app.models import TxStatus
from app.models import utcnow
from app.tracking.services import click_flags
from app.tracking.services import is_web_url
from app.tracking.services import open_flags

log = logging.getLogger(__name__)

MAX_LINKS = 200  # tracked links in one message; any further link is left as written
_LINK = re.compile(r"""(<a\s[^>]*?\bhref\s*=\s*)(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
HEADER = "X-Loft-Track"
_HEADER_WORDS = {"opens", "clicks", "none"}


class Tracking:
    """What one message is built with: its open and click tokens, and the links it registers."""

    def __init__(self, team_id, tx_id, opens=False, clicks=False):
        self.opens = bool(opens)
        self.clicks = bool(clicks)
        self.open_token = tokens.sign("tx_open", team_id, tx_id) if self.opens else ""
        self.click_token = tokens.sign("tx_click", team_id, tx_id) if self.clicks else ""
        self.links = []

    def link_id(self, url):
        """The place (1, 2, ...) of `url` among the message's tracked links; None past MAX_LINKS."""
        if url in self.links:
            return self.links.index(url) + 1
        if len(self.links) >= MAX_LINKS:
            return None
        self.links.append(url)
        return len(self.links)


def wanted(value, setting):
    """A message's own choice (True/False), else the instance's LOFT_TX_TRACK_* default."""
    return bool(current_app.config[setting]) if value is None else bool(value)


def header_choice(text):
    """(opens, clicks) from an X-Loft-Track header ("opens", "clicks", "opens, clicks" or "none"); None when
    the header is absent; ValueError naming the word it does not know."""
    if text is None:
        return None
    words = {word.strip().lower() for word in str(text).split(",") if word.strip()}
    unknown = sorted(words - _HEADER_WORDS)
    if unknown or not words or ("none" in words and len(words) > 1):
        raise ValueError(f"{HEADER} takes “opens”, “clicks”, “opens, clicks” or “none”, not “{str(text)[:80]}”.")
    return "opens" in words, "clicks" in words


def _pixel(base_url, tracking):
    return (f'<img src="{base_url}/o/{tracking.open_token}.gif" width="1" height="1" alt="" '
            'style="display:block;border:0;width:1px;height:1px;">')


def track_html(html, tracking, base_url):
    """`html` (a whole message's HTML, as written by its sender) with every http(s) link pointed at the click
    redirect and the open pixel before </body>, as the message asked."""
    base_url = base_url.rstrip("/")
    if tracking.clicks:
        def rewrite(match):
            value = match.group(2) if match.group(2) is not None else match.group(3)
            url = html_lib.unescape(value).strip()
            if not is_web_url(url):
                return match.group(0)  # mailto:, tel:, #anchors
            place = tracking.link_id(url)
            if place is None:
                return match.group(0)
            return f'{match.group(1)}"{base_url}/c/{tracking.click_token}/{place}"'
        html = _LINK.sub(rewrite, html)
    if tracking.opens:
        ends = list(_BODY_END.finditer(html))
        pixel = _pixel(base_url, tracking)
        html = (html[:ends[-1].start()] + pixel + html[ends[-1].start():]) if ends else html + pixel
    return html


def track_raw(message, tracking, base_url):
    """Track every HTML part of a parsed message (email.message.EmailMessage) in place; attachments are left
    alone. Returns how many parts were tracked."""
    tracked = 0
    for part in message.walk():
        if part.get_content_type() != "text/html" or part.is_attachment():
            continue
        part.set_content(track_html(part.get_content(), tracking, base_url), subtype="html")
        tracked += 1
    return tracked


# --- Recording ----------------------------------------------------------------------------------------

_FIELDS = (TxMessage.id, TxMessage.team, TxMessage.to_email, TxMessage.from_email, TxMessage.subject,
           TxMessage.message_id, TxMessage.tags, TxMessage.sent_at, TxMessage.track_opens, TxMessage.track_clicks,
           TxMessage.links)


def _message(team_id, tx_id):
    return (TxMessage.select(*_FIELDS)
            .where((TxMessage.id == tx_id) & (TxMessage.team == team_id)).first())


def _webhook(tx, type, **extra):
    events.record(tx.team_id, None, type, data={
        "tx_id": tx.id, "to": tx.to_email, "from": tx.from_email, "subject": tx.subject,
        "message_id": tx.message_id, "tags": tx.tags or [], **extra})


def _why(flags, key):
    return f" (probably automatic: {', '.join(flags.get('why', []))})" if flags.get(key) else ""


def record_open(team_id, tx_id, user_agent, ip, now=None):
    """Count a fetch of the pixel of a message that asked for open tracking; the first one goes into its
    history and fires tx_opened. Returns True when something was recorded. Never raises for a database
    problem: the pixel is served whatever happens."""
    now = now or utcnow()
    try:
        with db.atomic():
            tx = _message(team_id, tx_id)
            if tx is None or not tx.track_opens:
                return False
            first = (TxMessage.update(opened_at=now)
                     .where((TxMessage.id == tx.id) & TxMessage.opened_at.is_null()).execute())
            TxMessage.update(opens=TxMessage.opens + 1).where(TxMessage.id == tx.id).execute()
            if first:
                flags = open_flags(user_agent, ip, tx.sent_at, now)
                TxEvent.create(tx_message=tx.id, status=TxStatus.OPENED, at=now,
                               detail=("opened" + _why(flags, "machine"))[:2000])
                _webhook(tx, EventType.TX_OPENED, machine=flags["machine"])
        TRACKING_HITS.labels("open", "transactional").inc()
        return True
    except PeeweeException:
        log.exception("could not record an open of transactional message %s", tx_id)
        return False


def click_target(team_id, tx_id, place):
    """The URL of the message's tracked link at `place` (1, 2, ...), or None."""
    tx = _message(team_id, tx_id)
    if tx is None or not tx.track_clicks or not 1 <= place <= len(tx.links or []):
        return None
    url = tx.links[place - 1]
    return url if is_web_url(url) else None


def record_click(team_id, tx_id, url, method, user_agent, now=None):
    """Count a click on one of the message's tracked links (a HEAD, a link scanner's look, is not counted);
    the first click on each link goes into the history and fires tx_clicked. Never raises for a database
    problem: the visitor is sent on whatever happens."""
    if method == "HEAD":
        return False
    now = now or utcnow()
    try:
        with db.atomic():
            tx = _message(team_id, tx_id)
            if tx is None or not tx.track_clicks:
                return False
            (TxMessage.update(clicks=TxMessage.clicks + 1, clicked_at=fn.COALESCE(TxMessage.clicked_at, now))
             .where(TxMessage.id == tx.id).execute())
            detail = f"clicked {url}"[:2000]
            seen = (TxEvent.select(TxEvent.id)
                    .where((TxEvent.tx_message == tx.id) & (TxEvent.status == TxStatus.CLICKED)
                           & ((TxEvent.detail == detail) | TxEvent.detail.startswith(detail + " ("))).exists())
            if not seen:
                flags = click_flags(method, user_agent, tx.sent_at, now)
                TxEvent.create(tx_message=tx.id, status=TxStatus.CLICKED, at=now,
                               detail=(detail + _why(flags, "bot"))[:2000])
                _webhook(tx, EventType.TX_CLICKED, url=url, bot=flags["bot"])
        TRACKING_HITS.labels("click", "transactional").inc()
        return True
    except PeeweeException:
        log.exception("could not record a click of transactional message %s", tx_id)
        return False
