"""The activation script in a real headless Chromium.

A small docs-like page is built with the shared html helpers (loader right
after ``<body>``, ``page_assets(lazy=True)``, ``lazy_placeholder``) and served
from a loopback static server; the lazy endpoint runs under werkzeug's
threaded server with the emulator upstream, whose emulated SDK renders the
workspace iframe.  Screenshots go to the artifacts folder.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from sphere_docs.core import html
from sphere_docs.core.naming import default_name
from sphere_docs.core.options import parse_options
from sphere_docs.services.emulator import DEMO_PROJECT_ID
from sphere_docs.services.endpoint import create_app

pytestmark = pytest.mark.browser

PAGE = "lessons/intro.md"
SECRET = "browser-test-signing-key-0123456789"
READY = "Workspace ready."
UNREACHABLE = "The workspace service could not be reached. Check your connection and try again."
LIGHT_BG = "rgb(246, 248, 250)"
DARK_BG = "rgb(22, 27, 34)"

PAGE_CSS = """
body{font:16px/1.6 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#fff;color:#1f2328}
main{max-width:52rem;margin:0 auto;padding:1.5rem 2rem}
h1{font-size:1.8rem;margin:.2em 0 .6em}
@media (prefers-color-scheme:dark){body{background:#0d1117;color:#e6edf3}}
[data-md-color-scheme=slate],[data-theme=dark] body,body[data-theme=dark]{background:#0d1117;color:#e6edf3}
[data-md-color-scheme=default],[data-theme=light] body,body[data-theme=light]{background:#fff;color:#1f2328}
"""


def embed(endpoint: str, index: int = 0, caption: str = "Try the exercise: make the tests pass.",
          **options: str) -> str:
    spec = parse_options(DEMO_PROJECT_ID, {"mode": "lazy", "height": "360px", **options}, caption=caption)
    return html.lazy_placeholder(spec.with_name(default_name(PAGE, spec, index)), page=PAGE,
                                 lazy_endpoint=endpoint + "/workspaces")


def page_html(emulator: Any, body: str, *, html_attrs: str = "", body_attrs: str = "", head: str = "") -> str:
    page = (
        f"<!doctype html><html lang=\"en\" {html_attrs}><head><meta charset=\"utf-8\">"
        f"<title>Lesson 1</title><link rel=\"icon\" href=\"data:,\"><style>{PAGE_CSS}</style>{head}</head>"
        f"<body {body_attrs}><main><h1>Lesson 1: your first program</h1>"
        "<p>Each reader gets a workspace of their own when they start it.</p>"
        f"{body}<p>Continue with lesson 2 when the tests pass.</p></main></body></html>"
    )
    return html.inject_after_body(page, html.loader_snippet(emulator.host, False) + html.page_assets(lazy=True))


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Site:
    root: Path
    url: str
    server: http.server.ThreadingHTTPServer

    def write(self, name: str, text: str) -> str:
        (self.root / name).write_text(text, encoding="utf-8")
        return f"{self.url}/{name}"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    root = tmp_path / "site"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield Site(root, f"http://127.0.0.1:{server.server_address[1]}", server)
    server.shutdown()
    server.server_close()


@dataclass
class LazyEndpoint:
    """The endpoint on a fixed loopback port, so it can be stopped and started again."""

    app: Any
    port: int = 0
    server: Any = None
    thread: threading.Thread | None = None
    url: str = ""
    log: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture
def make_endpoint(emulator: Any, site: Site) -> Iterator[Any]:
    made: list[LazyEndpoint] = []

    def make(**overrides: Any) -> LazyEndpoint:
        config = {"api": emulator.url, "allow_projects": [DEMO_PROJECT_ID], "allow_origins": [site.url],
                  "secret": SECRET, "retries": 0, **overrides}
        ep = LazyEndpoint(create_app(config))
        ep.start()
        made.append(ep)
        return ep

    yield make
    for ep in made:
        ep.stop()
        ep.app.close()


@pytest.fixture
def endpoint(make_endpoint: Any) -> LazyEndpoint:
    return make_endpoint()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1000, "height": 760})
    yield ctx
    ctx.close()


def open_page(ctx: Any, url: str) -> tuple[Any, list[str]]:
    page = ctx.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    return page, errors


def status(page: Any, n: int = 0) -> Any:
    return page.locator(".sphere-workspace__status").nth(n)


def wait_ready(page: Any, n: int = 0) -> str:
    """Wait for the n-th embed's iframe; return its workspace id."""
    page.wait_for_function(
        "n => { const b = document.querySelectorAll('[data-sphere-lazy]')[n];"
        " return b && b.getAttribute('data-sphere-state') === 'ready'; }", arg=n)
    frame = page.locator(".se-workspace").nth(n)
    frame.locator("iframe").wait_for(state="visible")
    page.wait_for_function(
        "n => document.querySelectorAll('.se-workspace')[n].getAttribute('data-se-state') === 'ready'", arg=n)
    assert status(page, n).text_content() == READY
    return frame.get_attribute("data-workspace")


def test_click_starts_a_workspace_and_a_reload_gets_the_same_one(
        context: Any, site: Site, endpoint: LazyEndpoint, emulator: Any, artifacts_dir: Path) -> None:
    url = site.write("index.html", page_html(emulator, embed(endpoint.url)))
    page, errors = open_page(context, url)
    button = page.get_by_role("button", name="Start workspace")
    assert page.locator(".se-workspace").is_hidden()
    assert emulator.count("POST /workspaces") == 0  # nothing happens before the click
    page.screenshot(path=str(artifacts_dir / "lazy-light-placeholder.png"), full_page=True)

    emulator.set_faults(latency=0.6, routes=["POST /workspaces"])  # slow enough to see "starting"
    button.click()
    page.wait_for_function("document.querySelector('[data-sphere-lazy]').dataset.sphereState === 'starting'")
    assert status(page).text_content() == "Starting your workspace\u2026"
    assert button.get_attribute("aria-disabled") == "true"
    page.screenshot(path=str(artifacts_dir / "lazy-light-starting.png"), full_page=True)
    page.evaluate("document.querySelector('.sphere-workspace__start').click()")  # ignored while starting
    workspace_id = wait_ready(page)
    emulator.set_faults()
    assert emulator.count("POST /workspaces") == 1
    frame = page.locator(".se-workspace")
    assert frame.get_attribute("data-workspace-token")
    assert workspace_id in frame.locator("iframe").get_attribute("src")
    assert page.locator(".sphere-workspace__placeholder").bounding_box()["height"] <= 1  # only for screen readers
    page.screenshot(path=str(artifacts_dir / "lazy-light-ready.png"), full_page=True)

    page.reload()
    page.get_by_role("button", name="Start workspace").click()
    assert wait_ready(page) == workspace_id
    assert emulator.count("POST /workspaces") == 1
    assert emulator.count("GET /workspaces/{id}") == 1  # the endpoint checked the claimed workspace
    assert errors == []


def test_endpoint_down_then_back(context: Any, site: Site, endpoint: LazyEndpoint, emulator: Any,
                                 artifacts_dir: Path) -> None:
    url = site.write("index.html", page_html(emulator, embed(endpoint.url)))
    page, _errors = open_page(context, url)
    endpoint.stop()
    page.get_by_role("button", name="Start workspace").click()
    page.wait_for_function("document.querySelector('[data-sphere-lazy]').dataset.sphereState === 'failed'")
    assert status(page).text_content() == UNREACHABLE
    retry = page.get_by_role("button", name="Try again")
    assert retry.is_visible()
    page.screenshot(path=str(artifacts_dir / "lazy-light-failed.png"), full_page=True)
    endpoint.start()  # same port
    retry.click()
    assert len(wait_ready(page)) == 32


def test_rate_limit_wait_is_readable(context: Any, browser: Any, site: Site, make_endpoint: Any,
                                     emulator: Any, artifacts_dir: Path) -> None:
    ep = make_endpoint(rate="1/600")
    url = site.write("index.html", page_html(emulator, embed(ep.url)))
    page, _ = open_page(context, url)
    page.get_by_role("button", name="Start workspace").click()
    wait_ready(page)
    other = browser.new_context()  # another reader on the same network, with no claim
    try:
        page2, _ = open_page(other, url)
        page2.get_by_role("button", name="Start workspace").click()
        page2.wait_for_function("document.querySelector('[data-sphere-lazy]').dataset.sphereState === 'failed'")
        assert status(page2).text_content() == (
            "You have started several workspaces in a short time. Try again in 10 minutes.")
        page2.screenshot(path=str(artifacts_dir / "lazy-light-rate-limited.png"), full_page=True)
    finally:
        other.close()


def test_upstream_failure_message_and_retry(context: Any, site: Site, endpoint: LazyEndpoint,
                                            emulator: Any) -> None:
    url = site.write("index.html", page_html(emulator, embed(endpoint.url)))
    page, _ = open_page(context, url)
    emulator.set_faults(sequence=[429], retry_after=45, routes=["POST /workspaces"])
    page.get_by_role("button", name="Start workspace").click()
    page.wait_for_function("document.querySelector('[data-sphere-lazy]').dataset.sphereState === 'failed'")
    assert status(page).text_content() == "The workspace service is busy right now. Try again in 45 seconds."
    page.get_by_role("button", name="Try again").click()
    wait_ready(page)


def test_an_api_429_of_one_second_is_not_retried_by_the_page(context: Any, site: Site, endpoint: LazyEndpoint,
                                                             emulator: Any) -> None:
    """Only the endpoint's own ``busy`` is retried by the page: the API's 429 (like the rate and
    budget 429s) waits for the reader; and one second is "1 second"."""
    url = site.write("index.html", page_html(emulator, embed(endpoint.url)))
    page, _ = open_page(context, url)
    emulator.set_faults(sequence=[429], retry_after=1, routes=["POST /workspaces"])
    page.get_by_role("button", name="Start workspace").click()
    page.wait_for_function("document.querySelector('[data-sphere-lazy]').dataset.sphereState === 'failed'")
    assert status(page).text_content() == "The workspace service is busy right now. Try again in 1 second."
    page.wait_for_timeout(2500)  # longer than the wait plus the page's jitter: nothing is sent meanwhile
    assert emulator.count("POST /workspaces") == 1
    assert page.locator("[data-sphere-lazy]").get_attribute("data-sphere-state") == "failed"


BUSY = "Starting your workspace\u2026 (busy, retrying)"


def test_busy_is_retried_by_the_page_itself(context: Any, site: Site, make_endpoint: Any, emulator: Any,
                                           artifacts_dir: Path) -> None:
    """Two embeds start at once against an endpoint that lets one create wait on a slow API
    (``inflight=1``): the second is answered 429 busy, says so calmly, retries after
    Retry-After by itself and gets its workspace, without a click."""
    ep = make_endpoint(inflight=1)
    emulator.set_faults(latency=1.5, routes=["POST /workspaces"])
    body = embed(ep.url, 0, launch="load") + embed(ep.url, 1, caption="The second exercise.", launch="load")
    url = site.write("index.html", page_html(emulator, body))
    answers: list[tuple[int, str]] = []
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "429" not in m.text else None)
    page.on("response", lambda r: answers.append((r.status, r.headers.get("retry-after", "")))
            if r.url == ep.url + "/workspaces" and r.request.method == "POST" else None)
    page.goto(url)
    # one of them is told busy and keeps starting, with the calm status, the button still disabled
    page.wait_for_function(
        "t => [...document.querySelectorAll('.sphere-workspace__status')].some(s => s.textContent === t)", arg=BUSY)
    busy = next(n for n in (0, 1) if status(page, n).text_content() == BUSY)
    box = page.locator("[data-sphere-lazy]").nth(busy)
    assert box.get_attribute("data-sphere-state") == "starting"
    assert box.locator(".sphere-workspace__start").get_attribute("aria-disabled") == "true"
    page.screenshot(path=str(artifacts_dir / "lazy-light-busy-retrying.png"), full_page=True)
    first, second = wait_ready(page, 0), wait_ready(page, 1)
    assert first != second
    assert (429, "1") in answers and answers.count((200, "")) == 2
    assert emulator.count("POST /workspaces") == 2  # a busy answer never reached the API
    assert errors == []


def test_a_stale_claim_is_dropped(context: Any, site: Site, endpoint: LazyEndpoint, emulator: Any) -> None:
    url = site.write("index.html", page_html(emulator, embed(endpoint.url)))
    page, _ = open_page(context, url)
    key = f"sphere-docs:{DEMO_PROJECT_ID}:{PAGE}:{default_name(PAGE, parse_options(DEMO_PROJECT_ID, {'mode': 'lazy'}))}"
    forged = "v1." + "a" * 32 + ".9999999999." + "A" * 43
    page.evaluate("([k, v]) => localStorage.setItem(k, v)", [key, forged])
    page.get_by_role("button", name="Start workspace").click()
    wait_ready(page)
    stored = page.evaluate("k => localStorage.getItem(k)", key)
    assert stored != forged and stored.startswith("v1.")
    assert emulator.count("POST /workspaces") == 1


def test_keyboard_activation(context: Any, site: Site, endpoint: LazyEndpoint, emulator: Any,
                             artifacts_dir: Path) -> None:
    url = site.write("index.html", page_html(emulator, embed(endpoint.url)))
    page, _ = open_page(context, url)
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.className")
    assert focused == "sphere-workspace__start"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"  # a visible focus ring
    page.screenshot(path=str(artifacts_dir / "lazy-light-focus.png"), full_page=True)
    page.keyboard.press("Enter")
    wait_ready(page)
    # the button is gone: focus moved to the workspace, not lost to <body>
    assert page.evaluate("document.activeElement.classList.contains('se-workspace')")


def test_space_key_and_launch_modes(context: Any, site: Site, endpoint: LazyEndpoint, emulator: Any) -> None:
    filler = "<div style='height:1800px'>Reading…</div>"
    body = embed(endpoint.url, 0, launch="load") + filler + embed(endpoint.url, 1, launch="visible")
    url = site.write("index.html", page_html(emulator, body))
    page, errors = open_page(context, url)
    wait_ready(page, 0)  # launch: load
    assert emulator.count("POST /workspaces") == 1
    assert page.locator("[data-sphere-lazy]").nth(1).get_attribute("data-sphere-state") is None
    page.locator(".sphere-workspace__start").nth(1).scroll_into_view_if_needed()
    wait_ready(page, 1)  # launch: visible
    assert emulator.count("POST /workspaces") == 2
    assert errors == []


THEMES = [
    # (name, color_scheme, html attrs, body attrs, expected placeholder background)
    ("os-dark", "dark", "", "", DARK_BG),
    ("os-light", "light", "", "", LIGHT_BG),
    ("material-slate", "light", "", 'data-md-color-scheme="slate"', DARK_BG),
    ("material-default-on-dark-os", "dark", "", 'data-md-color-scheme="default"', LIGHT_BG),
    ("furo-dark", "light", "", 'data-theme="dark"', DARK_BG),
    ("furo-auto-dark-os", "dark", "", 'data-theme="auto"', DARK_BG),
    ("furo-light-on-dark-os", "dark", "", 'data-theme="light"', LIGHT_BG),
    ("pydata-dark", "light", 'data-theme="dark"', "", DARK_BG),
]


@pytest.mark.parametrize(("name", "scheme", "html_attrs", "body_attrs", "background"), THEMES,
                         ids=[t[0] for t in THEMES])
def test_light_and_dark(browser: Any, site: Site, endpoint: LazyEndpoint, emulator: Any, artifacts_dir: Path,
                        name: str, scheme: str, html_attrs: str, body_attrs: str, background: str) -> None:
    unavailable = html.unavailable_placeholder(
        parse_options(DEMO_PROJECT_ID, {}, caption="A build-mode embed whose workspace failed.")
        .with_name("ws-broken"), "The workspace could not be created at build time.")
    body = embed(endpoint.url) + unavailable
    url = site.write(f"{name}.html", page_html(emulator, body, html_attrs=html_attrs, body_attrs=body_attrs))
    ctx = browser.new_context(viewport={"width": 1000, "height": 760}, color_scheme=scheme)
    try:
        page, errors = open_page(ctx, url)
        placeholder = page.locator(".sphere-workspace__placeholder")
        assert placeholder.evaluate("e => getComputedStyle(e).backgroundColor") == background
        note = page.locator(".sphere-workspace--unavailable")
        assert note.evaluate("e => getComputedStyle(e).backgroundColor") == background
        page.screenshot(path=str(artifacts_dir / f"lazy-{name}-placeholder.png"), full_page=True)
        if name in ("os-dark", "material-slate"):
            page.get_by_role("button", name="Start workspace").click()
            wait_ready(page)
            page.screenshot(path=str(artifacts_dir / f"lazy-{name}-ready.png"), full_page=True)
        assert errors == []
    finally:
        ctx.close()


def test_spa_navigation_with_a_mutation_observer(context: Any, site: Site, endpoint: LazyEndpoint,
                                                 emulator: Any) -> None:
    url = site.write("index.html", page_html(emulator, embed(endpoint.url, 0, launch="load")))
    page, errors = open_page(context, url)
    first = wait_ready(page)
    page.evaluate("window.oldBox = document.querySelector('[data-sphere-lazy]')")
    # what an SPA router does: swap the content for the next page's
    page.evaluate("html => { document.querySelector('main').innerHTML = html; }",
                  embed(endpoint.url, 1, caption="Lesson 2", launch="load"))
    second = wait_ready(page)
    assert second != first
    assert page.evaluate("window.oldBox.sdWs.destroyed") is True  # the old SDK workspace was destroyed
    assert page.evaluate("window.oldBox.querySelector('.se-workspace').innerHTML") == ""
    assert errors == []


MATERIAL_DOCUMENT = """<script>
// a stand-in for Material's document$ (an RxJS Subject): replays the current page, then each navigation
window.document$ = {fns: [], subscribe(fn) { this.fns.push(fn); fn(); }, next() { this.fns.forEach(f => f()); }};
</script>"""


def test_spa_navigation_with_materials_document_observable(context: Any, site: Site, endpoint: LazyEndpoint,
                                                           emulator: Any) -> None:
    body = embed(endpoint.url, 0, launch="load") + MATERIAL_DOCUMENT
    url = site.write("index.html", page_html(emulator, body))
    page, errors = open_page(context, url)
    first = wait_ready(page)
    page.evaluate("window.oldBox = document.querySelector('[data-sphere-lazy]')")
    page.evaluate("html => { document.querySelector('main').innerHTML = html; document$.next(); }",
                  embed(endpoint.url, 1, caption="Lesson 2"))
    page.get_by_role("button", name="Start workspace").click()
    assert wait_ready(page) != first
    assert page.evaluate("window.oldBox.sdWs.destroyed") is True
    assert errors == []


def test_script_inlined_twice_is_harmless(context: Any, site: Site, endpoint: LazyEndpoint, emulator: Any) -> None:
    body = embed(endpoint.url) + html.page_assets(lazy=True)
    url = site.write("index.html", page_html(emulator, body))
    page, errors = open_page(context, url)
    page.get_by_role("button", name="Start workspace").click()
    wait_ready(page)
    assert emulator.count("POST /workspaces") == 1
    assert errors == []
