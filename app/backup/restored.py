"""After a restore: stop every campaign that may have sent mail the restored database does not know of.

The restored Send ledger is the ledger as of the backup. Whatever a campaign sent after that moment
is recorded nowhere any more, so resuming it would mail those people a second time (12,060 of 20,000
when this was tried). Loft cannot know who got what; a person can (the SMTP provider's logs), so
each such campaign stops and its team gets a notice saying exactly that:

- sending   → paused, with the reason;
- scheduled for a time that has come → back to draft (it may have gone out after the backup);
- paused    → stays paused, with the same warning, as it may have been resumed after the backup.

The queue restored with the data may still hold "send this campaign" tasks; they are harmless because
the engine sends only campaigns in the "sending" state (engine.run_campaign), which none of these is.

Ids are the other thing a restore must not bring back. Every id handed out after the backup may have
left the box: a send id in the unsubscribe link of a delivered message, a contact id in a webhook
payload. The restored database does not know them, so it would hand them out again, and that old
unsubscribe link would act on another person. never_reuse_ids raises every table's id counter past
the highest id the replaced database had handed out (read from it before the swap), or, when that
database is missing, unreadable or not a later state of the backup, by a margin that grows with the
time since the backup.
"""
import os
import pathlib
import sqlite3

from peewee import DatabaseError
from peewee import SqliteDatabase

from app.campaigns import states
from app.db import db
from app.db import id_high_water
from app.db import raise_id_counters
from app.notices import alerts
from app.models import Campaign
from app.models import CampaignState
from app.models import utcnow

KIND = "restore"

KNOWN_MARGIN = 1_000  # above the replaced database's highest ids
# When they are unknown: this much (an import adds up to 50,000 contacts a second, docs/benchmarks.md,
# so millions may come right after the backup), plus so many a second since the backup (more than any
# table takes on average over hours: sending runs at about 2,500 a second at best).
UNKNOWN_MARGIN = 10_000_000
UNKNOWN_RATE = 10_000


def settle_campaigns(backup_time, now=None):
    """Pause / unschedule the campaigns above and notify their teams. Returns [(campaign, what), ...]."""
    now = now or utcnow()
    when = backup_time.strftime("%Y-%m-%d %H:%M UTC")
    affected = []
    for campaign in Campaign.select().where(Campaign.state.in_((CampaignState.SENDING, CampaignState.PAUSED, CampaignState.SCHEDULED))).order_by(Campaign.id):
        if campaign.state == CampaignState.SCHEDULED and (campaign.scheduled_at is None or campaign.scheduled_at > now):
            continue  # its time has not come: it cannot have gone out after the backup
        what = _stop(campaign, when)
        alerts.notify(campaign.team_id, f"Restored from a backup: check “{campaign.name}” before it goes on",
                      _notice_text(campaign, what, when), kind=KIND, campaign_id=campaign.id,
                      data={"backup_created_at": when, "state_before": campaign.state})
        affected.append((campaign, what))
    return affected


def _stop(campaign, when):
    reason = (f"Paused by the restore of the backup of {when}: messages sent after the backup are not "
              "recorded, so resuming may send them twice.")
    if campaign.state == CampaignState.SENDING:
        states.transition(campaign, CampaignState.PAUSED, reason)
        return "paused"
    if campaign.state == CampaignState.SCHEDULED:
        states.transition(campaign, CampaignState.DRAFT, f"Unscheduled by the restore of the backup of {when}: "
                                             "its time had come, so it may have gone out after the backup.")
        return "unscheduled"
    Campaign.update(state_reason=reason, updated_at=utcnow()).where(Campaign.id == campaign.id).execute()
    return "kept paused"


def _notice_text(campaign, what, when):
    done = {"paused": "It was sending when the backup was made, so Loft paused it.",
            "unscheduled": "It was scheduled for a time that has passed since, so Loft put it back to draft.",
            "kept paused": "It was paused when the backup was made and stays paused."}[what]
    return (f"Loft was restored from the backup made at {when}. {done} "
            f"Messages this campaign sent after {when} are not recorded in the restored database: "
            "if you resume or publish it, those recipients may get it twice. Check what went out (for example "
            "in your SMTP provider's logs), then decide: resume it, or cancel it and send a new campaign to "
            "the people who did not get it.")


# --- Ids ---------------------------------------------------------------------------------------

def high_water_of(path):
    """({table: highest id handed out}, '') for the SQLite file at `path`, or (None, why not).

    Opened read-only: its -wal is read but never checkpointed or removed, so the file moved aside by
    the restore still opens as it was."""
    if not os.path.exists(path):
        return None, "there was no database to replace"
    database = SqliteDatabase(pathlib.Path(path).absolute().as_uri() + "?mode=ro", uri=True, timeout=10)
    try:
        return id_high_water(database), ""
    except (DatabaseError, sqlite3.Error) as exc:
        return None, f"the database it replaces could not be read ({exc})"
    finally:
        database.close()


def id_floors(restored, replaced, why, backup_time, now=None):
    """({table: id that the next one must exceed}, margin, why the replaced ids cannot be trusted or '')."""
    if replaced is not None and not why:
        behind = sorted(t for t, mark in restored.items() if replaced.get(t, 0) < mark)
        if behind:
            why = ("the database it replaces is not a later state of this backup (fewer ids in "
                   f"{', '.join(behind[:3])}{', ...' if len(behind) > 3 else ''})")
    replaced = replaced or {}
    if why:
        elapsed = max(0, int(((now or utcnow()) - backup_time).total_seconds()))
        margin = UNKNOWN_MARGIN + UNKNOWN_RATE * elapsed
    else:
        margin = KNOWN_MARGIN
    floors = {t: max(restored.get(t, 0), replaced.get(t, 0)) + margin for t in set(restored) | set(replaced)}
    return floors, margin, why


def never_reuse_ids(replaced, backup_time, now=None):
    """Raise the restored database's id counters so that no id handed out before the restore comes back.

    `replaced` is high_water_of(the database being replaced), read before the swap. Returns a line for
    the operator."""
    marks, why = replaced
    floors, margin, why = id_floors(id_high_water(db), marks, why, backup_time, now)
    raise_id_counters(db, floors)
    if not why:
        return (f"Ids go on above the highest ones the replaced database had handed out (plus {margin:,}), so "
                "links in mail already sent, webhooks and exports never point at a new row.")
    return (f"Ids: {why}, so the ids handed out since the backup are unknown; every table's ids jump ahead by "
            f"{margin:,} ({UNKNOWN_MARGIN:,} plus {UNKNOWN_RATE:,} a second since the backup), so that links in "
            "mail already sent, webhooks and exports never point at a new row.")
