"""Subject-line suggestions in the campaign builder: what is asked (a brief, or the campaign's own text
with its merge tags as tags), and what a writer does with an answer: use one as the subject (undo keeps
the one it replaced), or make two to four of them the variants of the campaign's subject A/B test."""
from app.ai import jobs
from app.ai import writing
from app.campaigns import subjects
from app.campaigns.errors import CampaignError
from app.content import text as content_text
from app.errors import Problem
from app.models import AiJob
from app.models import Campaign
from app.models import utcnow

KIND = "subject_lines"
CONTENT_LIMIT = 8000  # characters of the campaign's text the prompt takes (its "content" input)


def campaign_text(campaign):
    """The saved email as plain text: Markdown as written, HTML (a block email's rendering too) as text.
    Merge tags stay tags ({{ first_name }}): nothing here reads a contact."""
    body = campaign.body or ""
    text = body if campaign.kind == "markdown" else content_text.html_to_text(body)
    return text.strip()[:CONTENT_LIMIT]


def inputs_for(campaign, brief):
    """The prompt's inputs: the brief when there is one, else the campaign's text."""
    brief = (brief or "").strip()
    if brief:
        return {"brief": brief}
    return {"content": campaign_text(campaign)}


def start(team, user, campaign, brief, regenerate=False):
    """The job asking for suggestions; only for a campaign whose subject can still change."""
    subjects.check_subject_editable(campaign)
    return jobs.start(team, user, campaign, KIND, inputs_for(campaign, brief), regenerate=regenerate)


def suggestions(team, job):
    """The job's suggestions as shown: each with its spam-wording flags, and `problem` (words) when it
    uses a merge tag that is not a field of this team ({{ first_name }} instead of {{ contact.first_name }}
    would come out empty in every inbox): such a one can be read but not used."""
    shown = []
    for item in (job.result or {}).get("items") or []:
        problem = ""
        try:
            writing.check_merge_tags(team, f"{item['subject']} {item.get('preheader', '')}", "This suggestion")
        except Problem as exc:
            problem = exc.message
        shown.append({**item, "problem": problem})
    return shown


def _suggestion(team, job, index):
    if job.kind != KIND or job.state != "done":
        raise CampaignError("These suggestions are not ready. Ask for new ones.")
    items = suggestions(team, job)
    if not 0 <= index < len(items):
        raise CampaignError("Choose one of the suggestions shown.")
    if items[index]["problem"]:
        raise CampaignError(items[index]["problem"])
    return items[index]


def _campaign(team, job):
    campaign = Campaign.get_or_none((Campaign.id == job.campaign_id) & (Campaign.team == team))
    if campaign is None:
        raise CampaignError("The campaign of these suggestions no longer exists.")
    return campaign


def use(team, job, index):
    """Save suggestion `index` as the campaign's subject and preheader. The job keeps the subject it
    replaced the first time (undo goes back to the writer's own, however many are tried)."""
    item = _suggestion(team, job, index)
    campaign = _campaign(team, job)
    replaced = subjects.set_subject(campaign, item["subject"], item.get("preheader", ""))
    previous = dict(job.previous) if job.previous else replaced
    previous["used"] = {"subject": campaign.subject, "preheader": campaign.preheader}
    job.previous, job.accepted_at = previous, utcnow()
    job.save(only=[AiJob.previous, AiJob.accepted_at])
    return campaign


def undo(team, job):
    """Put back the subject and preheader a "Use as subject" replaced, unless they were changed since
    (the newer words are the writer's: they stay)."""
    if not job.previous:
        raise CampaignError("There is nothing to undo.")
    campaign = _campaign(team, job)
    used = job.previous.get("used") or {}
    if (campaign.subject, campaign.preheader) != (used.get("subject"), used.get("preheader")):
        raise CampaignError("The subject changed since it was used, so it was left as it is.")
    subjects.set_subject(campaign, job.previous["subject"], job.previous["preheader"])
    job.previous, job.accepted_at = None, None
    job.save(only=[AiJob.previous, AiJob.accepted_at])
    return campaign


def make_ab_test(team, job, picks):
    """The chosen suggestions (indexes, in the order shown) as the campaign's subject A/B test:
    returns (campaign, variants)."""
    indexes = sorted({int(pick) for pick in picks if str(pick).isdigit()})
    if len(indexes) < 2:
        raise CampaignError("Tick “Test in A/B” on two to four suggestions first.")
    items = [_suggestion(team, job, index) for index in indexes]
    campaign = _campaign(team, job)
    variants = subjects.subject_ab_test(campaign, [(i["subject"], i.get("preheader", "")) for i in items])
    return campaign, variants
