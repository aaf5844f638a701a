"""`flask ai ...`: AI generation for scripts and operators, with the same checks, cache and costs as the builder.

    flask --app wsgi ai generate --team Acme --prompt subject_lines --brief "Our spring garden workshop"
    {"prompt": "subject_lines@v1", "model": "gemini-2.5-flash", "items": [...], "input_tokens": 312,
     "output_tokens": 240, "cost_usd": 0.000694, "cached": false}

The same command again prints "cached": true and makes no call. A refusal (AI off, budget used up, an input
too long, the provider's error) goes to stderr in words, with exit code 1. Runs as no user: the team's budget
holds, the per-user hourly limit does not.
"""
import json

import click
from flask.cli import AppGroup

from app.ai import costs
from app.ai import generate as ai
from app.ai import prompts
from app.errors import Problem
from app.models import Team

ai_cli = AppGroup("ai", help="AI writing help: generate from a prompt, list the prompts.")


def find_team(reference):
    """The team with this id, or with exactly this name; ClickException in words otherwise."""
    reference = (reference or "").strip()
    if reference.isdigit():
        team = Team.get_or_none(Team.id == int(reference))
        if team is not None:
            return team
    matches = list(Team.select().where(Team.name == reference).order_by(Team.id))
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise click.ClickException(f"{len(matches)} teams are called “{reference}” (ids "
                                   f"{', '.join(str(team.id) for team in matches)}): give --team an id.")
    raise click.ClickException(f"No team has the id or the exact name “{reference}”.")


def parse_inputs(brief, pairs):
    """{name: value} from --brief and each --input name=value (a name given twice makes a list)."""
    inputs = {}
    if brief is not None:
        inputs["brief"] = brief
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"“{pair}” is not name=value.", param_hint="--input")
        name = name.strip()
        if name in inputs:
            previous = inputs[name]
            inputs[name] = (previous if isinstance(previous, list) else [previous]) + [value]
        else:
            inputs[name] = value
    return inputs


@ai_cli.command("generate")
@click.option("--team", "team_reference", required=True, help="The team's id or exact name.")
@click.option("--prompt", "prompt_name", default="subject_lines", show_default=True, help="The prompt's name.")
@click.option("--version", default=None, help="A prompt version such as v1 (default: the latest).")
@click.option("--brief", default=None, help="The brief input.")
@click.option("--input", "pairs", multiple=True, metavar="NAME=VALUE", help="Any other input; repeatable.")
@click.option("--regenerate", is_flag=True, help="Ask the provider again instead of using a cached answer.")
def generate_command(team_reference, prompt_name, version, brief, pairs, regenerate):
    """Run a prompt (--prompt) for a team and print the answer, tokens and cost as JSON."""
    team = find_team(team_reference)
    inputs = parse_inputs(brief, pairs)
    try:
        generation = ai.generate(team, None, prompt_name, inputs, regenerate=regenerate, version=version)
    except Problem as refusal:
        raise click.ClickException(refusal.message) from None
    click.echo(json.dumps(ai.as_json(generation), ensure_ascii=False, indent=2))


@ai_cli.command("prompts")
def prompts_command():
    """List every prompt version with its model and how often it was used (JSON lines)."""
    uses = costs.prompt_use_counts()
    for prompt in prompts.all_prompts():
        click.echo(json.dumps({"prompt": prompt.ref, "model": prompt.model, "description": prompt.description,
                               "inputs": sorted(prompt.inputs), "uses": uses.get((prompt.name, prompt.version), 0)},
                              ensure_ascii=False))
