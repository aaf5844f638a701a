"""Command-line entry points: `flask db ...`, `flask users ...`, `flask catcher run`."""
import json
import os
import time

import click
from flask import current_app
from flask.cli import AppGroup
from peewee import SqliteDatabase
from playhouse.migrations import Runner

from app.config import ROOT
from app.db import db

MIGRATIONS_DIR = str(ROOT / "migrations")

db_cli = AppGroup("db", help="Database schema migrations.")
users_cli = AppGroup("users", help="Accounts.")
catcher_cli = AppGroup("catcher", help="The local mail catcher.")


def migrate(database=None):
    """Apply every pending migration; returns the names applied (none on a second run)."""
    target = database or db.obj
    if isinstance(target, SqliteDatabase) and target.database != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(target.database)), exist_ok=True)
    return Runner(target, MIGRATIONS_DIR).up()


@db_cli.command("upgrade")
def upgrade():
    """Apply pending migrations (a second run does nothing)."""
    applied = migrate()
    click.echo("Applied: " + ", ".join(applied) if applied else "Database is up to date.")


@db_cli.command("status")
def status():
    for migration in Runner(db.obj, MIGRATIONS_DIR).status():
        click.echo(f"{'applied' if migration.applied else 'pending':8} {migration.name}")


@users_cli.command("create-admin")
@click.option("--email", required=True)
@click.option("--password", required=True, help="At least 10 characters.")
@click.option("--name", default="")
@click.option("--team", "team_name", default="My team", help="Name of the first team.")
def create_admin(email, password, name, team_name):
    """Create the instance administrator on a fresh install (same as the first visit to /setup)."""
    from app.auth.services import AuthError
    from app.auth.services import create_first_admin
    try:
        user = create_first_admin(email, password, name, team_name)
    except AuthError as exc:
        raise click.ClickException(str(exc))
    click.echo(json.dumps({"id": user.id, "email": user.email}))


@catcher_cli.command("run")
@click.option("--host", default=None)
@click.option("--port", default=None, type=int)
def run_catcher(host, port):
    """Run the mail catcher in the foreground until interrupted."""
    from app.outbox import catcher
    host = host or current_app.config["CATCHER_HOST"]
    port = port or current_app.config["CATCHER_PORT"]
    controller = catcher.start(current_app._get_current_object(), host, port)
    click.echo(json.dumps({"msg": "mail catcher listening", "host": host, "port": port}))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


def init_app(app):
    app.cli.add_command(db_cli)
    app.cli.add_command(users_cli)
    app.cli.add_command(catcher_cli)
    from app.imports import cli as imports_cli
    imports_cli.register(app)  # `flask contacts import`
    app.cli.add_command(__import__("app.feedback.cli", fromlist=["bounces_cli"]).bounces_cli)  # `flask bounces parse`
