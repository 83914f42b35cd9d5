"""A Sphinx-built page in a real headless Chromium, end to end.

The ``sphere-same`` root is built with furo against the emulator and served
from a loopback static server.  The lazy endpoint runs on loopback too, with
the build's own ``sphere-workspaces.json`` as its allow-list.  In the browser:
the build-mode div is rendered by the (emulated) SDK with the workspace the
build created, and the lazy embed (``:launch: visible``) fetches a workspace
of its own from the endpoint and is rendered as well.
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
from conftest import assert_no_leak
from sphinx_fixtures import build, copy_root, frames, html_pages, warnings_of
from werkzeug.serving import make_server

from sphere_docs.services.endpoint import create_app

pytestmark = pytest.mark.browser


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A static server for ``tmp_path/site`` (the Sphinx outdir goes there)."""
    root = tmp_path / "site"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_build_and_lazy_embeds_render_in_chromium(
        make_app, emulator, browser, served, tmp_path, artifacts_dir):
    site_root, site_url = served
    port = _free_port()  # the lazy endpoint's URL must be known when the pages are built
    src = copy_root("sphere-same", tmp_path)
    app = build(make_app, src, emulator=emulator, html_theme="furo",
                sphere_lazy_endpoint=f"http://127.0.0.1:{port}/workspaces")
    assert warnings_of(app) == ""
    page_html = html_pages(app.outdir)["rstpage.html"]
    built_id = next(f["data-workspace"] for f in frames(page_html) if f.get("data-workspace"))
    shutil.copytree(app.outdir, site_root, dirs_exist_ok=True)

    endpoint_app = create_app({
        "api": emulator.url, "manifest": str(site_root / "sphere-workspaces.json"),
        "allow_origins": [site_url], "secret": "sphinx-browser-test-secret-0123", "retries": 0,
    })
    server = make_server("127.0.0.1", port, endpoint_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    context = browser.new_context(viewport={"width": 1200, "height": 1800})
    try:
        page = context.new_page()
        page.goto(f"{site_url}/rstpage.html")
        build_frame = page.wait_for_selector(
            f'[data-workspace="{built_id}"] iframe', state="attached")
        assert built_id in (build_frame.get_attribute("src") or "")
        lazy_frame = page.wait_for_selector(
            '[data-sphere-mode="lazy"] .se-workspace iframe', state="attached")
        lazy_src = lazy_frame.get_attribute("src") or ""
        assert "/workspace/" in lazy_src and built_id not in lazy_src
        page.screenshot(path=str(artifacts_dir / "sphinx-furo-build-and-lazy.png"), full_page=True)
        assert_no_leak(texts=[page.content()], roots=[site_root])
    finally:
        context.close()
        server.shutdown()
        server.server_close()
        endpoint_app.close()
