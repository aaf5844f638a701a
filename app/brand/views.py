"""The brand kit page (Team → Brand), its live previews, and the public stylesheet of each team.

The previews are GET requests that carry the values being typed (nothing is stored until Save); every
value goes through the same checks as a saved kit, and the sample email is served as untrusted HTML.
The public stylesheet is named by the kit's random key, sets no cookie and may be cached: its URL
changes with every save.
"""
from flask import Blueprint
from flask import Response
from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for

from app.brand import services
from app.brand.services import BrandError
from app.htmx import is_htmx
from app.media import services as media
from app.security import untrusted_html_response
from app.teams.context import require

bp = Blueprint("brand", __name__)

FRAMEABLE_PAGE_CSP = ("default-src 'self'; script-src 'none'; style-src 'self'; img-src 'self' data:; "
                      "frame-ancestors 'self'; form-action 'none'; base-uri 'none'")


def public(view):
    """A URL anyone may open (the role-matrix test skips these)."""
    view.public = True
    return view


def _render(status=200, **context):
    values = services.values_of(services.kit_of(g.team))
    context.setdefault("form", values)
    context.setdefault("warnings", services.contrast_warnings(values))
    template = "brand/_form.html" if is_htmx() else "brand/page.html"
    font_options = [(key, label) for key, (label, _) in services.FONTS.items()]
    return render_template(template, font_options=font_options, preview_query=_preview_query(context["form"]),
                           images=media.library(g.team, limit=200),
                           **context), status


def _preview_query(form):
    return {name: form.get(name, "") for name in services.DEFAULTS}


@bp.route("/teams/brand")
@require("view")
def page():
    return _render()


@bp.route("/teams/brand", methods=["POST"])
@require("manage_settings")
def save():
    try:
        _, warnings = services.save(g.team, request.form)
    except BrandError as exc:
        return _render(422, form=request.form, error=exc.message, errors=exc.errors, warnings=[])
    flash("Brand kit saved. New block emails and your public pages use it now.", "success")
    for warning in warnings:
        flash(warning, "warning")
    if is_htmx():
        return _render(saved=True)
    return redirect(url_for("brand.page"))


@bp.route("/teams/brand/preview")
@require("view")
def preview():
    """The preview fragment for the values being typed: the contrast warnings and the two frames."""
    values = services.lenient_values(request.args)
    return render_template("brand/_preview.html", warnings=services.contrast_warnings(values),
                           preview_query=_preview_query(values))


@bp.route("/teams/brand/preview/email")
@require("view")
def preview_email():
    return untrusted_html_response(services.sample_email(services.lenient_values(request.args), g.team.name))


@bp.route("/teams/brand/preview/page")
@require("view")
def preview_page():
    values = services.lenient_values(request.args)
    response = Response(render_template("brand/sample_page.html", team=g.team, values=values,
                                        brand_override={"stylesheet": url_for("brand.preview_style", **values),
                                                      "logo_url": services.public_logo(values["logo_url"]),
                                                      "footer_text": values["footer_text"]}))
    response.headers["Content-Security-Policy"] = FRAMEABLE_PAGE_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/teams/brand/preview/style.css")
@require("view")
def preview_style():
    return Response(services.stylesheet(services.lenient_values(request.args)), mimetype="text/css",
                    headers={"Cache-Control": "no-store"})


@bp.route("/b/<public_key>.css")
@public
def stylesheet(public_key):
    kit = services.kit_for_public_key(public_key)
    values = services.values_of(kit)  # an unknown key gets the defaults: a stale page still looks right
    response = Response(services.stylesheet(values), mimetype="text/css")
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


@bp.app_template_global()
def public_brand(team):
    """What a public page of `team` shows of its brand: {stylesheet, logo_url, footer_text}, or None."""
    if not team:  # a page without a team (or an undefined one)
        return None
    kit = services.kit_of(team)
    if kit is None:
        return None
    values = services.values_of(kit)
    return {"stylesheet": url_for("brand.stylesheet", public_key=kit.public_key,
                                  v=int(kit.updated_at.timestamp()) if kit.updated_at else 0),
            "logo_url": services.public_logo(values["logo_url"]), "footer_text": values["footer_text"]}
