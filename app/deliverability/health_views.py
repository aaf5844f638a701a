"""Views of the domain-health gate: the health section of a sender domain's page and its "Check now".

The tasks enqueue what the gate resumes; here the minute tick picks it up.
Administrators only ("manage_domains"), as the rest of the domain page. The section is an include
(templates/sending/_domain_health.html) that reads the stored check through `domain_health_of(domain)`,
so the domain page's own view needs nothing of this module.
"""
from flask import Blueprint
from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import url_for

from app.deliverability import domain_health
from app.deliverability import gate
from app.htmx import is_htmx
from app.models import SenderDomain
from app.teams.context import require
from app.teams.context import team_object_or_404

bp = Blueprint("domain_health", __name__, url_prefix="/sending/domains")

LIGHTS = {  # colour, an icon of the sprite (tests/test_icons.py) and a word: never colour alone
    domain_health.PASS: ("ok", "circle-check", "Pass"),
    domain_health.WARN: ("warn", "triangle-alert", "Warning"),
    domain_health.FAIL: ("fail", "circle-x", "Fail"),
    domain_health.UNKNOWN: ("error", "info", "Unknown"),
}


@bp.app_context_processor
def health_context():
    # A function, so the query runs only on the page that includes the section.
    return {"domain_health_of": gate.health_of, "health_lights": LIGHTS}


@bp.route("/<int:domain_id>/health", methods=["POST"])
@require("manage_domains")
def check_now(domain_id):
    """Check the domain's DNS now (never the cached answer); pause or resume its campaigns as it says."""
    row = team_object_or_404(SenderDomain, domain_id)
    try:
        health, done = gate.check_now(g.team, row)
    except gate.DomainHealthError as exc:
        if is_htmx():
            return render_template("sending/_domain_health.html", domain=row, health=gate.health_of(row),
                                   health_error=exc.message), 422  # the one error status htmx swaps (base.html)
        flash(exc.message, "error")
        return redirect(url_for("sending.domain", domain_id=row.id, _anchor="domain-health"))
    # A campaign resumed here goes on sending from the minute tick (tasks/sending.py), which enqueues every
    # campaign in "sending": this module is no view module by name, so it enqueues nothing itself.
    if is_htmx():
        return render_template("sending/_domain_health.html", domain=row, health=health, done=done)
    flash(f"{row.domain}: " + ("mail from it would be rejected; see Domain health." if health.gate_reason
                               else "its DNS checks let mail through."),
          "warning" if health.gate_reason else "info")
    return redirect(url_for("sending.domain", domain_id=row.id, _anchor="domain-health"))
