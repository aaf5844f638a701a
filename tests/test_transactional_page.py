"""The Transactional page: every role of the team reads it ("view"), another team's message is not found, the
empty state says how to send one, the list filters by status and a message shows its status history."""
import pytest

from app.models import SenderDomain
from app.models import SmtpAccount
from app.models import Team
from app.models import utcnow
from app.senders import domains
from app.transactional import service
from tasks import transactional as tx_tasks
from tests.accounts_support import make_member
from tests.conftest import soup
from tests.sending_support import make_account


@pytest.fixture
def acme(app, admin):
    """Acme with a verified sender domain. Not under `ctx`: its shared `g` would give every signed-in client
    one current team, and this module signs in members of two teams."""
    with app.app_context():
        team = Team.get(Team.name == "Acme")
        team.default_from_email = "news@acme.test"
        team.save()
        row = domains.add_domain(team, "acme.test")
        SenderDomain.update(verified_at=utcnow()).where(SenderDomain.id == row.id).execute()
    return team


def sent(app, team, to="buyer@example.com", port=None):
    with app.app_context():
        if port:
            make_account(team, port)
        tx = service.accept(team, api_key=None, message={"to": to, "subject": f"Receipt for {to}",
                                                         "html": "<p>x</p>", "tags": ["receipt"]})
        tx_tasks.queue([tx])
    return tx


def test_the_empty_page_explains_how_to_send_one(web, acme):
    page = soup(web.get("/transactional/"))
    empty = page.select_one("#transactional-empty")
    assert "POST /api/v1/tx" in empty.text and "SMTP" in empty.text
    assert empty.select_one("a")["href"] == "/api/v1/docs"
    assert page.select_one('nav a[href="/transactional/"]') is not None  # the navigation links it


def test_the_list_filters_by_status_and_a_message_shows_its_history(app, web, acme, smtp):
    server = smtp(reject=("nobody@",))
    ok, refused = sent(app, acme, port=server.port), sent(app, acme, "nobody@example.com")
    page = soup(web.get("/transactional/"))
    assert [row["id"] for row in page.select("#tx-messages tbody tr")] == [f"tx-{refused.id}", f"tx-{ok.id}"]
    failed_only = soup(web.get("/transactional/?status=failed"))
    assert [row["id"] for row in failed_only.select("#tx-messages tbody tr")] == [f"tx-{refused.id}"]
    assert soup(web.get("/transactional/?status=bounced")).select_one("#tx-none") is not None
    assert web.get("/transactional/?status=lost").status_code == 404

    detail = soup(web.get(f"/transactional/{refused.id}"))
    assert [li["data-status"] for li in detail.select("#tx-history li")] == ["queued", "failed"]
    assert "550 5.1.1" in detail.select_one("#tx-history").text
    assert "550 5.1.1" in detail.select_one("#tx-details").text


@pytest.mark.parametrize("role", ["admin", "manager", "author", "guest"])
def test_every_role_reads_it_and_another_teams_message_is_404(app, acme, smtp, role):
    tx = sent(app, acme, port=smtp().port)
    _, member = make_member(app, acme, role)
    assert member.get("/transactional/").status_code == 200
    assert member.get(f"/transactional/{tx.id}").status_code == 200

    with app.app_context():
        other = Team.create(name="Other")
    _, outsider = make_member(app, other, "admin", email=f"outsider-{role}@example.com")
    assert outsider.get(f"/transactional/{tx.id}").status_code == 404
    assert f"tx-{tx.id}" not in outsider.get("/transactional/").get_data(as_text=True)


def test_an_smtp_account_is_marked_for_transactional_mail_on_its_form(app, web, acme):
    form = {"preset": "generic", "name": "Receipts", "host": "smtp.example.com", "port": "587", "tls_mode": "starttls",
            "username": "", "password": "", "per_second": "0", "per_hour": "0", "per_day": "0",
            "max_connections": "2", "weight": "1", "transactional": "1"}
    assert web.post("/sending/accounts/new", form).status_code == 302
    with app.app_context():
        account = SmtpAccount.get(SmtpAccount.name == "Receipts")
        assert account.transactional and service.account_for(acme.id).id == account.id
    assert soup(web.get(f"/sending/accounts/{account.id}/edit")).select_one("#f-transactional").has_attr("checked")
    del form["transactional"]
    assert web.post(f"/sending/accounts/{account.id}/edit", form).status_code == 302
    with app.app_context():
        assert not SmtpAccount.get_by_id(account.id).transactional
    assert not soup(web.get(f"/sending/accounts/{account.id}/edit")).select_one("#f-transactional").has_attr("checked")
