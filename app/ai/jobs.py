"""Background AI jobs of the campaign builder: one row per request for help, run by the task
tasks/ai.py `run_ai_job` (the caller enqueues it: services never do) and polled by the page.

    queued -> running -> done | failed | cancelled

`run` claims a queued job with a conditional UPDATE, so a job runs once; it writes the outcome only
while the job is still running, so a cancelled job's late answer is dropped. Every refusal and
provider failure becomes the job's `error` in words: the builder never sees an exception.
"""
import datetime
import logging

from app.ai import generate
from app.ai import prompts
from app.ai import spam_check
from app.db import db
from app.errors import Problem
from app.models import AiJob
from app.models import utcnow

log = logging.getLogger(__name__)

# A job's kind -> the prompt it runs.
PROMPTS = {"subject_lines": "subject_lines", "draft": "draft", "rewrite": "rewrite"}
WAITING = ("queued", "running")
KEEP_PER_CAMPAIGN = 20
# Longer than any answer takes (three attempts of 30 s and the waits between them): a job still waiting
# after this lost its worker (a restart), so the page stops waiting and offers Try again.
STALE_AFTER = datetime.timedelta(minutes=10)
SUGGESTIONS = 5


class JobError(Problem):
    pass


def start(team, user, campaign, kind, inputs, *, regenerate=False, context=None):
    """A queued job for `campaign` (None: not tied to one), after the checks that need no provider:
    AI is on for the team (JobError with its reason), and the inputs are the prompt's and within its
    limits (prompts.AiError at the field). Keeps the campaign's newest KEEP_PER_CAMPAIGN jobs. The caller
    enqueues run_ai_job."""
    if kind not in PROMPTS:
        raise JobError("Choose suggestions, a draft or a rewrite.")
    current = generate.status(team)
    if not current.enabled:
        raise JobError(current.reason)
    inputs = prompts.clean_inputs(prompts.get(PROMPTS[kind]), inputs)
    with db.atomic():
        job = AiJob.create(team=team, user=user, campaign=campaign, kind=kind, inputs=inputs,
                           context=dict(context or {}), regenerate=bool(regenerate))
        if campaign is not None:
            _prune(campaign)
    return job


def _prune(campaign):
    keep = (AiJob.select(AiJob.id).where(AiJob.campaign == campaign)
            .order_by(AiJob.id.desc()).limit(KEEP_PER_CAMPAIGN))
    AiJob.delete().where((AiJob.campaign == campaign) & AiJob.id.not_in(keep)).execute()


def run(job_id):
    """The task body: claim the job, generate, store the result or the error words."""
    claimed = AiJob.update(state="running").where((AiJob.id == job_id) & (AiJob.state == "queued")).execute()
    if not claimed:
        return  # cancelled before it started, pruned, or run already
    job = AiJob.get_by_id(job_id)
    try:
        generation = generate.generate(job.team, job.user, PROMPTS[job.kind], dict(job.inputs),
                                       regenerate=job.regenerate)
        result = _result(job, generation)
    except Problem as exc:
        _finish(job_id, "failed", error=exc.message)
        return
    except Exception:  # noqa: BLE001  the writer gets words and the builder keeps working; the log has the rest
        log.exception("AI job %s failed", job_id)
        _finish(job_id, "failed", error="Something went wrong while writing this. Try again in a moment.")
        return
    _finish(job_id, "done", result=result, generation=generation.record_id or None)


def _finish(job_id, state, **values):
    # Only a running job takes its outcome: a cancel that came first wins.
    (AiJob.update(state=state, finished_at=utcnow(), **values)
     .where((AiJob.id == job_id) & (AiJob.state == "running")).execute())


def _result(job, generation):
    result = {"prompt": generation.prompt, "model": generation.model, "text": generation.text,
              "data": generation.data, "input_tokens": generation.input_tokens,
              "output_tokens": generation.output_tokens, "cost_usd": generation.cost_usd,
              "cached": generation.cached, "finish_reason": generation.finish_reason,
              "record_id": generation.record_id}
    if job.kind == "subject_lines":
        result["items"] = subject_lines(generation.data)
    return result


def subject_lines(data):
    """The suggestions of a subject_lines answer: [{"subject", "preheader", "flags"}], at most
    SUGGESTIONS, or JobError when there is none to show."""
    items = data.get("items") if isinstance(data, dict) else data
    suggestions = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        subject = " ".join(str(item.get("subject") or "").split())[:998]
        preheader = " ".join(str(item.get("preheader") or "").split())[:300]
        if not subject:
            continue
        flags = spam_check.flags(subject) + [f"Preheader: {flag}" for flag in spam_check.flags(preheader)]
        suggestions.append({"subject": subject, "preheader": preheader, "flags": flags})
    if not suggestions:
        raise JobError("The answer held no subject lines. Try again.")
    return suggestions[:SUGGESTIONS]


def cancel(team, job):
    """Stop a queued or running job: its answer, if one still comes, is dropped. A finished job stays
    as it is."""
    if job.team_id != team.id:
        raise JobError("That job is not this team's.")
    (AiJob.update(state="cancelled", finished_at=utcnow())
     .where((AiJob.id == job.id) & AiJob.state.in_(WAITING)).execute())
    return AiJob.get_by_id(job.id)


def expire_if_stale(job):
    """The job, failed in words if it has waited longer than STALE_AFTER."""
    if job.state not in WAITING or job.created_at > utcnow() - STALE_AFTER:
        return job
    (AiJob.update(state="failed", finished_at=utcnow(),
                  error="This took too long and was stopped; nothing was changed. Try again.")
     .where((AiJob.id == job.id) & AiJob.state.in_(WAITING)).execute())
    return AiJob.get_by_id(job.id)


def retry(team, user, job):
    """A new job with the same request, for Try again (the cache is bypassed only if it was)."""
    return start(team, user, job.campaign, job.kind, dict(job.inputs), regenerate=job.regenerate,
                 context=dict(job.context or {}))


def latest(team, campaign, kind):
    """The campaign's newest job of this kind, or None: what the builder's panel shows on load."""
    return (AiJob.select().where((AiJob.team == team) & (AiJob.campaign == campaign) & (AiJob.kind == kind))
            .order_by(AiJob.id.desc()).first())
