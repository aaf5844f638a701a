"""Segments: saved, reusable rule sets that pick contacts.

Every function takes the team first and scopes every query by it. Rules are
checked and compiled by app.segments.compiler; the matching itself always
happens in the database, as one query.
"""

from peewee import fn

from app.db import db
from app.models import Campaign
from app.models import CampaignState
from app.models import Contact
from app.models import MailingList
from app.models import Segment
from app.models import Subscription
from app.models import Tag
from app.models import utcnow
from app.segments.compiler import OPERATORS
from app.segments.compiler import Catalogue
from app.segments.compiler import SegmentError
from app.segments.compiler import compile_clean
from app.segments.compiler import parse_rules
from app.segments.compiler import validate_rules

MAX_NAME = 100
# Campaigns in these states still read their audience, so their segments must stay.
LIVE_CAMPAIGN_STATES = (CampaignState.DRAFT, CampaignState.SCHEDULED, CampaignState.SENDING, CampaignState.PAUSED)
STATUS_LABELS = {"active": "Active", "unsubscribed": "Unsubscribed", "bounced": "Bounced",
                 "complained": "Complained", "suppressed": "Suppressed"}

def _team_id(team):
    return getattr(team, "id", team)


def _select(team_id, rules, *columns):
    """One query for the rules, shaped so SQLite can answer it from its indexes.

    When every contact must be on some list (a "subscribed to" rule in the
    top AND group), the query is a join that starts from that list's
    (list, status, contact) index, instead of an IN (subquery) on Contact.
    The join reads the subscribers in contact-id order and looks each one up
    by primary key; an IN list is first built into a temporary index, and
    without statistics SQLite may probe it from the status index for every
    contact of the team. At a million contacts the join is twice as fast
    (docs/benchmarks.md). Subscriptions are unique per (contact, list), so
    the join never repeats a contact.
    """
    team_id = _team_id(team_id)
    catalogue = Catalogue(team_id)
    cleaned = validate_rules(team_id, rules, catalogue)
    join_list = None
    if cleaned["op"] == "and":
        for index, child in enumerate(cleaned["rules"]):
            if child.get("field") == "list" and child.get("operator") == "in_list":
                join_list = child["value"]
                cleaned = {"op": "and", "rules": cleaned["rules"][:index] + cleaned["rules"][index + 1:]}
                break
    query = Contact.select(*columns)
    if join_list is not None:
        member = Subscription.alias("segment_member")  # an alias, so a caller's own join on Subscription can't clash
        query = query.join(member, on=((member.contact == Contact.id) & (member.list == join_list)
                                       & (member.status == "subscribed")))
    return query.where((Contact.team == team_id) & compile_clean(catalogue, cleaned))


def matching_contacts(team_id, rules):
    """Every contact of the team the rules match, as a lazy Contact query (the caller pages it).

    SegmentError if the rules are not valid for the team.
    """
    return _select(team_id, rules)


def count_matching(team_id, rules):
    """How many of the team's contacts the rules match: one COUNT query (SegmentError if invalid)."""
    return _select(team_id, rules, fn.COUNT(Contact.id)).scalar() or 0


def rules_of(segment):
    """The stored rules of a segment as a tree (an unreadable one reads as "no rules")."""
    try:
        rules = parse_rules(segment.rules)
    except SegmentError:
        return {"op": "and", "rules": []}
    return rules if isinstance(rules, dict) else {"op": "and", "rules": []}


def list_segments(team):
    return list(Segment.select().where(Segment.team == _team_id(team))
                .order_by(fn.lower(Segment.name), Segment.id))


def _clean_name(team, name, segment=None):
    name = " ".join((name or "").split())
    if not name:
        raise SegmentError("Give the segment a name.", field="name")
    if len(name) > MAX_NAME:
        message = f"Keep the name under {MAX_NAME} characters."
        raise SegmentError(message, field="name")
    same = Segment.select(Segment.id).where((Segment.team == _team_id(team)) & (fn.lower(Segment.name) == name.lower()))
    if segment is not None:
        same = same.where(Segment.id != segment.id)
    if same.exists():
        message = f"There is already a segment called “{name}”."
        raise SegmentError(message, field="name")
    return name


def create_segment(team, name, rules):
    """A new segment; the rules are checked for the team and stored cleaned, or SegmentError."""
    with db.atomic():
        name = _clean_name(team, name)
        cleaned = validate_rules(_team_id(team), rules)
        return Segment.create(team=_team_id(team), name=name, rules=cleaned)


def update_segment(team, segment, name, rules):
    """Rename and/or change the rules; nothing is written unless both are valid."""
    if segment.team_id != _team_id(team):
        raise SegmentError("That segment belongs to another team.")
    with db.atomic():
        name = _clean_name(team, name, segment)
        cleaned = validate_rules(_team_id(team), rules)
        segment.name = name
        segment.rules = cleaned
        segment.updated_at = utcnow()
        segment.save()
    return segment


def campaigns_using(team, segment):
    """Campaigns that still read their audience and name this segment (to include or exclude)."""
    using = []
    query = (Campaign.select(Campaign.id, Campaign.name, Campaign.audience)
             .where((Campaign.team == _team_id(team)) & Campaign.state.in_(LIVE_CAMPAIGN_STATES)))
    for campaign in query:
        audience = campaign.audience
        if not isinstance(audience, dict):
            continue
        named = []
        for key in ("segments", "exclude_segments"):
            value = audience.get(key)
            named.extend(value if isinstance(value, list) else [])
        if any(str(item) == str(segment.id) for item in named):
            using.append(campaign)
    return using


def delete_segment(team, segment):
    """Delete a segment no live campaign uses; SegmentError naming the campaigns otherwise."""
    if segment.team_id != _team_id(team):
        raise SegmentError("That segment belongs to another team.")
    with db.atomic():
        using = campaigns_using(team, segment)
        if using:
            names = ", ".join(f"“{c.name}”" for c in using[:5]) + (" and others" if len(using) > 5 else "")
            raise SegmentError(f"This segment is the audience of {names}. Change the audience there first.")
        segment.delete_instance()


# --- Words for people ---------------------------------------------------------------

def describe(team, rules, catalogue=None):
    """The rules as a sentence, e.g. "Status is Active and (List is subscribed to “News” or Plan > 3)"."""
    team_id = _team_id(team)
    catalogue = catalogue or Catalogue(team_id)
    rules = rules if isinstance(rules, dict) else parse_rules(rules)
    names = _names(team_id, rules)
    text = _describe_group(rules, catalogue, names, top=True)
    return text or "Every contact"


def _names(team_id, rules):
    """List, campaign and tag names the rules mention, a query for each."""
    wanted = {"list": set(), "campaign": set(), "tag": set()}

    def walk(node):
        for child in node.get("rules", []) if isinstance(node, dict) else []:
            if isinstance(child, dict) and "rules" in child:
                walk(child)
            elif isinstance(child, dict) and child.get("field") in wanted and isinstance(child.get("value"), int):
                wanted[child["field"]].add(child["value"])
    walk(rules)
    names = {}
    for field, model in (("list", MailingList), ("campaign", Campaign), ("tag", Tag)):
        if wanted[field]:
            for row in model.select(model.id, model.name).where((model.team == team_id) & model.id.in_(list(wanted[field]))):
                names[(field, row.id)] = row.name
    return names


def _describe_group(group, catalogue, names, top=False):
    parts = []
    for child in group.get("rules", []):
        if isinstance(child, dict) and "rules" in child:
            inner = _describe_group(child, catalogue, names)
            if inner:
                parts.append(inner)
        else:
            parts.append(_describe_rule(child, catalogue, names))
    if not parts:
        return ""
    joined = f" {group.get('op', 'and')} ".join(parts)
    return joined if top or len(parts) == 1 else f"({joined})"


def _describe_rule(rule, catalogue, names):
    if not isinstance(rule, dict):
        return "(invalid rule)"
    spec = catalogue.field(rule.get("field"))
    if spec is None:
        return "(unknown field)"
    label, kind = spec
    operator = OPERATORS[kind].get(rule.get("operator"))
    if operator is None:
        return f"{label} (unknown comparison)"
    op_label, value_kind = operator
    value = rule.get("value")
    if value_kind == "none":
        return f"{label} {op_label}"
    if value_kind == "status":
        shown = STATUS_LABELS.get(value, str(value))
    elif value_kind in ("list", "campaign", "tag"):
        shown = f"“{names.get((value_kind, value), 'deleted ' + value_kind)}”"
    elif value_kind == "text":
        shown = f"“{value}”"
    else:
        shown = str(value)
    if "…" in op_label:
        return f"{label} {op_label.replace('…', shown)}"
    return f"{label} {op_label} {shown}"


def choices(team, campaign_ids=()):
    """What the builder's selects offer: the team's lists and tags and its most recent campaigns
    (plus any older campaign in `campaign_ids`, so a rule never loses its choice)."""
    team_id = _team_id(team)
    lists = [(row.id, row.name) for row in MailingList.select(MailingList.id, MailingList.name)
             .where(MailingList.team == team_id).order_by(fn.lower(MailingList.name))]
    campaigns = [(row.id, row.name) for row in Campaign.select(Campaign.id, Campaign.name)
                 .where(Campaign.team == team_id).order_by(Campaign.id.desc()).limit(200)]
    missing = set(campaign_ids) - {campaign_id for campaign_id, _ in campaigns}
    if missing:
        campaigns += [(row.id, row.name) for row in Campaign.select(Campaign.id, Campaign.name)
                      .where((Campaign.team == team_id) & Campaign.id.in_(list(missing)))]
    tags = [(row.id, row.name) for row in Tag.select(Tag.id, Tag.name).where(Tag.team == team_id).order_by(Tag.name_key)]
    return {"lists": lists, "tags": tags, "campaigns": campaigns, "statuses": list(STATUS_LABELS.items())}
