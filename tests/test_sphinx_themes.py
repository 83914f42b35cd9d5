"""The loader lands right after ``<body ...>``, once, whatever the theme.

Each theme writes its own ``<body>`` tag (attributes, scripts of its own right
after it, ...); the extension post-processes the written pages, so every
theme must give: exactly one loader immediately after ``<body ...>`` on the
pages with an embed, none on the others, and live workspaces in the divs.
"""

from __future__ import annotations

import pytest
from conftest import assert_no_leak
from sphinx_fixtures import (
    LOADER_TAG,
    THEMES,
    build,
    copy_root,
    frames,
    html_pages,
    loader_count,
    loader_right_after_body,
    warnings_of,
)

WITH_EMBEDS = {"index.html": 1, "lesson.html": 2, "mystpage.html": 1}


@pytest.mark.parametrize("theme", THEMES)
def test_loader_right_after_body_once_on_embed_pages_only(make_app, emulator, tmp_path, theme):
    src = copy_root("sphere-basic", tmp_path)
    app = build(make_app, src, emulator=emulator, html_theme=theme)
    assert warnings_of(app) == ""
    pages = html_pages(app.outdir)
    assert {"plain.html", "genindex.html", "search.html"} <= set(pages)
    for name, text in pages.items():
        if name in WITH_EMBEDS:
            assert loader_count(text) == 1, (theme, name)
            assert loader_right_after_body(text), (theme, name, text[text.find("<body"):][:300])
            assert text.index(LOADER_TAG) < text.index('class="sphere-workspace')
            divs = frames(text)
            assert len(divs) == WITH_EMBEDS[name]
            for div in divs:
                state = emulator.app.workspace(div["data-workspace"])
                assert state is not None and state["state"]["name"] == "running"
                assert state["workspace_token"] == div["data-workspace-token"]
        else:
            assert loader_count(text) == 0, (theme, name)
            assert "sphere-docs-css" not in text
    assert_no_leak(texts=[app.status.getvalue(), app.warning.getvalue()], roots=[app.outdir])
