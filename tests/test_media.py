"""The media library: uploads decided by their bytes, cleaned and resized with Pillow, refused with the file's
name when they are not a usable image; the library page, deletion, the picker; the public file and its
headers; and emails that show library images with the instance's current address."""
import email
import email.policy
import hashlib
import io
import os
import struct
import zlib

import pytest
from PIL import Image
from PIL import PngImagePlugin

from app.content import prepare as prepare_module
from app.content.blocks import store as block_store
from app.content.blocks.schema import new_block
from app.content.media_urls import absolute_media_urls
from app.media import services
from app.media import views as media_views
from app.models import Campaign
from app.models import CaughtMessage
from app.models import MediaItem
from app.models import Team
from app.settings import save_settings
from tests.accounts_support import make_member
from tests.campaigns_support import create_draft
from tests.conftest import soup


def image_bytes(image_format, size=(40, 30), colour=(200, 30, 30), **save):
    out = io.BytesIO()
    mode = "RGBA" if image_format in ("PNG", "WEBP") else "RGB"
    Image.new(mode, size, colour).save(out, format=image_format, **save)
    return out.getvalue()


def animated_gif(frames=3, size=(30, 20)):
    out = io.BytesIO()
    images = [Image.new("RGB", size, (i * 80, 0, 0)) for i in range(frames)]
    images[0].save(out, format="GIF", save_all=True, append_images=images[1:], duration=120, loop=0)
    return out.getvalue()


def png_declaring(width, height):
    """A tiny PNG whose header declares width × height pixels: a decompression bomb's shape."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


def upload(web, *files, picker=False, **form):
    data = {"files": [(io.BytesIO(content), name) for name, content in files], **form}
    url = "/media/upload" + ("?picker=1" if picker else "")
    return web.post(url, data, content_type="multipart/form-data", htmx=picker)


def path_of(app, item):
    with app.app_context():
        return services.file_path(item)


def stored(app, item):
    with open(path_of(app, item), "rb") as handle:
        return handle.read()


# --- Uploads that work --------------------------------------------------------------------

@pytest.mark.parametrize("image_format, extension, content_type", [
    ("PNG", "png", "image/png"), ("JPEG", "jpg", "image/jpeg"), ("GIF", "gif", "image/gif"),
    ("WEBP", "webp", "image/webp")])
def test_each_format_is_stored_and_served(app, web, admin, public, image_format, extension, content_type):
    # The name says nothing true: the bytes decide.
    response = upload(web, ("picture.bin", image_bytes(image_format)))
    assert response.status_code == 302, response.get_data(as_text=True)
    item = MediaItem.get()
    assert (item.extension, item.content_type, item.width, item.height) == (extension, content_type, 40, 30)
    assert item.name == "picture.bin" and item.uploaded_by_id == admin.id
    assert item.bytes == len(stored(app, item)) and item.path == f"/m/{item.key}.{extension}"
    assert len(item.key) >= 20
    served = public.get(item.path)
    assert served.status_code == 200 and served.mimetype == content_type
    assert Image.open(io.BytesIO(served.data)).format == image_format


def test_a_wide_image_is_resized_to_1200_pixels_keeping_its_shape(app, web, admin):
    assert upload(web, ("banner.jpg", image_bytes("JPEG", size=(3000, 1000)))).status_code == 302
    item = MediaItem.get()
    assert (item.width, item.height) == (1200, 400)
    assert Image.open(io.BytesIO(stored(app, item))).size == (1200, 400)


def test_a_large_photo_ends_1200_pixels_wide_whichever_way_up(app, web, admin):
    exif = Image.Exif()
    exif[0x0112] = 8  # turned 90° counter-clockwise to view
    photo = image_bytes("JPEG", size=(4800, 3600), exif=exif.tobytes())
    assert upload(web, ("portrait.jpg", photo)).status_code == 302
    item = MediaItem.get()
    assert (item.width, item.height) == (1200, 1600)
    assert Image.open(io.BytesIO(stored(app, item))).size == (1200, 1600)


def test_exif_is_stripped_and_its_orientation_applied_first(app, web, admin):
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turned 90° clockwise to view
    exif[0x010F] = "Camera Maker"
    exif[0x8825] = {2: (48.0, 51.0, 24.0)}  # GPS latitude
    photo = image_bytes("JPEG", size=(80, 40), exif=exif.tobytes())
    assert b"Camera Maker" in photo and Image.open(io.BytesIO(photo)).getexif()
    assert upload(web, ("holiday.jpg", photo)).status_code == 302
    item = MediaItem.get()
    kept = stored(app, item)
    assert b"Camera Maker" not in kept and b"Exif" not in kept
    reopened = Image.open(io.BytesIO(kept))
    assert not reopened.getexif() and "exif" not in reopened.info
    assert (item.width, item.height) == reopened.size == (40, 80)  # upright, as the camera meant


def test_png_text_and_exif_are_stripped(app, web, admin):
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "secret location")
    exif = Image.Exif()
    exif[0x010F] = "Camera Maker"
    assert upload(web, ("shot.png", image_bytes("PNG", pnginfo=info, exif=exif.tobytes()))).status_code == 302
    kept = stored(app, MediaItem.get())
    assert b"secret location" not in kept and b"Camera Maker" not in kept


def test_an_animated_gif_keeps_its_frames(app, web, admin):
    assert upload(web, ("wave.gif", animated_gif(frames=3))).status_code == 302
    reopened = Image.open(io.BytesIO(stored(app, MediaItem.get())))
    assert reopened.format == "GIF" and reopened.n_frames == 3


def test_the_same_file_twice_is_one_item(app, web, admin):
    content = image_bytes("PNG")
    assert upload(web, ("logo.png", content)).status_code == 302
    response = upload(web, ("logo-again.png", content))
    assert response.status_code == 302
    assert MediaItem.select().count() == 1
    item = MediaItem.get()
    assert item.name == "logo.png" and item.sha256 == hashlib.sha256(content).hexdigest()
    page = web.get("/media/", follow_redirects=True)
    assert "Already in the library: “logo-again.png”" in page.get_data(as_text=True)
    assert len(os.listdir(os.path.dirname(path_of(app, item)))) == 1


def test_a_racing_upload_of_the_same_file_finds_the_stored_item(app, admin, monkeypatch):
    content = image_bytes("PNG")
    with app.app_context():
        team = Team.get()
        first, added = services.upload(team, admin, "one.png", io.BytesIO(content))
        os.remove(services.file_path(first))  # the other request sees no usable item ...
        MediaItem.update(sha256="elsewhere").where(MediaItem.id == first.id).execute()
        original = MediaItem.get_or_none

        def late_arrival(*where):  # ... and a second request stores the same file just before this one
            found = original(*where)
            MediaItem.update(sha256=hashlib.sha256(content).hexdigest()).where(MediaItem.id == first.id).execute()
            return found
        monkeypatch.setattr(MediaItem, "get_or_none", late_arrival)
        item, added_again = services.upload(team, admin, "two.png", io.BytesIO(content))
        monkeypatch.undo()
        assert added and not added_again and item.id == first.id
        assert MediaItem.select().count() == 1
        assert os.listdir(os.path.dirname(services.file_path(first))) == []  # the loser's file is gone


def test_several_files_at_once_and_one_refusal_names_its_file(app, web, admin):
    response = upload(web, ("a.png", image_bytes("PNG")), ("notes.png", b"just some text, not an image"),
                      ("b.gif", image_bytes("GIF")))
    assert response.status_code == 422
    page = soup(response)
    assert "“notes.png” is not a PNG, JPEG, GIF or WebP image" in page.select_one("#e-files").get_text()
    assert sorted(item.name for item in MediaItem.select()) == ["a.png", "b.gif"]


# --- Refusals ---------------------------------------------------------------------

@pytest.mark.parametrize("name, content, words", [
    ("notes.png", b"hello, this is a text file", "is not a PNG, JPEG, GIF or WebP image"),
    ("page.png", b"<!doctype html><html><script>alert(1)</script></html>", "is not a PNG, JPEG, GIF or WebP image"),
    ("logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
     "is not a PNG, JPEG, GIF or WebP image"),
    ("bomb.png", png_declaring(100_000, 100_000), "is too large an image"),
    ("big.png", png_declaring(8_000, 6_000), "is too large an image"),  # 48 MP: over the limit, under Pillow's error
    ("empty.png", b"", "is empty"),
])
def test_refusals_say_why_and_store_nothing(app, web, admin, name, content, words):
    response = upload(web, (name, content))
    assert response.status_code == 422
    message = soup(response).select_one("#e-files").get_text()
    assert words in message
    assert f"“{name}”" in message
    assert MediaItem.select().count() == 0
    folder = os.path.join(app.config["MEDIA_DIR"], str(Team.get().id))
    assert not os.path.exists(folder) or os.listdir(folder) == []


def test_a_truncated_jpeg_is_refused(app, web, admin):
    whole = image_bytes("JPEG", size=(400, 300))
    response = upload(web, ("cut.jpg", whole[:len(whole) // 2]))
    assert response.status_code == 422
    assert "“cut.jpg” looks like an image but cannot be read" in soup(response).select_one("#e-files").get_text()
    assert MediaItem.select().count() == 0


def test_a_file_over_the_size_limit_is_refused_with_its_name(app, web, admin):
    app.config["MEDIA_MAX_MB"] = 1
    noise = Image.frombytes("RGB", (700, 700), os.urandom(700 * 700 * 3))
    out = io.BytesIO()
    noise.save(out, format="PNG")
    assert len(out.getvalue()) > 1024 * 1024
    response = upload(web, ("noise.png", out.getvalue()))
    assert response.status_code == 422
    assert "“noise.png” is larger than 1 MB" in soup(response).select_one("#e-files").get_text()
    assert MediaItem.select().count() == 0


def test_a_body_over_the_upload_limit_is_refused_before_it_is_read(app, web, admin, monkeypatch):
    assert media_views.UPLOAD_BODY_LIMIT > media_views.MAX_FILES * app.config["MEDIA_MAX_MB"] * 1024 * 1024
    monkeypatch.setattr(app.view_functions["media.upload"], "upload_limit", 1024 * 1024)
    content = b"x" * (1024 * 1024 + 1)
    response = upload(web, ("huge.png", content))
    assert response.status_code == 413
    assert "larger than one upload takes" in response.get_data(as_text=True)
    assert MediaItem.select().count() == 0


# --- Roles and teams ----------------------------------------------------------------

def test_a_guest_sees_the_library_but_cannot_upload_or_delete(app, web, admin):
    upload(web, ("logo.png", image_bytes("PNG")))
    item = MediaItem.get()
    _, guest = make_member(app, Team.get(), "guest")
    page = soup(guest.get("/media/"))
    assert page.select_one(f"[data-media='{item.id}'] img")["src"] == item.path
    assert page.select_one("#media-upload-form") is None and not page.select("button.danger")
    assert upload(guest, ("other.png", image_bytes("GIF"))).status_code == 403
    assert guest.post(f"/media/{item.id}/delete").status_code == 403
    assert MediaItem.select().count() == 1 and os.path.exists(path_of(app, item))


def test_another_teams_image_cannot_be_deleted(app, web, admin):
    upload(web, ("logo.png", image_bytes("PNG")))
    item = MediaItem.get()
    other_team = Team.create(name="Other")
    _, outsider = make_member(app, other_team, "admin", email="outsider@example.com")
    outsider.post("/teams/switch", {"team_id": other_team.id})
    assert outsider.post(f"/media/{item.id}/delete").status_code == 404
    assert MediaItem.get_or_none(MediaItem.id == item.id) is not None and os.path.exists(path_of(app, item))
    assert "logo.png" not in outsider.get("/media/").get_data(as_text=True)


def test_delete_removes_the_item_and_its_file(app, web, admin, public):
    upload(web, ("logo.png", image_bytes("PNG")))
    item = MediaItem.get()
    page = soup(web.get("/media/"))
    assert "broken image" in page.select_one(f"[data-media='{item.id}'] button.danger")["data-confirm"]
    assert web.post(f"/media/{item.id}/delete").status_code == 302
    assert MediaItem.select().count() == 0 and not os.path.exists(path_of(app, item))
    assert public.get(item.path).status_code == 404


# --- The library page and the picker ------------------------------------------------------

def test_empty_library_says_what_to_do(app, web, admin):
    page = soup(web.get("/media/"))
    assert "No images yet" in page.select_one("#media-empty").get_text()
    assert page.select_one("label[for=f-files]") is not None


def test_search_by_name(app, web, admin):
    upload(web, ("Spring-Banner.png", image_bytes("PNG")), ("logo.gif", image_bytes("GIF")))
    page = soup(web.get("/media/?q=banner", headers={"HX-Request": "true"}))
    assert [p.get_text() for p in page.select(".media-name")] == ["Spring-Banner.png"]
    assert page.select_one("#media-library") is not None and page.select_one("html") is None
    nothing = soup(web.get("/media/?q=zebra"))
    assert "No image has “zebra” in its name" in nothing.select_one("#media-empty").get_text()


def test_a_long_library_shows_the_newest_and_says_how_to_find_the_rest(app, web, admin, monkeypatch):
    upload(web, ("first.png", image_bytes("PNG")), ("second.gif", image_bytes("GIF")))
    monkeypatch.setattr(services, "LIBRARY_LIMIT", 1)
    page = soup(web.get("/media/"))
    assert [p.get_text() for p in page.select(".media-name")] == ["second.gif"]
    assert "search by name to find the others" in page.select_one("#media-more").get_text()
    found = soup(web.get("/media/?q=first"))
    assert [p.get_text() for p in found.select(".media-name")] == ["first.png"] and not found.select("#media-more")


def test_picker_lists_images_with_the_targets_and_uploads_in_place(app, web, admin):
    upload(web, ("logo.png", image_bytes("PNG")))
    item = MediaItem.get()
    picker = soup(web.get("/media/picker?target_src=f-src&target_alt=f-alt", headers={"HX-Request": "true"}))
    root = picker.select_one("[data-media-picker]")
    assert (root["data-target-src"], root["data-target-alt"]) == ("f-src", "f-alt")
    choice = picker.select_one("[data-media-choose]")
    assert (choice["data-src"], choice["data-name"]) == (item.path, "logo")
    assert picker.select_one("script")["src"].endswith("/static/media.js")
    # An id that is not a plain id is not written into the page.
    hostile = soup(web.get('/media/picker?target_src=x"><img src=x onerror=alert(1)>'))
    assert hostile.select_one("[data-media-picker]")["data-target-src"] == ""
    added = upload(web, ("banner.webp", image_bytes("WEBP")), picker=True, target_src="f-src", target_alt="f-alt")
    assert added.status_code == 200
    page = soup(added)
    assert page.select_one("[data-media-picker]")["data-target-src"] == "f-src"
    assert len(page.select("[data-media-choose]")) == 2


def test_picker_upload_refusal_stays_in_the_picker(app, web, admin):
    response = upload(web, ("notes.png", b"text"), picker=True, target_src="f-src")
    assert response.status_code == 422
    page = soup(response)
    assert page.select_one("[data-media-picker]") is not None
    assert "“notes.png” is not a PNG" in page.select_one("#e-media-picker-f-src-files").get_text()


# --- The public file ------------------------------------------------------------------------

def test_public_file_headers(app, web, admin, public):
    upload(web, ("logo.png", image_bytes("PNG")))
    item = MediaItem.get()
    response = public.get(item.path)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "sandbox" in csp and "script-src" not in csp
    assert "Set-Cookie" not in response.headers
    etag = response.headers["ETag"]
    assert public.get(item.path, headers={"If-None-Match": etag}).status_code == 304


def test_unknown_keys_and_wrong_extensions_are_not_found(app, web, admin, public):
    upload(web, ("logo.png", image_bytes("PNG")))
    item = MediaItem.get()
    assert public.get(f"/m/{item.key}.gif").status_code == 404
    assert public.get(f"/m/{item.key}").status_code == 404
    assert public.get("/m/AAAAAAAAAAAAAAAAAAAAAAAA.png").status_code == 404
    assert public.get("/m/..%2Floft.db").status_code == 404


# --- Absolute addresses in email -----------------------------------------------------------------

def test_media_paths_get_the_base_url_and_nothing_else_does(ctx):
    markup = ('<img src="/m/abc.png" alt=""><a href="/m/abc.png">x</a><img src="https://cdn.example.com/m/a.png">'
              '<a href="/mine">y</a><p>/m/abc.png</p>')
    result = absolute_media_urls(markup, "https://news.example.com/")
    assert result == ('<img src="https://news.example.com/m/abc.png" alt=""><a href="https://news.example.com/m/abc.png">'
                      'x</a><img src="https://cdn.example.com/m/a.png"><a href="/mine">y</a><p>/m/abc.png</p>')
    with ctx.test_request_context():
        assert 'src="http://loft.test/m/abc.png"' in absolute_media_urls('<img src="/m/abc.png">')


def test_preview_uses_the_current_base_url(app, web, admin):
    with app.app_context():
        campaign = Campaign.create(team=Team.get(), name="Spring", subject="Hello", kind="html",
                                   body='<p>Hi</p><img src="/m/key123.png" alt="Logo" width="200">')
        _, html, _ = prepare_module.preview(campaign, None)
        assert 'src="http://loft.test/m/key123.png"' in html
        save_settings({"base_url": "https://mail.acme.example"})
        _, html, _ = prepare_module.preview(campaign, None)
        assert 'src="https://mail.acme.example/m/key123.png"' in html and "loft.test" not in html


def test_an_image_block_keeps_the_path_and_its_email_gets_the_host(app, web, admin):
    upload(web, ("logo.png", image_bytes("PNG")))
    item = MediaItem.get()
    image = dict(new_block("image"), src=item.path, alt="Our logo", href="https://acme.example/")
    with app.app_context():
        campaign = Campaign.create(team=Team.get(), name="Blocks", subject="Hello")
        block_store.save(campaign, {"version": 1, "blocks": [image]})
        campaign = Campaign.get_by_id(campaign.id)
        assert campaign.kind == "blocks" and f'src="{item.path}"' in campaign.body
        save_settings({"base_url": "https://mail.acme.example"})
        _, html, text = prepare_module.preview(campaign, None)
    assert f'src="https://mail.acme.example{item.path}"' in html and 'alt="Our logo"' in html
    assert 'src="/m/' not in html


def test_a_send_after_a_base_url_change_uses_the_new_host(app, web, ready_team):
    team, news = ready_team
    upload(web, ("logo.png", image_bytes("PNG")))
    item = MediaItem.get()
    body = f'<p>Hi {{{{ contact.name }}}}</p><a href="https://acme.example/"><img src="{item.path}" alt="Logo"></a>'
    campaign = create_draft(web, news, body=body)
    assert Campaign.get_by_id(campaign.id).body.count(f'src="{item.path}"') == 1  # stored as the path
    with app.app_context():
        save_settings({"base_url": "https://mail.acme.example"})
    assert web.post(f"/campaigns/{campaign.id}/publish", {"when": "now"}).status_code == 302
    messages = list(CaughtMessage.select())
    assert len(messages) == 4
    for message in messages:
        parsed = email.message_from_bytes(bytes(message.raw), policy=email.policy.default)
        html = parsed.get_body(("html",)).get_content()
        assert f'src="https://mail.acme.example{item.path}"' in html and "loft.test" not in html
