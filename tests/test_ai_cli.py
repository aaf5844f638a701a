"""`flask ai generate` and `flask ai prompts` (app/ai/cli.py) against the Gemini stand-in: JSON on stdout,
the cache on the second run, refusals in words on stderr with exit code 1."""
import json

import pytest

from app.ai import providers
from app.models import AiGeneration
from app.models import Team

BRIEF = "Our spring garden workshop on 12 April"


@pytest.fixture
def acme(app, gemini, monkeypatch):
    monkeypatch.setattr(providers, "sleep", lambda seconds: None)
    with app.app_context():
        return Team.create(name="Acme Gardens")


def run(app, *args):
    return app.test_cli_runner().invoke(args=["ai", *args])


def test_generate_prints_json_and_the_same_request_again_comes_from_the_cache(app, acme, gemini):
    items = [{"subject": f"Spring, take {n}", "preheader": f"Roses, part {n}"} for n in range(1, 6)]
    gemini.reply(data={"items": items}, input_tokens=1000, output_tokens=400)
    first = run(app, "generate", "--team", "Acme Gardens", "--prompt", "subject_lines", "--brief", BRIEF)
    assert first.exit_code == 0, first.output
    shown = json.loads(first.stdout)
    assert shown == {"prompt": "subject_lines@v1", "model": "gemini-2.5-flash", "items": items,
                     "input_tokens": 1000, "output_tokens": 400, "cost_usd": 0.0013, "cached": False}
    assert len(gemini.requests) == 1
    again = run(app, "generate", "--team", str(acme.id), "--brief", BRIEF)  # by id; subject_lines is the default
    assert again.exit_code == 0, again.output
    cached = json.loads(again.stdout)
    assert cached["cached"] is True and cached["items"] == items and cached["cost_usd"] == 0.0
    assert len(gemini.requests) == 1


def test_inputs_and_regenerate(app, acme, gemini):
    first = run(app, "generate", "--team", "Acme Gardens", "--input", f"content={BRIEF}", "--input",
                "language=German")
    assert first.exit_code == 0, first.output
    with app.app_context():
        assert AiGeneration.get().inputs == {"brief": "", "content": BRIEF, "language": "German", "count": "5"}
    fresh = run(app, "generate", "--team", "Acme Gardens", "--input", f"content={BRIEF}", "--input",
                "language=German", "--regenerate")
    assert json.loads(fresh.stdout)["cached"] is False and len(gemini.requests) == 2
    assert "Language: German" in gemini.requests[-1]["raw"]


@pytest.mark.parametrize("args, words", [
    (["--team", "Nobody", "--brief", BRIEF], "No team has the id or the exact name “Nobody”"),
    (["--team", "acme gardens", "--brief", BRIEF], "No team has the id or the exact name"),
    (["--team", "Acme Gardens"], "Fill in the brief or the campaign content"),
    (["--team", "Acme Gardens", "--brief", "x" * 2001], "Brief is 2,001 characters long; at most 2,000 fit."),
    (["--team", "Acme Gardens", "--brief", BRIEF, "--input", "email=a@example.com"], "no input called “email”"),
    (["--team", "Acme Gardens", "--brief", BRIEF, "--input", "language"], "is not name=value"),
    (["--team", "Acme Gardens", "--prompt", "haiku", "--brief", BRIEF], "no prompt called “haiku”"),
])
def test_refusals_go_to_stderr_with_exit_code_1_and_nothing_is_sent(app, acme, gemini, args, words):
    result = run(app, "generate", *args)
    assert result.exit_code != 0 and result.stdout == ""
    assert words in result.stderr
    assert gemini.requests == []


def test_a_name_shared_by_two_teams_asks_for_an_id(app, acme, gemini):
    with app.app_context():
        twin = Team.create(name="Acme Gardens")
    result = run(app, "generate", "--team", "Acme Gardens", "--brief", BRIEF)
    assert result.exit_code == 1 and f"ids {acme.id}, {twin.id}" in result.stderr
    assert gemini.requests == []


def test_ai_off_and_provider_failures_are_words_on_stderr(app, acme, gemini):
    gemini.fail(403, message="API key not valid.")
    refused = run(app, "generate", "--team", "Acme Gardens", "--brief", BRIEF)
    assert refused.exit_code == 1 and "refused the API key" in refused.stderr
    with app.app_context():
        Team.update(ai_enabled=False).where(Team.id == acme.id).execute()
    off = run(app, "generate", "--team", "Acme Gardens", "--brief", BRIEF)
    assert off.exit_code == 1 and "AI is turned off for this team" in off.stderr
    assert len(gemini.requests) == 1


def test_prompts_lists_every_version_with_its_uses(app, acme, gemini):
    run(app, "generate", "--team", "Acme Gardens", "--brief", BRIEF)
    run(app, "generate", "--team", "Acme Gardens", "--brief", BRIEF)
    result = run(app, "prompts")
    assert result.exit_code == 0, result.output
    listed = {row["prompt"]: row for row in map(json.loads, result.stdout.splitlines())}
    assert listed["subject_lines@v1"]["uses"] == 2
    assert listed["subject_lines@v1"]["inputs"] == ["brief", "content", "count", "language"]
