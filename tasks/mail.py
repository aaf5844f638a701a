"""Transactional email (invites, password resets) leaves through the queue."""
from app import mail
from tasks import huey


@huey.task(retries=3, retry_delay=30, name="mail.send_system_email")
def send_system_email(to, subject, text, html=None):
    mail.send_system_email(to, subject, text, html)
