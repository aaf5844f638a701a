"""`flask api-keys ...`: API keys from the command line, for setting up an instance without the web page.

    flask --app wsgi api-keys create --team Acme --role Manager --name "Shop sign-ups"
    {"id": 3, "key": "loft_..."}            (the key is printed this once and never again)
    flask --app wsgi api-keys list --team Acme          one JSON line per key, newest first
    flask --app wsgi api-keys revoke 3
"""
import json

import click
from flask.cli import AppGroup

from app.api import keys

api_keys_cli = AppGroup("api-keys", help="API keys of a team.")


def _refuse(problem):
    raise click.ClickException(problem.message)


def _when(moment):
    return moment.isoformat(timespec="seconds") + "Z" if moment else None


@api_keys_cli.command("create")
@click.option("--team", "team_text", required=True, help="The team's name or id.")
@click.option("--role", required=True, help="Administrator, Manager, Author or Guest.")
@click.option("--name", required=True, help="What will use the key, e.g. 'Shop sign-ups'.")
def create_command(team_text, role, name):
    """Create a key and print {"id": ..., "key": ...}: the only time the key is shown."""
    try:
        team = keys.find_team(team_text)
        key, raw_key = keys.create_key(team, name=name, role=role)
    except keys.ApiKeyError as problem:
        _refuse(problem)
    click.echo(json.dumps({"id": key.id, "key": raw_key}))


@api_keys_cli.command("list")
@click.option("--team", "team_text", required=True, help="The team's name or id.")
def list_command(team_text):
    """Print the team's keys, one JSON object a line, newest first (never the keys themselves)."""
    try:
        team = keys.find_team(team_text)
    except keys.ApiKeyError as problem:
        _refuse(problem)
    for key in keys.team_keys(team):
        click.echo(json.dumps({"id": key.id, "name": key.name, "role": key.role_label, "prefix": key.prefix,
                               "created_at": _when(key.created_at), "last_used_at": _when(key.last_used_at),
                               "revoked_at": _when(key.revoked_at)}, ensure_ascii=False))


@api_keys_cli.command("revoke")
@click.argument("key_id")
def revoke_command(key_id):
    """Revoke the key with this id: requests made with it are refused from now on."""
    try:
        key = keys.key_by_id(key_id)
        key = keys.revoke_key(key.team, key.id)
    except keys.ApiKeyError as problem:
        _refuse(problem)
    click.echo(json.dumps({"id": key.id, "revoked_at": _when(key.revoked_at)}))
