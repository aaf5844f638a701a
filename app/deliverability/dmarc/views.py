"""DMARC pages: the team's report domains with an upload form, and one domain's digest.

    GET  /deliverability/dmarc                  domains with reports, upload form, how to publish rua=   (view)
    POST /deliverability/dmarc/upload           one report file (.xml, .xml.gz, .zip or .eml)           (manage_domains)
    GET  /deliverability/dmarc/<domain>?days=   the digest of one domain                                 (view)

A domain is found among the team's own reports only, so another team's domain is a 404.
"""
from flask import Blueprint
from flask import abort
from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for

from app.deliverability.dmarc import digest as dmarc_digest
from app.deliverability.dmarc import store
from app.deliverability.dmarc.parse import MAX_XML_BYTES
from app.deliverability.dmarc.parse import DmarcError
from app.models import SenderDomain
from app.reports import charts
from app.security import accepts_upload
from app.senders.domains import suggested_dmarc
from app.teams.context import require

bp = Blueprint("dmarc", __name__, url_prefix="/deliverability/dmarc")

# The largest report the parser reads, plus room for the multipart form around it; werkzeug refuses a
# larger body (413) before it is read.
UPLOAD_LIMIT = MAX_XML_BYTES + 1024 * 1024


def _index(error=None, status=200):
    sender_domains = list(SenderDomain.select().where(SenderDomain.team == g.team.id).order_by(SenderDomain.domain))
    return render_template("dmarc/index.html", domains=dmarc_digest.domains(g.team),
                           records=[(d.domain, suggested_dmarc(d)) for d in sender_domains],
                           error=error, errors={"report": error} if error else {}), status


@bp.route("")
@require("view")
def index():
    return _index()


@bp.route("/upload", methods=["POST"])
@accepts_upload(UPLOAD_LIMIT)
@require("manage_domains")
def upload():
    upload_file = request.files.get("report")
    if upload_file is None or not upload_file.filename:
        return _index("Choose a report file: .xml, .xml.gz, .zip or a report email (.eml).", 422)
    try:
        report, created = store.store_report(g.team, upload_file.stream, origin="upload")
    except DmarcError as exc:
        return _index(f"{upload_file.filename}: {exc.message}", 422)
    if created:
        flash(f"Stored the report {report.report_id} from {report.org_name or 'an unnamed receiver'}: "
              f"{report.records:,} records, {report.total_messages:,} messages.", "info")
    else:
        flash(f"The report {report.report_id} from {report.org_name or 'an unnamed receiver'} was already stored; "
              "nothing was counted twice.", "info")
    return redirect(url_for("dmarc.domain", domain=report.domain))


@bp.route("/<domain>")
@require("view")
def domain(domain):
    days = request.args.get("days", type=int) or 30
    if days not in dmarc_digest.PERIODS:
        days = 30
    summary = dmarc_digest.digest(g.team, domain.lower(), days)
    if summary is None:
        abort(404)
    labels = [day["day"].strftime("%d %b") for day in summary["trend"]]
    chart = charts.bar_chart(f"Messages a day reported for {summary['domain']}", labels,
                             [("Passing DMARC", [d["passed"] for d in summary["trend"]]),
                              ("Failing DMARC", [d["failed"] for d in summary["trend"]])])
    return render_template("dmarc/domain.html", d=summary, chart=chart, periods=dmarc_digest.PERIODS)
