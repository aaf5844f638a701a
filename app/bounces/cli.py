"""`flask bounces parse PATH`: what Loft reads in one returned message, as JSON.

    flask --app wsgi bounces parse bounce.eml
    {"is_bounce": true, "hard": true, "reason": "userunknown", "recipients": ["a@example.org"],
     "status": "5.1.1", "kind": "hard", ...}

    flask --app wsgi bounces parse --dir ../shared/corpus/bounces
    one JSON line per file, then a summary line {"files": ..., "bounces": ..., "by_kind": {...}}

Nothing is stored: this only parses and classifies (app.bounces.parse).
"""
import collections
import json
from pathlib import Path

import click
from flask.cli import AppGroup

from app.bounces.parse import parse_message

bounces_cli = AppGroup("bounces", help="Bounce and complaint messages.")

MESSAGE_SUFFIXES = (".eml", ".msg", ".txt", "")


@bounces_cli.command("parse")
@click.argument("path", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dir", "directory", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Parse every message file under this folder and print a summary.")
def parse_command(path, directory):
    """Print what Loft reads in the message at PATH (a bounce, complaint or auto-reply) as JSON."""
    if (path is None) == (directory is None):
        raise click.UsageError("Give either a message file (PATH) or --dir FOLDER, not both.")
    if path is not None:
        click.echo(json.dumps(parse_message(path.read_bytes()).as_json(), ensure_ascii=False, indent=2))
        return
    kinds = collections.Counter()
    totals = collections.Counter()
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in MESSAGE_SUFFIXES)
    for file in files:
        report = parse_message(file.read_bytes())
        totals["files"] += 1
        totals["bounces"] += report.is_bounce
        totals["hard"] += report.is_bounce and report.hard
        totals["complaints"] += report.is_complaint
        totals["auto_replies"] += report.is_auto_reply
        kinds[report.kind] += 1
        click.echo(json.dumps({"file": str(file.relative_to(directory)), "is_bounce": report.is_bounce,
                               "hard": report.hard, "kind": report.kind, "reason": report.reason,
                               "status": report.status, "recipients": report.recipients}, ensure_ascii=False))
    click.echo(json.dumps({**{k: totals[k] for k in ("files", "bounces", "hard", "complaints", "auto_replies")},
                           "by_kind": dict(sorted(kinds.items()))}))
