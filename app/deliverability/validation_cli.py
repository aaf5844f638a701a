"""`flask contacts validate ADDRESS...`: one JSON object per address (app.deliverability.validation).

The addresses are validated together, so each domain is looked up once and the lookups run at the same
time. `-` reads the addresses from standard input, one a line. Exit status 0 whatever the verdicts: the
JSON says them; only a call without addresses is an error.
"""
import json
import sys

import click
from flask.cli import AppGroup
from flask.cli import with_appcontext

from app.deliverability import validation

MAX_STDIN_ADDRESSES = 1_000_000  # a line each; past this, validate the list from the web page or in parts


@click.command("validate")
@click.argument("addresses", nargs=-1)
@click.option("--no-dns", is_flag=True, help="Skip the DNS checks (MX / A / null MX): syntax, disposable, role "
                                              "and typo only.")
@click.option("--timeout", type=click.FloatRange(0.1, 60), default=None,
              help=f"Seconds for one domain's DNS lookups (default {validation.DNS_TIMEOUT:g}).")
@with_appcontext
def validate_addresses(addresses, no_dns, timeout):
    """Validate email addresses and print one JSON object per address, one a line ("-" reads standard input)."""
    items = []
    for address in addresses:
        if address == "-":
            items.extend(_stdin_lines())
        else:
            items.append(address)
    if not items:
        raise click.UsageError("Give at least one address, for example: flask contacts validate ann@example.com "
                               "(or - to read them from standard input, one a line).")
    for verdict in validation.validate_many(items, dns=not no_dns, timeout=timeout):
        click.echo(json.dumps(verdict.as_json(), ensure_ascii=False))


def _stdin_lines():
    lines = []
    for line in sys.stdin:
        line = line.strip()
        if line:
            lines.append(line)
            if len(lines) > MAX_STDIN_ADDRESSES:
                raise click.UsageError(f"More than {MAX_STDIN_ADDRESSES:,} addresses on standard input; "
                                       "validate them in parts.")
    return lines


def register(app):
    """Add `validate` to the `flask contacts` group (creating the group if no other area has)."""
    group = app.cli.commands.get("contacts")
    if group is None:
        group = AppGroup("contacts", help="Contacts.")
        app.cli.add_command(group)
    group.add_command(validate_addresses)
