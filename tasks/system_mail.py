"""Loft's own email through the queue: invitations and password resets, sent through the
instance's server (app/system_mail.py)."""
from app import system_mail
from tasks import huey
from tasks import queued_as
from tasks import retry_policy


@retry_policy(3, 30, "the outbound server may be down for a minute; an invitation should still arrive")
@huey.task(name="mail.send_system_email")
@queued_as("tasks.mail")
def send_system_email(to, subject, text, html=None):
    system_mail.send(to, subject, text, html)
