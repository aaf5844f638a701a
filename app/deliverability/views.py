"""Views of the deliverability area: the blocklist section of a sender domain's page and its "Check now".

Administrators only ("manage_domains"), as the rest of the domain page. The section is an include
(templates/sending/_blocklists.html) that reads the stored answers through `blocklist_report(domain)`,
so the domain page's own view needs nothing of this area.
"""
from flask import Blueprint
from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import url_for

from app.deliverability import blocklists
from app.htmx import is_htmx
from app.models import SenderDomain
from app.teams.context import require
from app.teams.context import team_object_or_404

bp = Blueprint("deliverability", __name__, url_prefix="/sending/domains")


@bp.app_context_processor
def blocklist_context():
    # A function, so the query runs only on the page that includes the section.
    return {"blocklist_report": lambda domain: blocklists.report_for(domain.team_id, domain.domain),
            "blocklist_removal": blocklists.removal_link}


@bp.route("/<int:domain_id>/blocklists", methods=["POST"])
@require("manage_domains")
def check_blocklists(domain_id):
    """Ask every configured list now about the team's SMTP addresses and sender domains."""
    row = team_object_or_404(SenderDomain, domain_id)
    error = None
    try:
        blocklists.check_now(g.team, row.domain)
    except blocklists.BlocklistError as exc:
        error = exc.message
    if is_htmx():
        return render_template("sending/_blocklists.html", domain=row, blocklist_error=error), 422 if error else 200
    flash(error or "Blocklists checked.", "error" if error else "info")
    return redirect(url_for("sending.domain", domain_id=row.id, _anchor="blocklists"))
