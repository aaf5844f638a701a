"""Sign-up of the first admin, sign-in (with 2FA), sign-out, password reset, account page."""
import time

import segno
from flask import Blueprint
from flask import abort
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask import url_for
from flask_login import current_user
from flask_login import login_required
from flask_login import login_user
from flask_login import logout_user

from app import system_mail
from app.auth import services
from app.auth.services import AuthError
from app.errors import render_problem
from app.security import safe_next
from tasks.system_mail import send_system_email

bp = Blueprint("auth", __name__)

PENDING_2FA_SECONDS = 300


def client_ip():
    # Behind a TLS proxy set LOFT_PROXIES so remote_addr is the visitor (ProxyFix in create_app).
    return request.remote_addr or "unknown"


@bp.route("/setup", methods=["GET", "POST"])
def setup():
    if not services.needs_setup():
        return redirect(url_for("auth.login"))
    if request.method == "POST":
        try:
            user = services.create_first_admin(request.form.get("email", ""), request.form.get("password", ""),
                                               request.form.get("name", ""), request.form.get("team_name", ""))
        except AuthError as exc:
            return render_problem("auth/setup.html", exc)
        _sign_in(user)
        flash("Welcome to Loft. Your account and your first team are ready.", "success")
        return redirect(url_for("dashboard.dashboard"))
    return render_template("auth/setup.html", form={})


@bp.route("/login", methods=["GET", "POST"])
def login():
    if services.needs_setup():
        return redirect(url_for("auth.setup"))
    next_url = safe_next(request.values.get("next"), url_for("dashboard.dashboard"))
    if current_user.is_authenticated:
        return redirect(next_url)
    if request.method == "POST":
        try:
            user = services.authenticate(request.form.get("email", ""), request.form.get("password", ""),
                                         client_ip())
        except AuthError as exc:
            return render_problem("auth/login.html", exc, next=next_url)
        remember = bool(request.form.get("remember"))
        if user.has_2fa:
            session["pending_2fa"] = {**services.pending_sign_in(user), "at": time.time(),
                                      "remember": remember, "next": next_url}
            return redirect(url_for("auth.second_factor"))
        return _complete_login(user, remember, next_url)
    return render_template("auth/login.html", form={}, next=next_url)


def _sign_in(user, remember=False):
    """Sign in with a new CSRF token: one seen before sign-in (on a shared machine, in a page) is dead."""
    session.pop("pending_2fa", None)
    session.pop("csrf", None)
    login_user(user, remember=remember)


def _complete_login(user, remember, next_url):
    _sign_in(user, remember)
    services.record_login(user)
    return redirect(next_url)


@bp.route("/login/2fa", methods=["GET", "POST"])
def second_factor():
    pending = session.get("pending_2fa")
    if not pending or time.time() - pending["at"] > PENDING_2FA_SECONDS:
        session.pop("pending_2fa", None)
        flash("Sign in again to continue.", "info")
        return redirect(url_for("auth.login"))
    user = services.user_for_pending(pending)
    if user is None:
        session.pop("pending_2fa", None)
        return redirect(url_for("auth.login"))
    if request.method == "POST":
        try:
            services.check_throttle("2fa:" + user.email, client_ip())
            used = services.verify_second_factor(user, request.form.get("code", ""))
        except AuthError as exc:
            if "Too many" not in str(exc):
                services.record_failure("2fa:" + user.email, client_ip())
            return render_problem("auth/second_factor.html", exc)
        if used == "recovery":
            flash(f"You used a recovery code. {services.unused_recovery_codes(user)} are left; "
                  "make new ones on your account page if you are running low.", "warning")
        return _complete_login(user, pending["remember"], pending["next"])
    return render_template("auth/second_factor.html", form={})


@bp.route("/logout", methods=["POST"])
def logout():
    if current_user.is_authenticated:
        services.sign_out(current_user)  # copies of the session and remember-me cookies stop working
    logout_user()
    session.clear()  # and with it the CSRF token
    flash("You are signed out, on every device.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/reset", methods=["GET", "POST"])
def request_reset():
    if request.method == "POST":
        email = request.form.get("email", "")
        try:
            services.allow_password_reset(email, client_ip())
        except AuthError as exc:
            page, _ = render_problem("auth/request_reset.html", exc)
            return page, 429
        user, token = services.start_password_reset(email)
        if user is not None:
            message = system_mail.compose("password_reset", user.email, "Reset your Loft password",
                                   token=token, user=user)
            send_system_email(**message)
        flash("If an account exists for that address, we have sent it a link to reset the password. "
              "The link works once, within an hour.", "info")
        return redirect(url_for("auth.login"))
    return render_template("auth/request_reset.html", form={})


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset_password(token):
    try:
        services.reset_for_token(token)
    except AuthError as exc:
        return render_template("auth/reset_password.html", invalid=str(exc), form={}), 410
    if request.method == "POST":
        if request.form.get("password") != request.form.get("password_confirm"):
            return render_problem("auth/reset_password.html", AuthError("The two passwords differ.",
                                                                     field="password_confirm"))
        try:
            services.finish_password_reset(token, request.form.get("password", ""))
        except AuthError as exc:
            return render_problem("auth/reset_password.html", exc)
        logout_user()
        session.pop("csrf", None)  # like a sign-out: the next sign-in starts with a fresh token
        flash("Your password is changed and every session was signed out. Sign in with the new password.",
              "success")
        return redirect(url_for("auth.login"))
    return render_template("auth/reset_password.html", form={})


# --- Account: password, two-factor, sessions -------------------------------

@bp.route("/account")
@login_required
def account():
    return render_template("auth/account.html", form={},
                           recovery_left=services.unused_recovery_codes(current_user))


@bp.route("/account/password", methods=["POST"])
@login_required
def change_password():
    form = request.form
    try:
        if form.get("password") != form.get("password_confirm"):
            raise AuthError("The two new passwords differ.", field="password_confirm")
        services.change_password(current_user, form.get("current_password", ""), form.get("password", ""))
    except AuthError as exc:
        return render_problem("auth/account.html", exc, recovery_left=services.unused_recovery_codes(current_user))
    login_user(current_user._get_current_object())  # this session goes on under the new token
    flash("Password changed. Every other session has been signed out.", "success")
    return redirect(url_for("auth.account"))


@bp.route("/account/sessions", methods=["POST"])
@login_required
def sign_out_everywhere():
    services.sign_out_everywhere(current_user)
    login_user(current_user._get_current_object())
    flash("Every other session has been signed out.", "success")
    return redirect(url_for("auth.account"))


@bp.route("/account/2fa", methods=["GET", "POST"])
@login_required
def setup_2fa():
    if current_user.has_2fa:
        return redirect(url_for("auth.account"))
    secret = session.get("totp_setup") or services.new_totp_secret()
    session["totp_setup"] = secret
    uri = services.totp_uri(current_user, secret)
    qr_svg = segno.make(uri, error="m").svg_inline(scale=4, dark="#111", light="#fff")
    if request.method == "POST":
        try:
            codes = services.enable_totp(current_user, secret, request.form.get("code", ""))
        except AuthError as exc:
            return render_problem("auth/setup_2fa.html", exc, secret=secret, uri=uri, qr_svg=qr_svg)
        session.pop("totp_setup", None)
        return render_template("auth/recovery_codes.html", codes=codes)
    return render_template("auth/setup_2fa.html", form={}, secret=secret, uri=uri, qr_svg=qr_svg)


@bp.route("/account/2fa/disable", methods=["POST"])
@login_required
def disable_2fa():
    try:
        services.disable_totp(current_user, request.form.get("password", ""))
    except AuthError as exc:
        return render_problem("auth/account.html", exc, recovery_left=0)
    flash("Two-factor sign-in is off.", "warning")
    return redirect(url_for("auth.account"))


@bp.route("/account/2fa/recovery", methods=["POST"])
@login_required
def new_recovery_codes():
    if not current_user.has_2fa:
        abort(404)
    return render_template("auth/recovery_codes.html", codes=services.regenerate_recovery_codes(current_user))
