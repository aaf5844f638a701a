"""`flask submission run`: the SMTP submission server in the foreground (the Procfile's `submission`).

    flask --app wsgi submission run [--host 127.0.0.1] [--port 1587]

It prints one JSON line saying where it listens, then serves until interrupted. What it accepts is
queued on the transactional stream's own queue (tasks/transactional.py), so the `tx` consumer sends it.
"""
import json
import logging
import time

import click
from flask import current_app
from flask.cli import AppGroup

from app.submission import server
from tasks import transactional as tx_tasks

submission_cli = AppGroup("submission", help="SMTP submission into the transactional stream.")


@submission_cli.command("run")
@click.option("--host", default=None, help="Address to listen on (default LOFT_SUBMISSION_BIND).")
@click.option("--port", default=None, type=int, help="Port (default LOFT_SUBMISSION_PORT).")
def run_submission(host, port):
    """Run the SMTP submission server until interrupted."""
    app = current_app._get_current_object()
    # aiosmtpd logs every connection's every step at INFO; the server logs what was refused and accepted.
    logging.getLogger("mail.log").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        controller = server.start(app, on_accepted=tx_tasks.queue, host=host, port=port)
    except server.SubmissionSetupError as problem:
        raise click.ClickException(problem.message)
    except OSError as error:  # the port is taken, or the address is not this machine's
        where = f"{host or app.config['SUBMISSION_BIND']}:{port or app.config['SUBMISSION_PORT']}"
        raise click.ClickException(f"Cannot listen on {where}: {error}")
    click.echo(json.dumps({"msg": "SMTP submission listening", "host": controller.hostname,
                           "port": controller.port, "starttls": True,
                           "auth_without_tls_from_loopback": app.config["SUBMISSION_LOOPBACK_PLAIN"],
                           "max_bytes": server.max_message_bytes(),
                           "max_recipients": server.max_recipients()}))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
