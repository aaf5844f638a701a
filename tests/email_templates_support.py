"""Fixtures for the template-library tests: the Acme team with a sender, an address and a contact."""
import pytest

from app.models import Contact
from app.models import CustomField
from app.models import Team


@pytest.fixture
def library_team(app, admin):
    with app.app_context():
        team = Team.get(Team.name == "Acme")
        team.postal_address = "1 Main Street\nSpringfield"
        team.default_from_name = "Acme News"
        team.default_from_email = "news@acme.example"
        team.save()
        CustomField.create(team=team, key="city", label="City", type="text")
        Contact.create(team=team, email="ann@example.org", domain="example.org", name="Ann Lee",
                       attributes={"city": "Lyon"})
        return team
