"""Views of reports: campaign reports and the team dashboard.

Pages read the aggregates kept by app.reports.rollup; before rendering they
give the aggregator a short time budget to count what arrived since its
last minute run, so a person looking at a report sees fresh numbers.
"""
import csv
import io

from flask import Blueprint
from flask import Response
from flask import g
from flask import render_template
from flask import request

from app.campaigns import ab_testing
from app.campaigns.listing import team_campaign_or_404
from app.reports import charts
from app.reports import clickmap
from app.reports import geo
from app.reports import rollup
from app.reports import services
from app.security import attachment
from app.security import untrusted_html_response
from app.teams.context import require

bp = Blueprint("reports", __name__, url_prefix="/reports")


@bp.route("/")
@require("view")
def dashboard():
    position = rollup.catch_up()
    data = services.dashboard(g.team)
    series = data["series"]
    chart = charts.line_chart(f"Sent, opens and clicks per day, last {data['days']} days", data["labels"],
                              [("Sent", series["sent"]), ("Unique opens", series["opens"]),
                               ("Unique clicks", series["clicks"])])
    growth = charts.bar_chart(f"New contacts and unsubscribes per day, last {data['days']} days", data["labels"],
                              [("New contacts", series["new_contacts"]), ("Unsubscribes", series["unsubscribes"])])
    return render_template("reports/dashboard.html", data=data, chart=chart, growth=growth,
                           behind=max(0, position[1] - position[0]))


@bp.route("/campaigns/<int:campaign_id>")
@require("view")
def campaign(campaign_id):
    campaign = team_campaign_or_404(campaign_id)
    position = rollup.catch_up()
    report = services.campaign_report(campaign)
    timeline = report["timeline"]
    unit = timeline["unit"]
    chart = charts.line_chart(f"Opens and clicks per {unit} ({timeline['zone']}), machine opens and scanner clicks "
                              "left out",
                              timeline["labels"], [("Opens", timeline["opens"]), ("Clicks", timeline["clicks"])])
    shown = clickmap.variant_to_show(campaign, request.args.get("variant"))
    return render_template("reports/campaign.html", report=report, campaign=campaign, chart=chart,
                           behind=max(0, position[1] - position[0]),
                           geoip=geo.database_info(geo.configured_path()),
                           click_links=clickmap.with_shares(campaign, clickmap.link_rows(campaign), shown),
                           map_variant=shown, map_variants=clickmap.content_variants(campaign),
                           variants=ab_testing.variants_of(campaign),
                           ab_open=ab_testing.ab_test(campaign) and not campaign.ab_decided_at)


@bp.route("/campaigns/<int:campaign_id>/clickmap.html")
@require("view")
def click_map(campaign_id):
    """The email as sent with each link's share of clicks, for the report's sandboxed frame."""
    campaign = team_campaign_or_404(campaign_id)
    shown = clickmap.variant_to_show(campaign, request.args.get("variant"))
    return untrusted_html_response(clickmap.marked_html(campaign, clickmap.link_rows(campaign), shown))


@bp.route("/campaigns/<int:campaign_id>.csv")
@require("view")
def campaign_csv(campaign_id):
    campaign = team_campaign_or_404(campaign_id)
    rollup.catch_up()
    out = io.StringIO()
    csv.writer(out).writerows(services.export_rows(services.campaign_report(campaign)))
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": attachment(services.export_filename(campaign))})
