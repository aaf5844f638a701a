"""The contact's Activity timeline with its automation steps merged in (app/contacts/timeline.py activity(),
app/automations/report.py contact_items): time order across both kinds, "Load more" pages that never skip or repeat
an item (ties at one moment included), the page without JavaScript, and a query count that does not grow with the
items."""
import datetime
import logging

import pytest

from app.automations import flow
from app.contacts import timeline as timelines
from app.models import AutomationRun
from app.models import AutomationVisit
from app.models import Contact
from app.models import Event
from app.models import Team
from tests.conftest import soup

START = datetime.datetime(2026, 3, 1, 8, 0)


def at(slot):
    return START + datetime.timedelta(minutes=10 * slot)


@pytest.fixture
def team(admin):
    return Team.get(Team.name == "Acme")


def _history(team, contact, events, automations, admin):
    """`events` opens (Campaign #0.. at slots 0..), and per automation a run whose entry, three steps and end fall on
    event slots (ties with events), the end on the same moment as its last step (a tie between two automation items)."""
    for i in range(events):
        Event.create(team=team, contact=contact, type="opened", campaign_id=i, at=at(i))
    expected = [(at(i), f"Campaign #{i}") for i in range(events)]
    for n in range(automations):
        automation = flow.create_automation(team, admin, f"A{n}", starter="welcome")
        email, wait, last = flow.ordered_steps(automation)
        base = 3 * n + 1
        run = AutomationRun.create(automation=automation.id, team=team.id, contact=contact.id, step_id=last.id,
                                   state="exited", exit_reason="unsubscribed", data={}, entered_at=at(base),
                                   ended_at=at(base + 2))
        AutomationVisit.create(run=run.id, step=email.id, outcome="queued", entered_at=at(base), done_at=at(base + 1))
        AutomationVisit.create(run=run.id, step=wait.id, outcome="done", entered_at=at(base + 1), done_at=at(base + 2))
        AutomationVisit.create(run=run.id, step=last.id, outcome="queued", entered_at=at(base + 2),
                               done_at=at(base + 2))
        expected += [(at(base), f"A{n}: entered"), (at(base + 1), f"A{n}: email “Welcome!” sent"),
                     (at(base + 2), f"A{n}: waited"), (at(base + 2), f"A{n}: email “Getting started” sent"),
                     (at(base + 2), f"A{n}: exited: unsubscribed")]
    return expected


def _items(nodes):
    rows = []
    for li in nodes:
        label = li.select_one("strong").text.strip()
        rows.append((li.select_one("time")["datetime"] if li.select_one("time") else None,
                     " ".join(li.select_one(".muted").text.split()) if label == "Automation"
                     else li.select_one(".muted").text.strip()))
    return rows


def test_merged_pages_are_in_time_order_and_never_skip_or_repeat(web, team, admin):
    contact = Contact.create(team=team, email="a@example.com", domain="example.com")
    expected = _history(team, contact, events=40, automations=4, admin=admin)  # 60 items: 3 pages of 25
    page = soup(web.get(f"/contacts/{contact.id}"))
    assert page.select_one("#automation-history") is None
    first = page.select("#timeline li.event")
    assert len(first) == 25
    texts = [text for _when, text in _items(first)]
    more = page.select_one("#timeline li.more a")
    without_js = soup(web.get(more["href"])).select("#timeline li.event")  # the page from that point, no JS
    pages = 1
    while more is not None and pages < 10:
        fragment = soup(web.get(more["hx-get"], headers={"HX-Request": "true"}))
        items = fragment.select("li.event")
        if pages == 1:
            assert _items(items) == _items(without_js)
        texts += [text for _when, text in _items(items)]
        more = fragment.select_one("li.more a")
        pages += 1
    assert pages == 3
    assert len(texts) == len(set(texts)) == len(expected) == 60  # nothing repeated, nothing skipped
    assert sorted(texts) == sorted(text for _when, text in expected)
    when = {text: moment for moment, text in expected}
    moments = [when[text] for text in texts]
    assert moments == sorted(moments, reverse=True)  # newest first across both kinds
    assert texts.index("A0: exited: unsubscribed") < texts.index("A0: waited") < texts.index("A0: entered")


def test_a_page_boundary_inside_a_tie(team, admin, app):
    """Every split of the same items into pages gives the same sequence: the cursor holds (time, rank, id)."""
    contact = Contact.create(team=team, email="b@example.com", domain="example.com")
    _history(team, contact, events=6, automations=2, admin=admin)
    with app.app_context():
        whole, cursor = timelines.activity(contact, limit=100)
        assert cursor is None and len(whole) == 16
        for size in range(1, 8):
            seen, cursor = [], None
            for _page in range(len(whole) + 1):  # a cursor that never ends fails here instead of looping
                items, cursor = timelines.activity(contact, cursor, limit=size)
                seen += items
                if cursor is None:
                    break
            key = lambda item: (item.type, getattr(item, "id", None), getattr(item, "text", None))  # noqa: E731
            assert [key(i) for i in seen] == [key(i) for i in whole], size


def test_the_query_count_does_not_grow_with_the_items(team, admin, app, caplog):
    few = Contact.create(team=team, email="few@example.com", domain="example.com")
    many = Contact.create(team=team, email="many@example.com", domain="example.com")
    _history(team, few, events=1, automations=1, admin=admin)
    _history(team, many, events=30, automations=6, admin=admin)

    def queries(contact):
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="peewee"):
            items, _cursor = timelines.activity(contact)
        return len([r for r in caplog.records if r.name == "peewee"]), len(items)

    with app.app_context():
        small, count_small = queries(few)
        large, count_large = queries(many)
    assert (count_small, count_large) == (6, 25)
    assert small == large <= 6  # events, their campaigns' names, run entries, run ends, visits, automation names


def test_a_cursor_of_another_contact_or_a_broken_one(web, team, admin):
    contact = Contact.create(team=team, email="c@example.com", domain="example.com")
    other = Contact.create(team=team, email="d@example.com", domain="example.com")
    _history(team, contact, events=30, automations=0, admin=admin)
    theirs = Event.create(team=team, contact=other, type="opened", at=at(100))
    fragment = web.get(f"/contacts/{contact.id}/timeline?before={theirs.id}", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and soup(fragment).select("li.event") == []  # not this contact's event
    broken = web.get(f"/contacts/{contact.id}/timeline?before=9-x-y", headers={"HX-Request": "true"})
    assert broken.status_code == 200 and len(soup(broken).select("li.event")) == 25  # read from the newest
