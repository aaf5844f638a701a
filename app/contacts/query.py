"""Which contacts a page shows: the filter (search, list, tag, status, segment), its keyset pages,
and the batched walk that bulk actions and exports take over the same filter.

Speed at a million contacts rests on two rules. Pages never count and never
use OFFSET: they walk by id (the keyset) on an index that already has the rows
in id order, so the first page and the ten-thousandth cost the same. And a
search that no index can answer (a name or a part of an address) only looks
at a bounded window of contacts per page, saying so on the page, instead of
scanning the whole table for a rare match.
"""
import dataclasses

from peewee import fn

from app.contacts.common import ContactError
from app.contacts.common import NotFound
from app.contacts.lists import get_list
from app.contacts.tags import get_tag
from app.db import nothing
from app.models import CONTACT_STATUSES
from app.models import SUBSCRIPTION_STATUSES
from app.models import Contact
from app.models import ContactTag
from app.models import MailingList
from app.models import Segment
from app.models import Subscription
from app.models import Tag
from app.segments.compiler import compile_rules

PAGE_SIZE = 50
# How many contacts a "contains" search looks at per page. No index can find
# "smith" in the middle of a name, so the page scans at most this many rows
# (newest first) and offers to continue below them.
SEARCH_WINDOW = 50_000
# The address check's verdicts a filter may pick (Contact.validation_status; "unchecked" is its "").
VALIDATION_FILTERS = ("valid", "risky", "invalid", "unchecked")
BATCH_SIZE = 500  # rows per transaction in bulk actions and exports


def positive_int(value):
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def segments_of(team):
    return list(Segment.select(Segment.id, Segment.name).where(Segment.team == team)
                .order_by(fn.lower(Segment.name)))


@dataclasses.dataclass
class ContactFilter:
    """What the contact list shows: search text, list, subscription status, tag, contact status, segment, and
    the address check's verdict."""
    q: str = ""
    list_id: int = None
    list_status: str = ""
    status: str = ""
    segment_id: int = None
    tag_id: int = None
    validation: str = ""

    @classmethod
    def from_args(cls, args):
        list_status = args.get("list_status", "")
        status = args.get("status", "")
        validation = args.get("validation", "")
        return cls(validation=validation if validation in VALIDATION_FILTERS else "", q=(args.get("q") or "").strip()[:200], list_id=positive_int(args.get("list")),
                   list_status=list_status if list_status in SUBSCRIPTION_STATUSES else "",
                   status=status if status in CONTACT_STATUSES else "", segment_id=positive_int(args.get("segment")),
                   tag_id=positive_int(args.get("tag")))

    def to_args(self):
        """URL arguments that rebuild this filter (empty ones left out)."""
        args = {"q": self.q, "list": self.list_id, "list_status": self.list_status, "status": self.status,
                "segment": self.segment_id, "tag": self.tag_id, "validation": self.validation}
        return {key: value for key, value in args.items() if value}

    @property
    def is_empty(self):
        return not self.to_args()

    @property
    def email_search(self):
        """Text with an @ searches addresses by prefix, or "@domain" by domain (both indexed);
        other text is a bounded "contains" on address and name."""
        return "@" in self.q


@dataclasses.dataclass
class Resolved:
    filter: ContactFilter
    mailing_list: MailingList = None
    segment: Segment = None
    segment_condition: object = None
    tag: Tag = None


def resolve_filter(team, contact_filter):
    """Check the filter's list, tag and segment belong to the team (else NotFound) and compile the segment."""
    resolved = Resolved(contact_filter)
    if contact_filter.list_id:
        resolved.mailing_list = get_list(team, contact_filter.list_id)
        if resolved.mailing_list is None:
            raise NotFound("list")
    if contact_filter.segment_id:
        resolved.segment = Segment.get_or_none((Segment.id == contact_filter.segment_id) & (Segment.team == team))
        if resolved.segment is None:
            raise NotFound("segment")
        resolved.segment_condition = _segment_condition(team, resolved.segment)
    if contact_filter.tag_id:
        resolved.tag = get_tag(team, contact_filter.tag_id)
        if resolved.tag is None:
            raise NotFound("tag")
    return resolved


def _segment_condition(team, segment):
    """The segment's rules as a condition on Contact, from the segments area."""
    rules = segment.rules if isinstance(segment.rules, dict) else {}  # damaged text: no rules
    try:
        return compile_rules(team.id, rules)
    except ValueError as exc:
        raise ContactError(f"The segment “{segment.name}” cannot be used: {exc}", field="segment")


def filtered(team, resolved, columns=None):
    """(query, key): every contact the filter matches (no search window), and the id column to walk by.

    With a list, the query is driven by the list's subscriptions through
    their (list, contact) or (list, status, contact) index, so the key is
    subscription.contact_id: rows come in id order without a sort.
    """
    contact_filter = resolved.filter
    query = Contact.select(*(columns or (Contact,)))
    key = Contact.id
    if resolved.mailing_list is not None:
        on = (Subscription.contact == Contact.id) & (Subscription.list == resolved.mailing_list.id)
        if contact_filter.list_status:
            on &= Subscription.status == contact_filter.list_status
        query = query.join(Subscription, on=on)
        key = Subscription.contact
    if resolved.tag is not None:
        if resolved.mailing_list is None:
            # Driven by the tag's (tag, contact) index like a list's: its contacts come in id order.
            query = query.join(ContactTag, on=(ContactTag.contact == Contact.id) & (ContactTag.tag == resolved.tag.id))
            key = ContactTag.contact
        else:
            query = query.where(Contact.id.in_(ContactTag.select(ContactTag.contact).where(
                ContactTag.tag == resolved.tag.id)))
    query = query.where(Contact.team == team)
    if contact_filter.status:
        query = query.where(Contact.status == contact_filter.status)
    if contact_filter.validation:
        verdict = "" if contact_filter.validation == "unchecked" else contact_filter.validation
        query = query.where(Contact.validation_status == verdict)
    if resolved.segment_condition is not None:
        query = query.where(resolved.segment_condition)
    if contact_filter.q:
        query = query.where(_search_condition(contact_filter))
    return query, key


def _search_condition(contact_filter):
    q = contact_filter.q.lower()
    if q.startswith("@"):
        # "@example.com": everyone at that domain, from the (team, domain) index, already in id order.
        return Contact.domain == q[1:]
    if contact_filter.email_search:
        # A range on the (team, email) unique index: the prefix match that stays fast at any size.
        return (Contact.email >= q) & (Contact.email < q + "\uffff")
    return Contact.email.contains(q) | Contact.name.contains(contact_filter.q)


@dataclasses.dataclass
class Page:
    contacts: list
    older: int = None  # ?before= for the next (older) page
    newer: int = None  # ?after= for the previous (newer) page
    searched_to: int = None  # a bounded search stopped above this id without filling the page


def _window_edge(team, start, descending):
    """The id SEARCH_WINDOW contacts away from `start` in the walking direction, or None when no
    contact lies beyond it (the window then simply runs to the end)."""
    query = Contact.select(Contact.id).where(Contact.team == team)
    if descending:
        if start:
            query = query.where(Contact.id < start)
        query = query.order_by(Contact.id.desc())
    else:
        query = query.where(Contact.id > start).order_by(Contact.id)
    ids = [row[0] for row in query.offset(SEARCH_WINDOW - 1).limit(2).tuples()]
    return ids[0] if len(ids) == 2 else None


def contact_page(team, resolved, before=None, after=None, size=PAGE_SIZE):
    """One page of contacts, newest first, walking by id (never OFFSET)."""
    contact_filter = resolved.filter
    query, key = filtered(team, resolved)
    descending = not after
    bounded = bool(contact_filter.q) and not contact_filter.email_search
    edge = _window_edge(team, before if descending else after, descending) if bounded else None
    if descending:
        if before:
            query = query.where(key < before)
        if edge:
            query = query.where(key >= edge)
        query = query.order_by(key.desc())
    else:
        query = query.where(key > after)
        if edge:
            query = query.where(key <= edge)
        query = query.order_by(key.asc())
    if contact_filter.email_search and not contact_filter.q.startswith("@"):
        # Let the (team, email) range find the few matching ids, then take the newest of them;
        # scanning every contact newest-first and testing each address would be slower.
        query = Contact.select().where(Contact.id << query.select(Contact.id).limit(size + 1)) \
            .order_by(Contact.id.desc() if descending else Contact.id.asc())
    rows = list(query.limit(size + 1))
    full = len(rows) > size
    rows = rows[:size]
    if not descending:
        rows.reverse()
    page = Page(rows)
    if descending:
        if full:
            page.older = rows[-1].id
        elif edge:
            page.older, page.searched_to = edge, edge
        page.newer = rows[0].id if (before and rows) else (before if before else None)
    else:
        if full:
            page.newer = rows[0].id
        elif edge:
            page.newer, page.searched_to = edge, edge
        page.older = rows[-1].id if rows else after
    return page


def team_has_contacts(team):
    return Contact.select(Contact.id).where(Contact.team == team).limit(1).exists()


def walk(team, resolved=None, ids=None, batch=None, columns=None):
    """Batches of contacts, ascending by id: the selected ids, or everything the filter matches.

    Each batch is one indexed query continuing above the last id, so the walk
    is safe while the rows change (deleted or re-filtered rows are not revisited).
    """
    batch = batch or BATCH_SIZE
    cursor = 0
    while True:
        if ids is not None:
            query = Contact.select(*(columns or (Contact,))).where(Contact.team == team)
            query = query.where(Contact.id << sorted(ids)) if ids else query.where(nothing())
            key = Contact.id
        else:
            query, key = filtered(team, resolved, columns)
        rows = list(query.where(key > cursor).order_by(key.asc()).limit(batch))
        if not rows:
            return
        yield rows
        cursor = rows[-1].id
        if len(rows) < batch:
            return
