"""Tasks of the consent area: a sign-up form's double opt-in email, sent as the team.

Loft writes the message (templates/system_mail/confirm_subscription) but the team sends it:
From its verified sender, through its own SMTP account, never the instance's identity and
server (app/sending/teammail.py).
"""
import datetime

from app.consent import forms
from app.models import Notice
from app.models import utcnow
from app.notices import alerts
from app.sending import teammail
from tasks import huey
from tasks import queued_as
from tasks import retry_policy


class ConfirmationNotSent(Exception):
    """The team's server did not take the confirmation email (huey retries the task)."""


@retry_policy(3, 60, "the team's server may refuse for a minute; the person waits for this email")
@huey.task(name="mail.send_confirmation")
@queued_as("tasks.mail")
def send_confirmation(mailing_list_id, subscription_id):
    """The double opt-in email of a sign-up form, From the team's verified sender, DKIM-signed, through the
    team's own SMTP account, never the instance's identity and server (see app/sending/teammail.py). When the team cannot
    send (no verified sender, no account) its Administrators get one notice a day saying what to set up."""
    message = forms.confirmation_for(mailing_list_id, subscription_id)
    if message is None:
        return None  # confirmed, unsubscribed or gone meanwhile: nothing to ask
    team = message.pop("team")
    try:
        result = teammail.send_message(team, team.default_from_name or team.name, team.default_from_email,
                                       headers={"Auto-Submitted": "auto-generated"}, **message)
    except teammail.TeamMailError as error:
        _tell_team_once_a_day(team, str(error))
        return None
    if not result.ok:
        raise ConfirmationNotSent(f"{message['to']}: {result.detail}")
    return result.detail


CANNOT_CONFIRM = "Sign-up confirmation emails cannot be sent"


def _tell_team_once_a_day(team, reason):
    since = utcnow() - datetime.timedelta(days=1)
    if Notice.select().where((Notice.team == team) & (Notice.subject == CANNOT_CONFIRM)
                             & (Notice.created_at > since)).exists():
        return
    alerts.notify(team.id, CANNOT_CONFIRM,
                  f"Someone signed up through a form with double opt-in, but Loft could not send them the "
                  f"confirmation email: {reason} Until then new sign-ups stay unconfirmed; they can sign up "
                  "again once it is fixed.", kind="alert")
