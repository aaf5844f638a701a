"""`flask contacts import PATH --team TEAM --list LIST [--map COLUMN=FIELD ...] [--update]`.

Runs the same import as the web page, in this process, and prints the
summary as JSON. The file is read where it is (not copied).
"""
import json
import os

import click
from flask import current_app
from flask.cli import AppGroup
from flask.cli import with_appcontext

from app.config import Config
from app.contacts.fields import fields_of
from app.contacts.lists import lists_of
from app.imports import importer
from app.imports import services
from app.imports.services import ImportProblem

FIELD_HELP = ("FIELD is email, name, first_name, last_name, attributes (a JSON object column), ignore, "
              "or the key of a custom field (a missing one is created as a text field).")


@click.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, readable=True))
@click.option("--team", "team_ref", required=True, help="Team id or name.")
@click.option("--list", "list_refs", multiple=True, required=True,
              help="List id or name; repeat for several lists.")
@click.option("--map", "maps", multiple=True, metavar="COLUMN=FIELD",
              help="Map a column (its header or its number, from 1) to a field; repeatable. "
                   "Columns not named keep the automatic guess. " + FIELD_HELP)
@click.option("--update", is_flag=True, help="Also update existing contacts (name and fields; never their status).")
@with_appcontext
def import_contacts(path, team_ref, list_refs, maps, update):
    """Import contacts from a CSV file and print the summary as JSON."""
    if not Config.SECRET_KEY and not current_app.testing:
        # Suppression entries are keyed hashes made with the instance's key: with a temporary
        # key none would match, and suppressed or erased addresses would come back.
        raise click.ClickException("LOFT_SECRET_KEY is not set (see .env), so the suppression list cannot be "
                                   "checked. Nothing was imported.")
    team = services.find_team(team_ref)
    if team is None:
        raise click.ClickException(f"No team “{team_ref}”.")
    lists = []
    for ref in list_refs:
        found = services.find_list(team, ref)
        if found is None:
            names = ", ".join(f"“{lst.name}” ({lst.id})" for lst in lists_of(team)) or "none yet"
            raise click.ClickException(f"Team “{team.name}” has no list “{ref}”. Its lists: {names}.")
        lists.append(found)
    path = os.path.abspath(path)
    job = None
    try:
        job = services.create_job(team, None, path, os.path.basename(path))
        columns = services.describe(job).columns
        mapping = dict(job.mapping)
        for item in maps:
            index, target = _parse_map(item, columns, team)
            mapping[str(index)] = target
        job = services.configure(team, job, mapping, [lst.id for lst in lists], "upsert" if update else "add", columns)
    except ImportProblem as exc:
        if job is not None and job.status == "uploaded":
            job.delete_instance()  # a refused command leaves no half-made import behind
        raise click.ClickException(str(exc))
    job = importer.run_import(job.id)
    click.echo(json.dumps(services.summary(job)))
    if job.status != "done":
        raise SystemExit(1)


def _parse_map(item, columns, team):
    column, sep, field = item.partition("=")
    column, field = column.strip(), field.strip()
    if not sep or not column:
        raise ImportProblem(f"--map {item!r}: write it as COLUMN=FIELD, for example \"E-mail=email\".")
    lowered = [c.casefold() for c in columns]
    if column.casefold() in lowered:
        index = lowered.index(column.casefold())
    elif column.isdigit() and 1 <= int(column) <= len(columns):
        index = int(column) - 1
    else:
        raise ImportProblem(f"--map {item!r}: the file has no column “{column}”. Its columns: "
                            + ", ".join(columns) + ".")
    if field in ("ignore", ""):
        return index, ""
    if field in services.TARGETS or field.startswith(("field:", "new:")):
        return index, field
    known = {f.key for f in fields_of(team)}
    if field in known:
        return index, f"field:{field}"
    return index, f"new:{field}"


def register(app):
    """Add `import` to the `flask contacts` group (creating the group if no other area has)."""
    group = app.cli.commands.get("contacts")
    if group is None:
        group = AppGroup("contacts", help="Contacts.")
        app.cli.add_command(group)
    group.add_command(import_contacts)
