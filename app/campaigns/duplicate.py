"""Duplicate a campaign: a new draft with the same content, sender, audience and tests, none of its history.

Every Campaign column is named below as copied, or as not copied with the reason, and
tests/test_campaign_list.py fails when a column is in neither: a new column must be decided on
here, not silently left behind (or silently copied, like a send count would be).
"""
import copy

from app.db import db
from app.errors import Problem
from app.models import Campaign
from app.models import Variant
from app.models import utcnow

COPIED = frozenset({
    "from_name", "from_email", "reply_to", "subject", "preheader",  # the sender and the envelope
    "kind", "body", "blocks", "template",  # the content and its layout
    "audience", "parent",  # who it goes to; a resend's rule names its parent
    "track_opens", "track_clicks", "utm",  # tracking and link tagging
    "ab_test",  # the A/B test's settings; its variants are copied as rows
})

NOT_COPIED = {
    "id": "a new row",
    "team": "the duplicating team's",
    "name": "'Copy of …' the original's",
    "state": "a duplicate is always a draft",
    "state_reason": "why the original paused or failed",
    "ab_decided_at": "the original's test result",
    "scheduled_at": "a duplicate is scheduled on its own",
    "started_at": "history", "finished_at": "history", "frozen_at": "history",
    "total": "counts of the original's sends", "sent": "counts", "failed": "counts", "cursor": "the engine's place",
    "waiting_until": "a warm-up pause of the original's send",
    "created_by": "who duplicated it", "created_at": "now", "updated_at": "now",
}

# A variant is content (subject, body, ...): all of it is copied but the row's identity and the result.
VARIANT_NOT_COPIED = frozenset({"id", "campaign", "is_winner"})
NAME_MAX = 200


class DuplicateError(Problem):
    pass


def duplicate_campaign(team, campaign, user_id):
    """A new draft of the team's `campaign`: "Copy of <name>", with every COPIED column and its variants."""
    if campaign.team_id != team.id:
        raise DuplicateError("That campaign belongs to another team.")
    columns = Campaign._meta.fields
    values = {name: copy.deepcopy(campaign.__data__.get(name)) for name in COPIED if name in columns}
    now = utcnow()
    values.update(team=team, name=f"Copy of {campaign.name}"[:NAME_MAX], created_by=user_id, created_at=now,
                  updated_at=now)
    variant_columns = [name for name in Variant._meta.fields if name not in VARIANT_NOT_COPIED]
    with db.atomic():
        duplicate = Campaign.create(**values)
        for variant in Variant.select().where(Variant.campaign == campaign.id).order_by(Variant.id):
            Variant.create(campaign=duplicate, **{name: copy.deepcopy(variant.__data__.get(name))
                                                  for name in variant_columns})
    return duplicate
