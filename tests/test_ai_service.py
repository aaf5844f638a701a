"""AI generation (app/ai/generate.py) against the Gemini stand-in: checks in order, cache, budget, rate limit,
records, cost; and that no contact's data ever reaches the provider."""
import pytest

from app.ai import generate as ai
from app.models import AiGeneration
from app.models import Team
from app.models import User


@pytest.fixture
def acme(ctx, gemini):
    team = Team.create(name="Acme")
    user = User.create(email="writer@example.com", name="Wren", password_hash="x")
    return team, user


def test_a_second_identical_request_comes_from_the_cache_without_a_call(acme, gemini):
    team, user = acme
    first = ai.generate(team, user, "subject_lines", {"brief": "Our spring garden workshop"})
    assert not first.cached and len(first.data["items"]) == 5
    assert len(gemini.requests) == 1
    again = ai.generate(team, user, "subject_lines", {"brief": "Our spring garden workshop"})
    assert again.cached and again.record_id == first.record_id and again.data == first.data
    assert len(gemini.requests) == 1
    assert AiGeneration.get_by_id(first.record_id).cache_hits == 1
