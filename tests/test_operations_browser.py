"""The queue page and the worker-down banner in real headless Chromium: accessible (axe, serious and critical),
fitting a phone, and "Discard chosen" with the mouse."""
import pytest

expect = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed "
                             "(`make test` installs it from requirements-dev.txt)").expect

from browser_support import DESKTOP  # noqa: E402
from browser_support import PHONE  # noqa: E402
from browser_support import assert_accessible  # noqa: E402
from browser_support import assert_fits_the_screen  # noqa: E402
from browser_support import screenshots  # noqa: E402
from browser_support import sign_up_admin  # noqa: E402

from app.models import DeadLetter  # noqa: E402
from app.operations import deadletters  # noqa: E402
from app.operations import heartbeat  # noqa: E402
from app.operations import views as operations_views  # noqa: E402
from tasks import huey  # noqa: E402
from tasks import queue_for  # noqa: E402
from tests.operations_support import SECRET_ERROR  # noqa: E402
from tests.operations_support import declare  # noqa: E402

shot = screenshots("operations")


@pytest.mark.parametrize("size", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_the_queue_page_and_the_banner(app, page, queue_env, monkeypatch, size):
    queue = queue_for(queue_env["LOFT_QUEUE_URL"], queue_env["LOFT_HUEY_PATH"])
    flaky, _ = declare(queue)
    monkeypatch.setattr(operations_views, "queues", lambda: {"loft": queue})
    flaky("a", "b")
    with app.app_context():
        for n in range(2):
            deadletters.record_failure("loft", "tests.operations_support.operations.flaky", f"id-{n}",
                                       ConnectionError(SECRET_ERROR), 0,
                                       payload=queue.serialize_task(flaky.s("a", "b")), arguments="'a', 'b'")
        row = heartbeat.started("worker.example.test", 4242, "loft")
        heartbeat.beat(row, [{"name": "sending.send_campaign", "id": "x", "started_at": "2026-01-01T10:00:00"}])
    page.set_viewport_size(size)
    sign_up_admin(page)
    page.goto("/admin/queue")
    expect(page.get_by_role("heading", name="Dead letters")).to_be_visible()
    expect(page.locator("#worker-banner")).to_have_count(0)
    assert "hunter2" not in page.content()
    assert_accessible(page)
    assert_fits_the_screen(page)
    shot(page, f"queue-{size['width']}")

    page.get_by_label("Choose tests.operations_support.operations.flaky (id-0)").check()
    page.get_by_role("button", name="Discard chosen").click()
    expect(page.locator("#flashes")).to_contain_text("1 task discarded.")
    with app.app_context():
        assert [letter.task_id for letter in DeadLetter.select()] == ["id-1"]

    # The worker gone: the banner on every page, accessible too.
    huey.immediate = False
    app.config["WORKER_STALE_SECONDS"] = 0.5
    with app.app_context():
        heartbeat.WorkerHeartbeat.update(seen_at=heartbeat.utcnow() - heartbeat.datetime.timedelta(minutes=5)).execute()
    heartbeat.forget()
    page.goto("/dashboard")
    banner = page.get_by_role("alert").filter(has_text="Sending and imports are paused")
    expect(banner).to_be_visible()
    banner.get_by_text("How to start it").click()
    expect(banner).to_contain_text("huey_consumer wsgi.huey")
    assert_accessible(page)
    assert_fits_the_screen(page)
    shot(page, f"banner-{size['width']}")
