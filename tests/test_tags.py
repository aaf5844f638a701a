"""Tags on contacts: the service, the contact page, the Tags page, the list filter and bulk actions,
the import's Tags column, segment rules, exports and erasure, other teams' ids and roles."""
import csv
import io

import pytest

from app.contacts import tags
from app.contacts.common import ContactError
from app.models import AuditLog
from app.models import Contact
from app.models import ContactTag
from app.models import ImportJob
from app.models import MailingList
from app.models import Subscription
from app.models import Tag
from app.models import Team
from app.segments import services as segment_services
from app.segments.compiler import SegmentError
from app.segments.compiler import compile_rules
from tests.accounts_support import make_member
from tests.conftest import soup
from tests.imports_support import map_form
from tests.imports_support import rejects_of
from tests.imports_support import run_file
from tests.imports_support import start
from tests.imports_support import uploaded_job


def add(team, email, name=""):
    return Contact.create(team=team, email=email, domain=email.rpartition("@")[2], name=name, attributes={})


def names_of(contact):
    return [tag.name for tag in tags.tags_of(contact)]


# --- Names and the service ----------------------------------------------------------------------

def test_names_are_trimmed_unique_ignoring_case_and_checked(team):
    vip = tags.create_tag(team, "  VIP   customer ")
    assert (vip.name, vip.name_key) == ("VIP customer", "vip customer")
    with pytest.raises(ContactError, match="already a tag called “VIP customer”"):
        tags.create_tag(team, "vip CUSTOMER")
    for bad, words in (("", "Enter a tag name"), ("a,b", "cannot contain a comma"), ("x" * 65, "64 characters"),
                       ("tab\x07bell", "control or invisible")):
        with pytest.raises(ContactError, match=words):
            tags.create_tag(team, bad)
    assert Tag.select().count() == 1
    other = Team.create(name="Other")
    assert tags.create_tag(other, "vip customer").team_id == other.id  # unique per team only
    assert tags.split_names("a; b |A, ,c" + "," + "y" * 70) == (["a", "b", "c"], [
        f"Keep tag names to 64 characters (“{'y' * 29}…” has 70)."])
    many = ",".join(f"t{n}" for n in range(250))
    assert tags.split_names(many) == ([f"t{n}" for n in range(200)], ["Only the first 200 tags were kept (250 given)."])


def test_rename_delete_and_counts(team):
    ann, bob = add(team, "ann@example.com"), add(team, "bob@example.com")
    vip, lead = tags.create_tag(team, "vip"), tags.create_tag(team, "lead")
    assert tags.tag_contacts(team, vip, [ann.id, bob.id]) == 2
    assert tags.tag_contacts(team, vip, [ann.id]) == 0  # already there
    tags.tag_contact(team, ann, lead)
    assert [(t.name, n) for t, n in tags.tags_with_counts(team)] == [("lead", 1), ("vip", 2)]
    with pytest.raises(ContactError, match="already a tag called “lead”"):
        tags.rename_tag(team, vip, "LEAD")
    vip = tags.rename_tag(team, vip, "VIP")  # only the case changes: allowed
    assert vip.name == "VIP"
    assert tags.delete_tag(team, vip) == 2
    assert names_of(ann) == ["lead"] and names_of(bob) == []
    assert AuditLog.get(AuditLog.action == "tag.deleted").data == {"name": "VIP", "contacts": 2}
    ann.delete_instance()
    assert ContactTag.select().count() == 0  # deleting a contact deletes its tags too


def test_service_refuses_another_teams_tag_or_contact(team):
    other = Team.create(name="Other")
    mine, theirs = add(team, "me@example.com"), add(other, "them@example.com")
    their_tag = tags.create_tag(other, "secret")
    with pytest.raises(ContactError):
        tags.tag_contact(team, mine, their_tag)
    with pytest.raises(ContactError):
        tags.tag_contacts(team, their_tag, [mine.id])
    my_tag = tags.create_tag(team, "mine")
    assert tags.tag_contacts(team, my_tag, [mine.id, theirs.id]) == 1  # their contact is ignored
    assert ContactTag.select().count() == 1


def test_add_tags_creates_missing_ones_and_stores_nothing_on_a_bad_name(team):
    ann = add(team, "ann@example.com")
    tags.create_tag(team, "Customer")
    added = tags.add_tags(team, ann, "customer, fair 2026")
    assert sorted(t.name for t in added) == ["Customer", "fair 2026"]
    with pytest.raises(ContactError, match="64 characters"):
        tags.add_tags(team, ann, "new one, " + "z" * 80)
    with pytest.raises(ContactError, match="at most 200 tags"):
        tags.add_tags(team, ann, ",".join(f"t{n}" for n in range(199)))
    assert names_of(ann) == ["Customer", "fair 2026"] and Tag.select().count() == 2


# --- The contact page ---------------------------------------------------------------------------

def test_contact_page_adds_and_removes_tags(web, team):
    ann = add(team, "ann@example.com")
    tags.create_tag(team, "vip")
    page = soup(web.get(f"/contacts/{ann.id}"))
    section = page.select_one("section#tags")
    assert "No tags yet" in section.text
    assert [o["value"] for o in section.select("datalist#tag-choices option")] == ["vip"]
    assert section.select_one("label[for=f-tags]").text.startswith("Add tags")

    response = web.post(f"/contacts/{ann.id}/tags", {"tags": "VIP, beta"}, htmx=True)
    assert response.status_code == 200
    fragment = soup(response)
    assert [a.text for a in fragment.select("li.tag-chip a")] == ["beta", "vip"]
    assert "Tagged" in fragment.select_one("[role=status]").text

    refused = web.post(f"/contacts/{ann.id}/tags", {"tags": "a" * 70}, htmx=True)
    assert refused.status_code == 422
    box = soup(refused).select_one("#f-tags")
    assert box["aria-invalid"] == "true" and box["value"] == "a" * 70
    assert "64 characters" in soup(refused).select_one("#e-tags").text

    vip = Tag.get(Tag.name == "vip")
    removed = web.post(f"/contacts/{ann.id}/tags/{vip.id}/remove", htmx=True)
    assert [a.text for a in soup(removed).select("li.tag-chip a")] == ["beta"]
    assert names_of(ann) == ["beta"]


def test_other_teams_ids_are_not_found_and_change_nothing(web, team):
    other = Team.create(name="Other")
    mine, theirs = add(team, "me@example.com"), add(other, "them@example.com")
    their_tag = tags.create_tag(other, "theirs")
    tags.tag_contact(other, theirs, their_tag)
    my_tag = tags.create_tag(team, "mine")
    tags.tag_contact(team, mine, my_tag)
    assert web.post(f"/contacts/{theirs.id}/tags", {"tags": "x"}).status_code == 404
    assert web.post(f"/contacts/{mine.id}/tags/{their_tag.id}/remove").status_code == 404
    assert web.post(f"/contacts/{theirs.id}/tags/{my_tag.id}/remove").status_code == 404
    assert web.post(f"/contacts/tags/{their_tag.id}/rename", {"name": "mine now"}).status_code == 404
    assert web.get(f"/contacts/tags/{their_tag.id}/delete").status_code == 404
    assert web.post(f"/contacts/tags/{their_tag.id}/delete").status_code == 404
    assert web.get(f"/contacts/?tag={their_tag.id}").status_code == 404
    assert web.get(f"/contacts/export?tag={their_tag.id}").status_code == 404
    assert Tag.get_by_id(their_tag.id).name == "theirs" and names_of(theirs) == ["theirs"]
    assert names_of(mine) == ["mine"] and Tag.select().where(Tag.team == team).count() == 1


def test_roles_guest_sees_tags_but_cannot_change_them(app, web, team):
    ann = add(team, "ann@example.com")
    vip = tags.create_tag(team, "vip")
    tags.tag_contact(team, ann, vip)
    _, guest = make_member(app, team, "guest")
    page = soup(guest.get(f"/contacts/{ann.id}"))
    assert [a.text for a in page.select("section#tags li.tag-chip a")] == ["vip"]
    assert page.select_one("section#tags form") is None
    assert guest.post(f"/contacts/{ann.id}/tags", {"tags": "x"}).status_code == 403
    assert guest.post(f"/contacts/{ann.id}/tags/{vip.id}/remove").status_code == 403
    assert guest.post(f"/contacts/tags/{vip.id}/rename", {"name": "y"}).status_code == 403
    assert guest.post(f"/contacts/tags/{vip.id}/delete").status_code == 403
    listing = soup(guest.get("/contacts/tags"))
    assert listing.select_one("form#new-tag") is None and "vip" in listing.select_one("table.tags").text
    assert names_of(ann) == ["vip"]


# --- The Tags page ------------------------------------------------------------------------------

def test_tags_page_creates_renames_and_deletes_with_a_count(web, team):
    empty = soup(web.get("/contacts/tags"))
    assert "No tags yet" in empty.select_one("#no-tags").text
    assert empty.select_one("nav.tabs a[aria-current=page]").text == "Tags"

    created = web.post("/contacts/tags/new", {"name": "Newsletter fans"}, htmx=True)
    assert created.status_code == 200 and "created" in soup(created).select_one("[role=status]").text
    tag = Tag.get(Tag.name == "Newsletter fans")
    clash = web.post("/contacts/tags/new", {"name": "newsletter FANS"}, htmx=True)
    assert clash.status_code == 422 and "already a tag" in soup(clash).select_one("#e-name").text

    for n in range(3):
        tags.tag_contact(team, add(team, f"p{n}@example.com"), tag)
    row = soup(web.get("/contacts/tags")).select_one(f"tr[data-tag='{tag.id}']")
    assert row.select_one("td.num a").text.startswith("3")
    assert row.select_one("td.num a")["href"] == f"/contacts/?tag={tag.id}"

    bad = web.post(f"/contacts/tags/{tag.id}/rename", {"name": "a,b"}, htmx=True)
    assert bad.status_code == 422 and "comma" in soup(bad).select_one(f"#e-name-{tag.id}").text
    web.post(f"/contacts/tags/{tag.id}/rename", {"name": "Fans"}, htmx=True)
    assert Tag.get_by_id(tag.id).name == "Fans"

    confirm = soup(web.get(f"/contacts/tags/{tag.id}/delete"))
    assert "3 contacts lose this tag" in confirm.select_one("#tag-usage").text
    done = web.post(f"/contacts/tags/{tag.id}/delete", follow_redirects=True)
    assert "3 contacts lost it" in done.get_data(as_text=True)
    assert Tag.select().count() == 0 and Contact.select().count() == 3


# --- The contact list: filter, column, bulk ------------------------------------------------------

def test_list_filters_by_tag_and_shows_chips(web, team):
    ann, bob, cid = add(team, "ann@example.com"), add(team, "bob@example.com"), add(team, "cid@example.com")
    vip = tags.create_tag(team, "vip")
    tags.tag_contacts(team, vip, [ann.id, cid.id])
    page = soup(web.get("/contacts/"))
    assert [o.text for o in page.select("#f-tag option")] == ["Any tag", "vip"]
    row = page.select_one(f"tr[data-id='{ann.id}']")
    assert [a.text for a in row.select("td.c-tags a.tag-chip")] == ["vip"]
    filtered = soup(web.get(f"/contacts/?tag={vip.id}"))
    assert [tr["data-id"] for tr in filtered.select("tbody tr")] == [str(cid.id), str(ann.id)]
    assert filtered.select_one(f"#f-tag option[value='{vip.id}']").has_attr("selected")
    assert filtered.select_one("input[type=hidden][name=tag]")["value"] == str(vip.id)  # bulk keeps the filter


def test_list_page_filters_its_subscribers_by_tag(web, team):
    news = MailingList.create(team=team, name="News")
    ann, bob, cid = add(team, "ann@example.com"), add(team, "bob@example.com"), add(team, "cid@example.com")
    for contact in (ann, bob):
        Subscription.create(contact=contact, list=news)
    vip = tags.create_tag(team, "vip")
    tags.tag_contacts(team, vip, [bob.id, cid.id])
    page = soup(web.get(f"/contacts/lists/{news.id}?tag={vip.id}"))
    assert [tr["data-id"] for tr in page.select("tbody tr")] == [str(bob.id)]
    # and a bulk action over that filter reaches exactly those contacts
    form = page.select_one("form#bulk-form")
    assert {i["name"]: i["value"] for i in form.select("input[type=hidden]") if i["name"] != "csrf_token"} == {
        "list": str(news.id), "tag": str(vip.id)}  # the filter; the tag to add or remove is tag_name
    response = web.post("/contacts/bulk", {"action": "add_tag", "scope": "filter", "list": news.id, "tag": vip.id,
                                           "tag_name": "news vip", "confirmed": "1"})
    assert response.status_code == 302
    assert names_of(bob) == ["news vip", "vip"] and names_of(ann) == [] and names_of(cid) == ["vip"]
    response = web.post("/contacts/bulk", {"action": "remove_tag", "scope": "filter", "list": news.id,
                                           "tag_name": "VIP", "confirmed": "1"})
    assert response.status_code == 302
    assert names_of(bob) == ["news vip"] and names_of(cid) == ["vip"]


def test_bulk_add_and_remove_tag_over_a_few_thousand_contacts(web, team):
    Contact.insert_many([{"team": team.id, "email": f"p{n}@example.com", "domain": "example.com", "attributes": {}}
                         for n in range(3000)]).execute()
    Contact.insert_many([{"team": team.id, "email": f"q{n}@example.org", "domain": "example.org", "attributes": {}}
                         for n in range(500)]).execute()
    confirm = web.post("/contacts/bulk", {"action": "add_tag", "scope": "filter", "tag_name": " Spring fair ",
                                          "q": "@example.com"})
    assert confirm.status_code == 200
    assert "Tag 3,000 contacts “Spring fair”?" in " ".join(soup(confirm).select_one("h1").text.split())
    assert Tag.select().count() == 0  # nothing is made before the confirmation
    response = web.post("/contacts/bulk", {"action": "add_tag", "scope": "filter", "tag_name": " Spring fair ",
                                           "q": "@example.com", "confirmed": "1"})
    job = AuditLog.get_by_id(int(response.headers["Location"].rsplit("/", 1)[1]))
    assert (job.data["state"], job.data["processed"], job.data["changed"]) == ("done", 3000, 3000)
    fair = Tag.get(Tag.name == "Spring fair")
    assert tags.contact_count(fair) == 3000
    assert not ContactTag.select().join(Contact).where(Contact.domain == "example.org").exists()

    some = [c.id for c in Contact.select(Contact.id).where(Contact.domain == "example.com").limit(10)]
    response = web.post("/contacts/bulk", {"action": "remove_tag", "scope": "selected", "tag_name": "SPRING FAIR",
                                           "ids": some})
    job = AuditLog.get_by_id(int(response.headers["Location"].rsplit("/", 1)[1]))
    assert (job.data["state"], job.data["changed"], job.data["tag"]) == ("done", 10, "Spring fair")
    assert tags.contact_count(fair) == 2990

    refused = web.post("/contacts/bulk", {"action": "remove_tag", "scope": "selected", "tag_name": "nope", "ids": some},
                       follow_redirects=True)
    assert "no tag has that name" in refused.get_data(as_text=True)
    refused = web.post("/contacts/bulk", {"action": "add_tag", "scope": "selected", "tag_name": "a,b", "ids": some},
                       follow_redirects=True)
    assert "cannot contain a comma" in refused.get_data(as_text=True)
    assert Tag.select().count() == 1


# --- Segment rules ------------------------------------------------------------------------------

def test_segment_rules_has_and_has_not_tag(team):
    ann, bob, cid = add(team, "ann@example.com"), add(team, "bob@example.com"), add(team, "cid@example.com")
    vip, lead = tags.create_tag(team, "vip"), tags.create_tag(team, "lead")
    tags.tag_contacts(team, vip, [ann.id, bob.id])
    tags.tag_contact(team, bob, lead)

    def emails(rules):
        found = {c.email for c in segment_services.matching_contacts(team.id, rules)}
        assert segment_services.count_matching(team.id, rules) == len(found)
        return found

    has_vip = {"field": "tag", "operator": "has_tag", "value": vip.id}
    no_lead = {"field": "tag", "operator": "not_has_tag", "value": str(lead.id)}
    assert emails({"op": "and", "rules": [has_vip]}) == {"ann@example.com", "bob@example.com"}
    assert emails({"op": "and", "rules": [no_lead]}) == {"ann@example.com", "cid@example.com"}
    assert emails({"op": "and", "rules": [has_vip, no_lead]}) == {"ann@example.com"}
    assert emails({"op": "or", "rules": [{**has_vip, "operator": "not_has_tag"}, no_lead]}) == {
        "ann@example.com", "cid@example.com"}
    # inside a group too
    assert emails({"op": "and", "rules": [{"op": "or", "rules": [has_vip]}, no_lead]}) == {"ann@example.com"}
    assert segment_services.describe(team, {"op": "and", "rules": [has_vip, {**no_lead, "value": lead.id}]}) == (
        "Tag has “vip” and Tag does not have “lead”")

    other_tag = tags.create_tag(Team.create(name="Other"), "theirs")
    with pytest.raises(SegmentError, match="That tag does not exist in this team"):
        compile_rules(team.id, {"op": "and", "rules": [{"field": "tag", "operator": "has_tag", "value": other_tag.id}]})
    with pytest.raises(SegmentError, match="Choose a tag"):
        compile_rules(team.id, {"op": "and", "rules": [{"field": "tag", "operator": "has_tag", "value": ""}]})


def test_segment_builder_offers_the_teams_tags(web, team):
    vip = tags.create_tag(team, "vip")
    tags.create_tag(Team.create(name="Other"), "theirs")
    response = web.post("/segments/new/builder", {"rules.op": "and", "rules.0.field": "tag", "rules.0.was": "email",
                                                  "rules.0.operator": "contains", "rules.0.value": ""}, htmx=True)
    builder = soup(response)
    assert [o["value"] for o in builder.select("#operator-0 option")] == ["has_tag", "not_has_tag"]
    assert [(o["value"], o.text) for o in builder.select("#value-0 option")] == [("", "Choose a tag"),
                                                                               (str(vip.id), "vip")]
    assert builder.select_one("label[for=value-0]").text == "Rule 1: value"


# --- Exports and erasure ------------------------------------------------------------------------

def test_export_has_a_tags_column_and_a_tag_filter(web, team):
    ann, bob = add(team, "ann@example.com"), add(team, "bob@example.com")
    tags.add_tags(team, ann, "vip, =cmd")
    vip = Tag.get(Tag.name == "vip")
    rows = list(csv.DictReader(io.StringIO(web.get("/contacts/export").get_data(as_text=True))))
    by_email = {row["email"]: row for row in rows}
    assert by_email["ann@example.com"]["tags"] == "'=cmd; vip"  # neutralised: a spreadsheet won't run it
    assert by_email["bob@example.com"]["tags"] == ""
    only = list(csv.DictReader(io.StringIO(web.get(f"/contacts/export?tag={vip.id}").get_data(as_text=True))))
    assert [row["email"] for row in only] == ["ann@example.com"]


def test_gdpr_export_lists_tags_and_erasure_removes_them(web, team):
    ann, bob = add(team, "ann@example.com"), add(team, "bob@example.com")
    tags.add_tags(team, ann, "vip, lead")
    tags.add_tags(team, bob, "vip")
    data = web.get(f"/contacts/{ann.id}/export.json").get_json()
    assert data["tags"] == ["lead", "vip"]
    response = web.post(f"/contacts/{ann.id}/erase", {"confirm": "ann@example.com"})
    assert response.status_code == 302
    assert ContactTag.select().count() == 1 and names_of(bob) == ["vip"]
    assert AuditLog.get(AuditLog.action == "contact.erased").data["tags_removed"] == 2
    assert Tag.select().count() == 2  # the tags themselves stay for the team


# --- Import ---------------------------------------------------------------------------------------

def test_import_tags_column_splits_creates_and_reports_bad_names(web, team):
    old = add(team, "old@example.com")
    tags.create_tag(team, "Customer")
    data = ("email,name,Tags\n"
            "ann@example.com,Ann,customer; vip|Fair 2026\n"
            "bob@example.com,Bob,\n"
            f"cid@example.com,Cid,vip,{'x' * 70}\n"  # unquoted: the comma makes a ragged row
            f'dee@example.com,Dee,"vip, {"y" * 70}"\n'
            f"old@example.com,Old,VIP;{'z' * 70}\n")
    job = uploaded_job(web, data)
    page = soup(web.get(f"/imports/{job.id}/map"))
    assert map_form(page)["column-2"] == "tags"  # the header is recognised
    assert "Tags (separated by , ; or |)" in [o.text for o in page.select("select option")]
    start(web, job)
    job = ImportJob.get_by_id(job.id)
    assert (job.status, job.created, job.rejected, job.partial) == ("done", 3, 1, 2)
    by_email = {c.email: names_of(c) for c in Contact.select()}
    assert by_email == {"ann@example.com": ["Customer", "Fair 2026", "vip"], "bob@example.com": [],
                        "dee@example.com": ["vip"], "old@example.com": ["vip"]}
    assert Tag.select().count() == 3  # "VIP" and "vip" are one tag, named as first written
    reasons = {row["row"]: row["reason"] for row in rejects_of(web, job)}
    assert reasons["4"].startswith("This row has 4 fields")
    assert reasons["5"] == f"Imported without this value: Tag not added: Keep tag names to 64 characters (“{'y' * 29}…” has 70)."
    assert reasons["6"].startswith("Imported without this value: Tag not added:")  # an existing contact, add mode


def test_import_column_mapped_by_hand_tags_a_thousand_rows(web, team):
    rows = "".join(f"p{n}@example.com,{'even' if n % 2 == 0 else 'odd'}|all\n" for n in range(1000))
    job = run_file(web, "email,segmentation\n" + rows, **{"column-1": "tags"})
    assert (job.status, job.created, job.partial) == ("done", 1000, 0)
    assert sorted((t.name, n) for t, n in tags.tags_with_counts(team)) == [("all", 1000), ("even", 500), ("odd", 500)]


def test_tag_names_are_shown_as_text_everywhere(web, team):
    ann = add(team, "ann@example.com")
    evil = '<img src=x onerror=alert(1)>"'
    tags.add_tags(team, ann, evil)
    tag = Tag.get()
    for url in (f"/contacts/{ann.id}", "/contacts/", "/contacts/tags", f"/contacts/tags/{tag.id}/delete",
                f"/contacts/?tag={tag.id}"):
        body = web.get(url).get_data(as_text=True)
        assert "<img src=x" not in body, url
        assert "&lt;img src=x onerror=alert(1)&gt;" in body, url
