"""The template library: built-ins, create/edit with live preview, preview as a contact,
duplicate/delete, permissions, isolation, and test sends through real SMTP."""
import email
import email.policy
import re

import pytest

from app import tokens
from app.models import CaughtMessage
from app.models import SmtpAccount
from app.models import Team
from app.models import Template
from app.models import TemplateDraft
from tests.accounts_support import make_member
from tests.conftest import soup


@pytest.fixture
def team(library_team):
    """The Acme team with a sender, a postal address, a City field and a contact (tests/email_templates_support.py)."""
    return library_team

BODY = ('<table role="presentation" width="100%"><tr><td style="padding: 16px; color: #333333;">'
        '<p>Hi {{ contact.first_name or "there" }} from {{ contact.city or "somewhere" }}!</p>'
        '<p onclick="steal()">Read <a href="https://example.com/news">the news</a>.</p>'
        '<script>alert(1)</script></td></tr></table>')


def create(web, name="Welcome", body=BODY, kind="html"):
    response = web.post("/templates/new", {"name": name, "kind": kind, "body": body})
    assert response.status_code == 302, response.get_data(as_text=True)
    return int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])


def frame_of(page):
    frame = page.select_one("#preview-result iframe, .preview-result iframe")
    assert frame is not None, page
    assert frame.has_attr("sandbox") and not frame["sandbox"]  # no allow-scripts, no allow-same-origin
    return frame["src"]


def test_library_lists_built_ins_and_has_an_empty_state(web, team):
    page = soup(web.get("/templates/"))
    names = [a.text for a in page.select("#builtin-templates h3 a")]
    assert {"Newsletter", "Announcement", "Simple letter", "Event invitation"} <= set(names)
    assert "No templates yet" in page.select_one("#no-templates").text
    assert [tab.text for tab in page.select("nav.tabs a")][:2] == ["Campaigns", "Templates"] or \
        "Templates" in [tab.text for tab in page.select("nav.tabs a")]
    create(web, "Monthly")
    page = soup(web.get("/templates/"))
    assert [a.text for a in page.select("#team-templates h3 a")] == ["Monthly"]
    assert page.select_one("#no-templates") is None


def test_each_library_section_acts_on_its_own_kind_of_starting_point(app, web, team):
    """The HTML templates and the block templates share names (Newsletter...): each card's buttons
    and links must reach its own family, and copying the HTML one gives an HTML template."""
    page = soup(web.get("/templates/"))
    html_targets = [f["action"] for f in page.select("#builtin-templates form")]
    html_targets += [a["href"] for a in page.select("#builtin-templates a")]
    block_targets = [f["action"] for f in page.select("#block-starters form")]
    assert html_targets and block_targets
    assert all(t.startswith("/templates/builtin/") for t in html_targets), html_targets
    assert all(t.startswith("/templates/starter/") for t in block_targets), block_targets
    web.post(next(t for t in html_targets if t == "/templates/builtin/newsletter/use"))
    copied = Template.select().where(Template.team == team).order_by(Template.id.desc()).get()
    assert copied.kind == "html" and "{{ content }}" not in copied.body and copied.blocks is None


def test_create_cleans_the_html_and_keeps_personalisation(app, web, team):
    template_id = create(web)
    with app.app_context():
        stored = Template.get_by_id(template_id)
    assert stored.team_id == team.id
    assert "<script" not in stored.body and "alert(1)" not in stored.body and "onclick" not in stored.body
    assert '{{ contact.first_name or "there" }}' in stored.body
    assert 'style="padding: 16px; color: #333333;"' in stored.body
    page = soup(web.get(f"/templates/{template_id}"))
    assert page.select_one("#f-name")["value"] == "Welcome"
    assert "{{ contact.city" in page.select_one("#f-body").text


@pytest.mark.parametrize("form,field,message", [
    ({"name": "", "kind": "html", "body": "<p>x</p>"}, "name", "Give the template a name"),
    ({"name": "X", "kind": "html", "body": ""}, "body", "Write the body"),
    ({"name": "X", "kind": "pdf", "body": "x"}, "kind", "Choose HTML or Markdown"),
    ({"name": "X", "kind": "html", "body": "<p>ok</p>\n<p>{{ contact.name </p>"}, "body", "Line 2:"),
    ({"name": "X", "kind": "html", "body": "{{ 'x' * 10**9 }}"}, None, None),
    ({"name": "X", "kind": "html", "body": "{% for x in contact %}{% endfor %}"}, "body", "loops"),
    ({"name": "X", "kind": "html", "body": '<a href="{{ contact.city }}">x</a>'}, "body", "must start with https://"),
    ({"name": "X", "kind": "markdown", "body": "# Hi {{ nobody }}"}, "body", "no variable called 'nobody'"),
])
def test_bad_input_is_refused_where_it_was_given(web, team, form, field, message):
    response = web.post("/templates/new", form)
    if field is None:  # refused only when rendered: saving a size bomb is allowed, rendering it fails cleanly
        assert response.status_code == 302
        preview = soup(web.post("/templates/preview", dict(form, template_id="new"), htmx=True))
        assert "longer than 100,000 characters" in preview.select_one("#preview-error").text
        return
    assert response.status_code == 422
    page = soup(response)
    error = page.select_one(f"#e-{field}") if field != "kind" else page.select_one(".kind-choice .error")
    assert message in error.text
    if field != "kind":
        assert page.select_one(f"#f-{field}")["aria-invalid"] == "true"
    assert page.select_one("#f-body").text == form["body"]  # nothing typed is lost
    assert Template.select().count() == 0


def test_names_are_unique_per_team(web, team):
    create(web, "Same")
    response = web.post("/templates/new", {"name": "Same", "kind": "html", "body": "<p>x</p>"})
    assert response.status_code == 422
    assert "already has this name" in soup(response).select_one("#e-name").text


def test_update_and_markdown(app, web, team):
    template_id = create(web)
    response = web.post(f"/templates/{template_id}", {"name": "Renamed", "kind": "markdown",
                                                      "body": "# Hello {{ contact.first_name }}\n\n* one\n* two"})
    assert response.status_code == 302
    with app.app_context():
        stored = Template.get_by_id(template_id)
    assert (stored.name, stored.kind) == ("Renamed", "markdown")
    assert stored.body.startswith("# Hello")  # Markdown is stored as written
    fragment = soup(web.get(f"/templates/{template_id}/preview?contact=ann@example.org", headers={"HX-Request": "1"}))
    html = web.get(frame_of(fragment)).get_data(as_text=True)
    page = soup_text(html)
    assert page.select_one("h1").text == "Hello Ann"
    assert [li.text for li in page.select("li")] == ["one", "two"]


def soup_text(text):
    from bs4 import BeautifulSoup
    return BeautifulSoup(text, "html.parser")


def test_live_preview_of_unsaved_text_as_a_contact(app, web, team):
    template_id = create(web)
    form = {"template_id": str(template_id), "name": "Welcome", "kind": "html",
            "body": "<p>Draft for {{ contact.first_name }} in {{ contact.city }}</p>", "contact": "ann@example.org"}
    response = web.post("/templates/preview", form, htmx=True)
    assert response.status_code == 200
    fragment = soup(response)
    assert fragment.select_one("#preview-subject").text == "Welcome"
    assert "Draft for Ann in Lyon" in fragment.select_one("#preview-text").text
    frame = web.get(frame_of(fragment))
    assert frame.status_code == 200
    csp = frame.headers["Content-Security-Policy"]
    assert csp.startswith("sandbox;") and "script-src" not in csp and "default-src 'none'" in csp
    assert "style-src 'unsafe-inline'" in csp  # email HTML lives on inline styles
    assert frame.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "Draft for Ann in Lyon" in frame.get_data(as_text=True)
    # The saved template is unchanged until Save.
    with app.app_context():
        assert "Draft for" not in Template.get_by_id(template_id).body
        assert TemplateDraft.select().count() == 1
    # A second pause in typing replaces the draft rather than adding one.
    web.post("/templates/preview", dict(form, body="<p>Second</p>"), htmx=True)
    with app.app_context():
        assert TemplateDraft.select().count() == 1
    # An unknown address falls back to a sample person, and says so.
    fragment = soup(web.post("/templates/preview", dict(form, contact="nobody@example.org"), htmx=True))
    assert "No contact with the address nobody@example.org" in fragment.select_one(".flash-info").text


def test_preview_shows_errors_with_their_line(web, team):
    fragment = soup(web.post("/templates/preview", {"template_id": "new", "name": "x", "kind": "html",
                                                     "body": "<p>a</p>\n{% if %}"}, htmx=True))
    assert fragment.select_one("#preview-error").text.startswith("Line 2:")
    assert fragment.select_one("iframe") is None


def test_email_html_never_runs_in_the_preview(web, team):
    template_id = create(web, body='<p>x</p><img src="https://example.com/a.png" onerror="alert(1)">'
                                   '<a href="javascript:alert(2)">j</a><iframe src="https://evil.example"></iframe>')
    html = web.get(f"/templates/{template_id}/preview.html").get_data(as_text=True)
    assert "onerror" not in html and "javascript:" not in html and "<iframe" not in html and "evil" not in html


def test_builtin_layouts_preview_and_use(app, web, team):
    page = soup(web.get("/templates/builtin/newsletter"))
    assert page.select_one("h1").text.startswith("Newsletter")
    fragment = soup(web.get("/templates/builtin/newsletter/preview?contact=ann@example.org",
                            headers={"HX-Request": "1"}))
    html = soup_text(web.get(frame_of(fragment)).get_data(as_text=True))
    assert "Hi Ann," in html.text and "1 Main Street, Springfield" in html.text
    assert html.select_one("a[href='http://loft.test/u/preview']").text == "Unsubscribe"
    response = web.post("/templates/builtin/newsletter/use")
    assert response.status_code == 302
    with app.app_context():
        copy = Template.get(Template.team == team)
    assert copy.name == "Newsletter" and "{{ unsubscribe_url }}" in copy.body
    assert web.get("/templates/builtin/nope").status_code == 404
    # A second use gets a free name.
    web.post("/templates/builtin/newsletter/use")
    with app.app_context():
        assert sorted(t.name for t in Template.select()) == ["Newsletter", "Newsletter 2"]


def test_layout_with_a_content_slot_previews_sample_content(web, team):
    template_id = create(web, "Frame", '<div style="padding: 20px;">{{ content }}</div>')
    fragment = soup(web.get(f"/templates/{template_id}/preview", headers={"HX-Request": "1"}))
    html = web.get(frame_of(fragment)).get_data(as_text=True)
    assert "Your content goes here" in html


def test_duplicate_and_delete(app, web, team):
    template_id = create(web)
    response = web.post(f"/templates/{template_id}/duplicate")
    assert response.status_code == 302
    with app.app_context():
        assert sorted(t.name for t in Template.select()) == ["Welcome", "Welcome (copy)"]
    assert web.post(f"/templates/{template_id}/delete").status_code == 302
    with app.app_context():
        assert [t.name for t in Template.select()] == ["Welcome (copy)"]
    assert web.get(f"/templates/{template_id}").status_code == 404


def test_another_teams_templates_are_not_found(app, web, team):
    with app.app_context():
        other = Team.create(name="Other")
        theirs = Template.create(team=other, name="Secret", body="<p>secret</p>")
    for path in (f"/templates/{theirs.id}", f"/templates/{theirs.id}/preview", f"/templates/{theirs.id}/preview.html"):
        assert web.get(path).status_code == 404, path
    for path in (f"/templates/{theirs.id}", f"/templates/{theirs.id}/duplicate", f"/templates/{theirs.id}/delete",
                 f"/templates/{theirs.id}/test"):
        assert web.post(path, {"name": "x", "kind": "html", "body": "x", "addresses": "a@example.com"}).status_code == 404
    assert web.post("/templates/preview", {"template_id": str(theirs.id), "body": "x"}, htmx=True).status_code == 404
    with app.app_context():
        assert Template.get_by_id(theirs.id).name == "Secret"
        assert Template.select().where(Template.team == team).count() == 0


def test_drafts_belong_to_the_person_who_typed_them(app, web, team):
    fragment = soup(web.post("/templates/preview", {"template_id": "new", "name": "x", "kind": "html",
                                                     "body": "<p>mine</p>"}, htmx=True))
    src = frame_of(fragment)
    _, colleague = make_member(app, team, "manager")
    assert colleague.get(src).status_code == 404
    assert web.get(src).status_code == 200


def test_roles(app, web, team):
    template_id = create(web)
    _, guest = make_member(app, team, "guest")
    page = soup(guest.get(f"/templates/{template_id}"))
    assert page.select_one("#f-body").has_attr("readonly")
    assert page.select_one("#template-form button[type=submit]") is None
    assert page.select_one("#test-send") is None
    assert guest.get(f"/templates/{template_id}/preview.html").status_code == 200
    assert guest.post(f"/templates/{template_id}", {"name": "x", "kind": "html", "body": "y"}).status_code == 403
    assert guest.post("/templates/preview", {"body": "x"}).status_code == 403
    assert guest.post(f"/templates/{template_id}/delete").status_code == 403
    _, author = make_member(app, team, "author")
    assert author.post(f"/templates/{template_id}", {"name": "By author", "kind": "html", "body": "<p>y</p>"}).status_code == 302
    # Authors write content but may not send, not even a test.
    assert soup(author.get(f"/templates/{template_id}")).select_one("#test-send") is None
    assert author.post(f"/templates/{template_id}/test", {"addresses": "a@example.com"}).status_code == 403


# --- Test sends through real SMTP ------------------------------------------------------------

def caught(app):
    with app.app_context():
        return [email.message_from_bytes(bytes(m.raw), policy=email.policy.default)
                for m in CaughtMessage.select().order_by(CaughtMessage.id)]


@pytest.fixture
def sending_team(app, team):
    """The team as it must be to send test mail: a verified sender domain and its own SMTP account
    (here pointing at the mail catcher's port)."""
    from app.models import SenderDomain
    from app.models import utcnow
    with app.app_context():
        SenderDomain.create(team=team, domain="acme.example", verified_at=utcnow())
        SmtpAccount.create(team=team, name="Catcher account", host="127.0.0.1", port=app.config["CATCHER_PORT"],
                           tls_mode="none")
    return team


def test_test_send_through_the_teams_own_account(app, web, sending_team, catcher):
    template_id = create(web)
    response = web.post(f"/templates/{template_id}/test", {"addresses": "ann@example.org, Bob@Example.net"},
                        htmx=True)
    assert response.status_code == 200
    results = soup(response).select("#test-send .test-results li")
    assert [li.select_one(".badge").text for li in results] == ["Sent", "Sent"]
    assert "via SMTP account “Catcher account”" in results[0].text
    messages = caught(app)
    assert len(messages) == 2
    by_address = {m["To"].addresses[0].addr_spec.lower(): m for m in messages}
    ann = by_address["ann@example.org"]
    assert ann["Subject"] == "[Test] Welcome"
    assert ann["From"].addresses[0].addr_spec == "news@acme.example"
    assert ann["Message-ID"].endswith("@acme.example>")
    assert ann["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert re.match(r"<http://loft\.test/u/[\w-]+>,\s*<mailto:news@acme\.example\?subject=unsubscribe", ann["List-Unsubscribe"])
    assert ann["Feedback-ID"] and tokens.Signer("test-secret").verify("header", ann["X-Loft-Token"]) == (0,)
    html = ann.get_body(preferencelist=("html",)).get_content()
    text = ann.get_body(preferencelist=("plain",)).get_content()
    assert "Hi Ann from Lyon!" in html and "Hi Ann from Lyon!" in text  # the contact with that address
    assert "https://example.com/news" in html and "/c/" not in html  # tests are never tracked
    assert "1 Main Street, Springfield" in html
    bob = by_address["bob@example.net"]
    assert "Hi there from somewhere!" in bob.get_body(preferencelist=("html",)).get_content()


def test_test_send_personalised_as_the_chosen_contact(app, web, sending_team, catcher):
    response = web.post("/templates/builtin/letter/test", {"addresses": "me@example.com", "contact": "ann@example.org"},
                        htmx=True)
    assert [li.select_one(".badge").text for li in soup(response).select(".test-results li")] == ["Sent"]
    message = caught(app)[0]
    assert message["To"].addresses[0].addr_spec == "me@example.com"
    assert message["Subject"] == "[Test] Simple letter"
    assert "Hi Ann," in message.get_body(preferencelist=("html",)).get_content()


def test_test_send_never_falls_back_to_the_instance_server(app, web, team, catcher):
    """Issue 9: with no SMTP account of its own, a team's test went out through the instance's server
    (Loft's own mail), so anyone who could make a team could relay mail through the instance."""
    from app.models import SenderDomain
    from app.models import utcnow
    with app.app_context():
        SenderDomain.create(team=team, domain="acme.example", verified_at=utcnow())
    template_id = create(web)
    for path in (f"/templates/{template_id}/test", "/templates/builtin/letter/test"):
        response = web.post(path, {"addresses": "victim@example.org"}, htmx=True)
        assert response.status_code == 422
        fragment = soup(response)
        assert "no active SMTP account" in fragment.select_one("#e-addresses").text
        assert fragment.select_one("#f-addresses")["value"] == "victim@example.org"
    assert caught(app) == []  # the catcher is the instance's outbound server: nothing reached it


def test_test_send_needs_a_verified_sender_domain(app, web, team, catcher):
    with app.app_context():
        SmtpAccount.create(team=team, name="Catcher account", host="127.0.0.1", port=app.config["CATCHER_PORT"],
                           tls_mode="none")
    template_id = create(web)
    response = web.post(f"/templates/{template_id}/test", {"addresses": "x@example.org"}, htmx=True)
    assert response.status_code == 422
    assert "acme.example is not verified" in soup(response).select_one("#e-addresses").text
    assert caught(app) == []


def test_test_sends_are_rate_limited_per_team(app, web, sending_team, catcher):
    app.config["TEST_SENDS_PER_HOUR"] = 6
    template_id = create(web)
    five = ", ".join(f"p{i}@example.org" for i in range(5))
    assert web.post(f"/templates/{template_id}/test", {"addresses": five}, htmx=True).status_code == 200
    refused = web.post(f"/templates/{template_id}/test", {"addresses": "a@example.org, b@example.org"}, htmx=True)
    assert refused.status_code == 422
    assert "6 test messages for this hour (1 left)" in soup(refused).select_one("#e-addresses").text
    assert web.post("/templates/builtin/letter/test", {"addresses": "a@example.org"}, htmx=True).status_code == 200
    assert web.post(f"/templates/{template_id}/test", {"addresses": "b@example.org"}, htmx=True).status_code == 422
    assert len(caught(app)) == 6


@pytest.mark.parametrize("addresses,message", [
    ("", "at least one"),
    ("not-an-address", "Not a valid email address: not-an-address"),
    ("a@example.com, b@example.com, c@example.com, d@example.com, e@example.com, f@example.com", "at most 5"),
])
def test_test_send_addresses_are_validated(app, web, team, catcher, addresses, message):
    template_id = create(web)
    response = web.post(f"/templates/{template_id}/test", {"addresses": addresses}, htmx=True)
    assert response.status_code == 422
    fragment = soup(response)
    assert message in fragment.select_one("#e-addresses").text
    assert fragment.select_one("#f-addresses")["aria-invalid"] == "true"
    assert fragment.select_one("#f-addresses")["value"] == addresses
    assert caught(app) == []


def test_test_send_reports_an_unreachable_server(app, web, sending_team):
    template_id = create(web)  # no catcher running: the team's account points at a closed port
    response = web.post(f"/templates/{template_id}/test", {"addresses": "x@example.org"}, htmx=True)
    result = soup(response).select_one(".test-results li")
    assert result.select_one(".badge").text == "Failed" and "Could not connect" in result.text


def test_test_send_is_dkim_signed_for_a_verified_sender_domain(app, web, sending_team, catcher):
    import dkim

    from app.models import SenderDomain
    from app.senders import domains
    with app.app_context():
        row = SenderDomain.get(SenderDomain.domain == "acme.example")
        record = domains.dkim_record(row).encode()
        selector = row.dkim_selector
    template_id = create(web)
    response = web.post(f"/templates/{template_id}/test", {"addresses": "x@example.org"}, htmx=True)
    assert soup(response).select_one(".test-results .badge").text == "Sent"
    with app.app_context():
        raw = bytes(CaughtMessage.get().raw)
    assert raw.startswith(b"DKIM-Signature:")
    dns = {f"{selector}._domainkey.acme.example.".encode(): record}
    assert dkim.verify(raw, dnsfunc=lambda name, timeout=5: dns.get(name))
