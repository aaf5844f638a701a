"""Loft: create_app() wires config, database, login, blueprints and errors."""
import secrets

from flask import Flask
from flask import current_app
from flask import flash
from flask import g
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from flask_login import LoginManager
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import NotFound
from werkzeug.exceptions import RequestEntityTooLarge

from app import api
from app import cli
from app import htmx
from app import localtime
from app import logs
from app import navigation
from app import security
from app import settings
from app.ai.views import bp as ai_bp
from app.api.views_keys import bp as api_keys_bp
from app.admin.views import bp as admin_bp
from app.auth.services import user_for_session
from app.auth.views import bp as auth_bp
from app.bounces.views import bp as bounces_bp
from app.brand.views import bp as brand_bp
from app.campaigns.views import bp as campaigns_bp
from app.catcher.views import bp as catcher_bp
from app.config import Config
from app.consent.views import bp as consent_bp
from app.contacts.views import bp as contacts_bp
from app.automations.views import bp as automations_bp
from app.dashboard.views import bp as dashboard_bp
from app.billing.views import bp as billing_bp
from app.errors import Problem
from app.db import close_db
from app.db import MAX_ROW_ID
from app.db import init_db
from app.db import release_db
from app.editor.views import bp as editor_bp
from app.email_templates.views import bp as email_templates_bp
from app.health.views import bp as health_bp
from app.htmx import hx_redirect
from app.htmx import is_htmx
from app.imports.views import bp as imports_bp
from app.media.views import bp as media_bp
from app.metrics import http as http_metrics
from app.metrics.views import bp as metrics_bp
from app.models import ROLE_LABELS
from app.notices.views import bp as notices_bp
from app.operations import views as operations_views
from app.reports.views import bp as reports_bp
from app.segments.views import bp as segments_bp
from app.senders.views import bp as sending_bp
from app.teams import context
from app.teams.views import bp as teams_bp
from app.tracking.views import bp as tracking_bp
from app.transactional.views import bp as transactional_bp
from app.deliverability.views import bp as deliverability_bp
from app.deliverability.health_views import bp as domain_health_bp
from app.deliverability.dmarc.views import bp as dmarc_bp
from app.webhooks.views import bp as webhooks_bp

__version__ = "0.1.0"

login_manager = LoginManager()


class RowIdConverter(IntegerConverter):
    """`<int:...>` in every route: a number past the largest id a row can have does not match (404), so
    a forged huge id never reaches the database, where it overflows (an error page instead of a 404)."""

    def __init__(self, url_map, *args, **kwargs):
        kwargs.setdefault("max", MAX_ROW_ID)
        super().__init__(url_map, *args, **kwargs)


def routing_error(error):
    """`error`, or a 404 for a 405 that none of the methods it names would match either: werkzeug counts
    a rule's methods before its converters check the values, so an id every rule refuses (past
    MAX_ROW_ID) sent with another method than a sibling rule's reads as "method not allowed"."""
    if error.code != 405:
        return error
    adapter = current_app.create_url_adapter(request)
    for method in error.valid_methods or ():
        try:
            adapter.match(method=method)
            return error
        except HTTPException:
            continue
    return NotFound()


def create_app(overrides=None):
    app = Flask(__name__, template_folder="../templates", static_folder="../static")
    app.url_map.converters["int"] = RowIdConverter
    app.config.from_object(Config)
    app.config.update(overrides or {})
    if not app.config["SECRET_KEY"]:
        # Sessions would not survive a restart; `make run` writes a real key into .env.
        app.config["SECRET_KEY"] = secrets.token_urlsafe(32)
        app.logger.warning("LOFT_SECRET_KEY is not set; using a temporary key")
    https = app.config["HTTPS"]
    app.config.update(
        VERSION=__version__,
        SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_SECURE=https,
        REMEMBER_COOKIE_HTTPONLY=True, REMEMBER_COOKIE_SAMESITE="Lax", REMEMBER_COOKIE_SECURE=https,
        # A small limit everywhere (an anonymous form post is parsed by the CSRF check), raised per request
        # only on the views marked @security.accepts_upload (security.limit_body).
        MAX_CONTENT_LENGTH=app.config.get("MAX_CONTENT_LENGTH") or app.config["MAX_BODY_KB"] * 1024,
        MAX_UPLOAD_LENGTH=app.config.get("MAX_UPLOAD_LENGTH") or app.config["MAX_UPLOAD_MB"] * 1024 * 1024,
    )
    if not app.config.get("TESTING"):
        logs.configure(app.config["LOG_LEVEL"])

    init_db(app.config["DATABASE_URL"])
    app.before_request(_keep_connection)  # first, so a request refused by a later hook is marked too
    http_metrics.init_app(app)  # requests by route and status, timed from before every other hook
    app.teardown_appcontext(_end_of_context)

    _init_login(app)
    logs.init_app(app)
    app.before_request(security.limit_body)  # before anything reads the body
    app.before_request(security.check_csrf)
    htmx.init_app(app)
    localtime.init_app(app)  # the local_time / local_date filters: stored UTC shown in the team's zone

    context.init_app(app)
    navigation.init_app(app)  # the sections of the main navigation, for base.html
    operations_views.init_app(app)  # worker_status() for the worker-down banner in base.html

    for blueprint in (dashboard_bp, auth_bp, teams_bp, admin_bp, catcher_bp, health_bp,
                      contacts_bp, imports_bp, segments_bp, consent_bp,
                      campaigns_bp, automations_bp, email_templates_bp, sending_bp, tracking_bp,
                      bounces_bp, reports_bp, webhooks_bp, notices_bp, brand_bp, media_bp, editor_bp, ai_bp,
                      api.bp, api_keys_bp, transactional_bp, deliverability_bp, domain_health_bp, dmarc_bp,
                      metrics_bp, billing_bp, operations_views.bp):
        app.register_blueprint(blueprint)

    cli.init_app(app)
    _init_templates(app)
    _init_favicon(app)
    _init_errors(app)
    app.after_request(_security_headers)
    if app.config["PROXIES"]:
        # Outermost, so every view and the tracking fast path (installed by its blueprint) see the
        # visitor's address and scheme instead of the proxy's.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["PROXIES"], x_proto=app.config["PROXIES"])
    return app


def _keep_connection():
    g.keep_db_connection = True


def _end_of_context(exc=None):
    """A request's thread keeps its database connection for its next request (app.db.release_db: what a
    close costs on SQLite); any other app context (a task, a CLI command, a short-lived worker thread)
    closes it."""
    if g.pop("keep_db_connection", False):
        release_db(exc)
    else:
        close_db(exc)


def _init_login(app):
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Sign in to continue."
    login_manager.login_message_category = "info"

    @login_manager.user_loader
    def load_user(session_token):
        # The id in the cookie is a rotating random token, not the row id.
        return user_for_session(session_token)

    @login_manager.unauthorized_handler
    def unauthorized():
        target = url_for("auth.login", next=request.full_path.rstrip("?") if request.method == "GET" else None)
        if is_htmx():
            # Swapping the login page into a fragment would be nonsense: navigate instead.
            return hx_redirect(target, status=204)
        flash(login_manager.login_message, "info")
        return redirect(target)


def _init_favicon(app):
    """Browsers ask for /favicon.ico on every site, whatever the page links (JSON, the error pages)."""
    def favicon():
        return app.send_static_file("favicon.ico")
    favicon.public = True  # no team, no sign-in: tests/test_teams.py checks every endpoint says who may use it
    app.add_url_rule("/favicon.ico", "favicon", favicon)


def _init_templates(app):
    app.jinja_env.globals.update(csrf_token=security.csrf_token, version=__version__,
                                 role_labels=ROLE_LABELS, base_url=settings.base_url)


def _init_errors(app):
    def render_error(error):
        error = routing_error(error)
        if api.wants_problem():  # the API answers problem+json, also where no API route matched
            return api.problem_for(error)
        code = getattr(error, "code", 500)
        template = "errors/_error.html" if is_htmx() else "errors/error.html"
        return render_template(template, code=code, title=error.name,
                               description=error.description), code

    def too_large(error):
        if api.wants_problem():
            return api.problem_for(error)
        limit = request.max_content_length or 0
        size = f"{limit / (1024 * 1024):,.0f} MB" if limit >= 1024 * 1024 else f"{limit // 1024:,} KB"
        error.description = (f"This request is larger than Loft accepts here ({size}), so it was not read. "
                             "Shorten the content, or split a file into smaller ones.")
        return render_error(error)

    def refused(problem):
        if api.wants_problem():
            return api.problem_for(problem)
        # A refusal no view turned into its form's error still says what was refused, instead of
        # a 500 that hides a message written for the person.
        template = "errors/_error.html" if is_htmx() else "errors/error.html"
        return render_template(template, code=422, title="Not done", description=problem.message), 422

    app.register_error_handler(HTTPException, render_error)
    app.register_error_handler(RequestEntityTooLarge, too_large)
    app.register_error_handler(Problem, refused)


def _security_headers(response):
    headers = response.headers
    if current_app.config["HTTPS"]:
        # Served over HTTPS (LOFT_HTTPS): browsers must never fall back to plain HTTP for a year, so a
        # network attacker cannot strip TLS from a later visit. Not includeSubDomains: other hosts
        # under the same domain are not Loft's to decide.
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    if not getattr(response, "frameable", False):  # a page other sites may frame says so in its CSP
        headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Content-Security-Policy",
                       "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                       "frame-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
    return response
