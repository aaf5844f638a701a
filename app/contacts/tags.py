"""Tags: a team's labels on contacts ("customer", "vip", "met at the fair"), many per contact.

Functions take the team first and scope every query by it, so another team's tag or contact is
simply not found; they take and return plain values and models (no request), so a REST API can
call them as the pages do. Bad input raises ContactError with a message for the person.

Names are trimmed, at most TAG_NAME_MAX characters, without commas (a cell of an import, or the
add-tag box, may hold several names separated by commas, semicolons or pipes), and unique per team
ignoring case: "VIP" and "vip" are one tag, stored as first typed.

Writing many rows (bulk actions, imports) goes through INSERT ... SELECT and ON CONFLICT DO
NOTHING, one statement per batch of contacts, never one per contact.
"""
import re

from peewee import JOIN
from peewee import Value
from peewee import fn

from app.automations import triggers
from app.contacts.common import ContactError
from app.contacts.common import audit
from app.db import db
from app.db import insert_values
from app.models import TAG_NAME_MAX
from app.models import Contact
from app.models import ContactTag
from app.models import Tag
from app.models import utcnow

SEPARATORS = re.compile(r"[,;|]")
MAX_TAGS_PER_CONTACT = 200  # so a runaway import cell or script cannot attach thousands
TAG_BATCH = 5000  # (contact, tag) pairs per statement: 3 values each, under SQLite's 32,766
_INVISIBLE = re.compile(r"[\x00-\x1f\x7f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]")


# --- Names ------------------------------------------------------------------------------------

def clean_name(raw, field="name"):
    """The name as stored (trimmed, inner runs of spaces made one), or ContactError saying why not."""
    name = " ".join(str(raw or "").split())
    if not name:
        raise ContactError("Enter a tag name.", field=field)
    if "," in name:
        raise ContactError(f"A tag name cannot contain a comma (“{_short(name)}”); commas separate tags.", field=field)
    if _INVISIBLE.search(name):
        raise ContactError(f"The tag name “{_short(name)}” contains control or invisible characters.", field=field)
    if len(name) > TAG_NAME_MAX:
        raise ContactError(f"Keep tag names to {TAG_NAME_MAX} characters (“{_short(name)}” has {len(name)}).",
                           field=field)
    return name


def name_key(name):
    return name.lower()


def split_names(raw, limit=MAX_TAGS_PER_CONTACT):
    """(names, problems) of a text holding tag names separated by commas, semicolons or pipes.

    Empty parts are ignored; a name given twice (in any case) counts once; each bad name becomes a
    problem in words and is left out, and so do the names past the first `limit`."""
    names, problems, seen = [], [], set()
    for part in SEPARATORS.split(raw or ""):
        if not part.strip():
            continue
        try:
            name = clean_name(part)
        except ContactError as exc:
            problems.append(exc.message)
            continue
        if name_key(name) not in seen:
            seen.add(name_key(name))
            names.append(name)
    if limit is not None and len(names) > limit:
        problems.append(f"Only the first {limit} tags were kept ({len(names)} given).")
        names = names[:limit]
    return names, problems


def cached_splitter(limit=10_000):
    """split_names with a memory of the last `limit` distinct texts: an import's Tags cells repeat a
    few values over and over, and splitting each again was most of what the column cost."""
    cache = {}

    def split(raw):
        found = cache.get(raw)
        if found is None:
            if len(cache) >= limit:
                cache.clear()
            found = cache[raw] = split_names(raw)
        return found
    return split


def _short(text, limit=30):
    return text if len(text) <= limit else text[:limit - 1] + "…"


# --- The team's tags ---------------------------------------------------------------------------

def get_tag(team, tag_id):
    return Tag.get_or_none((Tag.id == tag_id) & (Tag.team == team))


def find_tag(team, name):
    """The team's tag with this name (any case), or None."""
    return Tag.get_or_none((Tag.team == team) & (Tag.name_key == name_key(" ".join(str(name or "").split()))))


def tags_of_team(team):
    """The team's tags, by name (for the datalist, the filter and the bulk bar)."""
    return list(Tag.select().where(Tag.team == team).order_by(Tag.name_key))


def tags_with_counts(team):
    """[(tag, contacts with it)], by name: one grouped query over the (tag, contact) index."""
    count = fn.COUNT(ContactTag.id)
    rows = (Tag.select(Tag, count.alias("contacts")).join(ContactTag, JOIN.LEFT_OUTER, on=(ContactTag.tag == Tag.id))
            .where(Tag.team == team).group_by(Tag.id).order_by(Tag.name_key))
    return [(tag, tag.contacts) for tag in rows]


def contact_count(tag):
    return ContactTag.select().where(ContactTag.tag == tag).count()


def _clash(team, name, current=None):
    query = Tag.select().where((Tag.team == team) & (Tag.name_key == name_key(name)))
    if current is not None:
        query = query.where(Tag.id != current.id)
    return query.first()


def create_tag(team, name):
    name = clean_name(name)
    existing = _clash(team, name)
    if existing is not None:
        raise ContactError(f"There is already a tag called “{existing.name}”.", field="name")
    return Tag.create(team=team, name=name, name_key=name_key(name))


def rename_tag(team, tag, name):
    """Rename; the contacts keep it. Changing only the case of the name is allowed."""
    name = clean_name(name)
    existing = _clash(team, name, tag)
    if existing is not None:
        raise ContactError(f"There is already a tag called “{existing.name}”.", field="name")
    Tag.update(name=name, name_key=name_key(name)).where((Tag.id == tag.id) & (Tag.team == team)).execute()
    return Tag.get_by_id(tag.id)


def delete_tag(team, tag, user=None):
    """Delete the tag; the contacts stay and lose it. Returns how many contacts had it."""
    with db.atomic():
        lost = contact_count(tag)
        Tag.delete().where((Tag.id == tag.id) & (Tag.team == team)).execute()
        audit(team, user, "tag.deleted", f"tag:{tag.id}", name=tag.name, contacts=lost)
    return lost


def ensure_tags(team, names):
    """{name key: Tag} for `names`, creating the missing ones (a concurrent creator is not an error).
    A new tag is named as it is first written in `names`."""
    team_id = getattr(team, "id", team)
    wanted = {}
    for name in names:
        wanted.setdefault(name_key(name), name)
    if not wanted:
        return {}
    found = _tags_by_key(team_id, wanted)
    missing = [{"team": team_id, "name": name, "name_key": key, "created_at": utcnow()}
               for key, name in wanted.items() if key not in found]
    if missing:
        for start in range(0, len(missing), 100):
            Tag.insert_many(missing[start:start + 100]).on_conflict_ignore().execute()
        found = _tags_by_key(team_id, wanted)
    return found


def _tags_by_key(team_id, wanted):
    found = {}
    keys = list(wanted)
    for start in range(0, len(keys), 500):
        for tag in Tag.select().where((Tag.team == team_id) & (Tag.name_key << keys[start:start + 500])):
            found[tag.name_key] = tag
    return found


# --- One contact -------------------------------------------------------------------------------

def tags_of(contact):
    """The contact's tags, by name."""
    return list(Tag.select().join(ContactTag).where(ContactTag.contact == contact).order_by(Tag.name_key))


def tags_of_contacts(contact_ids):
    """{contact_id: [Tag, ...]} for a page of contacts: one query on the (contact, tag) index."""
    result = {}
    if not contact_ids:
        return result
    rows = (ContactTag.select(ContactTag.contact, Tag).join(Tag)
            .where(ContactTag.contact << list(contact_ids)).order_by(Tag.name_key))
    for row in rows:
        result.setdefault(row.contact_id, []).append(row.tag)
    return result


def add_tags(team, contact, text):
    """Tag one contact with the names in `text` (comma-separated), creating new tags; returns the
    tags added. Nothing is stored when one name is bad."""
    names, problems = split_names(text, limit=None)  # the count is checked below, with the tags it has
    if problems:
        raise ContactError(problems[0], field="tags")
    if not names:
        raise ContactError("Type a tag name, or pick one from the list.", field="tags")
    _check_contact(team, contact)
    with db.atomic():
        have = ContactTag.select().where(ContactTag.contact == contact.id).count()
        tags = ensure_tags(team, names)
        fresh = [tag for tag in tags.values() if not ContactTag.select().where(
            (ContactTag.contact == contact.id) & (ContactTag.tag == tag.id)).exists()]
        if have + len(fresh) > MAX_TAGS_PER_CONTACT:
            raise ContactError(f"A contact can have at most {MAX_TAGS_PER_CONTACT} tags.", field="tags")
        for tag in fresh:
            ContactTag.insert(contact=contact.id, tag=tag.id).on_conflict_ignore().execute()
    if fresh:  # a segment on tags may have a newcomer (its segment-entry automations check at once)
        triggers.contact_changed(team, contact.id)
    return fresh


def tag_contact(team, contact, tag):
    """Put one existing tag on one contact; True when it was not there yet."""
    _check_contact(team, contact)
    _check_tag(team, tag)
    added = bool(ContactTag.insert(contact=contact.id, tag=tag.id).on_conflict_ignore().as_rowcount().execute())
    if added:
        triggers.contact_changed(team, contact.id)
    return added


def untag_contact(team, contact, tag):
    """Take one tag off one contact; True when it was there."""
    _check_contact(team, contact)
    _check_tag(team, tag)
    removed = bool(ContactTag.delete().where((ContactTag.contact == contact.id) & (ContactTag.tag == tag.id)).execute())
    if removed:
        triggers.contact_changed(team, contact.id)
    return removed


def _check_contact(team, contact):
    if contact.team_id != getattr(team, "id", team):
        raise ContactError("That contact does not exist in this team.")


def _check_tag(team, tag):
    if tag.team_id != getattr(team, "id", team):
        raise ContactError("That tag does not exist in this team.", field="tag_id")


# --- Many contacts -----------------------------------------------------------------------------

def tag_contacts(team, tag, contact_ids):
    """Put `tag` on the team's contacts among `contact_ids` (one INSERT ... SELECT); returns how many
    did not have it yet. Ids of other teams' contacts are ignored."""
    _check_tag(team, tag)
    if not contact_ids:
        return 0
    team_id = getattr(team, "id", team)
    chosen = (Contact.select(Contact.id, Value(tag.id), Value(utcnow()))
              .where((Contact.team == team_id) & (Contact.id << list(contact_ids))))
    return ContactTag.insert_from(chosen, [ContactTag.contact, ContactTag.tag, ContactTag.created_at]) \
        .on_conflict_ignore().as_rowcount().execute()


def untag_contacts(team, tag, contact_ids):
    """Take `tag` off the contacts among `contact_ids`; returns how many had it."""
    _check_tag(team, tag)
    if not contact_ids:
        return 0
    return ContactTag.delete().where((ContactTag.tag == tag.id) & (ContactTag.contact << list(contact_ids))).execute()


def tag_rows(team, contact_tags):
    """Write {contact_id: [name, ...]} as tags (an import's chunk, inside its transaction): missing
    tags are created, pairs that exist are left alone; multi-row statements, TAG_BATCH rows each.
    Returns how many pairs were added."""
    if not contact_tags:
        return 0
    # A chunk repeats a few names many times: look each distinct one up once (first spelling first).
    distinct = list(dict.fromkeys(name for names in contact_tags.values() for name in names))
    tags = ensure_tags(team, distinct)
    tag_ids = {name: tags[name_key(name)].id for name in distinct}
    stamp = utcnow().isoformat(" ")  # bound as text, the form DateTimeField stores
    params, added = [], 0
    for contact_id, names in contact_tags.items():
        for name in names:
            params += (contact_id, tag_ids[name], stamp)
        if len(params) >= TAG_BATCH * 3:
            added += _insert_pairs(params)
            params = []
    if params:
        added += _insert_pairs(params)
    return added


def _insert_pairs(params):
    return insert_values([ContactTag.contact, ContactTag.tag, ContactTag.created_at], len(params) // 3,
                         conflict=[ContactTag.contact, ContactTag.tag]).run(params).rowcount
