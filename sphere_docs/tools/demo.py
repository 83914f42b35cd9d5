"""``sphere-docs demo``: both demo sites, built against the emulator, served from one address.

Everything runs in this one process on one loopback port, so Ctrl-C leaves
nothing behind:

* ``/``                 an index page linking every built site
* ``/mkdocs/`` …        the built sites (static files)
* ``/lazy/workspaces``  the lazy endpoint (same origin as the sites, so no CORS setup)
* everything else       the emulator: ``/api/v1``, ``/static/sdk/sdk.min.js``, ``/workspace/<id>``

The port is bound *before* the builds, because build-mode embeds are created
through that address while the sites build.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from werkzeug.exceptions import NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.utils import send_from_directory
from werkzeug.wrappers import Request, Response

from ..core.settings import DEFAULT_TOKEN_ENV
from ..services.emulator import DEMO_PROJECTS, EmulatorApp

__all__ = ["SITES", "DemoServer", "DemoSite", "find_sources"]

@dataclass(frozen=True)
class DemoSite:
    slug: str  #: URL prefix and output folder
    title: str
    engine: str  #: "mkdocs" or "sphinx"
    source: str  #: mkdocs config file, or the Sphinx source folder (relative to the checkout)
    theme: str | None = None  #: Sphinx html_theme override


SITES = (
    DemoSite("mkdocs", "MkDocs, default theme", "mkdocs", "mkdocs_demo/mkdocs.yml"),
    DemoSite("mkdocs-material", "MkDocs, Material theme (light and dark)", "mkdocs", "mkdocs_demo/mkdocs-material.yml"),
    DemoSite("sphinx", "Sphinx, Furo theme (light and dark)", "sphinx", "sphinx_demo", "furo"),
    DemoSite("sphinx-alabaster", "Sphinx, Alabaster theme", "sphinx", "sphinx_demo", "alabaster"),
    DemoSite("sphinx-rtd", "Sphinx, Read the Docs theme", "sphinx", "sphinx_demo", "sphinx_rtd_theme"),
)


def find_sources(start: Path | None = None) -> Path:
    """The checkout holding ``mkdocs_demo/`` and ``sphinx_demo/``."""
    candidates = [start] if start else [Path.cwd(), Path(__file__).resolve().parents[2]]
    for folder in candidates:
        if folder and (folder / "mkdocs_demo" / "mkdocs.yml").is_file() and (folder / "sphinx_demo" / "conf.py").is_file():
            return folder
    raise FileNotFoundError(
        "cannot find mkdocs_demo/ and sphinx_demo/: run `sphere-docs demo` from a sphere-docs checkout "
        "(or pass --source DIR)"
    )


def _static_app(root: Path) -> Callable[..., Iterable[bytes]]:
    """Serve a built site; a folder URL serves its index.html (MkDocs uses folder URLs)."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        path = request.path.lstrip("/")
        if path == "" or path.endswith("/"):
            path += "index.html"
        elif (root / path).is_dir():
            response: Any = Response(status=308, headers={"Location": request.root_path + request.path + "/"})
            return response(environ, start_response)
        try:
            response = send_from_directory(root, path, environ)
        except NotFound as exc:
            response = exc.get_response(environ)
        return response(environ, start_response)  # type: ignore[no-any-return]

    return app


def index_page(sites: Iterable[DemoSite], base_url: str) -> str:
    items = "".join(
        f'<li><a href="{escape(s.slug)}/">{escape(s.title)}</a></li>' for s in sites
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>sphere-docs demo</title>
<style>
:root{{color-scheme:light dark;--fg:#1d2330;--bg:#f7f8fa;--card:#fff;--accent:#2157d1}}
@media (prefers-color-scheme:dark){{:root{{--fg:#e6e9ef;--bg:#14171c;--card:#1d2128;--accent:#7aa5ff}}}}
body{{font:16px/1.5 system-ui,sans-serif;color:var(--fg);background:var(--bg);margin:0;padding:3rem 1rem}}
main{{max-width:42rem;margin:auto;background:var(--card);padding:2rem 2.5rem;border-radius:12px;box-shadow:0 2px 12px #0002}}
a{{color:var(--accent)}} li{{margin:.4rem 0}} code{{font-size:.9em}}
</style></head>
<body><main>
<h1>sphere-docs demo</h1>
<p>One course, built by each engine. Every workspace is created through the local
Sphere Engine Containers emulator at <code>{escape(base_url)}</code>; no account and no network needed.</p>
<ul>{items}</ul>
<p>Lazy embeds call the lazy endpoint at <code>{escape(base_url)}/lazy/workspaces</code>.
Emulator statistics: <a href="_emulator/stats">_emulator/stats</a>.</p>
</main></body></html>"""


class _QuietHandler(WSGIRequestHandler):
    """No access log: the demo prints its own progress, and a log line per request drowns it."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class DemoServer:
    """The emulator, the lazy endpoint and the built sites behind one loopback address."""

    def __init__(self, out_dir: Path, *, host: str = "127.0.0.1", port: int = 0,
                 sites: Iterable[DemoSite] = SITES):
        self.out_dir = Path(out_dir).resolve()
        self.sites = tuple(sites)
        self.token = os.environ.get("SPHERE_DEMO_TOKEN") or "demo-" + secrets.token_hex(16)
        self.emulator = EmulatorApp(token=self.token, start_delay=0.5)
        self._endpoint: Any = None
        # Bind now: the builds need the final address.
        self._server = make_server(host, port, self._wsgi, threaded=True, request_handler=_QuietHandler)
        self.port = self._server.server_port
        self.host = f"{host}:{self.port}"
        self.base_url = f"http://{self.host}"
        self._thread: threading.Thread | None = None
        self._mounts = DispatcherMiddleware(
            self._root,
            {f"/{s.slug}": _static_app(self.out_dir / s.slug) for s in self.sites}
            | {"/lazy": self._lazy},
        )

    # -- WSGI

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return self._mounts(environ, start_response)  # type: ignore[no-any-return]

    def _root(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "/") in ("", "/"):
            page = Response(index_page(self.sites, self.base_url), mimetype="text/html")
            return page(environ, start_response)  # type: ignore[no-any-return]
        return self.emulator(environ, start_response)

    def _lazy(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if self._endpoint is None:
            body = Response('{"code": "starting", "message": "the demo is still building"}',
                            status=503, mimetype="application/json")
            return body(environ, start_response)  # type: ignore[no-any-return]
        return self._endpoint(environ, start_response)  # type: ignore[no-any-return]

    # -- life cycle

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="sphere-docs-demo", daemon=True)
        self._thread.start()

    def serve_until_interrupted(self) -> None:
        """Block while serving; Ctrl-C (KeyboardInterrupt) ends the wait."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=0.5)  # short joins keep the main thread responsive to signals

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._endpoint is not None:
            self._endpoint.close()
        self.emulator.close()

    def demo_environ(self) -> dict[str, str]:
        """What the demo configs read (mkdocs.yml ``!ENV``, conf.py ``os.environ``)."""
        return {
            DEFAULT_TOKEN_ENV: self.token,
            "SPHERE_DEMO_ENDPOINT": self.base_url,
            "SPHERE_DEMO_LAZY_ENDPOINT": f"{self.base_url}/lazy/workspaces",
            "SPHERE_DEMO_CACHE": str(self.out_dir / ".sphere-docs-cache"),
            "SPHERE_DEMO_ON_ERROR": "fail",
            "NO_MKDOCS_2_WARNING": "1",
        }

    def start_endpoint(self) -> None:
        from ..services.endpoint import create_app

        self._endpoint = create_app(
            {
                "api": self.base_url,
                "allow_projects": tuple(DEMO_PROJECTS),
                "allow_origins": (self.base_url,),
                "secret": secrets.token_hex(32),
                "sdk_host": self.host,
            }
        )

    def build(self, source_root: Path, progress: Callable[[str], None] = print) -> None:
        with _environ(self.demo_environ()):  # the demo configs read these; the caller's are put back
            self.start_endpoint()  # (it reads the emulator's token from the environment too)
            for number, site in enumerate(self.sites, 1):
                progress(f"[{number}/{len(self.sites)}] building {site.title} …")
                target = self.out_dir / site.slug
                if site.engine == "mkdocs":
                    build_mkdocs(source_root / site.source, target)
                else:
                    build_sphinx(source_root / site.source, target, theme=site.theme)
        (self.out_dir / "index.html").write_text(index_page(self.sites, self.base_url), encoding="utf-8")


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a block, then restore the old values."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def build_mkdocs(config_file: Path, site_dir: Path) -> None:
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    config = load_config(config_file=str(config_file), site_dir=str(site_dir), strict=True)
    config.plugins.on_startup(command="build", dirty=False)
    try:
        build(config)
    finally:
        config.plugins.on_shutdown()


def build_sphinx(source: Path, out_dir: Path, *, theme: str | None) -> None:
    # A child process per build: Sphinx registers nodes and directives globally,
    # so a second in-process build with another theme would warn (and -W fails).
    command = [sys.executable, "-m", "sphinx", "-q", "-W", "--keep-going", "-E", "-b", "html",
               "-d", str(out_dir.parent / f".doctrees-{out_dir.name}")]
    if theme:
        command += ["-D", f"html_theme={theme}"]
    result = subprocess.run([*command, str(source), str(out_dir)], check=False)
    if result.returncode:
        raise RuntimeError(f"the Sphinx build of {source} failed (exit {result.returncode})")
