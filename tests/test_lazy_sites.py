"""Lazy mode end to end on sites built by the real front ends, in a real Chromium.

A tiny MkDocs site (Material, instant navigation, dark palette) and a tiny
Sphinx site (Furo) are built in lazy mode against the emulator; the lazy
endpoint allows exactly the projects of the ``sphere-workspaces.json`` each
build wrote; a loopback static server serves the site.  Then: click → status →
workspace iframe; reload → same workspace; (Material) instant navigation to a
second page activates its embed and destroys the first page's.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mkdocs.commands.build import build as mkdocs_build
from mkdocs.config import load_config
from werkzeug.serving import make_server

from sphere_docs.services.emulator import DEMO_PROJECT_ID
from sphere_docs.services.endpoint import create_app

pytestmark = pytest.mark.browser

SECRET = "site-test-signing-key-0123456789ab"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def stack(tmp_path: Path, emulator: Any) -> Iterator[dict[str, Any]]:
    """A static server for ``tmp_path/site`` and a reserved port for the endpoint."""
    root = tmp_path / "site"
    root.mkdir()
    static = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    threading.Thread(target=static.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    state: dict[str, Any] = {"root": root, "origin": f"http://127.0.0.1:{static.server_address[1]}",
                             "endpoint_port": free_port(), "servers": [static]}
    state["lazy_endpoint"] = f"http://127.0.0.1:{state['endpoint_port']}/workspaces"
    yield state
    for server in state["servers"]:
        server.shutdown()
        server.server_close()


def start_endpoint(stack: dict[str, Any], emulator: Any) -> Any:
    app = create_app({"api": emulator.url, "manifest": str(stack["root"] / "sphere-workspaces.json"),
                      "allow_origins": [stack["origin"]], "secret": SECRET, "retries": 0})
    assert app.allowed_projects() == {DEMO_PROJECT_ID}  # from the build's manifest only
    server = make_server("127.0.0.1", stack["endpoint_port"], app, threaded=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    stack["servers"].append(server)
    return app


def ready_id(page: Any, n: int = 0) -> str:
    page.wait_for_function(
        "n => { const b = document.querySelectorAll('[data-sphere-lazy]')[n];"
        " return b && b.dataset.sphereState === 'ready'; }", arg=n)
    frame = page.locator(".se-workspace").nth(n)
    frame.locator("iframe").wait_for(state="visible")
    assert page.locator(".sphere-workspace__status").nth(n).text_content() == "Workspace ready."
    return frame.get_attribute("data-workspace")


def click_flow(browser: Any, url: str, shots: Path, name: str, scheme: str = "light") -> tuple[Any, Any, str]:
    ctx = browser.new_context(viewport={"width": 1100, "height": 800}, color_scheme=scheme)
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.screenshot(path=str(shots / f"lazy-site-{name}-placeholder.png"))
    page.get_by_role("button", name="Start workspace").click()
    first = ready_id(page)
    page.screenshot(path=str(shots / f"lazy-site-{name}-ready.png"))
    page.reload()
    page.get_by_role("button", name="Start workspace").click()
    assert ready_id(page) == first
    assert errors == []
    return ctx, page, first


MD_ONE = f"""# Lesson one

Edit `main.py` until the tests pass.

```{{sphere-workspace}} {DEMO_PROJECT_ID}
:height: 420px

Your own workspace for lesson one.
```

[Next: lesson two](two.md)
"""

MD_TWO = f"""# Lesson two

```{{sphere-workspace}} {DEMO_PROJECT_ID}
:height: 420px

Lesson two's workspace.
```
"""


def test_mkdocs_material_site_in_lazy_mode(browser: Any, stack: dict[str, Any], emulator: Any, tmp_path: Path,
                                           artifacts_dir: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "lessons").mkdir(parents=True)
    (docs / "index.md").write_text("# Course\n\nNo workspace here.\n")
    (docs / "lessons" / "one.md").write_text(MD_ONE)
    (docs / "lessons" / "two.md").write_text(MD_TWO)
    config = {
        "site_name": "Lazy course",
        "site_url": stack["origin"] + "/",
        "docs_dir": str(docs),
        "site_dir": str(stack["root"]),
        "theme": {"name": "material", "features": ["navigation.instant"],
                  "palette": {"scheme": "slate"}},
        "markdown_extensions": ["pymdownx.superfences"],
        "plugins": [{"sphere-workspaces": {"endpoint": emulator.url, "mode": "lazy",
                                           "lazy_endpoint": stack["lazy_endpoint"],
                                           "cache": str(tmp_path / ".cache")}}],
    }
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    mkdocs_build(load_config(str(tmp_path / "mkdocs.yml")))
    # instant navigation: a reader may land anywhere, so every page carries the loader and script
    assert "sphere-docs-lazy-js" in (stack["root"] / "index.html").read_text()
    start_endpoint(stack, emulator)

    ctx, page, first = click_flow(browser, stack["origin"] + "/lessons/one/", artifacts_dir, "material-slate")
    try:
        bg = page.locator(".sphere-workspace__frame").evaluate(
            "e => getComputedStyle(e.closest('.sphere-workspace')).getPropertyValue('--sd-bg')")
        assert bg.strip() == "#161b22"  # Material's slate scheme → our dark palette
        page.evaluate("window.oldBox = document.querySelector('[data-sphere-lazy]')")
        page.evaluate("window.marker = 1")  # survives an instant navigation, not a page load
        page.get_by_role("link", name="Next: lesson two").click()
        page.wait_for_url("**/lessons/two/")
        page.get_by_role("button", name="Start workspace").click()
        second = ready_id(page)
        assert second != first
        assert page.evaluate("window.marker") == 1  # really an instant navigation
        assert page.evaluate("window.oldBox.sdWs.destroyed") is True
        page.screenshot(path=str(artifacts_dir / "lazy-site-material-slate-instant-nav.png"))
    finally:
        ctx.close()
    assert emulator.count("POST /workspaces") == 2


MD_BUILD = f"""# Built lesson

```{{sphere-workspace}} {DEMO_PROJECT_ID}
:height: 360px

Created when the site was built.
```

[Lazy lesson](lazy.md)
"""

MD_LAZY = f"""# Lazy lesson

```{{sphere-workspace}} {DEMO_PROJECT_ID}
:mode: lazy
:height: 360px
```
"""


def test_material_instant_navigation_from_a_page_without_embeds(
        browser: Any, stack: dict[str, Any], emulator: Any, tmp_path: Path, artifacts_dir: Path) -> None:
    """Land on a page with no embed, then reach build-mode and lazy embeds without a page load."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Course\n\nNo workspace here. [Built lesson](built.md)\n")
    (docs / "built.md").write_text(MD_BUILD)
    (docs / "lazy.md").write_text(MD_LAZY)
    config = {
        "site_name": "Instant course", "site_url": stack["origin"] + "/", "docs_dir": str(docs),
        "site_dir": str(stack["root"]),
        "theme": {"name": "material", "features": ["navigation.instant"], "font": False},
        "markdown_extensions": ["pymdownx.superfences"],
        "plugins": [{"sphere-workspaces": {"endpoint": emulator.url, "lazy_endpoint": stack["lazy_endpoint"],
                                           "cache": str(tmp_path / ".cache")}}],
    }
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    mkdocs_build(load_config(str(tmp_path / "mkdocs.yml")))
    start_endpoint(stack, emulator)

    ctx = browser.new_context(viewport={"width": 1100, "height": 800})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(stack["origin"] + "/")
        page.evaluate("window.marker = 1")  # survives an instant navigation, not a page load
        page.locator(".md-content").get_by_role("link", name="Built lesson").click()
        page.wait_for_url("**/built/")
        built = page.locator("[data-sphere-mode=build] .se-workspace")
        built.locator("iframe").wait_for(state="visible")
        assert built.get_attribute("data-workspace")
        page.evaluate("window.builtBox = document.querySelector('[data-sphere-mode=build]')")
        page.locator(".md-content").get_by_role("link", name="Lazy lesson").click()
        page.wait_for_url("**/lazy/")
        page.get_by_role("button", name="Start workspace").click()
        ready_id(page)
        assert page.evaluate("window.marker") == 1  # both were instant navigations
        assert page.evaluate("window.builtBox.sdWs.destroyed") is True  # the page it left
        page.screenshot(path=str(artifacts_dir / "lazy-site-material-instant-from-plain-page.png"))
        assert errors == []
    finally:
        ctx.close()


RST = f"""Lesson one
==========

Edit ``main.py`` until the tests pass.

.. sphere-workspace:: {DEMO_PROJECT_ID}
   :height: 420px

   Your own workspace for lesson one.
"""


def test_sphinx_furo_site_in_lazy_mode(browser: Any, make_app: Any, stack: dict[str, Any], emulator: Any,
                                       tmp_path: Path, artifacts_dir: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "conf.py").write_text('project = "Lazy course"\nextensions = ["sphere_docs.sphinx"]\n')
    (src / "index.rst").write_text(RST)
    app = make_app("html", srcdir=src, confoverrides={
        "html_theme": "furo", "sphere_endpoint": emulator.url, "sphere_mode": "lazy",
        "sphere_lazy_endpoint": stack["lazy_endpoint"], "sphere_cache": str(tmp_path / ".cache"),
    })
    try:
        app.build()
    finally:
        app.cleanup()
    out = Path(app.outdir)
    for item in out.iterdir():  # serve the built site from the static server's root
        target = stack["root"] / item.name
        if item.is_dir():
            shutil.copytree(item, target)
        else:
            target.write_bytes(item.read_bytes())
    start_endpoint(stack, emulator)
    ctx, page, _first = click_flow(browser, stack["origin"] + "/index.html", artifacts_dir, "furo-dark", "dark")
    try:
        bg = page.locator(".sphere-workspace__frame").evaluate(
            "e => getComputedStyle(e.closest('.sphere-workspace')).getPropertyValue('--sd-bg')")
        assert bg.strip() == "#161b22"  # Furo's auto theme on a dark OS → our dark palette
    finally:
        ctx.close()
    assert emulator.count("POST /workspaces") == 1
