"""HTML for embeds: the SDK loader, the workspace div, placeholders, and injection.

Everything that ends up in a page is built here, so escaping and validation
live in one place.  Every value written into an attribute is validated first
(ids are 32 hex characters, tokens UUID-like) *and* escaped.

The page-level assets are:

* the vendor's SDK loader (``<script id="sphere-docs-loader">``), which must
  sit right after ``<body>``, once — :func:`inject_after_body` puts it there;
* our small stylesheet, and for pages with lazy embeds the activation script
  (both inlined, so no static file has to be copied by any engine).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from functools import cache
from html.parser import HTMLParser
from pathlib import Path

from .options import TOKEN_RE, WORKSPACE_ID_RE, WorkspaceSpec

__all__ = [
    "LOADER_ID",
    "after_body",
    "error_box",
    "fallback_text",
    "inject_after_body",
    "lazy_placeholder",
    "loader_snippet",
    "page_assets",
    "unavailable_placeholder",
    "workspace_div",
]

LOADER_ID = "sphere-docs-loader"
ASSETS_CSS_ID = "sphere-docs-css"
ASSETS_JS_ID = "sphere-docs-lazy-js"
SDK_HOST_RE = re.compile(r"^[A-Za-z0-9.-]+(:\d{1,5})?(/[A-Za-z0-9._~/-]*)?$")

esc = html.escape  # quote=True by default: safe inside double-quoted attributes


def loader_snippet(sdk_host: str, https: bool = True) -> str:
    """The vendor's SDK loader, to be placed right after ``<body>`` once per page.

    ``sdk_host`` is a host (and optional port), no scheme, e.g.
    ``12345678.containers.sphere-engine.com`` or ``127.0.0.1:8123``.  The code
    is the vendor snippet; the only change is an id on our ``<script>`` so
    :func:`inject_after_body` can tell that a page already has it.
    """
    if not SDK_HOST_RE.match(sdk_host):
        raise ValueError(f"invalid SDK host {sdk_host!r}: expected host[:port] without a scheme")
    host_js = json.dumps(sdk_host).replace("<", "\\u003c")
    return (
        f'<script id="{LOADER_ID}">(function(d, s, id){{\n'
        f"  SE_BASE = {host_js};\n"
        f"  SE_HTTPS = {'true' if https else 'false'};\n"
        "  SE = window.SE || (window.SE = []);\n"
        "  var js, fjs = d.getElementsByTagName(s)[0];\n"
        "  if (d.getElementById(id)) return;\n"
        "  js = d.createElement(s); js.id = id;\n"
        '  js.src = (SE_HTTPS ? "https" : "http") + "://" + SE_BASE + "/static/sdk/sdk.min.js";\n'
        "  fjs.parentNode.insertBefore(js, fjs);\n"
        '}(document, "script", "sphere-engine-jssdk"));\n'
        'SE.ready = SE.ready || function(f){if (document.readyState != "loading" && '
        'document.readyState != "interactive") f();else window.addEventListener("load", f);};'
        "</script>"
    )


@cache
def _static(name: str) -> str:
    # A plain path, not importlib.resources: that import alone costs ~10 ms per build process.
    return (Path(__file__).resolve().parent.parent / "static" / name).read_text(encoding="utf-8")


def after_body(sdk_host: str, https: bool = True, *, lazy: bool) -> str:
    """Everything a page with embeds gets right after ``<body>``: the SDK loader and our assets."""
    return loader_snippet(sdk_host, https) + page_assets(lazy=lazy)


def page_assets(*, lazy: bool) -> str:
    """Our inline stylesheet, plus the activation script when the page has lazy embeds."""
    parts = [f'<style id="{ASSETS_CSS_ID}">{_static("sphere-docs.css")}</style>']
    if lazy:
        parts.append(f'<script id="{ASSETS_JS_ID}">{_static("sphere-docs-lazy.js")}</script>')
    return "".join(parts)


def _wrapper_attrs(spec: WorkspaceSpec, extra_class: str) -> str:
    classes = " ".join(name for name in ("sphere-workspace", extra_class, *spec.classes) if name)
    style = f"--sphere-height:{spec.height};--sphere-width:{spec.width}"
    return f'class="{esc(classes)}" style="{esc(style)}"'


def _caption(spec: WorkspaceSpec, caption_html: str | None) -> str:
    body = caption_html if caption_html is not None else esc(spec.caption)
    return f'<div class="sphere-workspace__caption">{body}</div>' if body.strip() else ""


def _require_name(spec: WorkspaceSpec) -> str:
    if not spec.name:
        raise ValueError("the spec has no name: front ends must set one (options.default_name)")
    return spec.name


def workspace_div(
    spec: WorkspaceSpec,
    workspace_id: str,
    workspace_token: str | None = None,
    *,
    caption_html: str | None = None,
) -> str:
    """A build-mode embed: the SDK's workspace element inside our sized wrapper.

    The inner element carries both ``class="se-workspace"`` and ``data-id``
    so either initialisation path of the SDK finds it (reference §2.3a).
    ``caption_html`` is caption markup already rendered by the engine; when
    omitted, the spec's plain-text caption is escaped.
    """
    name = _require_name(spec)
    if not WORKSPACE_ID_RE.match(workspace_id or ""):
        raise ValueError(f"invalid workspace id {workspace_id!r}")
    attrs = [f'data-id="{esc(name)}"', f'data-workspace="{esc(workspace_id)}"']
    if spec.token_required:
        if not workspace_token or not TOKEN_RE.match(workspace_token):
            raise ValueError("a workspace that requires a token needs a valid workspace token")
        attrs.append(f'data-workspace-token="{esc(workspace_token)}"')
    if spec.features:
        attrs.append(f'data-features="{esc(spec.sdk_features)}"')
    return (
        f"<div {_wrapper_attrs(spec, '')} data-sphere-mode=\"build\">"
        f"{_caption(spec, caption_html)}"
        f'<div class="se-workspace sphere-workspace__frame" {" ".join(attrs)}></div>'
        "</div>"
    )


def lazy_placeholder(
    spec: WorkspaceSpec,
    *,
    page: str,
    lazy_endpoint: str,
    caption_html: str | None = None,
) -> str:
    """A lazy embed: caption, a start button and a status line; no workspace id.

    The activation script (``static/sphere-docs-lazy.js``) finds it by
    ``data-sphere-lazy``, POSTs ``{project_id, page, name}`` to
    ``data-endpoint`` and fills the inner ``.se-workspace`` element.
    """
    name = _require_name(spec)
    data_attrs = (
        f'data-sphere-lazy data-project="{esc(spec.project_id)}" data-page="{esc(page)}" '
        f'data-name="{esc(name)}" data-endpoint="{esc(lazy_endpoint)}"'
    )
    # Only what the activation script reads: "click" is its default launch, and the token
    # requirement of a lazy workspace is the endpoint's CREATE_OPTIONS, not the page's.
    if spec.launch != "click":
        data_attrs += f' data-launch="{esc(spec.launch)}"'
    if spec.features:
        data_attrs += f' data-features="{esc(spec.sdk_features)}"'
    return (
        f"<div {_wrapper_attrs(spec, 'sphere-workspace--lazy')} data-sphere-mode=\"lazy\" {data_attrs}>"
        f"{_caption(spec, caption_html)}"
        '<div class="sphere-workspace__placeholder">'
        '<button type="button" class="sphere-workspace__start">Start workspace</button>'
        '<p class="sphere-workspace__status" role="status" aria-live="polite"></p>'
        "</div>"
        f'<div class="se-workspace sphere-workspace__frame" data-id="{esc(name)}" hidden></div>'
        "</div>"
    )


def unavailable_placeholder(
    spec: WorkspaceSpec, reason: str, *, caption_html: str | None = None
) -> str:
    """A visible, styled box for an embed whose workspace could not be created."""
    return (
        f"<div {_wrapper_attrs(spec, 'sphere-workspace--unavailable')} "
        f'data-sphere-mode="unavailable" role="note">'
        f"{_caption(spec, caption_html)}"
        '<p class="sphere-workspace__notice"><strong>Workspace unavailable.</strong> '
        f"{esc(reason)}</p>"
        "</div>"
    )


def error_box(messages: str | Sequence[str]) -> str:
    """Where an embed with an author's mistakes stood: every problem's sentence, never a silent gap."""
    said = [messages] if isinstance(messages, str) else list(messages) or ["invalid embed"]
    return (
        '<div class="sphere-workspace sphere-workspace--unavailable" data-sphere-mode="error" role="note">'
        '<p class="sphere-workspace__notice"><strong>Workspace unavailable.</strong> '
        + "<br>".join(esc(m) for m in said) + "</p></div>"
    )


def fallback_text(spec: WorkspaceSpec) -> str:
    """Plain text for print, PDF and other non-interactive outputs."""
    sentence = "An interactive workspace accompanies this section in the web version of this document."
    return f"{spec.caption}\n\n{sentence}" if spec.caption else sentence


class _BodyFinder(HTMLParser):
    """Finds the real opening ``<body ...>`` tag and whether our loader is already there.

    HTMLParser already skips comments, ``<script>``/``<style>`` contents and
    attribute values, so a ``<body`` written in any of those is not mistaken
    for the tag.  ``<title>`` and ``<textarea>`` hold only text for browsers
    (RCDATA), so the parser is told to read them the same way.
    """

    RCDATA = ("title", "textarea")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.body_end: tuple[int, int, str] | None = None  # (line, col, tag text)
        self.has_loader = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.RCDATA:
            self.set_cdata_mode(tag)
        elif tag == "body" and self.body_end is None:
            line, col = self.getpos()
            self.body_end = (line, col, self.get_starttag_text() or "")
        elif tag == "script" and ("id", LOADER_ID) in attrs:
            self.has_loader = True

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.RCDATA:  # <title/> opens nothing
            self.handle_starttag(tag, attrs)


#: The tokens of a page's prefix the way :class:`_BodyFinder` reads them: text and other
#: tags, comments, declarations, elements whose content holds no tags (script, style,
#: title, textarea), the body tag.  Quoted attribute values may contain ">".  Repetitions
#: are written as "a run, then (special, run)*" so the engine never backtracks into them.
_PREFIX_TOKEN_RE = re.compile(
    r"""
    (?P<plain>(?:  # a run of text and ordinary tags, matched in one go (most of a <head>)
        [^<]+
        | (?:</|<(?!(?:script|style|title|textarea|body)\b))[a-zA-Z][^\s/>]*[^>"']*(?:(?:"[^"]*"|'[^']*')[^>"']*)*>
    )+)
    | (?P<comment><!--.*?--\s*>)  # where html.parser ends a comment
    | (?P<decl><!(?!--|\[)[^>]*>|<\?[^>]*>)
    | (?P<raw><(?P<rawtag>script|style|title|textarea)\b[^>"']*(?:(?:"[^"]*"|'[^']*')[^>"']*)*>[^<]*(?:<(?!/(?P=rawtag)\s*>)[^<]*)*</(?P=rawtag)\s*>)
    | (?P<body><body\b[^>"']*(?:(?:"[^"]*"|'[^']*')[^>"']*)*>)
    """,
    re.IGNORECASE | re.DOTALL | re.VERBOSE,
)
#: how much of a page the parser reads at a time while looking for ``<body>``
_FEED_CHUNK = 512


def _quick_body_end(page_html: str) -> int | None:
    """Where the body tag ends, for the regular pages every theme writes; ``None`` when unsure.

    A tokenizer over the prefix is several times cheaper than the parser (this runs for
    every page of a build).  Anything it does not fully understand returns ``None`` and
    the parser decides; tests check both agree.
    """
    pos = 0
    while pos < len(page_html):
        m = _PREFIX_TOKEN_RE.match(page_html, pos)
        if m is None:
            return None
        if m.group("body") is not None:
            return m.end()
        pos = m.end()
    return None


def inject_after_body(page_html: str, snippet: str) -> str:
    """Insert ``snippet`` immediately after the opening ``<body ...>`` tag, once.

    The tag may carry any attributes in any case.  A page that already has
    our loader is returned unchanged (idempotent); a page with no ``<body>``
    tag gets the snippet in front.  Everything else stays byte-for-byte.

    Only a page that mentions the loader's id is read to the end, to find out
    whether it really carries the loader; otherwise the work stops at
    ``<body>``: a quick tokenizer first, and for irregular markup the parser,
    fed a chunk at a time.
    """
    read_all = LOADER_ID in page_html  # (one scan of the page, used by both paths)
    if not read_all:
        quick = _quick_body_end(page_html)
        if quick is not None:
            return page_html[:quick] + snippet + page_html[quick:]
    finder = _BodyFinder()
    for start in range(0, len(page_html), _FEED_CHUNK):
        finder.feed(page_html[start : start + _FEED_CHUNK])
        if finder.body_end is not None and not read_all:
            break
    else:
        finder.close()
    if finder.has_loader:
        return page_html
    if finder.body_end is None:
        return snippet + page_html
    line, col, tag_text = finder.body_end
    line_start = 0
    for _ in range(line - 1):  # HTMLParser counts lines by "\n" only, so do the same here
        line_start = page_html.index("\n", line_start) + 1
    offset = line_start + col + len(tag_text)
    return page_html[:offset] + snippet + page_html[offset:]
