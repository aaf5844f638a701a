"""An import's list joins start the lists' list_join automations (app/automations/triggers.py), chunk by chunk.

The importer calls start_automations() after each chunk's commit, so a welcome automation starts while a long import
is still running, and a crashed import's committed chunks have already started theirs."""
from app.automations import triggers
from app.db import IdList
from app.models import Subscription

BATCH = 10_000  # contact ids per IN list


def start_automations(team_id, list_ids, stamp, new, existing_ids):
    """The chunk's new subscriptions start the lists' list_join automations, in one bulk entry per list and chunk
    (never one enter per row). Only this chunk's contacts are looked at (`new`: the new contacts' ids, or on SQLite
    the id above which the chunk's new contacts lie; `existing_ids`: the existing contacts it subscribed), through the
    subscription's (contact, list) index: a scan of the whole list per chunk made a 100,000-row import 10 times
    slower (docs/benchmarks.md). A subscription this chunk made carries its stamp; an older one is not a join.
    Returns how many runs entered."""
    entered = 0
    lists = triggers.lists_with_joins(team_id, list_ids)
    for list_id in lists:
        mine = (Subscription.list == list_id) & (Subscription.created_at == stamp) & (Subscription.status == "subscribed")
        if isinstance(new, list):
            candidates = new + list(existing_ids)
        else:
            candidates = list(existing_ids)
        joined = [] if isinstance(new, list) else _contacts(mine & (Subscription.contact > (new or 0)))
        for start in range(0, len(candidates), BATCH):
            joined += _contacts(mine & (Subscription.contact << IdList(candidates[start:start + BATCH])))
        if joined:
            entered += triggers.list_joined(team_id, sorted(set(joined)), list_id, source="import")
    return entered


def _contacts(where):
    return [contact_id for (contact_id,) in Subscription.select(Subscription.contact).where(where).tuples()]
