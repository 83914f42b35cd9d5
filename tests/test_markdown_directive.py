"""The Python-Markdown extension, driven through real ``markdown.Markdown`` instances.

What is pinned here: where a ``{sphere-workspace}`` fence becomes an embed
(top level and nested in every container the block parser knows, with and
without ``pymdownx.superfences``), where it stays text (other fences, indented
code, inline code, comments, raw HTML), the exact error sentences, per-page
state, and the extension used alone (loader inline, provisioning per document).
"""

from __future__ import annotations

import logging
import re
from html.parser import HTMLParser

import markdown
import pytest
from conftest import SECRET_TOKEN, assert_no_leak

from sphere_docs.api.client import ContainersClient
from sphere_docs.core import html
from sphere_docs.core.errors import SettingsError
from sphere_docs.core.naming import default_name
from sphere_docs.core.options import WorkspaceSpec
from sphere_docs.core.settings import SiteSettings
from sphere_docs.markdown import DirectiveError, SphereWorkspaceExtension

P = "eef024c1d14f46319517a65edafb5ee3"
LAZY = "http://127.0.0.1:8124/workspaces"
BASE = {"mode": "lazy", "lazy_endpoint": LAZY, "endpoint": "http://127.0.0.1:8123", "page": "intro.md"}


def render(text: str, *extensions: str, **config: object) -> str:
    cfg = {**BASE, **config}
    return markdown.markdown(
        text, extensions=["sphere_workspaces", *extensions], extension_configs={"sphere_workspaces": cfg}
    )


class Embeds(HTMLParser):
    """Collects embed wrappers (their attributes and the chain of enclosing tags)."""

    VOID = {"input", "br", "hr", "img", "meta", "link"}

    def __init__(self, text: str):
        super().__init__()
        self.stack: list[str] = []
        self.found: list[tuple[dict[str, str | None], list[str]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "sphere-workspace" in (a.get("class") or "").split():
            self.found.append((a, list(self.stack)))
        if tag not in self.VOID:
            self.stack.append(f"{tag}.{(a.get('class') or '').split(' ')[0]}".rstrip("."))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if "sphere-workspace" in (dict(attrs).get("class") or "").split():
            self.found.append((dict(attrs), list(self.stack)))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        while self.stack:
            if self.stack.pop().split(".")[0] == tag:
                break

    @property
    def names(self) -> list[str | None]:
        return [a.get("data-name") or None for a, _ in self.found]


def strip_assets(text: str) -> str:
    return re.sub(r"<style id=\"sphere-docs-css\">.*?</style>|<script id=\"sphere-docs-[a-z-]+\">.*?</script>", "", text, flags=re.S)


# --------------------------------------------------------------------------- exact rendering


def test_lazy_embed_renders_exactly_the_html_module_markup() -> None:
    out = render(f"```{{sphere-workspace}} {P}\n:height: 400px\n\nTry *this*.\n```\n")
    spec = WorkspaceSpec(project_id=P, mode="lazy", height="400px", name=default_name("intro.md", WorkspaceSpec(P, mode="lazy")))
    expected = html.lazy_placeholder(
        spec, page="intro.md", lazy_endpoint=LAZY, caption_html="<p>Try <em>this</em>.</p>"
    )
    assets = html.loader_snippet("127.0.0.1:8123", False) + html.page_assets(lazy=True)
    assert out == assets + expected


def test_caption_is_markdown_rendered_in_place() -> None:
    text = (
        f"````{{sphere-workspace}} {P}\n"  # a longer fence, so the caption can hold a code fence
        ":name: cap\n\n"
        "Run `pytest`, see [the docs](https://example.org/) and **fix** it.\n\n"
        "- one\n- two\n\n"
        "```python\nprint(1 < 2)\n```\n"
        "````\n"
    )
    out = render(text, "fenced_code")
    caption = re.search(r'<div class="sphere-workspace__caption">(.*?)</div><div class="sphere-workspace__placeholder"', out, re.S)
    assert caption is not None
    body = caption.group(1)
    assert "<code>pytest</code>" in body
    assert '<a href="https://example.org/">the docs</a>' in body
    assert "<strong>fix</strong>" in body
    assert "<li>one</li>" in body
    assert '<pre><code class="language-python">print(1 &lt; 2)\n</code></pre>' in body


def test_yaml_option_block_is_accepted() -> None:
    text = (
        f"```{{sphere-workspace}} {P}\n---\nname: yml\nheight: 300px\nfeatures: [fullscreen]\n"
        "token-required: false\nlaunch: visible\nclass: [a, b]\n---\nCaption.\n```\n"
    )
    (attrs, _), = Embeds(render(text)).found
    assert attrs["data-name"] == "yml"
    assert attrs["data-features"] == "fullscreenmode"
    assert attrs["data-launch"] == "visible"
    assert "data-token-required" not in attrs  # a lazy workspace's token rule is the endpoint's
    assert attrs["class"] == "sphere-workspace sphere-workspace--lazy a b"
    assert "--sphere-height:300px" in (attrs["style"] or "")
    # the YAML boolean still reaches the spec (build mode sends it on create)
    ext = SphereWorkspaceExtension(settings=SiteSettings.from_mapping(
        {k: v for k, v in BASE.items() if k != "page"}), deferred=True)
    ext.begin_page("intro.md")
    markdown.Markdown(extensions=[ext]).convert(text)
    (embed,), errors = ext.finish_page()
    assert errors == [] and embed.spec.token_required is False


def test_default_names_are_stable_per_page_and_position() -> None:
    text = "".join(f"```{{sphere-workspace}} {P}\n```\n\n" for _ in range(3))
    first = Embeds(render(text)).names
    assert first == [default_name("intro.md", WorkspaceSpec(P, mode="lazy"), i) for i in range(3)]
    assert Embeds(render("Some new prose.\n\n" + text)).names == first
    assert Embeds(render(text, page="other.md")).names == [default_name("other.md", WorkspaceSpec(P, mode="lazy"), i) for i in range(3)]


# --------------------------------------------------------------------------- nesting

DIRECTIVE = f"```{{sphere-workspace}} {P}\n:name: nested\n\nCaption *here*.\n```"


def indent(text: str, by: str = "    ") -> str:
    return "\n".join(by + line if line else line for line in text.split("\n"))


NESTING = {
    "top level": (DIRECTIVE, []),
    "after a paragraph line": ("Intro line\n" + DIRECTIVE, []),
    "admonition": ("!!! note\n" + indent(DIRECTIVE), ["div.admonition"]),
    "admonition after text": ("!!! note\n    First.\n\n" + indent(DIRECTIVE), ["div.admonition"]),
    "loose list": ("- item\n\n" + indent(DIRECTIVE), ["ul", "li"]),
    "tight list marker line": ("- one\n- " + DIRECTIVE.replace("\n", "\n  ") + "\n- three", ["ul", "li"]),
    "ordered list": ("1. step\n\n" + indent(DIRECTIVE), ["ol", "li"]),
    "list in admonition": ("!!! note\n    - item\n\n" + indent(indent(DIRECTIVE)), ["div.admonition", "ul", "li"]),
    "block quote": ("> " + DIRECTIVE.replace("\n", "\n> "), ["blockquote"]),
    "details": ("??? note \"More\"\n" + indent(DIRECTIVE), ["details.note"]),
    "tabbed": ('=== "A"\n\n' + indent(DIRECTIVE) + '\n\n=== "B"\n\n    Other.', ["div.tabbed-set", "div.tabbed-content"]),
    "tab in admonition": ('!!! note\n    === "A"\n\n' + indent(indent(DIRECTIVE)), ["div.admonition", "div.tabbed-set"]),
    "md_in_html": ('<div markdown="1">\n\n' + DIRECTIVE + "\n\n</div>", ["div"]),
}

EXTENSION_SETS = {
    "fenced_code": ["fenced_code", "admonition", "pymdownx.details", "pymdownx.tabbed", "md_in_html"],
    "superfences": ["pymdownx.superfences", "admonition", "pymdownx.details", "pymdownx.tabbed", "md_in_html"],
    "superfences+fenced_code": ["fenced_code", "pymdownx.superfences", "admonition", "pymdownx.details",
                                "pymdownx.tabbed", "md_in_html"],
    "tabbed alternate": ["pymdownx.superfences", "admonition", "pymdownx.details", "pymdownx.tabbed", "md_in_html"],
    "superfences preserve_tabs": ["pymdownx.superfences", "admonition", "pymdownx.details", "pymdownx.tabbed",
                                  "md_in_html"],
}


@pytest.mark.parametrize("extensions", EXTENSION_SETS, ids=list(EXTENSION_SETS))
@pytest.mark.parametrize("case", NESTING, ids=list(NESTING))
def test_directive_nested_in_containers(case: str, extensions: str) -> None:
    text, containers = NESTING[case]
    exts = EXTENSION_SETS[extensions]
    md = markdown.Markdown(
        extensions=["sphere_workspaces", *exts],
        extension_configs={"sphere_workspaces": BASE,
                           "pymdownx.tabbed": {"alternate_style": extensions == "tabbed alternate"},
                           "pymdownx.superfences": {"preserve_tabs": extensions == "superfences preserve_tabs"}},
    )
    out = md.convert(text + "\n\nAfter.\n")
    embeds = Embeds(out)
    assert embeds.names == ["nested"], out
    _attrs, stack = embeds.found[0]
    chain = [s for s in stack if s.split(".")[0] in {"div", "ul", "ol", "li", "blockquote", "details"}]
    for container in containers:
        assert any(s == container or s.startswith(container) for s in chain), (container, chain, out)
    assert '<div class="sphere-workspace__caption"><p>Caption <em>here</em>.</p></div>' in out
    assert "sphere-workspace}" not in out  # nothing of the directive leaks as text
    assert "\x02" not in out and "data-sphere-slot" not in out
    assert "<p>After.</p>" in out


# --------------------------------------------------------------------------- content stays content

CONTENT = {
    "fenced (4 backticks)": f"````md\n```{{sphere-workspace}} {P}\n:height: 1\n```\n````",
    "fenced (5 backticks)": f"`````\n````{{sphere-workspace}} {P}\n````\n`````",
    "fenced (tildes)": f"~~~\n```{{sphere-workspace}} {P}\n```\n~~~",
    "fenced (tildes around tildes)": f"~~~~\n~~~{{sphere-workspace}} {P}\n~~~\n~~~~",
    "indented code": f"Para.\n\n    ```{{sphere-workspace}} {P}\n    :height: 1\n    ```",
    "inline code": f"Use `` ```{{sphere-workspace}} {P}``` `` inline.",
    "html comment": f"<!--\n```{{sphere-workspace}} {P}\n:height: 1\n```\n-->",
    "html comment after text": f"Text <!-- a comment\n```{{sphere-workspace}} {P}\n```\n-->",
    "raw html block": f"<pre>\n```{{sphere-workspace}} {P}\n```\n</pre>",
    "fence in a list": f"- item\n\n    ````\n    ```{{sphere-workspace}} {P}\n    ```\n    ````",
    "fence in an admonition": f"!!! note\n    ~~~\n    ```{{sphere-workspace}} {P}\n    ```\n    ~~~",
    "code block in a list": f"- item\n\n        ```{{sphere-workspace}} {P}\n        ```",
}


CONTENT_SETUPS = {
    "fenced_code": (["fenced_code", "admonition"], {}),
    "superfences": (["pymdownx.superfences", "admonition"], {}),
    "superfences preserve_tabs": (["pymdownx.superfences", "admonition"],
                                  {"pymdownx.superfences": {"preserve_tabs": True}}),
}


@pytest.mark.parametrize("setup", CONTENT_SETUPS, ids=list(CONTENT_SETUPS))
@pytest.mark.parametrize("case", CONTENT, ids=list(CONTENT))
def test_directive_as_content_is_left_alone(case: str, setup: str) -> None:
    if (case, setup) == ("html comment after text", "fenced_code"):
        pytest.skip("fenced_code makes the fence a block of its own, out of the inline comment: "
                    "see test_fenced_code_takes_a_fence_out_of_an_inline_comment")
    extensions, configs = CONTENT_SETUPS[setup]
    # ":height: 1" is invalid: a directive that were parsed would raise
    out = markdown.markdown(CONTENT[case] + "\n\nAfter.\n", extensions=["sphere_workspaces", *extensions],
                            extension_configs={"sphere_workspaces": BASE, **configs})
    assert Embeds(out).found == []
    assert "{sphere-workspace}" in out, out
    assert "\x02" not in out and "data-sphere" not in out
    assert "sphere-docs-loader" not in out


def test_crlf_and_tabs_are_normalized_like_markdown_does() -> None:
    text = f"- item\r\n\r\n\t```{{sphere-workspace}} {P}\r\n\t:name: tabbed\r\n\r\n\tCaption.\r\n\t```\r\n"
    out = render(text)
    assert Embeds(out).names == ["tabbed"]
    assert "<p>Caption.</p>" in out


def test_forged_markers_in_the_source_are_inert() -> None:
    out = render("Text \x01sphere-workspace:0\x04 and \x02sphere-workspace:0\x03 here.")
    assert Embeds(out).found == [] and "Text" in out


def test_directive_in_indented_code_keeps_its_text_exactly() -> None:
    out = render(f"Para.\n\n    ```{{sphere-workspace}} {P}\n    :class: a<b\n      deeper\n    ```\n")
    assert f"<pre><code>```{{sphere-workspace}} {P}\n:class: a&lt;b\n  deeper\n```\n</code></pre>" in out


def test_directive_in_comment_survives_verbatim() -> None:
    text = f"<!--\n```{{sphere-workspace}} {P}\n```\n-->"
    assert render(text) == text


def test_embed_after_content_examples_still_counts_from_zero() -> None:
    text = f"````md\n```{{sphere-workspace}} {P}\n```\n````\n\n```{{sphere-workspace}} {P}\n```\n"
    assert Embeds(render(text, "fenced_code")).names == [default_name("intro.md", WorkspaceSpec(P, mode="lazy"), 0)]


def test_indented_example_before_a_real_embed_keeps_names_stable() -> None:
    example = f"Para.\n\n    ```{{sphere-workspace}} {P}\n    ```\n\n"
    real = f"```{{sphere-workspace}} {P}\n```\n"
    assert Embeds(render(example + real)).names == Embeds(render(real)).names


# --------------------------------------------------------------------------- errors (pinned)

OPTS = ", ".join(
    ["mode", "height", "width", "features", "launch", "token-required", "inactivity-timeout",
     "retention-stopped", "retention-total", "auto-resume", "name", "class"]
)
#: an option's problem is reported at the option's own line; the others at the fence's
ERRORS = {
    "unknown option": (
        f"Intro\n\n```{{sphere-workspace}} {P}\n:heigth: 600px\n```\n",
        f"intro.md:4: sphere-workspace: unknown option 'heigth' (did you mean 'height'?); valid options: {OPTS}",
    ),
    "bad value": (
        f"```{{sphere-workspace}} {P}\n:height: 600\n```\n",
        "intro.md:2: sphere-workspace: invalid value '600' for option 'height'; "
        "expected a CSS length such as 600px, 70vh, 40em or 100%",
    ),
    "bad choice": (
        f"```{{sphere-workspace}} {P}\n:mode: eager\n```\n",
        "intro.md:2: sphere-workspace: invalid value 'eager' for option 'mode'; expected build | lazy",
    ),
    "bad boolean": (
        f"```{{sphere-workspace}} {P}\n:auto-resume: maybe\n```\n",
        "intro.md:2: sphere-workspace: invalid value 'maybe' for option 'auto-resume'; expected true | false",
    ),
    "missing project id": (
        "```{sphere-workspace}\n```\n",
        "intro.md:1: sphere-workspace: missing project id; expected a project id of 32 hexadecimal characters",
    ),
    "malformed project id": (
        "```{sphere-workspace} eef024c1\n```\n",
        "intro.md:1: sphere-workspace: invalid project id 'eef024c1'; "
        "expected a project id of 32 hexadecimal characters",
    ),
    "bad yaml": (
        f"```{{sphere-workspace}} {P}\n---\nheight: [600px\n---\n```\n",
        "intro.md:1: sphere-workspace: invalid YAML in the option block (line 3, column 15): "
        "expected ',' or ']', but got '<stream end>'; expected 'name: value' lines between the --- lines",
    ),
    "yaml not a mapping": (
        f"```{{sphere-workspace}} {P}\n---\n- height\n---\n```\n",
        "intro.md:1: sphere-workspace: the YAML option block is a list, not a mapping; "
        "expected 'name: value' lines between the --- lines",
    ),
    "yaml block never closed": (
        f"```{{sphere-workspace}} {P}\n---\nheight: 1px\n```\n",
        "intro.md:1: sphere-workspace: the YAML option block is never closed; "
        "expected a line with --- after the options",
    ),
    "yaml nested value": (
        f"```{{sphere-workspace}} {P}\n---\nfeatures: {{a: 1}}\n---\n```\n",
        "intro.md:3: sphere-workspace: invalid value {'a': 1} for option 'features'; "
        "expected a single value (text, number or true/false)",
    ),
    "yaml unknown option": (
        f"\n\n```{{sphere-workspace}} {P}\n---\nhieght: 1px\n---\n```\n",
        f"intro.md:5: sphere-workspace: unknown option 'hieght' (did you mean 'height'?); valid options: {OPTS}",
    ),
    "fence never closed": (
        f"```{{sphere-workspace}} {P}\n:height: 1px\n",
        "intro.md:1: sphere-workspace: the fence opened here is never closed; "
        "expected a closing ``` line at the same indentation",
    ),
    "option twice": (
        f"```{{sphere-workspace}} {P}\n:height: 1px\n:height: 2px\n```\n",
        "intro.md:3: sphere-workspace: option 'height' is given twice; give each option once",
    ),
    "duplicate name": (
        f"```{{sphere-workspace}} {P}\n:name: a\n```\n\n```{{sphere-workspace}} {P}\n:name: a\n```\n",
        "intro.md:6: sphere-workspace: duplicate value 'a' for option 'name'; "
        "expected a name not used by another embed on this page (line 1)",
    ),
    "nested in a list": (
        f"- item\n\n    ```{{sphere-workspace}} {P}\n    :width: wide\n    ```\n",
        "intro.md:4: sphere-workspace: invalid value 'wide' for option 'width'; "
        "expected a CSS length such as 600px, 70vh, 40em or 100%",
    ),
}


@pytest.mark.parametrize("case", ERRORS, ids=list(ERRORS))
def test_bad_input_raises_the_pinned_message(case: str) -> None:
    text, message = ERRORS[case]
    with pytest.raises(DirectiveError) as info:
        render(text, "admonition")
    assert str(info.value) == message
    assert info.value.page == "intro.md"
    assert info.value.line == int(message.split(":")[1])


def test_error_without_a_page_names_the_line() -> None:
    with pytest.raises(DirectiveError) as info:
        markdown.markdown("```{sphere-workspace} nope\n```", extensions=["sphere_workspaces"])
    assert str(info.value) == (
        "line 1: sphere-workspace: invalid project id 'nope'; expected a project id of 32 hexadecimal characters"
    )


def test_lazy_embed_without_lazy_endpoint_is_an_error() -> None:
    with pytest.raises(SettingsError) as settings_error:  # lazy by default: the settings are wrong
        render(f"```{{sphere-workspace}} {P}\n```\n", lazy_endpoint=None)
    assert str(settings_error.value) == (
        "sphere-workspaces: missing setting 'lazy_endpoint'; expected the URL of the lazy endpoint, "
        "because 'mode' is 'lazy' (e.g. https://docs.example.com/sphere/workspaces)"
    )
    with pytest.raises(DirectiveError) as info:  # one lazy embed on a build-mode site: the embed is
        render(f"```{{sphere-workspace}} {P}\n:mode: lazy\n```\n", lazy_endpoint=None, mode="build")
    assert str(info.value) == (
        "intro.md:1: sphere-workspace: mode 'lazy' needs the lazy_endpoint setting (the URL of the lazy "
        "endpoint); expected lazy_endpoint in the site settings"
    )


def test_bad_extension_setting_fails_when_the_extension_loads() -> None:
    with pytest.raises(SettingsError) as info:
        render("text", mode="eager")
    assert str(info.value) == "sphere-workspaces: invalid value 'eager' for setting 'mode'; expected build | lazy"


def test_line_offset_counts_front_matter() -> None:
    settings = SiteSettings.from_mapping({k: v for k, v in BASE.items() if k != "page"})
    ext = SphereWorkspaceExtension(settings=settings, deferred=True)
    md = markdown.Markdown(extensions=[ext])
    ext.begin_page("lessons/a.md", line_offset=4)
    md.convert(f"# T\n\n```{{sphere-workspace}} {P}\n:height: x\n```\n")
    embeds, errors = ext.finish_page()
    assert embeds == []
    assert [str(e) for e in errors] == [
        "lessons/a.md:8: sphere-workspace: invalid value 'x' for option 'height'; "
        "expected a CSS length such as 600px, 70vh, 40em or 100%"
    ]


# --------------------------------------------------------------------------- per-document state


def test_state_is_per_document_when_the_instance_is_reused() -> None:
    md = markdown.Markdown(extensions=["sphere_workspaces"], extension_configs={"sphere_workspaces": BASE})
    one = md.convert(f"```{{sphere-workspace}} {P}\n```\n")
    md.reset()
    two = md.convert(f"```{{sphere-workspace}} {P}\n```\n\n```{{sphere-workspace}} {P}\n```\n")
    three = md.convert("No embeds here.")  # no reset() in between: still a fresh document
    assert len(Embeds(one).found) == 1
    assert len(Embeds(two).found) == 2
    assert three == "<p>No embeds here.</p>"


def test_one_extension_instance_across_markdown_instances_like_mkdocs() -> None:
    settings = SiteSettings.from_mapping({k: v for k, v in BASE.items() if k != "page"})
    ext = SphereWorkspaceExtension(settings=settings, deferred=True)
    results = []
    for page, count in (("a.md", 2), ("b.md", 0), ("c.md", 1)):
        md = markdown.Markdown(extensions=[ext, "toc"])  # MkDocs: a new Markdown per page
        ext.begin_page(page)
        md.convert("# Heading\n\n" + "".join(f"```{{sphere-workspace}} {P}\n```\n\n" for _ in range(count)))
        embeds, errors = ext.finish_page()
        results.append((page, [e.spec.name for e in embeds], errors))
    assert results == [
        ("a.md", [default_name("a.md", WorkspaceSpec(P, mode="lazy"), 0), default_name("a.md", WorkspaceSpec(P, mode="lazy"), 1)], []),
        ("b.md", [], []),
        ("c.md", [default_name("c.md", WorkspaceSpec(P, mode="lazy"), 0)], []),
    ]


def test_deferred_build_embeds_leave_a_marker_and_the_rendered_caption() -> None:
    settings = SiteSettings.from_mapping({"endpoint": "http://127.0.0.1:8123"})
    ext = SphereWorkspaceExtension(settings=settings, deferred=True)
    ext.begin_page("p.md")
    out = markdown.markdown(f"```{{sphere-workspace}} {P}\n\nHi *there*\n```\n", extensions=[ext])
    (embed,), errors = ext.finish_page()
    assert errors == []
    assert out == embed.marker
    assert embed.caption_html == "<p>Hi <em>there</em></p>"
    assert (embed.page, embed.line, embed.spec.mode) == ("p.md", 1, "build")


def test_headings_run_through_postprocessors_do_not_duplicate_embeds() -> None:
    # toc renders each heading through the postprocessors; only the document counts
    settings = SiteSettings.from_mapping({"endpoint": "http://127.0.0.1:8123"})
    ext = SphereWorkspaceExtension(settings=settings, deferred=True)
    ext.begin_page("p.md")
    markdown.markdown(f"# One\n\n## Two\n\n```{{sphere-workspace}} {P}\n```\n", extensions=[ext, "toc"])
    embeds, _ = ext.finish_page()
    assert len(embeds) == 1


# --------------------------------------------------------------------------- alone: the page works by itself


def test_loader_is_emitted_once_before_the_first_embed() -> None:
    out = render(f"# Title\n\nIntro.\n\n```{{sphere-workspace}} {P}\n```\n\n```{{sphere-workspace}} {P}\n```\n")
    assert out.count('<script id="sphere-docs-loader">') == 1
    assert out.index('id="sphere-docs-loader"') < out.index("sphere-workspace--lazy")
    assert out.startswith("<h1>Title</h1>\n<p>Intro.</p>\n" + html.loader_snippet("127.0.0.1:8123", False))


def test_no_embed_no_loader() -> None:
    assert "script" not in render("# Plain\n\n```python\nx = 1\n```\n", "fenced_code")


def test_zensical_style_context_names_the_page() -> None:
    from markdown.preprocessors import Preprocessor

    class Page:
        path = "guide/setup.md"

    class Context(Preprocessor):
        page = Page()

        def run(self, lines: list[str]) -> list[str]:
            return lines

    md = markdown.Markdown(extensions=["sphere_workspaces"],
                           extension_configs={"sphere_workspaces": {k: v for k, v in BASE.items() if k != "page"}})
    md.preprocessors.register(Context(md), "rendering_context", 0)
    out = md.convert(f"```{{sphere-workspace}} {P}\n```\n")
    assert Embeds(out).names == [default_name("guide/setup.md", WorkspaceSpec(P, mode="lazy"), 0)]
    assert 'data-page="guide/setup.md"' in out


def test_alone_build_mode_provisions_per_document(emulator, caplog: pytest.LogCaptureFixture, tmp_path) -> None:
    caplog.set_level(logging.DEBUG)
    cfg = {"endpoint": emulator.url, "page": "alone.md", "cache": str(tmp_path / "cache"), "mode": "build"}
    text = f"# A\n\n```{{sphere-workspace}} {P}\n:name: one\n```\n\n```{{sphere-workspace}} {P}\n:mode: lazy\n```\n"
    out = markdown.markdown(text, extensions=["sphere_workspaces"],
                            extension_configs={"sphere_workspaces": cfg | {"lazy_endpoint": LAZY}})
    ids = re.findall(r'data-workspace="([0-9a-f]{32})"', out)
    assert len(ids) == 1
    client = ContainersClient(f"{emulator.url}/api/v1", SECRET_TOKEN)
    assert client.get_workspace(ids[0]).is_live
    client.close()
    assert out.count('<script id="sphere-docs-loader">') == 1
    assert out.index("sphere-docs-loader") < out.index("data-workspace=")
    assert '<script id="sphere-docs-lazy-js">' in out  # the page also has a lazy embed
    assert emulator.count("POST /workspaces") == 1
    # a second conversion of the same document reuses the workspace
    again = markdown.markdown(text, extensions=["sphere_workspaces"],
                              extension_configs={"sphere_workspaces": cfg | {"lazy_endpoint": LAZY}})
    assert re.findall(r'data-workspace="([0-9a-f]{32})"', again) == ids
    assert emulator.count("POST /workspaces") == 1
    assert_no_leak([out, again, *(r.getMessage() for r in caplog.records)], [tmp_path])


def test_alone_build_mode_without_token_names_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("SPHERE_ENGINE_ACCESS_TOKEN", raising=False)
    with pytest.raises(SettingsError) as info:
        markdown.markdown(f"```{{sphere-workspace}} {P}\n```\n", extensions=["sphere_workspaces"],
                          extension_configs={"sphere_workspaces": {"endpoint": "http://127.0.0.1:9",
                                                                   "cache": str(tmp_path)}})
    assert "set the environment variable SPHERE_ENGINE_ACCESS_TOKEN" in str(info.value)


def test_alone_placeholder_when_the_api_is_down(access_token, tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    from sphere_docs.services.emulator import EmulatorServer

    with EmulatorServer(token=access_token, start_delay=0) as dead:
        url = dead.url
    cfg = {"endpoint": url, "on_error": "placeholder", "retries": 0, "timeout": 2,
           "cache": str(tmp_path), "page": "down.md"}
    with caplog.at_level(logging.WARNING):
        out = markdown.markdown(f"```{{sphere-workspace}} {P}\n\nCaption.\n```\n", extensions=["sphere_workspaces"],
                                extension_configs={"sphere_workspaces": cfg})
    assert 'data-sphere-mode="unavailable"' in out
    assert "<p>Caption.</p>" in out
    assert "data-workspace=" not in out
    assert any("down.md:1" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert_no_leak([out, *(r.getMessage() for r in caplog.records)])


# --------------------------------------------------------------------------- what is code (sphere_docs.syntax.fences)

ENGINES = {"superfences": ["pymdownx.superfences"], "fenced_code": ["fenced_code"]}


def deferred(text: str, *extensions: str) -> tuple[list[str | None], list[str], list[str]]:
    """(embed names, errors, warnings) of ``text`` through the extension in deferred lazy mode."""
    ext = SphereWorkspaceExtension(settings=SiteSettings.from_mapping(
        {k: v for k, v in BASE.items() if k != "page"}), deferred=True)
    ext.begin_page("intro.md")
    markdown.Markdown(extensions=[*extensions, ext]).convert(text)
    warnings: list[DirectiveError] = []
    embeds, errors = ext.finish_page(warnings)
    return [e.spec.name for e in embeds], [str(e) for e in errors], [str(w) for w in warnings]


@pytest.mark.parametrize("engine", ENGINES)
def test_an_indented_bare_fence_does_not_close_a_fence(engine: str) -> None:
    """Issue 11, item 1: an indented bare fence line inside a column-0 fence is content (it was its end)."""
    page = ("```md\n1. Install:\n\n    ```\n    pip install x\n    ```\n```\n\n"
            f"```{{sphere-workspace}} {P}\n:name: after\n```\n")
    assert deferred(page, *ENGINES[engine]) == (["after"], [], [])
    inside = f"```\n  ```\n```{{sphere-workspace}} {P}\n:name: example\n```\n"  # one code block
    assert deferred(inside, *ENGINES[engine]) == ([], [], [])


@pytest.mark.parametrize("engine", ENGINES)
def test_closing_rules_are_the_engines(engine: str) -> None:
    exts = ENGINES[engine]
    # a longer or an indented fence line does not close the directive's fence
    for closing in ("````", " ```", "    ```"):
        names, errors, _ = deferred(f"```{{sphere-workspace}} {P}\n:name: a\n{closing}\n", *exts)
        assert names == [] and [e.split(": ", 1)[1] for e in errors] == [
            "sphere-workspace: the fence opened here is never closed; "
            "expected a closing ``` line at the same indentation"], closing
    # trailing spaces are fine; tildes close tildes
    assert deferred(f"~~~~{{sphere-workspace}} {P}\n:name: t\n~~~~   \n", *exts)[0] == ["t"]


def test_superfences_fences_start_after_any_indentation() -> None:
    """Indented 1-3 spaces at top level, or under a tight list item: embeds (they were text)."""
    assert deferred(f" ```{{sphere-workspace}} {P}\n :name: one\n ```\n", "pymdownx.superfences")[0] == ["one"]
    tight = f"1. Step:\n   ```{{sphere-workspace}} {P}\n   :name: step\n   ```\n"
    out = render(tight, "pymdownx.superfences")
    assert Embeds(out).names == ["step"] and Embeds(out).found[0][1][:2] == ["ol", "li"]


def test_fenced_code_takes_a_fence_out_of_an_inline_comment() -> None:
    """fenced_code gives a fence a block of its own, out of a comment opened in the text before it."""
    text = f"Text <!-- a comment\n```{{sphere-workspace}} {P}\n:height: 1\n```\n-->\n"
    with pytest.raises(DirectiveError) as info:
        render(text, "fenced_code")
    assert info.value.line == 3  # the option's line
    probe = markdown.markdown(text.replace(f"{{sphere-workspace}} {P}", "probe"), extensions=["fenced_code"])
    assert '<pre><code class="language-probe">' in probe  # the renderer: a fence, not a comment


@pytest.mark.parametrize("engine", ENGINES)
def test_colon_fence_is_reported_where_it_is_shown(engine: str, caplog: pytest.LogCaptureFixture) -> None:
    sentence = "sphere-workspace: a ':::' colon fence is MyST syntax; write ```{sphere-workspace} ... ``` instead"
    page = f"# Title\n\n:::{{sphere-workspace}} {P}\n:name: colon\n:::\n"
    assert deferred(page, *ENGINES[engine]) == ([], [], [f"intro.md:3: {sentence}"])
    with caplog.at_level(logging.WARNING, logger="sphere_docs.markdown"):  # used alone: logged
        render(page, *ENGINES[engine])
    assert [r.getMessage() for r in caplog.records] == [f"intro.md:3: {sentence}"]
    # as code, it is an example: nothing to say
    assert deferred(f"````\n:::{{sphere-workspace}} {P}\n:::\n````\n", *ENGINES[engine]) == ([], [], [])
    assert deferred(f"Para.\n\n    :::{{sphere-workspace}} {P}\n", *ENGINES[engine]) == ([], [], [])


NO_SILENT_DROP = {
    "inside a fence never closed": (
        f"```python\nprint(1)\n\n```{{sphere-workspace}} {P}\n",
        "intro.md:4: sphere-workspace: this directive is shown as text, not as an embed: the ``` fence "
        "opened at line 1 is never closed at its indentation, so the lines after it are not read as fences; "
        "expected a closing ``` line indented like its opening line"),
    "in raw HTML": (
        f"<div>\n```{{sphere-workspace}} {P}\n```\n</div>\n",
        "intro.md:2: sphere-workspace: this directive is shown as text, not as an embed: Markdown reads it as "
        "part of the text or raw HTML around it; expected the fence on lines of its own, outside raw HTML "
        '(or in an element with markdown="1" and the md_in_html extension)'),
    "in the caption of another": (
        f"````{{sphere-workspace}} {P}\n:name: outer\n```{{sphere-workspace}} {P}\n````\n",
        "intro.md:3: sphere-workspace: this directive is shown as text, not as an embed: it is inside the "
        "caption of the directive at line 1; expected a closing fence for that directive before this one"),
    "after indented code, no blank line": (
        f"    code\n```{{sphere-workspace}} {P}\n```\n",
        "intro.md:2: sphere-workspace: this directive is shown as text, not as an embed: it follows an "
        "indented code block with no blank line between, and superfences then puts the fence back as text; "
        "expected a blank line before the directive"),
}


@pytest.mark.parametrize("case", NO_SILENT_DROP, ids=list(NO_SILENT_DROP))
def test_directive_text_shown_as_text_is_a_located_warning(case: str) -> None:
    page, warning = NO_SILENT_DROP[case]
    names, errors, warnings = deferred(page, "pymdownx.superfences", "admonition")
    assert warnings == [warning]
    assert errors == [] and names == (["outer"] if case == "in the caption of another" else [])


def test_directive_text_in_code_and_comments_is_silent() -> None:
    for page in (f"Para.\n\n    ```{{sphere-workspace}} {P}\n    ```\n",
                 f"<!--\n```{{sphere-workspace}} {P}\n```\n-->\n",
                 f"- item <!--\n  ```{{sphere-workspace}} {P}\n  ```\n  -->\n",
                 f"<pre>\n```{{sphere-workspace}} {P}\n```\n</pre>\n"):
        assert deferred(page, "pymdownx.superfences") == ([], [], []), page


def test_without_a_fence_extension_an_example_fence_still_holds_its_directive() -> None:
    """No fenced_code/superfences: the ````md example is text, its directive too (with a warning saying why)."""
    page = f"````md\n```{{sphere-workspace}} {P}\n```\n````\n\n```{{sphere-workspace}} {P}\n:name: real\n```\n"
    names, errors, warnings = deferred(page)
    assert (names, errors) == (["real"], [])
    assert warnings == ["intro.md:2: sphere-workspace: this directive is shown as text, not as an embed: it is "
                        "inside the ```` fence opened at line 1, which is text: no fenced code extension is "
                        "enabled; expected pymdownx.superfences or fenced_code in the Markdown extensions"]
