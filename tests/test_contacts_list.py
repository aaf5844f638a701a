"""The contact list: keyset pages, search, filters (list, status, segment), htmx and plain variants."""
import re

from app.contacts import query
from app.models import Contact
from app.models import MailingList
from app.models import Segment
from app.models import Subscription
from app.models import Team
from tests.conftest import soup


def acme():
    return Team.get(Team.name == "Acme")


def fill(team, count, start=0, **values):
    """`count` contacts c<start>@… written in one statement; ids ascend with the number."""
    domains = ("example.com", "example.org")
    rows = [dict(team=team, email=f"c{i:04d}@{domains[i % 2]}", domain=domains[i % 2], name=f"Person {i:04d}",
                 **values) for i in range(start, start + count)]
    Contact.insert_many(rows).execute()
    return list(Contact.select().where(Contact.team == team).order_by(Contact.id))


def emails(response):
    return [a.text for a in soup(response).select("#contact-results tbody td.c-email a")]


def link(response, rel):
    found = soup(response).select_one(f"#contact-results nav.pager a[rel={rel}]")
    return found["href"] if found else None


def test_keyset_pages_newest_first_forward_and_back(web, admin):
    fill(acme(), 130)
    first = web.get("/contacts/")
    assert emails(first)[:2] == ["c0129@example.org", "c0128@example.com"] and len(emails(first)) == 50
    assert link(first, "prev") is None
    older = link(first, "next")
    assert re.fullmatch(r"/contacts/\?before=\d+", older)

    second = web.get(older)
    assert emails(second)[0] == "c0079@example.org" and len(emails(second)) == 50
    third = web.get(link(second, "next"))
    assert emails(third)[-1] == "c0000@example.com" and len(emails(third)) == 30
    assert link(third, "next") is None  # the end

    back = web.get(link(third, "prev"))
    assert emails(back) == emails(second)
    back_again = web.get(link(back, "prev"))
    assert emails(back_again) == emails(first)


def test_htmx_gets_the_results_fragment_and_plain_gets_the_page(web, admin):
    fill(acme(), 3)
    fragment = web.get("/contacts/?status=active", headers={"HX-Request": "true", "HX-Target": "contact-results"})
    page = soup(fragment)
    assert page.select_one("html") is None and page.select_one("#contact-filters") is None
    assert page.select_one("div#contact-results") is not None and len(emails(fragment)) == 3
    assert "HX-Request" in fragment.headers["Vary"]
    full = soup(web.get("/contacts/?status=active"))
    assert full.select_one("h1").text == "Contacts" and full.select_one("#f-status option[selected]")["value"] == "active"
    form = full.select_one("form#contact-filters")
    assert form["hx-target"] == "#contact-results" and form["hx-push-url"] == "true"


def test_status_and_list_filters(web, admin):
    team = acme()
    contacts = fill(team, 10)
    Contact.update(status="bounced").where(Contact.id << [contacts[1].id, contacts[4].id]).execute()
    news = MailingList.create(team=team, name="News")
    for contact, status in ((contacts[2], "subscribed"), (contacts[3], "unconfirmed"), (contacts[4], "unsubscribed")):
        Subscription.create(contact=contact, list=news, status=status)

    assert emails(web.get("/contacts/?status=bounced")) == ["c0004@example.com", "c0001@example.org"]
    assert emails(web.get(f"/contacts/?list={news.id}")) == ["c0004@example.com", "c0003@example.org",
                                                              "c0002@example.com"]
    assert emails(web.get(f"/contacts/?list={news.id}&list_status=unconfirmed")) == ["c0003@example.org"]
    assert emails(web.get(f"/contacts/?list={news.id}&status=bounced")) == ["c0004@example.com"]
    empty = soup(web.get(f"/contacts/?list={news.id}&status=complained"))
    assert empty.select_one("#no-matches").text.strip() == "No contacts match this search or filter."
    # The list page shows the same table for its list, with its own pager URLs.
    page = web.get(f"/contacts/lists/{news.id}?list_status=subscribed")
    assert emails(page) == ["c0002@example.com"]
    # The list column names the lists a contact is on (not those it left).
    row = soup(web.get("/contacts/?status=active")).select_one("tr[data-id='%d']" % contacts[3].id)
    assert row.select_one("td.c-lists").text == "News"


def test_list_filter_pages_walk_the_list(web, admin):
    team = acme()
    contacts = fill(team, 120)
    news = MailingList.create(team=team, name="News")
    Subscription.insert_many([{"contact": c.id, "list": news.id} for c in contacts[::2]]).execute()
    first = web.get(f"/contacts/?list={news.id}")
    assert len(emails(first)) == 50 and emails(first)[0] == "c0118@example.com"
    second = web.get(link(first, "next"))
    assert f"list={news.id}" in link(first, "next")
    assert emails(second)[0] == "c0018@example.com" and len(emails(second)) == 10
    assert link(second, "next") is None


def test_email_prefix_domain_and_name_search(web, admin):
    team = acme()
    fill(team, 30)
    Contact.create(team=team, email="ada.lovelace@analytical.example", domain="analytical.example",
                   name="Ada Lovelace")
    assert emails(web.get("/contacts/?q=ada.lovelace@")) == ["ada.lovelace@analytical.example"]
    assert emails(web.get("/contacts/?q=C0012@Example.com")) == ["c0012@example.com"]  # case-insensitive
    assert emails(web.get("/contacts/?q=c001@")) == []  # a prefix up to the @, not a substring
    assert len(emails(web.get("/contacts/?q=@example.org"))) == 15
    assert emails(web.get("/contacts/?q=lovelace")) == ["ada.lovelace@analytical.example"]
    assert emails(web.get("/contacts/?q=PERSON 0007")) == ["c0007@example.org"]
    assert emails(web.get("/contacts/?q=0%25")) == []  # LIKE wildcards are taken literally
    # The search box keeps its text; a search with no result says so.
    page = soup(web.get("/contacts/?q=nobody"))
    assert page.select_one("#f-q")["value"] == "nobody"
    assert "No matches" in page.select_one("#no-matches").text or "No contacts match" in page.select_one("#no-matches").text


def test_contains_search_reads_a_bounded_window_and_continues(web, admin, monkeypatch):
    """A name search scans at most SEARCH_WINDOW contacts per page, then offers to go on."""
    monkeypatch.setattr(query, "SEARCH_WINDOW", 20)
    team = acme()
    fill(team, 60)
    Contact.update(name="Grace Hopper").where(Contact.email.in_(["c0005@example.org", "c0050@example.com"])).execute()
    first = web.get("/contacts/?q=hopper")
    assert emails(first) == ["c0050@example.com"]
    window = soup(first).select_one("#search-window a")
    assert window is not None and "before=" in window["href"] and "q=hopper" in window["href"]
    second = web.get(window["href"])  # contacts 39..20: no match
    assert emails(second) == []
    assert "No matches among the newest contacts searched so far." in soup(second).select_one("#no-matches").text
    third = web.get(soup(second).select_one("#search-window a")["href"])  # contacts 19..0
    assert emails(third) == ["c0005@example.org"]
    assert soup(third).select_one("#search-window") is None  # nothing older left to search


def test_other_teams_list_or_segment_in_the_filter_is_not_found(web, admin):
    other = Team.create(name="Other")
    their_list = MailingList.create(team=other, name="Theirs")
    their_segment = Segment.create(team=other, name="Theirs")
    assert web.get(f"/contacts/?list={their_list.id}").status_code == 404
    assert web.get(f"/contacts/?segment={their_segment.id}").status_code == 404
    assert web.get("/contacts/?list=abc&status=nonsense").status_code == 200  # junk is ignored, not an error


def test_segment_filter(web, admin):
    team = acme()
    contacts = fill(team, 6)
    Contact.update(status="bounced").where(Contact.id == contacts[2].id).execute()
    news = MailingList.create(team=team, name="News")
    Subscription.insert_many([{"contact": c.id, "list": news.id} for c in contacts[:4]]).execute()
    segment = Segment.create(team=team, name="Bounced", rules=
        {"op": "and", "rules": [{"field": "status", "operator": "is", "value": "bounced"}]})
    assert emails(web.get(f"/contacts/?segment={segment.id}")) == ["c0002@example.com"]
    on_list = Segment.create(team=team, name="On News", rules=
        {"op": "and", "rules": [{"field": "list", "operator": "in_list", "value": news.id}]})
    assert len(emails(web.get(f"/contacts/?segment={on_list.id}"))) == 4
    # A segment and a list filter together (the segment's own subquery next to the list join).
    assert emails(web.get(f"/contacts/?segment={segment.id}&list={news.id}")) == ["c0002@example.com"]
    page = soup(web.get("/contacts/"))
    assert [o.text for o in page.select("#f-segment option")] == ["No segment", "Bounced", "On News"]
