"""Loft's own email (invitations, password resets, notices): compose and send.

Composition renders templates/system_mail/<name>.txt and .html (also the sign-up
confirmation, which Loft writes and the team's own account sends: tasks/consent.py);
sending goes through the instance's outbound SMTP server (the mail catcher on a fresh
install). A team's campaigns have their own high-volume pipeline (app/sending/); this is
for the odd message.
"""
import asyncio
import email.utils
from email.message import EmailMessage

import aiosmtplib
from flask import render_template

from app import settings as instance_settings
from app.addresses import one_address
from app.addresses import one_line
from app.errors import Problem


class SystemSenderError(Problem):
    """The instance's default sender cannot be put in a From header as it is."""


def compose(template, to, subject, **context):
    """A ready-to-send message as plain data (it travels through the queue)."""
    context = dict(context, base_url=instance_settings.base_url())
    return {
        "to": to,
        "subject": subject,
        "text": render_template(f"system_mail/{template}.txt", **context),
        "html": render_template(f"system_mail/{template}.html", **context),
    }


def build_message(sender, to, subject, text, html=None):
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = email.utils.formatdate(localtime=False)
    domain = sender.rsplit("@", 1)[-1].strip(">") or "localhost"
    message["Message-ID"] = email.utils.make_msgid(domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    if html:
        message.add_alternative(html, subtype="html")
    return message


def smtp_options(settings):
    """aiosmtplib keyword arguments for the instance's outbound server."""
    options = {"hostname": settings["smtp_host"], "port": settings["smtp_port"], "timeout": 30,
               "use_tls": settings["smtp_tls"] == "tls", "start_tls": settings["smtp_tls"] == "starttls"}
    if settings["smtp_tls"] == "none":
        options["start_tls"] = False
    if settings["smtp_username"]:
        options["username"] = settings["smtp_username"]
        options["password"] = settings["smtp_password"]
    return options


def send(to, subject, text, html=None):
    """Deliver one message now; raises aiosmtplib.SMTPException on failure."""
    values = instance_settings.get_settings()
    sender = system_sender(values)
    message = build_message(sender, to, subject, text, html)
    asyncio.run(aiosmtplib.send(message, **smtp_options(values)))
    return message["Message-ID"]


def system_sender(settings):
    """The From header of Loft's own mail, checked again here because a value stored before
    the settings form checked it could add recipients or headers."""
    address, name = settings["default_from_email"], settings["default_from_name"]
    if not one_address(address) or not one_line(name):
        raise SystemSenderError("The instance's default sender is not one plain address and a one-line name; "
                                "correct it under Instance settings.")
    return email.utils.formataddr((name, address))
