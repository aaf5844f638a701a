"""Messages sent per team and month, for billing and dashboards: the one place that counts and reads them.

The sending engine counts each flush's sent messages (count_sent); the dashboard and
reports read them (usage_for, sent_this_month).
"""
from app.db import upsert_add
from app.models import Usage
from app.models import utcnow


def count_sent(team_id, sent, now=None, cursor=None):
    """Add `sent` messages to the team's usage for the month of `now` (on `cursor`, inside the
    caller's transaction, else on a new cursor).

    An upsert of Usage(team, "YYYY-MM"), so concurrent runs of one team's campaigns add up
    instead of overwriting each other; one prepared statement, as the engine counts on every flush.
    """
    month = (now or utcnow()).strftime("%Y-%m")
    upsert_add([Usage.team, Usage.month], Usage.messages_sent).run([(team_id, month, sent)], cursor)


def last_months(months, now=None):
    """The `months` month keys ending with the current one, oldest first."""
    now = now or utcnow()
    year, month = now.year, now.month
    keys = []
    for _ in range(max(int(months), 0)):
        keys.append(f"{year:04d}-{month:02d}")
        month -= 1
        if month == 0:
            year, month = year - 1, 12
    return keys[::-1]


def usage_for(team, months=12, now=None):
    """[(month "YYYY-MM", messages sent)] for the last `months` months, oldest first,
    with 0 for months without sending. `team` is a Team or its id."""
    keys = last_months(months, now)
    if not keys:
        return []
    team_id = getattr(team, "id", team)
    counts = dict(Usage.select(Usage.month, Usage.messages_sent)
                  .where((Usage.team == team_id) & (Usage.month.between(keys[0], keys[-1]))).tuples())
    return [(key, counts.get(key, 0)) for key in keys]


def sent_this_month(team, now=None):
    """Messages the team has sent in the current calendar month (UTC)."""
    return usage_for(team, 1, now)[0][1]
