"""The local mail catcher: an SMTP server (aiosmtpd) that keeps every message.

Run by the Procfile (`flask catcher run`) on 127.0.0.1:1025. A fresh install's
outbound SMTP points here, so everything Loft sends shows up in the Outbox.
It accepts any sender and recipient and never relays anything onward.
"""
from aiosmtpd.controller import Controller

from app.catcher import services

MAX_MESSAGE_BYTES = 30 * 1024 * 1024


class CatcherHandler:
    def __init__(self, app):
        self.app = app

    async def handle_DATA(self, server, session, envelope):
        with self.app.app_context():
            services.store_message(envelope.mail_from, envelope.rcpt_tos, envelope.original_content
                                   or envelope.content)
        return "250 Message accepted for delivery"


def start(app, host, port):
    """Start the catcher in a background thread; returns the aiosmtpd Controller (call .stop())."""
    controller = Controller(CatcherHandler(app), hostname=host, port=port,
                            data_size_limit=MAX_MESSAGE_BYTES, server_hostname="loft-catcher")
    controller.start()
    return controller
