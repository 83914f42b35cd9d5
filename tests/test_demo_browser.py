"""Both demo sites, built against the emulator, in a real Chromium.

One :class:`~sphere_docs.tools.demo.DemoServer` builds every demo site once
(MkDocs default and Material, Sphinx Furo, Alabaster and Read the Docs) in
build mode against its emulator, and serves them with the emulated SDK from
one loopback address.  For each theme, in one browser context:

* every build-mode embed of every page renders the emulator's workspace
  iframe, showing the workspace's project and "running";
* the full-screen toggle works where ``:features: fullscreen`` enabled it
  (the emulated SDK's button, then ``SE.workspace(id).exitFullScreen()``);
* two embeds on one page are independent (ids, iframes, SDK objects; one
  destroyed, the other still there);
* a page without embeds loads no SDK (no loader, no SDK script, no request);
* no console errors and no page errors, except a failed load of the
  third-party resources the theme itself references (listed exactly in
  :data:`THEME_RESOURCES`; requests leaving loopback are refused, as on a
  machine without internet).

Screenshots (light, and dark where the theme has both) go to ``test-artifacts/``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from sphere_docs.services.emulator import DEMO_PROJECTS
from sphere_docs.tools.demo import SITES, DemoServer, find_sources

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SLUGS = [site.slug for site in SITES]
#: Third-party resources the *themes* reference; the only requests allowed to fail.  The demo
#: configs turn them off (MkDocs `highlightjs: false`, Material `font: false`), so none are left.
THEME_RESOURCES: dict[str, set[str]] = {}
#: page errors that are the consequence of a failed theme resource: (theme, resource, error)
THEME_RESOURCE_ERRORS: set[tuple[str, str, str]] = set()
#: themes with a light and a dark scheme (following prefers-color-scheme)
DARK_THEMES = {"mkdocs-material": "Material", "sphinx": "Furo"}
#: the page of each site shown in the screenshots
SHOWCASE = {
    "mkdocs": "lessons/03-sizes-fullscreen/",
    "mkdocs-material": "lessons/04-two-workspaces/",
    "sphinx": "lessons/build-mode.html",
    "sphinx-alabaster": "lessons/build-mode.html",
    "sphinx-rtd": "index.html",
}
VIEWPORT = {"width": 1280, "height": 900}
WAIT_MS = 30_000  # bound for each wait in the browser (not a speed check)
BUILD_RE = re.compile(r'data-sphere-mode="build"')
WORKSPACE_RE = re.compile(r'data-workspace="([0-9a-f]{32})"')


@dataclass
class BuiltPage:
    url_path: str  #: under the site prefix, as a reader's link has it
    build_embeds: int
    has_loader: bool
    fullscreen: bool  #: an embed with the fullscreen feature


def built_pages(root: Path) -> list[BuiltPage]:
    pages = []
    for file in sorted(root.rglob("*.html")):
        rel = file.relative_to(root).as_posix()
        if rel.startswith(("_static/", "assets/", "search/")) or rel == "404.html":
            continue  # 404.html is served for missing pages, with root-relative links
        text = file.read_text(encoding="utf-8")
        url = rel[: -len("index.html")] if rel.endswith("/index.html") or rel == "index.html" else rel
        pages.append(BuiltPage(url, len(BUILD_RE.findall(text)), 'id="sphere-docs-loader"' in text,
                               'data-features="fullscreenmode"' in text))
    return pages


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    """Every demo site, built once in build mode against the emulator, served on loopback."""
    before = dict(os.environ)
    server = DemoServer(tmp_path_factory.mktemp("demo"), port=0)
    server.start()
    try:
        server.build(find_sources(), progress=lambda message: None)
        assert dict(os.environ) == before  # the demo settings were the builds' only
        yield server
    finally:
        server.stop()


@dataclass
class Tab:
    """One page of a theme's browser context, recording what goes wrong."""

    page: Any
    base: str
    errors: list[str] = field(default_factory=list)  #: console errors and page errors, unexplained
    theme_failures: set[str] = field(default_factory=set)  #: allowed theme resources that failed
    external: set[str] = field(default_factory=set)  #: requests that tried to leave loopback
    requests: list[str] = field(default_factory=list)
    visited: set[str] = field(default_factory=set)


@pytest.fixture(scope="module")
def tabs(browser: Any, demo: DemoServer) -> Iterator[dict[str, Tab]]:
    """One browser context (and page) per theme, made on first use."""
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    made: dict[str, Tab] = {}
    contexts: list[Any] = []

    def tab(slug: str) -> Tab:
        if slug in made:
            return made[slug]
        context = browser.new_context(viewport=VIEWPORT, color_scheme="light")
        contexts.append(context)
        loopback = f"{urlsplit(demo.base_url).scheme}://{demo.host}/"
        allowed = THEME_RESOURCES.get(slug, set())
        page = context.new_page()
        state = Tab(page, f"{demo.base_url}/{slug}/")

        def route(route: Any) -> None:
            url = route.request.url
            if url.startswith((loopback, "data:", "about:")):
                route.continue_()
            else:  # as on a machine without internet, and nothing leaves the loopback host
                state.external.add(url)
                route.abort("internetdisconnected")

        def console(message: Any) -> None:
            if message.type != "error":
                return
            source = (message.location or {}).get("url", "")
            if source == f"{demo.base_url}/favicon.ico":
                return  # the browser's own probe on a page with no icon (Playwright < 1.5x reports it)
            if source in allowed and message.text.startswith("Failed to load resource"):
                state.theme_failures.add(source)
            else:
                state.errors.append(f"{page.url}: console: {message.text} ({source})")

        def page_error(exc: Any) -> None:
            text = str(getattr(exc, "message", "") or exc)
            if any((slug, resource, text) in THEME_RESOURCE_ERRORS for resource in state.external):
                return
            state.errors.append(f"{page.url}: pageerror: {text}")

        context.route("**/*", route)
        page.on("console", console)
        page.on("pageerror", page_error)
        def request_failed(request: Any) -> None:
            # aborted by our own navigation (e.g. MkDocs' search index fetch) is no failure
            if request.url in state.external or request.failure == "net::ERR_ABORTED":
                return
            state.errors.append(f"{page.url}: request failed: {request.url} {request.failure}")

        page.on("requestfailed", request_failed)
        page.on("request", lambda request: state.requests.append(request.url))
        page.set_default_timeout(WAIT_MS)
        made[slug] = state
        return state

    yield tab  # type: ignore[misc]
    for context in contexts:
        context.close()


def visit(tab: Tab, url_path: str) -> None:
    tab.visited.add(url_path)
    tab.requests.clear()
    response = tab.page.goto(tab.base + url_path, wait_until="load")
    assert response is not None and response.status == 200, url_path


def wait_rendered(tab: Tab, demo: DemoServer, host: Any) -> str:
    """Wait until the SDK filled ``host`` with the workspace iframe; check what the frame shows."""
    from playwright.sync_api import expect

    workspace_id = host.get_attribute("data-workspace")
    known = demo.emulator.workspace(workspace_id)
    assert known is not None, f"the emulator does not know {workspace_id}"
    iframe = host.locator("iframe")
    expect(iframe).to_have_count(1)
    expect(host).to_have_attribute("data-se-state", "ready")
    src = iframe.get_attribute("src") or ""
    assert src.startswith(f"{demo.base_url}/workspace/{workspace_id}"), src
    token = host.get_attribute("data-workspace-token")
    if token:
        assert f"token={token}" in src
    frame = iframe.element_handle().content_frame()
    assert frame is not None
    expect(frame.locator("#project")).to_have_text(DEMO_PROJECTS[known["project"]["id"]])
    expect(frame.locator("#workspace-id")).to_have_text(workspace_id)
    expect(frame.locator("#state")).to_have_text("running")  # the page refreshes while starting
    return str(workspace_id)


@pytest.mark.parametrize("slug", SLUGS)
def test_every_build_embed_renders_the_workspace(slug: str, demo: DemoServer, tabs: Any) -> None:
    tab: Tab = tabs(slug)
    pages = [p for p in built_pages(demo.out_dir / slug) if p.build_embeds]
    assert pages, f"{slug} has no page with build-mode embeds"
    seen: set[str] = set()
    for built in pages:
        visit(tab, built.url_path)
        hosts = tab.page.locator('.sphere-workspace[data-sphere-mode="build"] .se-workspace[data-workspace]')
        assert hosts.count() == built.build_embeds, built.url_path
        for k in range(built.build_embeds):
            seen.add(wait_rendered(tab, demo, hosts.nth(k)))
        assert tab.page.locator("#sphere-engine-jssdk").count() == 1
        assert tab.page.evaluate("window.SE && window.SE.__emulator === true")
    assert len(seen) == sum(p.build_embeds for p in pages)  # one workspace per embed
    assert tab.errors == []


@pytest.mark.parametrize("slug", SLUGS)
def test_fullscreen_where_enabled(slug: str, demo: DemoServer, tabs: Any, artifacts_dir: Path) -> None:
    from playwright.sync_api import expect

    tab: Tab = tabs(slug)
    pages = [p for p in built_pages(demo.out_dir / slug) if p.build_embeds]
    toggled = 0
    for built in pages:
        if not built.fullscreen:
            continue
        visit(tab, built.url_path)
        hosts = tab.page.locator('.se-workspace[data-workspace][data-features="fullscreenmode"]')
        plain = tab.page.locator('.se-workspace[data-workspace]:not([data-features="fullscreenmode"])')
        for k in range(plain.count()):  # no toggle without the feature
            wait_rendered(tab, demo, plain.nth(k))
            assert plain.nth(k).locator(".se-emulator-fs-button").count() == 0
        for k in range(hosts.count()):
            host = hosts.nth(k)
            wait_rendered(tab, demo, host)
            data_id = host.get_attribute("data-id")
            button = host.locator(".se-emulator-fs-button")
            expect(button).to_have_attribute("aria-pressed", "false")
            button.click()  # a real click: the toggle must not be hidden under the theme's chrome
            expect(host).to_have_class(re.compile(r"\bse-emulator-fullscreen\b"))
            box = host.bounding_box()
            assert box is not None
            assert (round(box["x"]), round(box["y"]), round(box["width"]), round(box["height"])) == (
                0, 0, VIEWPORT["width"], VIEWPORT["height"])
            assert tab.page.evaluate("id => SE.workspace(id).fullScreen", data_id) is True
            if toggled == 0:
                tab.page.screenshot(path=str(artifacts_dir / f"demo-{slug}-fullscreen.png"))
            expect(button).to_have_attribute("aria-pressed", "true")
            assert tab.page.evaluate("id => SE.workspace(id).exitFullScreen()", data_id) is True
            expect(host).not_to_have_class(re.compile(r"\bse-emulator-fullscreen\b"))
            toggled += 1
    assert toggled, f"no fullscreen-enabled build embed in {slug}"
    assert tab.errors == []


@pytest.mark.parametrize("slug", SLUGS)
def test_two_embeds_on_one_page_are_independent(slug: str, demo: DemoServer, tabs: Any) -> None:
    from playwright.sync_api import expect

    tab: Tab = tabs(slug)
    built = next((p for p in built_pages(demo.out_dir / slug) if p.build_embeds >= 2), None)
    assert built is not None, f"{slug} has no page with two build-mode embeds"
    visit(tab, built.url_path)
    hosts = tab.page.locator(".se-workspace[data-workspace]")
    first, second = hosts.nth(0), hosts.nth(1)
    ids = [wait_rendered(tab, demo, first), wait_rendered(tab, demo, second)]
    assert ids[0] != ids[1]
    data_ids = [first.get_attribute("data-id"), second.get_attribute("data-id")]
    assert data_ids[0] != data_ids[1]
    assert first.locator("iframe").get_attribute("src") != second.locator("iframe").get_attribute("src")
    objects = tab.page.evaluate(
        "([a, b]) => [SE.workspace(a) !== SE.workspace(b), SE.workspace(a).workspaceId, "
        "SE.workspace(b).workspaceId]", data_ids)
    assert objects == [True, ids[0], ids[1]]
    tab.page.evaluate("id => SE.workspace(id).destroy()", data_ids[0])
    expect(first.locator("iframe")).to_have_count(0)
    expect(second.locator("iframe")).to_have_count(1)
    expect(second).to_have_attribute("data-se-state", "ready")
    assert tab.errors == []


@pytest.mark.parametrize("slug", SLUGS)
def test_pages_without_embeds_load_no_sdk(slug: str, demo: DemoServer, tabs: Any) -> None:
    tab: Tab = tabs(slug)
    pages = [p for p in built_pages(demo.out_dir / slug) if not p.has_loader]
    assert pages, f"{slug} has no page without embeds"
    for built in pages:
        assert built.build_embeds == 0
        visit(tab, built.url_path)
        assert tab.page.locator("#sphere-engine-jssdk").count() == 0, built.url_path
        assert tab.page.locator("#sphere-docs-loader").count() == 0, built.url_path
        assert tab.page.evaluate("typeof window.SE") == "undefined", built.url_path
        assert not [u for u in tab.requests if "/static/sdk/" in u], built.url_path
    assert tab.errors == []


@pytest.mark.parametrize("slug", SLUGS)
def test_screenshots_and_no_console_errors(slug: str, demo: DemoServer, tabs: Any,
                                           artifacts_dir: Path) -> None:
    """Runs last per theme: screenshots, then every page of the site for console errors."""
    tab: Tab = tabs(slug)
    page = tab.page
    schemes = ["light", "dark"] if slug in DARK_THEMES else ["light"]
    for scheme in schemes:
        page.emulate_media(color_scheme=scheme)
        visit(tab, SHOWCASE[slug])
        # Material and Furo remember the scheme of the first visit: forget it, as a new reader
        page.evaluate("localStorage.clear()")
        visit(tab, SHOWCASE[slug])
        hosts = page.locator(".se-workspace[data-workspace]")
        for k in range(hosts.count()):
            wait_rendered(tab, demo, hosts.nth(k))
        if slug == "mkdocs-material":
            expected = "slate" if scheme == "dark" else "default"
            assert page.evaluate("document.body.getAttribute('data-md-color-scheme')") == expected
        if slug == "sphinx":  # Furo follows the system scheme unless the reader picked one
            background = page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert (luminance(background) < 0.2) == (scheme == "dark"), background
        hosts.first.scroll_into_view_if_needed()
        page.evaluate("window.scrollBy(0, -120)")  # the caption above the embed, in view
        page.screenshot(path=str(artifacts_dir / f"demo-{slug}-{scheme}.png"))
    page.emulate_media(color_scheme="light")

    for built in built_pages(demo.out_dir / slug):  # what the other tests did not open
        if built.url_path not in tab.visited:
            visit(tab, built.url_path)
            page.wait_for_load_state("networkidle")
    assert tab.errors == []
    # only the theme's own resources ever try to leave loopback (the dark highlight.js
    # stylesheet of the MkDocs theme is a disabled <link>: never requested while light)
    assert tab.external <= THEME_RESOURCES.get(slug, set()), "requests that left loopback"
    assert tab.theme_failures <= tab.external


def luminance(css_rgb: str) -> float:
    r, g, b = (int(v) / 255 for v in re.findall(r"\d+", css_rgb)[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b
