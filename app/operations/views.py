"""The instance's queue page (/admin/queue): what each queue holds, what runs, what failed, the dead letters;
and the worker-down banner every signed-in page shows (base.html asks `worker_status()`)."""
from flask import Blueprint
from flask import current_app
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_login import current_user

from app.admin.views import instance_admin_required
from app.htmx import is_htmx
from app.models import utcnow
from app.operations import deadletters
from app.operations import heartbeat
from app.operations import queues as queue_snapshots
from tasks import huey
from tasks import tx_huey

bp = Blueprint("operations", __name__, url_prefix="/admin/queue")

MAX_CHOSEN = 1000  # dead letters one request may name


def queues():
    """The queues by the name a dead letter keeps (huey's name)."""
    return {huey.name: huey, tx_huey.name: tx_huey}


def init_app(app):
    @app.context_processor
    def worker():
        def worker_status():
            if not current_user.is_authenticated:
                return None
            return heartbeat.status(immediate=huey.immediate)
        return {"worker_status": worker_status, "ages": age_in_words}


def age_in_words(since):
    """"42 s", "7 min", "3 h", "2 days": how long ago `since` (UTC) was."""
    seconds = max(0, int((utcnow() - since).total_seconds()))
    for size, unit in ((86400, " days"), (3600, " h"), (60, " min")):
        if seconds >= size * (2 if unit == " days" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds} s"


def _live_context():
    stale = current_app.config["WORKER_STALE_SECONDS"]
    return {"snapshots": [queue_snapshots.snapshot(queue) for queue in queues().values()],
            "workers": heartbeat.workers(), "live": {w.id for w in heartbeat.live_workers(stale)},
            "failures": deadletters.recent_failures(), "worker": heartbeat.status(immediate=huey.immediate)}


@bp.route("")
@instance_admin_required
def queue():
    return render_template("operations/queue.html", letters=deadletters.dead_letters(),
                           letter_count=deadletters.count(), **_live_context())


@bp.route("/live")
@instance_admin_required
def live():
    """The part of the page that refreshes itself every few seconds (not the dead letters: a refresh would
    clear the boxes someone is ticking)."""
    return render_template("operations/_live.html", **_live_context())


def _chosen():
    ids = request.form.getlist("ids")[:MAX_CHOSEN]
    return [i for i in ids if i.isdigit()], request.form.get("all") == "1"


def _after(message, category="success", problems=()):
    for problem in problems:
        flash(problem, "error")
    if message:
        flash(message, category)
    if not is_htmx():
        return redirect(url_for("operations.queue"))
    return render_template("operations/_dead_letters.html", letters=deadletters.dead_letters(),
                           letter_count=deadletters.count())


@bp.route("/dead-letters/retry", methods=["POST"])
@instance_admin_required
def retry():
    ids, everything = _chosen()
    if not ids and not everything:
        return _after("Tick the tasks to run again first.", "error")
    queued, problems = deadletters.retry(queues(), ids, everything)
    if not queued and not problems:
        return _after("Nothing was queued: those tasks are no longer in the list.", "warning")
    return _after(f"{queued} {'task' if queued == 1 else 'tasks'} queued again." if queued else "", problems=problems)


@bp.route("/dead-letters/discard", methods=["POST"])
@instance_admin_required
def discard():
    ids, everything = _chosen()
    if not ids and not everything:
        return _after("Tick the tasks to discard first.", "error")
    gone = deadletters.discard(ids, everything)
    return _after(f"{gone} {'task' if gone == 1 else 'tasks'} discarded.")
