"""A/B tests: settings and variants from the builder form, the sample split at publish, the winner picked."""
import re

from app.campaigns import stats
from app.campaigns import states
from app.campaigns.errors import CampaignError
from app.campaigns.schedule import local_time
from app.campaigns.schedule import parse_schedule
from app.content import prepare
from app.content import sandbox
from app.db import db
from app.models import Campaign
from app.models import CampaignState
from app.models import Variant
from app.models import utcnow
from app.sending import ledger

AB_METRICS = {"clicks": "Unique clicks", "opens": "Unique opens (machine opens excluded)"}
# What an A/B test changes between its variants: one of these; the rest of each variant is the campaign's.
AB_TESTS = {"subject": "Subject line", "from_name": "From name", "content": "Content", "send_time": "Send time"}
AB_LABELS = ("A", "B", "C", "D")  # A is the campaign as written; B to D are typed in the A/B section
# The form field of each test's value, per variant: b_subject, c_from_name, d_body, b_send_at...
# A subject test may give each variant its own preheader too (b_preheader...; empty = the campaign's).
AB_FIELDS = {"subject": "subject", "from_name": "from_name", "content": "body", "send_time": "send_at"}


def ab_test(campaign):
    return dict(campaign.ab_test) if isinstance(campaign.ab_test, dict) else {}


def parse_settings(form):
    """The A/B test the builder form asks for ({} for none), or CampaignError at the field to fix."""
    if not form.get("ab_enabled"):
        return {}
    try:
        sample = int(form.get("ab_sample_percent", "20"))
        wait = int(form.get("ab_wait_minutes", "240"))
    except ValueError:
        raise CampaignError("The A/B sample and waiting time must be whole numbers.", field="ab_sample_percent")
    if not 2 <= sample <= 50:
        raise CampaignError("Test on 2% to 50% of the audience; the winner goes to the rest.",
                            field="ab_sample_percent")
    if not 5 <= wait <= 7 * 24 * 60:
        raise CampaignError("Wait between 5 minutes and 7 days before picking the winner.", field="ab_wait_minutes")
    metric = form.get("ab_metric", "clicks")
    if metric not in AB_METRICS:
        raise CampaignError("Choose clicks or opens as the winning metric.", field="ab_metric")
    tests = form.get("ab_tests") or ("content" if form.get("b_body", "").strip() else "subject")
    if tests not in AB_TESTS:
        raise CampaignError("Choose what the test changes: the subject, the From name, the content or the send time.",
                            field="ab_tests")
    return {"sample_percent": sample, "wait_minutes": wait, "metric": metric, "tests": tests}


def ab_tests(settings):
    """What a test's variants differ in; tests stored before there was a choice changed subject or content."""
    return settings.get("tests") or "subject"


def variants_from_form(campaign, settings, form):
    """The Variant values of an A/B test (A is the campaign as written, B to D as typed), or [] without
    a test; CampaignError on the field of a variant that cannot be used. Each variant holds only the
    tested value: everything else of it is the campaign's."""
    if not settings:
        return []
    tests = ab_tests(settings)
    field = AB_FIELDS[tests]
    a_values = {"subject": {"subject": campaign.subject}, "from_name": {"from_name": campaign.from_name},
                "content": {}, "send_time": {}}[tests]
    variants = [dict(label="A", **a_values)]
    missing = None
    for label in AB_LABELS[1:]:
        name = f"{label.lower()}_{field}"
        value = (form.get(name) or "").strip()
        if not value:
            missing = missing or label
            continue
        if missing:
            raise CampaignError(f"Fill in variant {missing} before variant {label}.", field=f"{missing.lower()}_{field}")
        variant = dict(label=label, **_variant_value(campaign, tests, name, value))
        if tests == "subject":
            variant["preheader"] = (form.get(f"{label.lower()}_preheader") or "").strip()[:300]
        variants.append(variant)
    if len(variants) < 2:
        what = {"subject": "a different subject", "from_name": "a different From name",
                "content": "a different content", "send_time": "a different send time"}[tests]
        raise CampaignError(f"Give variant B {what} (variant A is the campaign as written above).",
                            field=f"b_{field}")
    return variants


def ab_form_values(campaign):
    """The A/B section's variant fields as stored (b_subject, c_send_at in the team's time, ...)."""
    values = {}
    tests = ab_tests(ab_test(campaign))
    for variant in Variant.select().where((Variant.campaign == campaign.id) & (Variant.label != "A")):
        prefix = variant.label.lower()
        values[f"{prefix}_subject"] = variant.subject if tests == "subject" else ""
        values[f"{prefix}_preheader"] = variant.preheader if tests == "subject" else ""
        values[f"{prefix}_from_name"] = variant.from_name
        values[f"{prefix}_body"] = variant.body
        local = local_time(campaign.team, variant.send_at)
        values[f"{prefix}_send_at"] = local.strftime("%Y-%m-%dT%H:%M") if local else ""
    return values


def variants_of(campaign):
    return list(Variant.select().where(Variant.campaign == campaign.id).order_by(Variant.label))


def variant_of(campaign, label=None, variant_id=None):
    """The campaign's A/B variant with this label or id, or None."""
    condition = Variant.campaign == campaign.id
    if label is not None:
        condition &= Variant.label == str(label).strip().upper()[:1]
    if variant_id is not None:
        condition &= Variant.id == variant_id
    return Variant.get_or_none(condition)


def _variant_value(campaign, tests, name, value):
    """{column: value} of one variant's tested value, checked as the campaign's own would be."""
    if tests == "subject":
        return {"subject": value[:998]}  # compiled by check_subjects
    if tests == "from_name":
        if re.search(r"[\x00-\x1f\x7f]", value):
            raise CampaignError("The From name must be one line of text.", field=name)
        return {"from_name": value[:200]}
    if tests == "content":
        kind = "markdown" if campaign.kind == "markdown" else "html"
        try:
            return {"body": prepare.clean_source(value, kind)}
        except sandbox.RenderError as exc:
            raise CampaignError(f"This content cannot be used: {exc}", field=name) from None
    try:
        return {"send_at": parse_schedule(campaign.team, value)}
    except CampaignError as exc:
        raise CampaignError(str(exc), field=name) from None


def split_for_ab_test(campaign):
    """Give `sample_percent` of the frozen sends to the variants in turn (by id), and hold the rest
    until the winner is known; in a send-time test each variant's share waits for its time. Runs in
    SQL over the ledger."""
    settings = ab_test(campaign)
    variants = list(Variant.select().where(Variant.campaign == campaign).order_by(Variant.label))
    if not settings or len(variants) < 2:
        return
    with db.atomic():
        cutoff = stats.sample_cutoff(campaign) or 0  # the rule the A/B table reads back
        ledger.hold_sample(campaign.id, variants, cutoff)
        for variant in variants:
            if variant.send_at is not None:
                ledger.wait_for_send_time(campaign.id, variant, variant.send_at)


def ab_results(campaign):
    """Per variant, on its share of the test sample only: sent, unique opens (human) and clicks, and
    their rates per delivered message (app.campaigns.stats, as every page shows them)."""
    table = stats.ab_table(campaign)
    return table["tests"] if table else []


def ab_decision_due(campaign, now=None):
    decision_at = None if campaign.ab_decided_at else stats.ab_decision_at(campaign)
    return decision_at is not None and (now or utcnow()) >= decision_at


def decide_ab_winner(campaign):
    """Mark the winner by the chosen metric (ties go to A) and release the held sends to it.
    Returns the winning Variant, or None when there was nothing to decide."""
    settings = ab_test(campaign)
    results = ab_results(campaign)
    if not settings or len(results) < 2:
        return None
    key = "click_rate" if settings["metric"] == "clicks" else "open_rate"
    # Ties go to the earliest label (A first: the campaign as written).
    winner = max(results, key=lambda r: (r[key], -ord(r["variant"].label[:1] or "Z")))["variant"]
    return winner if _declare_winner(campaign, winner) else None


def pick_winner(campaign, variant_id):
    """A person picks the winner: the held rest of the audience is queued with it at once, whether or not
    the automatic pick is still waiting. Returns the Variant; CampaignError when the test is decided
    already (a second click, or the automatic pick came first) or the campaign is not sending."""
    variant = Variant.get_or_none((Variant.campaign == campaign.id) & (Variant.id == variant_id))
    if not ab_test(campaign) or variant is None:
        raise CampaignError("Choose one of this campaign's A/B variants.")
    if campaign.ab_decided_at is None and campaign.state not in (CampaignState.SENDING, CampaignState.PAUSED):
        raise CampaignError(f"A {states.LABELS[campaign.state].lower()} campaign's test cannot get a winner.")
    if campaign.ab_decided_at is not None or not _declare_winner(campaign, variant):
        current = Variant.get_or_none((Variant.campaign == campaign.id) & (Variant.is_winner == True))  # noqa: E712
        raise CampaignError(f"The winner is already picked: variant {current.label if current else '?'}.")
    return variant


def _declare_winner(campaign, winner):
    """Mark `winner` and queue the held sends with it, once: the conditional UPDATE lets only the first
    decision (a worker's or a click's) through. False when the test was decided already."""
    with db.atomic():
        decided = (Campaign.update(ab_decided_at=utcnow())
                   .where((Campaign.id == campaign.id) & Campaign.ab_decided_at.is_null()).execute())
        if not decided:
            return False
        Variant.update(is_winner=True).where(Variant.id == winner.id).execute()
        ledger.release_to_winner(campaign.id, winner)
    return True
