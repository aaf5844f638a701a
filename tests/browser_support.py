"""Real-browser test support: Loft served over real HTTP, driven by Debian's headless Chromium.

Its fixtures (browser, live_server, page) are registered by tests/conftest.py (pytest_plugins);
a test module imports only the helpers it calls (sign_up_admin, sign_out, PHONE, ...).

`live_server` serves the per-test `app` (tests/conftest.py: a fresh, migrated
SQLite file) with werkzeug on a free loopback port, in a thread of this
process, so huey's immediate mode and the `catcher` fixture apply as usual.
`page` is a fresh browser context (its own cookies) at the phone size unless
the test resizes it. Playwright drives /usr/bin/chromium only: never a
downloaded browser build, so `playwright install` is never needed.

Where Chromium or Playwright is missing the fixtures skip with the reason,
written to the terminal as well as to pytest's skip summary.
"""
import asyncio
import os
import pathlib
import threading

import pytest
from werkzeug.serving import make_server

CHROMIUM = os.environ.get("LOFT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    # The test machine has no internet: without these Chromium keeps dialling out.
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
# Playwright's default waits are 30 s; a local server answers in milliseconds,
# so a failing test should fail fast rather than make the suite crawl.
TIMEOUT_MS = 10_000


def _skip_reason():
    """Why browser tests cannot run here, or None when they can."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return (f"Chromium is not installed at {CHROMIUM} "
                "(`make browser` installs the Debian package `chromium` where apt-get is available)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return f"Playwright cannot be imported ({exc}); `make test` installs it from requirements-dev.txt"
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return None
    return "Playwright's sync API cannot run inside a running asyncio event loop"


def _skip(request, reason):
    """Skip, and say why on the terminal even under -q and output capture."""
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    if reporter and capture:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\nSkipping browser tests: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser(request):
    """One headless Chromium per test module; each test gets its own context."""
    reason = _skip_reason()
    if reason:
        _skip(request, reason)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        except Exception as exc:  # a broken install: say so instead of erroring every test
            _skip(request, f"Chromium at {CHROMIUM} did not start: {str(exc).splitlines()[0]}")
        yield chromium
        chromium.close()


class LiveServer:
    """The app on a real socket; `url('/path')` builds an absolute URL."""

    def __init__(self, app):
        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.base_url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="loft-live-server", daemon=True)

    def url(self, path="/"):
        return self.base_url + path

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def live_server(app):
    server = LiveServer(app).start()
    yield server
    server.stop()


ASSET_TYPES = {"stylesheet", "script", "image", "font"}


def _watch(page, problems, closing):
    """Collect what a person would never see but that means something is broken.

    `closing` is set once the test body has ended: closing the context aborts
    whatever HTMX request is still in flight (a preview that fires on load, say),
    and htmx logs that abort as an error although nothing went wrong.
    """
    page.on("pageerror", lambda error: problems.append(f"JavaScript error: {error}"))
    # htmx logs every request that ends without an answer as two console errors: "htmx:afterRequest"
    # and then why (sendError, timeout, sendAbort). An abort is no fault: a live preview with
    # hx-sync="this:replace" aborts its previous request when the person types on. So an afterRequest
    # waits for the line after it, and both go when that line says the request was aborted.
    held = []

    def on_console(message):
        # Chromium also logs every non-2xx response here; those are judged below, by URL.
        if closing.is_set():
            return
        if message.type != "error" or "the server responded with a status of" in message.text:
            return
        text = message.text
        if held and text.startswith("htmx:sendAbort"):
            held.clear()
            return
        problems.extend(f"console error: {line}" for line in held)
        held.clear()
        if text.startswith("htmx:afterRequest"):
            held.append(text)
        else:
            problems.append(f"console error: {text}")

    def on_response(response):
        kind = response.request.resource_type
        if kind in ASSET_TYPES and response.status >= 400:
            problems.append(f"{kind} {response.url} answered {response.status}")
        elif kind in ("xhr", "fetch") and response.status >= 500:
            problems.append(f"HTMX request {response.request.method} {response.url} answered {response.status}")

    page.on("console", on_console)
    page.on("response", on_response)
    return held


@pytest.fixture
def page(browser, live_server):
    """A fresh context (no cookies) at phone size.

    JavaScript errors (a CSP violation included), static files that fail to load
    and HTMX requests that end in a server error fail the test at teardown.
    """
    context = browser.new_context(viewport=PHONE, base_url=live_server.base_url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    problems = []
    closing = threading.Event()
    unexplained = _watch(page, problems, closing)
    yield page
    closing.set()
    context.close()
    problems.extend(f"console error: {line}" for line in unexplained)
    assert not problems, "\n".join(problems)


ADMIN = {"name": "Ada Lovelace", "email": "ada@example.com", "password": "correct horse battery",
         "team": "Analytical Engines"}


def sign_up_admin(page, admin=ADMIN):
    """Create the first administrator through the /setup page; ends on the dashboard."""
    page.goto("/")
    page.wait_for_url("**/setup")
    page.get_by_label("Your name").fill(admin["name"])
    page.get_by_label("Email address").fill(admin["email"])
    page.get_by_label("Password", exact=True).fill(admin["password"])
    page.get_by_label("Team name").fill(admin["team"])
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url("**/dashboard")
    return admin


def sign_in(page, email, password):
    """Sign in through /login with the mouse; waits for the page that follows."""
    page.goto("/login")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def sign_out(page):
    page.locator("footer").get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login*")


# axe-core, vendored for the tests only (never served): tests/vendor/axe-*.min.js with its licence header.
AXE = pathlib.Path(__file__).parent / "vendor" / "axe-4.14.1.min.js"
FAILING_IMPACTS = ("serious", "critical")


def axe_violations(page, impacts=FAILING_IMPACTS):
    """axe-core's violations of WCAG 2.1 A/AA (and best practice) on the page as it is now, of these impacts.

    The script is evaluated through the DevTools protocol, which the page's CSP does not govern, so the page
    under test keeps its real policy."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    results = page.evaluate("""() => axe.run(document, {
        runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]},
        resultTypes: ["violations"]})""")
    return [v for v in results["violations"] if v["impact"] in impacts]


def describe_violations(violations):
    lines = []
    for violation in violations:
        lines.append(f"[{violation['impact']}] {violation['id']}: {violation['help']} ({violation['helpUrl']})")
        for node in violation["nodes"][:5]:
            summary = " ".join(node.get("failureSummary", "").split())
            lines.append(f"    at {', '.join(map(str, node['target']))}: {node['html'][:160]}")
            if summary:
                lines.append(f"       {summary[:300]}")
        if len(violation["nodes"]) > 5:
            lines.append(f"    ... and {len(violation['nodes']) - 5} more")
    return "\n".join(lines)


def assert_accessible(page, impacts=FAILING_IMPACTS):
    """Fail with a readable list when axe-core finds serious or critical problems on the page."""
    violations = axe_violations(page, impacts)
    assert not violations, f"axe-core on {page.url} at {page.viewport_size}:\n" + describe_violations(violations)


_WIDER_THAN_THE_WINDOW = """() => {
    const width = window.innerWidth;
    return [...document.querySelectorAll('body *')]
        .filter(el => el.getBoundingClientRect().right > width + 1)
        .slice(0, 8)
        .map(el => `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}`
                   + ` (right edge ${Math.round(el.getBoundingClientRect().right)} px)`);
}"""


def assert_fits_the_screen(page, timeout_ms=5_000):
    """Nothing on the page runs off the side of the window (no sideways scroll on a phone).

    Waits for the layout to settle first: an iframe or image still loading can make a page briefly
    wider than it ends up. On failure it names the elements that stick out. (It polls with evaluate():
    wait_for_function() would poll a string through eval, which Loft's CSP refuses.)"""
    fits = "document.documentElement.scrollWidth <= window.innerWidth + 1"
    for _ in range(max(1, timeout_ms // 100)):
        if page.evaluate(fits):
            return
        page.wait_for_timeout(100)
    wide = page.evaluate("document.documentElement.scrollWidth")
    raise AssertionError(f"{page.url} is {wide} px wide at {page.viewport_size['width']} px; "
                         f"too wide: {page.evaluate(_WIDER_THAN_THE_WINDOW)}")


SCREENSHOTS = os.environ.get("LOFT_SCREENSHOTS")  # a folder: browser tests save pictures of the pages there


def screenshots(prefix, full_page=True):
    """shot(page, name): save `<prefix>-<name>.png` under LOFT_SCREENSHOTS when it is set, else do nothing.

    For looking at the pages a test walks through (at phone and desktop size) without adding a step to it."""
    def shot(page, name):
        if SCREENSHOTS:
            page.screenshot(path=os.path.join(SCREENSHOTS, f"{prefix}-{name}.png"), full_page=full_page,
                            caret="initial")  # hiding the caret injects a <style> the CSP refuses
    return shot
