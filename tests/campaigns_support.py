"""Helpers for the campaign tests: a draft made through the editor's form."""
from app.models import Campaign


def draft_form(news, **overrides):
    form = {"name": "December news", "from_name": "Acme", "from_email": "news@acme.example",
            "subject": "Hello {{ contact.name }}", "kind": "html",
            "body": "<h1>News</h1><p>Hi {{ contact.name }}, see <a href=\"https://acme.example/post\">the post</a>.</p>",
            "lists": [str(news.id)], "track_opens": "1", "track_clicks": "1"}
    form.update(overrides)
    return form


def create_draft(web, news, **overrides):
    response = web.post("/campaigns/new", {"name": "December news"})
    campaign_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    saved = web.post(f"/campaigns/{campaign_id}", draft_form(news, **overrides))
    assert saved.status_code == 302, saved.get_data(as_text=True)[:2000]
    return Campaign.get_by_id(campaign_id)
