"""A draft's subject line set on its own: one chosen line, or two to four made into a subject A/B test."""
from app.campaigns import states
from app.campaigns.ab_testing import AB_LABELS
from app.campaigns.ab_testing import AB_TESTS
from app.campaigns.ab_testing import ab_test
from app.campaigns.ab_testing import ab_tests
from app.campaigns.ab_testing import variants_of
from app.campaigns.errors import CampaignError
from app.content import sandbox
from app.db import db
from app.models import Campaign
from app.models import CampaignState
from app.models import Variant
from app.models import utcnow

# What a subject test made from chosen subject lines starts with (opens: what a subject line changes).
SUBJECT_TEST_DEFAULTS = {"sample_percent": 20, "wait_minutes": 240, "metric": "opens", "tests": "subject"}


def check_subject_editable(campaign):
    """CampaignError unless the campaign's subject may still change (a draft, or a failed one)."""
    if campaign.state in (CampaignState.DRAFT, CampaignState.FAILED):
        return
    if campaign.state in (CampaignState.SCHEDULED, CampaignState.PAUSED):
        raise CampaignError("Only a draft can be edited. Pause or unschedule it first.")
    raise CampaignError(f"This campaign is {states.LABELS[campaign.state].lower()}: its subject can no longer "
                        "change. Duplicate it to use these subject lines in a new draft.")


def _checked_subject(subject, preheader, field="subject"):
    """(subject, preheader) on one line each and within their lengths, or CampaignError."""
    subject = " ".join(str(subject or "").split())[:998]
    preheader = " ".join(str(preheader or "").split())[:300]
    if not subject:
        raise CampaignError("A subject line cannot be empty.", field=field)
    try:
        sandbox.compile_template(subject, autoescape=False)
        sandbox.compile_template(preheader, autoescape=False)
    except sandbox.RenderError as exc:
        raise CampaignError(f"This subject cannot be used: {exc}", field=field) from None
    return subject, preheader


def set_subject(campaign, subject, preheader):
    """Save a new subject and preheader on a draft, the rest of it as stored; returns the previous
    {"subject", "preheader"} (for an undo)."""
    check_subject_editable(campaign)
    subject, preheader = _checked_subject(subject, preheader)
    previous = {"subject": campaign.subject, "preheader": campaign.preheader}
    campaign.subject, campaign.preheader, campaign.updated_at = subject, preheader, utcnow()
    campaign.save(only=[Campaign.subject, Campaign.preheader, Campaign.updated_at])
    return previous


def subject_ab_test(campaign, pairs):
    """Make `pairs` ([(subject, preheader)], two to four) the variants of the draft's subject A/B test:
    the campaign (variant A) takes the first, variants B.. the rest. A subject test already set up keeps
    its sample, wait and metric; one that tests something else is refused, not replaced."""
    check_subject_editable(campaign)
    if not 2 <= len(pairs) <= len(AB_LABELS):
        raise CampaignError(f"Choose two to {len(AB_LABELS)} subject lines to test against each other.")
    pairs = [_checked_subject(subject, preheader) for subject, preheader in pairs]
    current = ab_test(campaign)
    if current and ab_tests(current) != "subject" and variants_of(campaign):
        raise CampaignError(f"This campaign's A/B test changes the {AB_TESTS[ab_tests(current)].lower()}. "
                            "Switch that test off (or to Subject line) and save, then make the subject test.")
    settings = dict(SUBJECT_TEST_DEFAULTS)
    if current and ab_tests(current) == "subject":
        settings.update({key: current[key] for key in ("sample_percent", "wait_minutes", "metric") if key in current})
    campaign.subject, campaign.preheader = pairs[0]
    campaign.ab_test, campaign.updated_at = settings, utcnow()
    with db.atomic():
        campaign.save(only=[Campaign.subject, Campaign.preheader, Campaign.ab_test, Campaign.updated_at])
        Variant.delete().where(Variant.campaign == campaign).execute()
        for label, (subject, preheader) in zip(AB_LABELS, pairs):
            Variant.create(campaign=campaign, label=label, subject=subject, preheader=preheader)
    return variants_of(campaign)
