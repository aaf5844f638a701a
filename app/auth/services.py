"""Accounts: first admin, sign-in with throttling, password reset, TOTP 2FA.

Functions take explicit arguments and either return models or raise
AuthError with a message meant for the person at the form.
"""
import datetime
import hmac
import secrets

import pyotp
from flask import current_app

from app import addresses
from app import security
from app.db import db
from app.errors import Problem
from app.models import LoginFailure
from app.models import Membership
from app.models import PasswordReset
from app.models import RecoveryCode
from app.models import Team
from app.models import User
from app.models import new_token
from app.models import utcnow
from app.wording import plural

RECOVERY_CODE_COUNT = 10


class AuthError(Problem):
    """A refusal with a message for the person who asked."""


def normalise_email(address):
    """app.addresses.normalise_email, or AuthError at the email field."""
    try:
        return addresses.normalise_email(address)
    except addresses.InvalidEmail as exc:
        raise AuthError(f"That email address is not valid: {exc}", field="email") from None


def needs_setup():
    """True on a fresh install: the first visitor creates the admin account."""
    return not User.select().exists()


def create_user(email, password, name="", instance_admin=False):
    email = normalise_email(email)
    problem = security.password_problem(password)
    if problem:
        raise AuthError(problem, field="password")
    if User.select().where(User.email == email).exists():
        raise AuthError("An account with that email address already exists.", field="email")
    return User.create(email=email, name=name.strip(), password_hash=security.hash_password(password),
                       is_instance_admin=instance_admin)


def create_first_admin(email, password, name="", team_name="My team"):
    """The instance administrator and their first team, in one transaction.

    Refused once any account exists, so /setup cannot be replayed to take over
    an instance.
    """
    with db.atomic():
        if not needs_setup():
            raise AuthError("This Loft is already set up. Sign in instead.")
        user = create_user(email, password, name, instance_admin=True)
        team = Team.create(name=team_name.strip() or "My team")
        Membership.create(user=user, team=team, role="admin")
        user.current_team_id = team.id
        user.save()
    return user


# --- Sign-in and its throttle --------------------------------------------

def _recent_failures(**where):
    window = datetime.timedelta(seconds=current_app.config["LOGIN_THROTTLE_SECONDS"])
    query = LoginFailure.select().where((LoginFailure.at > utcnow() - window)
                                        & ~LoginFailure.email.startswith("reset:"))  # not a failure
    for field, value in where.items():
        query = query.where(getattr(LoginFailure, field) == value)
    return query.count()


def check_throttle(email, ip):
    """Refuse sign-in while an address (or an IP) has failed too often recently."""
    limit = current_app.config["LOGIN_MAX_FAILURES"]
    if _recent_failures(email=email) >= limit or _recent_failures(ip=ip) >= limit * 4:
        minutes = max(1, current_app.config["LOGIN_THROTTLE_SECONDS"] // 60)
        raise AuthError(f"Too many failed sign-in attempts. Wait {plural(minutes, 'minute')} and try again, "
                        "or reset your password.")


def record_failure(email, ip):
    LoginFailure.create(email=email, ip=ip)


def authenticate(email, password, ip):
    """The user for these credentials, or AuthError (throttled after repeated failures)."""
    email = addresses.lookup_form(email)
    check_throttle(email, ip)
    user = User.get_or_none(User.email == email)
    if user is None or not security.verify_password(user.password_hash, password):
        if user is None:
            security.hash_password(password)  # same cost either way: no account enumeration by timing
        record_failure(email, ip)
        raise AuthError("That email and password do not match an account.")
    LoginFailure.delete().where(LoginFailure.email == email).execute()
    return user


def user_for_session(session_token):
    """The user a session or remember-me cookie names, or None."""
    return User.get_or_none(User.session_token == session_token)


def record_login(user):
    User.update(last_login_at=utcnow()).where(User.id == user.id).execute()


def change_password(user, current, new):
    """Set a new password and rotate the session token: every other session ends."""
    if not security.verify_password(user.password_hash, current):
        raise AuthError("Your current password is not right.", field="current_password")
    set_password(user, new)


def set_password(user, new):
    problem = security.password_problem(new)
    if problem:
        raise AuthError(problem, field="password")
    user.password_hash = security.hash_password(new)
    user.session_token = new_token()
    user.save()
    # Outstanding reset links die with the old password.
    PasswordReset.update(used_at=utcnow()).where(
        (PasswordReset.user == user) & PasswordReset.used_at.is_null()).execute()


def sign_out_everywhere(user):
    user.session_token = new_token()
    user.save()


def sign_out(user):
    """End this sign-in for good: a copied session cookie or remember-me cookie still names the old
    session token, so a new one makes every copy worthless (and signs out the person's other devices,
    which share the token)."""
    User.update(session_token=new_token()).where(User.id == user.id).execute()


# --- Sign-in waiting for its second factor ----------------------------------
# The session cookie is signed, not encrypted: it must not carry the session token (which names a
# signed-in user) before the second factor is given. It carries the user's id and a digest of the
# token instead, which ends the pending sign-in when the token changes (password reset, sign-out).

def pending_sign_in(user):
    return {"user_id": user.id, "check": security.hash_token("2fa:" + user.session_token)}


def user_for_pending(pending):
    """The user a pending sign-in names, if their session token has not changed since; else None."""
    user = User.get_or_none(User.id == pending.get("user_id"))
    if user is None or not hmac.compare_digest(pending.get("check") or "",
                                               security.hash_token("2fa:" + user.session_token)):
        return None
    return user


# --- Password reset -------------------------------------------------------
# Each request for a reset link is counted (as a LoginFailure row keyed "reset:<address>", so every
# worker sees the same count) for the address typed, whether or not it has an account: the refusal
# then says nothing about which addresses exist. Rows older than the window are pruned as we go.

RESET_WINDOW = datetime.timedelta(hours=1)
RESET_PER_ADDRESS = 3  # links per address per hour: enough for a lost mail, too few to flood an inbox
RESET_PER_IP = 10  # requests per IP per hour, whatever the addresses


def allow_password_reset(email, ip):
    """Count a request for a reset link, or AuthError when the address or the IP asked too often."""
    key = "reset:" + addresses.lookup_form(email)[:254]
    since = utcnow() - RESET_WINDOW
    with db.atomic():  # an immediate transaction: concurrent requests are counted one after another
        resets = LoginFailure.email.startswith("reset:")
        LoginFailure.delete().where(resets & (LoginFailure.at < since)).execute()
        recent = LoginFailure.select().where(resets & (LoginFailure.at >= since))
        if recent.where(LoginFailure.email == key).count() >= RESET_PER_ADDRESS:
            raise AuthError("Reset links for that address were asked for several times in the last hour. "
                            "Check the inbox and the spam folder, or ask again in an hour.", field="email")
        if recent.where(LoginFailure.ip == ip).count() >= RESET_PER_IP:
            raise AuthError("Too many reset requests came from your network in the last hour. "
                            "Try again in an hour.", field="email")
        LoginFailure.create(email=key, ip=ip)

def start_password_reset(email):
    """A new reset token for the account with this address, or None.

    The caller says the same thing either way, so the form does not reveal
    which addresses have accounts.
    """
    user = User.get_or_none(User.email == addresses.lookup_form(email))
    if user is None:
        return None, None
    token = secrets.token_urlsafe(32)
    expires = utcnow() + datetime.timedelta(seconds=current_app.config["PASSWORD_RESET_SECONDS"])
    PasswordReset.create(user=user, token_hash=security.hash_token(token), expires_at=expires)
    return user, token


def reset_for_token(token):
    """The live reset row for a token from an email link, or AuthError."""
    reset = PasswordReset.get_or_none(PasswordReset.token_hash == security.hash_token(token))
    if reset is None or reset.used_at is not None or reset.expires_at < utcnow():
        raise AuthError("This reset link has expired or was already used. Ask for a new one.")
    return reset


def finish_password_reset(token, new_password):
    with db.atomic():
        reset = reset_for_token(token)
        set_password(reset.user, new_password)  # also marks this reset used
    return reset.user


# --- TOTP two-factor ------------------------------------------------------

def new_totp_secret():
    return pyotp.random_base32()


def totp_uri(user, secret):
    return pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name="Loft")


def _matching_step(secret, code, last_step):
    """The time step a code belongs to (within one step of now), if newer than last_step."""
    code = "".join(code.split())
    if not code.isdigit() or len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    now = datetime.datetime.now(datetime.timezone.utc)
    for offset in (0, -1, 1):
        moment = now + datetime.timedelta(seconds=30 * offset)
        step = totp.timecode(moment)
        if step > last_step and hmac.compare_digest(totp.at(moment), code):
            return step
    return None


def enable_totp(user, secret, code):
    """Turn on 2FA once the person proves their app has the secret; returns recovery codes."""
    step = _matching_step(secret, code, 0)
    if step is None:
        raise AuthError("That code does not match. Check the time on your phone and try the newest code.",
                        field="code")
    with db.atomic():
        user.totp_secret = security.encrypt(secret)
        user.totp_last_step = step
        user.save()
        return regenerate_recovery_codes(user)


def disable_totp(user, password):
    if not security.verify_password(user.password_hash, password):
        raise AuthError("Your password is not right.", field="password")
    with db.atomic():
        user.totp_secret = None
        user.totp_last_step = 0
        user.save()
        RecoveryCode.delete().where(RecoveryCode.user == user).execute()


def regenerate_recovery_codes(user):
    codes = ["-".join(secrets.token_hex(3) for _ in range(2)) for _ in range(RECOVERY_CODE_COUNT)]
    RecoveryCode.delete().where(RecoveryCode.user == user).execute()
    RecoveryCode.insert_many([{"user": user, "code_hash": security.hash_token(c)} for c in codes]).execute()
    return codes


def verify_second_factor(user, code):
    """Accept a current TOTP code (once) or an unused recovery code (once)."""
    code = code.strip().lower()
    secret = security.decrypt(user.totp_secret or "")
    if secret:
        step = _matching_step(secret, code, user.totp_last_step)
        if step is not None:
            # Conditional update: two concurrent uses of one code cannot both win.
            won = (User.update(totp_last_step=step)
                   .where((User.id == user.id) & (User.totp_last_step < step)).execute())
            if won:
                return "totp"
    recovery = (RecoveryCode.update(used_at=utcnow())
                .where((RecoveryCode.user == user) & RecoveryCode.used_at.is_null()
                       & (RecoveryCode.code_hash == security.hash_token(code)))
                .execute())
    if recovery:
        return "recovery"
    raise AuthError("That code is not valid. Use the newest code from your app, or a recovery code.",
                    field="code")


def unused_recovery_codes(user):
    return RecoveryCode.select().where((RecoveryCode.user == user) & RecoveryCode.used_at.is_null()).count()
