"""sphere_docs.core.html: the loader, the markup, and injection after <body> on real theme pages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sphere_docs.core import html
from sphere_docs.core.options import parse_options

PAGES = sorted((Path(__file__).parent / "data" / "theme_pages").glob("*.html"))
PROJECT = "eef024c1d14f46319517a65edafb5ee3"
WORKSPACE = "48dba362e85e4aebac3dc8e6b0677ff7"
WS_TOKEN = "73543c2d-3476-46ee-a49c-227f59181961"
SNIPPET = html.loader_snippet("127.0.0.1:8123", https=False)
BODY_TAG = re.compile(r"<body\b[^>]*>", re.IGNORECASE)


def spec(**options: str):
    return parse_options(PROJECT, options).with_name("ws-lesson-md-1")


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_inject_after_body_on_real_theme_pages(page: Path) -> None:
    original = page.read_text(encoding="utf-8")
    out = html.inject_after_body(original, SNIPPET)

    assert out.count(html.LOADER_ID) == 1
    # The snippet sits immediately after the real <body ...> tag (not one named in a comment).
    real_body = next(m for m in BODY_TAG.finditer(original) if "<!--" not in original[max(0, m.start() - 40) : m.start()])
    assert out[real_body.end() : real_body.end() + len(SNIPPET)] == SNIPPET
    # Everything else is byte-for-byte unchanged.
    assert out[: real_body.end()] + out[real_body.end() + len(SNIPPET) :] == original
    # Idempotent.
    assert html.inject_after_body(out, SNIPPET) == out


def test_inject_ignores_body_in_comments_scripts_and_attributes() -> None:
    page = (
        "<!DOCTYPE html><html><head><!-- <body class=fake> -->"
        "<script>var s = '<body>';</script><style>/* <body> */</style>"
        '<meta content="<body>"></head>\n\n<BODY Class="Real"\n  data-x="1">\n<p>hi</p></BODY></html>'
    )
    out = html.inject_after_body(page, "[X]")
    assert out.count("[X]") == 1
    assert '<BODY Class="Real"\n  data-x="1">[X]\n<p>hi</p>' in out


def test_inject_crlf_and_unicode_before_body() -> None:
    page = "<html>\r\n<head><title>Zażółć — ✓</title></head>\r\n<body>\r\nx</body></html>"
    out = html.inject_after_body(page, "[X]")
    assert out == page.replace("<body>", "<body>[X]")


def test_inject_without_body_prepends() -> None:
    assert html.inject_after_body("<p>fragment</p>", "[X]") == "[X]<p>fragment</p>"


def test_loader_is_the_vendor_snippet_with_our_id() -> None:
    snippet = html.loader_snippet("12345678.containers.sphere-engine.com")
    assert snippet.startswith('<script id="sphere-docs-loader">')
    assert 'SE_BASE = "12345678.containers.sphere-engine.com";' in snippet
    assert "SE_HTTPS = true;" in snippet
    assert '"sphere-engine-jssdk"' in snippet
    assert '"/static/sdk/sdk.min.js"' in snippet
    assert "SE.ready" in snippet


@pytest.mark.parametrize("host", ["https://x.com", "a.com\"><script>", "", "a b"])
def test_loader_rejects_bad_hosts(host: str) -> None:
    with pytest.raises(ValueError, match="invalid SDK host"):
        html.loader_snippet(host)


def test_workspace_div_has_every_sdk_attribute() -> None:
    div = html.workspace_div(spec(features="fullscreen", height="70vh"), WORKSPACE, WS_TOKEN)
    assert 'class="se-workspace sphere-workspace__frame"' in div
    assert f'data-workspace="{WORKSPACE}"' in div
    assert f'data-workspace-token="{WS_TOKEN}"' in div
    assert 'data-features="fullscreenmode"' in div
    assert 'data-id="ws-lesson-md-' in div
    assert "--sphere-height:70vh" in div


def test_workspace_div_without_token_requirement_omits_token() -> None:
    div = html.workspace_div(spec(**{"token-required": "false"}), WORKSPACE, None)
    assert "data-workspace-token" not in div


@pytest.mark.parametrize(
    ("workspace_id", "token"),
    [("not-an-id", WS_TOKEN), (WORKSPACE.upper(), WS_TOKEN), (WORKSPACE, '"><script>'), (WORKSPACE, None)],
)
def test_workspace_div_validates_values(workspace_id: str, token: str | None) -> None:
    with pytest.raises(ValueError):
        html.workspace_div(spec(), workspace_id, token)


def test_lazy_placeholder_carries_no_workspace_id_and_escapes() -> None:
    out = html.lazy_placeholder(spec(launch="visible"), page='a"&<b>.md', lazy_endpoint="https://ex.com/ws?a=1&b=2")
    assert "data-workspace=" not in out
    assert 'data-page="a&quot;&amp;&lt;b&gt;.md"' in out
    assert 'data-endpoint="https://ex.com/ws?a=1&amp;b=2"' in out
    assert 'data-launch="visible"' in out
    assert 'aria-live="polite"' in out


def test_caption_is_escaped_unless_rendered_by_the_engine() -> None:
    s = parse_options(PROJECT, {}, caption="Run <b>make</b> & see").with_name("n1")
    assert "Run &lt;b&gt;make&lt;/b&gt; &amp; see" in html.workspace_div(s, WORKSPACE, WS_TOKEN)
    assert "<em>ok</em>" in html.workspace_div(s, WORKSPACE, WS_TOKEN, caption_html="<em>ok</em>")


def test_unavailable_placeholder_escapes_reason() -> None:
    out = html.unavailable_placeholder(spec(), "API said <no> & more")
    assert "API said &lt;no&gt; &amp; more" in out
    assert "Workspace unavailable." in out


def test_fallback_text() -> None:
    s = parse_options(PROJECT, {}, caption="Make the tests pass.")
    assert html.fallback_text(s).startswith("Make the tests pass.\n\n")
    assert "web version" in html.fallback_text(s)


def test_page_assets_lazy_only_when_asked() -> None:
    assert html.ASSETS_JS_ID not in html.page_assets(lazy=False)
    assert html.ASSETS_JS_ID in html.page_assets(lazy=True)


# -- properties ---------------------------------------------------------------

html_text = st.text(alphabet=st.sampled_from(list("<>/!-'\"= \nabodyBODYscript\r")), max_size=60)


@settings(max_examples=300, deadline=None)
@given(before=html_text, attrs=st.sampled_from(["", ' class="x"', " data-a='<b>'", "\nid=y"]), after=html_text)
def test_inject_properties(before: str, attrs: str, after: str) -> None:
    page = f"<html><head><title>t</title></head><body{attrs}>{after}"
    out = html.inject_after_body(page, SNIPPET)
    assert out.count(SNIPPET) == 1
    assert out.replace(SNIPPET, "", 1) == page  # nothing else changed
    assert html.inject_after_body(out, SNIPPET) == out  # idempotent
    # And on arbitrary junk the function never raises and never duplicates.
    junk = html.inject_after_body(before + after, SNIPPET)
    assert junk.count(html.LOADER_ID) == 1


@settings(max_examples=200, deadline=None)
@given(caption=st.text(st.characters(blacklist_categories=("Cc",)) | st.sampled_from("\t\n"), max_size=80),
       page=st.text(max_size=40))
def test_markup_never_contains_unescaped_input(caption: str, page: str) -> None:
    s = parse_options(PROJECT, {}, caption=caption).with_name("n1")
    for out in (
        html.workspace_div(s, WORKSPACE, WS_TOKEN),
        html.lazy_placeholder(s, page=page, lazy_endpoint="/ws"),
        html.unavailable_placeholder(s, caption),
    ):
        # Every tag in the output is one we wrote.
        tags = set(re.findall(r"<\s*/?\s*([a-zA-Z][a-zA-Z0-9]*)", out))
        assert tags <= {"div", "p", "button", "strong"}
        assert "<script" not in out.lower()


# Pages where a regex would go wrong; "|" marks where the snippet belongs ("" = in front).
TRICKY_PAGES = [
    '<!doctype html><html><head><title>x</title></head><body class="a">|hi</body></html>',
    '<html><head><!-- <body fake> --><script>var s="<body>";</script></head><BODY data-x="a>b">|x',
    '<html><head><meta content="<body>"></head><body>|x',
    '<html><head><style>/* <body> */</style></head>\n<body\n  class="x"\n>|x',
    "<html><head><link href='a>b'></head><body>|x",
    '<?xml version="1.0"?><html><head><title>a<body>b</title></head><body>|x',
    "<html><head><title>a &amp; b</title></head><body>|x",
    "<html><head><script>if (a < b) {}</script><textarea><body></textarea></head><body>|",
    "|no body at all",
]


@pytest.mark.parametrize("marked", TRICKY_PAGES)
def test_inject_on_tricky_pages(marked: str) -> None:
    page = marked.replace("|", "")
    assert html.inject_after_body(page, "<i>S</i>") == marked.replace("|", "<i>S</i>")


def test_inject_reads_to_the_end_when_the_loader_may_be_there() -> None:
    has_it = '<html><body><script id="sphere-docs-loader"></script></body>'
    assert html.inject_after_body(has_it, "<i>S</i>") == has_it
    # The id only mentioned in text: not a loader, so the page still gets one.
    mentions = "<html><body><p>" + "x" * 5000 + " sphere-docs-loader</p></body>"
    assert html.inject_after_body(mentions, "<i>S</i>") == mentions.replace("<body>", "<body><i>S</i>")


def _parser_only(page: str, snippet: str) -> str:
    """The reference answer: html.parser alone, no tokenizer shortcut."""
    finder = html._BodyFinder()
    finder.feed(page)
    finder.close()
    if finder.has_loader:
        return page
    if finder.body_end is None:
        return snippet + page
    line, col, tag = finder.body_end
    start = sum(len(row) + 1 for row in page.split("\n")[: line - 1])
    return page[: start + col + len(tag)] + snippet + page[start + col + len(tag) :]


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_quick_path_takes_real_theme_pages(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert html._quick_body_end(text) is not None  # the cheap path serves real pages
    assert html.inject_after_body(text, SNIPPET) == _parser_only(text, SNIPPET)


@pytest.mark.parametrize("marked", TRICKY_PAGES)
def test_tricky_pages_agree_with_the_parser(marked: str) -> None:
    page = marked.replace("|", "")
    assert html.inject_after_body(page, "<i>S</i>") == _parser_only(page, "<i>S</i>")


tag_soup = st.lists(st.sampled_from([
    "<body>", "<BODY class='a>b'>", "<body\n id=x>", "<!-- ", " -->", "<!--<body>-->", "<script>", "</script>",
    "<style>", "</style>", "<title>", "</title>", "<textarea>", "</textarea>", '<meta content="<body>">',
    "<p>", "</p>", "<!DOCTYPE html>", "<?xml?>", "text", " < ", ">", "'", '"', "<a href='x'>", "\n",
    "<bodyx>", "<body/>", "</body>", "<![CDATA[", "]]>",
]), max_size=14).map("".join)


@settings(max_examples=600, deadline=None)
@given(page=tag_soup)
def test_quick_path_never_disagrees_with_the_parser(page: str) -> None:
    assert html.inject_after_body(page, "<i>S</i>") == _parser_only(page, "<i>S</i>")
