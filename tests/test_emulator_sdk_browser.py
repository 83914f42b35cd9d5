"""The emulated SDK in a real headless Chromium: the vendor loader, a workspace div, the iframe."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import SECRET_TOKEN

from sphere_docs.core.html import inject_after_body, loader_snippet, page_assets, workspace_div
from sphere_docs.core.options import WorkspaceSpec
from sphere_docs.services.emulator import DEMO_PROJECT_ID, EmulatorServer

pytestmark = pytest.mark.browser


class PageServer:
    """Serves in-memory HTML pages on a loopback port (a site origin other than the emulator's)."""

    def __init__(self) -> None:
        pages: dict[str, str] = {}
        self.pages = pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path.split("?")[0])
                data = (body or "not found").encode()
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add(self, path: str, html: str) -> str:
        self.pages[path] = html
        return self.url + path

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def site() -> Iterator[PageServer]:
    server = PageServer()
    yield server
    server.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    page = context.new_page()
    yield page
    context.close()


def create(emulator: EmulatorServer, **fields: str) -> dict[str, Any]:
    response = requests.post(emulator.url + "/api/v1/workspaces",
                             params={"access_token": SECRET_TOKEN},
                             data={"project_id": DEMO_PROJECT_ID, **fields}, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["workspace"]


def site_page(emulator: EmulatorServer, body: str, script: str = "") -> str:
    template = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Lesson</title></head>"
        "<body class='page'><main><h1>Lesson</h1>" + body + "</main>" + script + "</body></html>"
    )
    return inject_after_body(template, loader_snippet(emulator.host, False) + page_assets(lazy=False))


def test_loader_and_div_render_the_workspace_iframe(emulator: EmulatorServer, site: PageServer,
                                                    page: Any, artifacts_dir: Path):
    ws = create(emulator)
    spec = WorkspaceSpec(project_id=DEMO_PROJECT_ID, name="intro-1", height="520px",
                         features=("fullscreen",))
    ready_script = (
        "<script>window.seCalls = [];"
        "SE.ready(function () {"
        "  var w = SE.workspace('intro-1');"
        "  window.seSame = (w === SE.workspace('intro-1'));"
        "  window.seMissing = SE.workspace('no-such-div');"
        "  w.events.subscribe('fileContent', function (e) { window.seCalls.push(e); });"
        "  w.events.subscribe('loaded', function (e) { window.seLoaded = e; });"
        "  w.getFileContent('HELLO.md');"
        "});</script>"
    )
    url = site.add("/lesson.html", site_page(
        emulator, workspace_div(spec, ws["id"], ws["workspace_token"]), ready_script))
    page.goto(url)

    host = page.locator('[data-id="intro-1"]')
    frame_el = host.locator("iframe")
    frame_el.wait_for()
    frame = page.frame_locator('[data-id="intro-1"] iframe')
    assert frame.locator("#project").inner_text() == "EXAMPLE"
    assert frame.locator("#workspace-id").inner_text() == ws["id"]
    assert frame.locator("#state").get_attribute("data-state") in ("running", "starting")
    page.wait_for_function("window.seCalls.length === 1")
    call = page.evaluate("window.seCalls[0]")
    assert call["event"] == "fileContent" and call["data"]["path"] == "HELLO.md"
    assert page.evaluate("window.seSame") is True
    assert page.evaluate("window.seMissing") is None
    page.wait_for_function("document.querySelector('[data-id=\"intro-1\"]').dataset.seState === 'ready'")

    # the iframe fills the div (inside the div's border)
    sizes = host.evaluate("el => [el.clientWidth, el.clientHeight, el.offsetHeight,"
                          " el.querySelector('iframe').offsetWidth,"
                          " el.querySelector('iframe').offsetHeight]")
    width, height, outer_height, frame_width, frame_height = sizes
    assert outer_height == 520 and (frame_width, frame_height) == (width, height)

    # fullscreen toggle, present because data-features has fullscreenmode
    button = host.locator(".se-emulator-fs-button")
    assert button.is_visible()
    page.screenshot(path=str(artifacts_dir / "emulator-sdk-workspace.png"), full_page=True)
    button.click()
    assert "se-emulator-fullscreen" in (host.get_attribute("class") or "")
    assert abs(frame_el.bounding_box()["height"] - 800) < 1  # fills the viewport
    assert page.evaluate("SE.workspace('intro-1').exitFullScreen()") is True
    assert "se-emulator-fullscreen" not in (host.get_attribute("class") or "")

    # the visit counted as activity
    assert emulator.count("GET /workspace/{id}") == 1
    assert emulator.app.workspace(ws["id"])["last_usage"] is not None  # type: ignore[index]

    # destroy() empties the div; the server-side workspace lives on
    page.evaluate("SE.workspace('intro-1').destroy()")
    assert host.locator("iframe").count() == 0
    assert page.evaluate("SE.workspace('intro-1') !== null")  # renders again on demand
    frame_el.wait_for()


def test_missing_or_wrong_token_is_refused_visibly(emulator: EmulatorServer, site: PageServer,
                                                   page: Any, artifacts_dir: Path):
    ws = create(emulator)
    no_token = WorkspaceSpec(project_id=DEMO_PROJECT_ID, name="no-token", token_required=False)
    wrong = WorkspaceSpec(project_id=DEMO_PROJECT_ID, name="wrong-token", height="200px")
    body = (workspace_div(no_token, ws["id"])  # the workspace requires a token, the div has none
            + workspace_div(wrong, ws["id"], str(uuid.uuid4())))
    page.goto(site.add("/refused.html", site_page(emulator, body)))

    for data_id, words in (("no-token", "did not provide one"), ("wrong-token", "is not valid")):
        host = page.locator(f'[data-id="{data_id}"]')
        alert = host.locator(".se-emulator-refusal")
        alert.wait_for()
        assert alert.is_visible()
        assert "Workspace refused" in alert.inner_text() and words in alert.inner_text()
        assert host.locator("iframe").count() == 0
        assert host.get_attribute("data-se-state") == "refused"
    page.screenshot(path=str(artifacts_dir / "emulator-sdk-refused.png"), full_page=True)


def test_no_fullscreen_button_without_the_feature_and_sdk_create(emulator: EmulatorServer,
                                                                 site: PageServer, browser: Any,
                                                                 artifacts_dir: Path):
    context = browser.new_context(viewport={"width": 1000, "height": 900}, color_scheme="dark")
    page = context.new_page()
    ws = create(emulator, workspace_token_required="false")
    spec = WorkspaceSpec(project_id=DEMO_PROJECT_ID, name="plain", token_required=False)
    late = (
        "<div id='later'></div><script>SE.ready(function () {"
        "  var el = document.createElement('div');"
        "  el.setAttribute('data-workspace', '" + ws["id"] + "');"
        "  el.style.height = '300px';"
        "  document.getElementById('later').appendChild(el);"
        "  window.seLate = SE.create('late-one', el);"
        "  window.seLateSame = SE.create('late-one', el) === window.seLate;"
        "});</script>"
    )
    page.goto(site.add("/plain.html", site_page(emulator, workspace_div(spec, ws["id"]), late)))
    page.locator('[data-id="plain"] iframe').wait_for()
    assert page.locator('[data-id="plain"] .se-emulator-fs-button').count() == 0
    assert page.evaluate("SE.workspace('plain').enterFullScreen()") is False
    page.locator('[data-id="late-one"] iframe').wait_for()
    assert page.evaluate("window.seLateSame") is True
    frame = page.frame_locator('[data-id="plain"] iframe')
    assert frame.locator("body").evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(20, 23, 28)"
    page.screenshot(path=str(artifacts_dir / "emulator-sdk-dark.png"), full_page=True)
    context.close()
