"""The engine's hooks: what happens around delivery that the engine itself knows nothing of.

tasks/sending.py fills them (bounce handling from app/bounces, alerts, another run elsewhere), so the
engine never imports what follows delivery.
"""
import dataclasses


def _nothing(*args, **kwargs):
    return None


@dataclasses.dataclass(frozen=True)
class Hooks:
    """Every hook runs inside the app context; each does nothing unless given.

    on_refusals(refusals)       inside the transaction that writes the results (the run's database
                                thread): [(send_id, code, reply, at)] of the sends just marked
                                bounced, so what they cause commits or rolls back with them
    after_flush(campaign_id)    after each committed write of results (database thread); never raises
    on_completed(campaign_id)   once a run completed the campaign
    more_runs(campaign_id)      a run started and the campaign has room for another: start one elsewhere
    alert(team_id, subject, text, kind=..., campaign_id=...)   tell the team (the engine paused a campaign)
    """
    on_refusals: object = _nothing
    after_flush: object = _nothing
    on_completed: object = _nothing
    more_runs: object = _nothing
    alert: object = _nothing
