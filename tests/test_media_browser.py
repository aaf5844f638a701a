"""The media library in a real headless Chromium: upload images from the library page at phone width and
see them listed, search, refuse a file that is not an image, and the picker filling a form's inputs (its
script loaded with the fragment under the strict CSP). Skips with the reason where Chromium is missing."""
import io

import pytest
from PIL import Image

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from browser_support import screenshots  # noqa: E402
from browser_support import assert_accessible  # noqa: E402
from browser_support import sign_up_admin  # noqa: E402


shot = screenshots("media")


def image_file(tmp_path, name, image_format, size=(1600, 800), colour=(20, 120, 200)):
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format=image_format)
    path = tmp_path / name
    path.write_bytes(out.getvalue())
    return str(path)


def test_upload_from_the_library_page_and_see_it_listed(page, tmp_path):
    sign_up_admin(page)
    page.goto("/media/")
    expect(page.locator("#media-empty")).to_contain_text("No images yet")
    shot(page, "empty")
    assert_accessible(page)

    page.get_by_label("Image files", exact=True).set_input_files([image_file(tmp_path, "spring-banner.jpg", "JPEG"),
                                                  image_file(tmp_path, "logo.png", "PNG", size=(300, 100))])
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url("**/media/")
    expect(page.locator(".flash-success")).to_contain_text("Uploaded “spring-banner.jpg” and “logo.png”")
    cards = page.locator(".media-card")
    expect(cards).to_have_count(2)
    banner = cards.filter(has_text="spring-banner.jpg")
    expect(banner.locator(".media-facts")).to_contain_text("1200 × 600 px")
    # The thumbnail is the public file, and it loads.
    assert banner.locator("img").evaluate("img => img.complete && img.naturalWidth") == 1200
    shot(page, "library")
    assert_accessible(page)

    page.get_by_label("Search by name").fill("banner")
    expect(cards).to_have_count(1)
    expect(cards.first).to_contain_text("spring-banner.jpg")

    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    page.get_by_label("Image files", exact=True).set_input_files(str(text))
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#e-files")).to_contain_text("“notes.png” is not a PNG, JPEG, GIF or WebP image")


def test_the_picker_fills_the_inputs_it_names(page, tmp_path):
    sign_up_admin(page)
    page.goto("/media/")
    page.get_by_label("Image files", exact=True).set_input_files(image_file(tmp_path, "team-photo.png", "PNG", size=(200, 100)))
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url("**/media/")

    # A form like the block editor's: two inputs, and a place the picker is loaded into with htmx.
    page.evaluate("""() => {
        const form = document.createElement('form');
        form.id = 'host-form';
        form.innerHTML = '<label for="img-src">Image</label><input id="img-src" name="src">' +
                         '<label for="img-alt">Alt text</label><input id="img-alt" name="alt">' +
                         '<div id="picker-slot"></div>';
        document.querySelector('main').prepend(form);
        window.changes = [];
        form.addEventListener('change', (event) => window.changes.push(event.target.id));
        htmx.ajax('GET', '/media/picker?target_src=img-src&target_alt=img-alt', {target: '#picker-slot'});
    }""")
    choice = page.locator("#picker-slot").get_by_role("button", name="team-photo.png")
    expect(choice).to_be_visible()
    # media.js came with the fragment. A function, not a bare expression: Playwright polls an expression
    # through eval, which the CSP refuses.
    page.wait_for_function("() => window.loftMediaPicker === true")
    choice.focus()
    page.keyboard.press("Enter")
    src = page.evaluate("document.getElementById('img-src').value")
    assert src.startswith("/m/") and src.endswith(".png")
    assert page.evaluate("document.getElementById('img-alt').value") == "team-photo"
    assert page.evaluate("window.changes") == ["img-src", "img-alt"]
    expect(choice).to_have_attribute("aria-pressed", "true")
    shot(page, "picker")
    assert_accessible(page)

    # Uploading inside the picker adds the image to it, in place, and the page stays where it was.
    slot = page.locator("#picker-slot")
    slot.get_by_label("Upload images").set_input_files(image_file(tmp_path, "new-arrival.gif", "GIF", size=(120, 90)))
    slot.get_by_role("button", name="Upload", exact=True).click()
    expect(slot.locator("[data-media-choose]")).to_have_count(2)
    slot.get_by_role("button", name="new-arrival.gif").click()
    assert page.evaluate("document.getElementById('img-src').value").endswith(".gif")
    assert page.evaluate("document.getElementById('img-alt').value") == "team-photo"  # the person's alt text stays
    assert page.url.endswith("/media/")
