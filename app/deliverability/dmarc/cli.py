"""`flask dmarc parse PATH`: what Loft reads in one DMARC aggregate report, as JSON.

    flask --app wsgi dmarc parse 'google.com!example.com!1700000000!1700086399.zip'
    {"org_name": "google.com", "report_id": "...", "begin": 1700000000, "end": 1700086399,
     "policy": {"domain": "example.com", "p": "none", ...}, "records": 3, "total_messages": 120}

PATH is an .xml, .xml.gz or .zip report or a whole report email (.eml). A file that is not a
report, or one refused by the parser's limits, prints the reason and exits with status 1.
Nothing is stored.
"""
import json
from pathlib import Path

import click
from flask.cli import AppGroup

from app.deliverability.dmarc.parse import DmarcError
from app.deliverability.dmarc.parse import parse

dmarc_cli = AppGroup("dmarc", help="DMARC aggregate reports.")


@dmarc_cli.command("parse")
@click.argument("path", type=click.Path(path_type=Path))
def parse_command(path):
    """Print the report at PATH (XML, .xml.gz, .zip or an email) as JSON."""
    if not path.is_file():
        raise click.ClickException(f"{path} is not a file.")
    try:
        report = parse(path)
    except DmarcError as exc:
        raise click.ClickException(f"{path}: {exc}") from None
    click.echo(json.dumps(report.summary(), ensure_ascii=False))
