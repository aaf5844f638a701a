"""A campaign's A/B test in the campaigns API: the models of `ab_test` in a create, a PATCH and an answer,
and the per-variant figures of the statistics. A test given through the API becomes the builder form's
A/B fields and is saved by the same service the campaign page uses (app.campaigns.drafts.edit_draft, then
app.campaigns.ab_testing), so the same rules refuse the same values."""
import datetime
from typing import Literal

from pydantic import AwareDatetime
from pydantic import Field

from app.api.contacts import utc
from app.api.framework import Schema
from app.api.framework import Strict
from app.campaigns import ab_testing
from app.campaigns import stats
from app.campaigns.schedule import local_time
from app.reports import services as report_services

TestedName = Literal[tuple(ab_testing.AB_TESTS)]
MetricName = Literal[tuple(ab_testing.AB_METRICS)]
LATER_LABELS = ab_testing.AB_LABELS[1:]  # B to D: variant A is the campaign as written
# The form's A/B settings fields, as this API names them in a problem's `errors`.
SETTING_FIELDS = {"ab_enabled": "enabled", "ab_sample_percent": "sample_percent",
                  "ab_wait_minutes": "wait_minutes", "ab_metric": "metric", "ab_tests": "tests"}
VARIANT_FIELDS = ("subject", "preheader", "from_name", "body", "send_at")


class AbVariantIn(Strict):
    subject: str | None = Field(None, max_length=998, description="A subject test: this variant's subject.")
    preheader: str | None = Field(None, max_length=300, description="A subject test: its preheader (empty: the "
                                                                    "campaign's).")
    from_name: str | None = Field(None, max_length=200, description="A From name test: this variant's From name.")
    body: str | None = Field(None, max_length=300_000, description="A content test: its HTML or Markdown, as the "
                                                                   "campaign's body is written.")
    send_at: AwareDatetime | None = Field(None, strict=False, description=(
        "A send time test: when this variant's share goes out, RFC 3339 with its offset."))


class AbTestIn(Strict):
    enabled: bool = Field(True, description="false takes the test away (the variants go with it).")
    tests: TestedName = Field("subject", description="What the variants differ in; everything else is the "
                                                     "campaign's.")
    sample_percent: int = Field(20, ge=2, le=50, description="The share of the audience that gets the test, 2 to 50; the "
                                                "winner goes to the rest.")
    wait_minutes: int = Field(240, ge=5, le=7 * 24 * 60, description="How long the test runs before the winner is picked, 5 minutes to "
                                               "7 days.")
    metric: MetricName = Field("clicks", description="What picks the winner: unique clicks or unique opens.")
    variants: list[AbVariantIn] = Field(default_factory=list, max_length=len(LATER_LABELS), description=(
        "Variants B, C and D in order, each with the tested value; variant A is the campaign as written."))


class AbWinnerIn(Strict):
    variant: Literal[ab_testing.AB_LABELS] = Field(description="The winning variant's label.")


class AbVariantOut(Schema):
    id: int = Field(description="Saving the draft saves its variants again, under new ids.")
    label: Literal[ab_testing.AB_LABELS]
    subject: str
    preheader: str
    from_name: str
    body: str
    send_at: datetime.datetime | None
    is_winner: bool


class AbTestOut(Schema):
    tests: TestedName
    sample_percent: int
    wait_minutes: int
    metric: MetricName
    decided_at: datetime.datetime | None = Field(description="When the winner was picked; null before.")
    variants: list[AbVariantOut] = Field(description="A (the campaign as written), then B to D.")


class VariantStats(Schema):
    label: str = Field(description="\"A (test)\", … for each variant's share of the sample; \"Rest of the "
                                   "audience (B)\" for the rest, which got the winner.")
    variant: Literal[ab_testing.AB_LABELS]
    part: Literal["test", "rest"]
    sent: int
    delivered: int
    bounced: int
    opened_unique: int
    clicked_unique: int
    unsubscribed: int
    complained: int
    open_rate: float = Field(description="unique opens / delivered")
    click_rate: float = Field(description="unique clicks / delivered")
    click_to_open: float = Field(description="unique clicks / unique opens")


def form_changes(team, ab_test):
    """The builder form's A/B fields for `ab_test`: the settings, and every variant field of B to D (those
    not given are emptied, so the test is replaced as a whole)."""
    if not ab_test.enabled:
        return {"ab_enabled": ""}
    changes = {"ab_enabled": "1", "ab_sample_percent": str(ab_test.sample_percent),
               "ab_wait_minutes": str(ab_test.wait_minutes), "ab_metric": ab_test.metric, "ab_tests": ab_test.tests}
    for index, label in enumerate(LATER_LABELS):
        variant = ab_test.variants[index] if index < len(ab_test.variants) else AbVariantIn()
        for name in VARIANT_FIELDS:
            value = getattr(variant, name)
            if name == "send_at" and value is not None:
                moment = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
                value = local_time(team, moment).strftime("%Y-%m-%dT%H:%M")
            changes[f"{label.lower()}_{name}"] = value or ""
    return changes


def api_field(name):
    """The API's name of a form field a service refused (b_subject -> ab_test.variants.0.subject), or None
    for a field that is not the A/B test's."""
    if name in SETTING_FIELDS:
        return f"ab_test.{SETTING_FIELDS[name]}"
    label, _, field = name.partition("_")
    if label.upper() in LATER_LABELS and field in VARIANT_FIELDS:
        return f"ab_test.variants.{LATER_LABELS.index(label.upper())}.{field}"
    return None


def ab_test_out(campaign):
    settings = ab_testing.ab_test(campaign)
    if not settings:
        return None
    return AbTestOut(tests=ab_testing.ab_tests(settings), sample_percent=settings.get("sample_percent", 20),
                     wait_minutes=settings.get("wait_minutes", 240), metric=settings.get("metric", "clicks"),
                     decided_at=utc(campaign.ab_decided_at),
                     variants=[AbVariantOut(id=v.id, label=v.label, subject=v.subject or "",
                                            preheader=v.preheader or "", from_name=v.from_name or "",
                                            body=v.body or "", send_at=utc(v.send_at), is_winner=bool(v.is_winner))
                               for v in ab_testing.variants_of(campaign)])


def variant_stats(campaign):
    """The report's A/B table as rows: each variant on its share of the sample, then the rest of the
    audience once the winner is picked; None for a campaign without a test."""
    if not ab_testing.ab_test(campaign):
        return None
    by_status = stats.statuses_for([campaign])[campaign.id]
    table = stats.ab_table(campaign, report_services.counted_ab_test(campaign, by_status))
    if not table:
        return None
    return [VariantStats(label=column["label"], variant=column["variant"].label, part=column["part"],
                         sent=column["sent"], delivered=column["delivered"], bounced=column["bounced"],
                         opened_unique=column["opens"], clicked_unique=column["clicks"],
                         unsubscribed=column["unsubscribes"], complained=column["complaints"],
                         open_rate=column["open_rate"], click_rate=column["click_rate"],
                         click_to_open=column["click_to_open"])
            for column in table["columns"]]
