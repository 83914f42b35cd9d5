"""The Sphinx extension against the emulator: real Sphinx builds, nothing mocked.

Covers provisioning (live ids, the token never leaking), parallel and
incremental builds, the pinned bad-input warnings, ``-W``, fault injection
with each ``sphere_on_error``, lazy mode, the manifest, config validation, and
MyST/rST giving the same div.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
import sphinx
from conftest import SECRET_TOKEN, TOKEN_ENV, assert_no_leak
from sphinx.errors import ConfigError, SphinxError
from sphinx_fixtures import (
    PROJECT,
    build,
    copy_root,
    embed_markup,
    frames,
    html_pages,
    loader_count,
    loader_right_after_body,
    logged,
    ours,
    status_of,
    touch,
    warning_lines,
    warnings_of,
)

from sphere_docs.api.client import ContainersClient

EMBED_PAGES = {"index.html": 1, "lesson.html": 2, "mystpage.html": 1}
CREATES = "POST /workspaces"


def all_frames(outdir: Path) -> dict[str, list[dict[str, str | None]]]:
    return {name: frames(text) for name, text in html_pages(outdir).items() if frames(text)}


def dead_endpoint() -> str:
    """A loopback URL where nothing listens (connection refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- the main build ------------------------------------------------------------------------


def test_html_build_live_workspaces_loader_manifest_and_no_leak(make_app, emulator, tmp_path):
    src = copy_root("sphere-basic", tmp_path)
    app = build(make_app, src, emulator=emulator)

    assert warnings_of(app) == ""
    pages = html_pages(app.outdir)
    found = all_frames(app.outdir)
    assert {name: len(f) for name, f in found.items()} == EMBED_PAGES
    for name, text in pages.items():
        if name in EMBED_PAGES:
            assert loader_count(text) == 1 and loader_right_after_body(text), name
        else:
            assert loader_count(text) == 0, name

    # every div names a live workspace, with its workspace token: GET each one back
    with ContainersClient(emulator.url + "/api/v1", SECRET_TOKEN) as client:
        for frame in (f for page in found.values() for f in page):
            workspace = client.get_workspace(frame["data-workspace"])
            assert workspace.is_live and workspace.project_id == PROJECT
            assert frame["data-workspace-token"] == workspace.workspace_token
    ids = [f["data-workspace"] for page in found.values() for f in page]
    assert len(set(ids)) == len(ids) == 4 == emulator.count(CREATES)
    names = [f["data-id"] for page in found.values() for f in page]
    assert "first" in names and len(set(names)) == 4

    # features and sizes reach the markup
    index = pages["index.html"]
    assert 'data-features="fullscreenmode"' in index and "--sphere-height:500px" in index
    assert "Try the exercise: make the tests pass." in index

    manifest = json.loads((app.outdir / "sphere-workspaces.json").read_text())
    assert manifest["projects"] == [PROJECT]
    assert {page: len(embeds) for page, embeds in manifest["pages"].items()} == {
        "index.rst": 1, "lesson.rst": 2, "mystpage.md": 1}

    # the access token is nowhere: not in the site, the doctrees, the ledger, or the log
    assert_no_leak(texts=[app.status.getvalue(), app.warning.getvalue()], roots=[src])


def test_prune_after_incremental_builds_keeps_unchanged_pages(make_app, emulator, tmp_path):
    """Incremental builds resolve only changed documents; prune must still see every embed as used."""
    import io

    from sphere_docs.pipeline.provision import prune

    src = copy_root("sphere-basic", tmp_path)
    build(make_app, src, emulator=emulator)
    lesson = src / "lesson.rst"
    touch(lesson, lesson.read_text().replace("Some prose", "Some better prose"))
    build(make_app, src, emulator=emulator)  # re-reads lesson.rst only
    after_edit = prune(src / ".sphere-docs-cache", dry_run=True, out=io.StringIO())
    assert (after_edit.removed, after_edit.kept) == ([], 4)

    build(make_app, src, emulator=emulator)  # nothing changed: nothing re-read
    unchanged = prune(src / ".sphere-docs-cache", dry_run=True, out=io.StringIO())
    assert (unchanged.removed, unchanged.kept) == ([], 4)


def test_parallel_build_gives_the_same_embeds(make_app, emulator, tmp_path):
    src = copy_root("sphere-basic", tmp_path)
    for n in range(3):  # Sphinx before 8.1 reads in parallel only more than 5 documents
        (src / f"extra{n}.rst").write_text(f":orphan:\n\nExtra {n}\n=======\n\nNo workspace.\n")
    serial = build(make_app, src, emulator=emulator)
    serial_pages = {n: embed_markup(t) for n, t in html_pages(serial.outdir).items()}
    assert emulator.count(CREATES) == 4

    parallel = build(make_app, src, emulator=emulator, parallel=2, freshenv=True)
    status = status_of(parallel)
    # a parallel read names a chunk of documents per step: "[ 50%] extra0 .. index"
    assert re.search(r"reading sources\.\.\. \[ ?\d+%\] [\w/-]+ \.\. [\w/-]+", status), "did not read in parallel"
    assert warnings_of(parallel) == ""
    parallel_pages = {n: embed_markup(t) for n, t in html_pages(parallel.outdir).items()}
    assert parallel_pages == serial_pages  # same divs, same workspaces (from the ledger)
    assert emulator.count(CREATES) == 4

    other = copy_root("sphere-basic", tmp_path / "fresh")  # -j 2 from scratch: its own ledger
    fresh = build(make_app, other, emulator=emulator, parallel=2)
    assert {n: len(f) for n, f in all_frames(fresh.outdir).items()} == EMBED_PAGES
    assert emulator.count(CREATES) == 8
    for page in EMBED_PAGES:
        assert loader_count(html_pages(fresh.outdir)[page]) == 1


def test_incremental_builds_create_only_for_changed_embeds(make_app, emulator, tmp_path):
    src = copy_root("sphere-basic", tmp_path)
    first = build(make_app, src, emulator=emulator, sphere_trust_checked=0)
    before = all_frames(first.outdir)
    assert emulator.count(CREATES) == 4

    # no change: nothing read, nothing asked of the API
    emulator.reset_stats()
    again = build(make_app, src, emulator=emulator, sphere_trust_checked=0)
    assert "0 added, 0 changed, 0 removed" in status_of(again)
    assert emulator.stats()["total_requests"] == 0  # not even a liveness GET
    assert all_frames(again.outdir) == before

    # prose edit: the page is re-read, its workspaces reused (checked, not created)
    lesson = src / "lesson.rst"
    touch(lesson, lesson.read_text().replace("Some prose", "Some better prose"))
    prose = build(make_app, src, emulator=emulator, sphere_trust_checked=0)
    assert "0 added, 1 changed, 0 removed" in status_of(prose)
    assert emulator.count(CREATES) == 0
    assert emulator.count("GET /workspaces/{id}") == 2  # its two embeds, checked in the ledger
    assert all_frames(prose.outdir) == before
    assert "Some better prose" in html_pages(prose.outdir)["lesson.html"]

    # a display option (height) is not a creation option: still nothing created
    touch(lesson, lesson.read_text().replace(":width: 80%", ":width: 70%"))
    build(make_app, src, emulator=emulator, sphere_trust_checked=0)
    assert emulator.count(CREATES) == 0

    # one embed's creation option changes: exactly one workspace is created
    touch(lesson, lesson.read_text().replace(":inactivity-timeout: 15", ":inactivity-timeout: 30"))
    changed = build(make_app, src, emulator=emulator, sphere_trust_checked=0)
    assert emulator.count(CREATES) == 1
    after = all_frames(changed.outdir)
    assert after["lesson.html"][0] == before["lesson.html"][0]
    assert after["lesson.html"][1]["data-workspace"] != before["lesson.html"][1]["data-workspace"]
    assert after["index.html"] == before["index.html"]
    assert warnings_of(changed) == ""


# -- bad input -----------------------------------------------------------------------------

VALID = ("mode, height, width, features, launch, token-required, inactivity-timeout, "
         "retention-stopped, retention-total, auto-resume, name, class")
BAD_RST = [
    (9, f"sphere-workspace: unknown option 'heigth' (did you mean 'height'?); valid options: {VALID}"),
    (12, "sphere-workspace: invalid value 'tall' for option 'height'; "
         "expected a CSS length such as 600px, 70vh, 40em or 100%"),
    (14, "sphere-workspace: missing project id; expected a project id of 32 hexadecimal characters"),
    (16, "sphere-workspace: invalid project id 'not-a-project'; "
         "expected a project id of 32 hexadecimal characters"),
    (19, "sphere-workspace: invalid value 'eager' for option 'mode'; expected build | lazy"),
    (22, "sphere-workspace: invalid value 'maybe' for option 'token-required'; expected true | false"),
    (25, "sphere-workspace: invalid value 'fullscreen, confetti' for option 'features'; "
         "expected a comma-separated list of: fullscreen"),
    (28, "sphere-workspace: invalid value 'soon' for option 'inactivity-timeout'; "
         "expected a whole number of minutes between 0 and 525600"),
    (31, "sphere-workspace: invalid value '1st' for option 'name'; expected an identifier: "
         "a letter, then up to 63 letters, digits, '-' or '_'"),
    (37, "sphere-workspace: duplicate value 'twin' for option 'name'; "
         "expected a name not used by another embed on this page (line 33)"),
    (39, "sphere-workspace: invalid project id 'eef024c1d14f46319517a65edafb5ee3 extra words'; "
         "expected a project id of 32 hexadecimal characters"),
]
BAD_MD = [
    (4, f"sphere-workspace: unknown option 'heigth' (did you mean 'height'?); valid options: {VALID}"),
    (9, "sphere-workspace: invalid value 'never' for option 'launch'; "
        "expected click | visible | load"),
    (13, "sphere-workspace: missing project id; expected a project id of 32 hexadecimal characters"),
]


def subtype(text: str) -> str:
    return "sphere.name" if "duplicate value" in text else "sphere.option"


def expected_warnings(src: Path) -> list[str]:
    """Each mistake is a located ERROR, as it is an error in every engine; then one summary."""
    return [f"{src / 'index.rst'}:{line}: ERROR: {text} [{subtype(text)}]" for line, text in BAD_RST] + [
        f"{src / 'mdbad.md'}:{line}: ERROR: {text} [{subtype(text)}]" for line, text in BAD_MD] + [
        f"ERROR: sphere-workspace: {len(BAD_RST) + len(BAD_MD)} problem(s) in embeds "
        "(the first at index.rst:9); the build failed [sphere.option]"]


def test_every_bad_input_is_a_pinned_located_warning(make_app, emulator, tmp_path):
    src = copy_root("sphere-bad", tmp_path)
    app = build(make_app, src, emulator=emulator)
    assert sorted(str(w) for w in ours(app)) == sorted(expected_warnings(src))
    # an option block MyST itself cannot parse is MyST's located warning (so -W fails too);
    # the line is MyST's to choose (MyST 3 gives the option line, MyST 4 the fence)
    myst = [w for w in logged(app) if w.type != "sphere"]
    assert [(w.file, w.level, w.type) for w in myst] in (
        [(f"{src / 'mdbad.md'}", "WARNING", "myst")],
        [(f"{src / 'mdbad.md'}.rst", "WARNING", "myst")])  # MyST 4.0's spelling of its own location
    assert myst[0].line in (16, 17)
    assert "Traceback" not in app.status.getvalue() + warnings_of(app)
    # the one valid embed (the first "twin") is still there, provisioned
    assert [f["data-id"] for f in frames(html_pages(app.outdir)["index.html"])] == ["twin"]
    for page in ("index.html", "mdbad.html"):  # stays readable for a web server
        assert (app.outdir / page).stat().st_mode & 0o777 == (
            app.outdir / "genindex.html").stat().st_mode & 0o777
    assert app.statuscode == 1  # an author's mistake fails the build, as in MkDocs


def test_a_page_of_invalid_embeds_gets_the_styles_for_its_notices(make_app, emulator, tmp_path):
    """A page whose embeds are all invalid: its notices are styled, and it loads no SDK."""
    src = copy_root("sphere-bad", tmp_path)
    lines = (src / "mdbad.md").read_text().splitlines()
    (src / "mdbad.md").write_text("\n".join(lines[:15]) + "\n")  # the three invalid embeds only
    app = build(make_app, src, emulator=emulator)
    page = html_pages(app.outdir)["mdbad.html"]
    assert re.search(r"<body\b[^>]*>" + re.escape('<style id="sphere-docs-css">'), page)
    assert '<script id="sphere-docs-loader">' not in page
    assert page.count('data-sphere-mode="error"') == 3


def test_warning_is_error_fails_the_build(make_app, emulator, tmp_path):
    src = copy_root("sphere-bad", tmp_path)
    app = build(make_app, src, emulator=emulator, warningiserror=True)
    assert app.statuscode == 1
    assert expected_warnings(src)[0] in warning_lines(app)


def test_sphinx_build_cli_with_W_exits_non_zero(emulator, tmp_path, capsys):
    from sphinx.cmd.build import build_main

    src = copy_root("sphere-bad", tmp_path)
    code = build_main(["-W", "-q", "-b", "html", "-D", f"sphere_endpoint={emulator.url}",
                       str(src), str(tmp_path / "out")])
    out = capsys.readouterr()
    assert code != 0
    # Sphinx 7 stops at the first warning and prints it as "path:line:sentence" with no
    # type; 8.1+ prints every one as "path:line: ERROR: sentence [sphere.option]"
    assert re.search(rf"index\.rst:9:( ERROR: )?{re.escape(BAD_RST[0][1])}", out.err), out.err
    if sphinx.version_info >= (8,):  # where Sphinx shows warning types, ours is there
        assert f"{BAD_RST[0][1]} [sphere.option]" in out.err
    assert "Traceback" not in out.err + out.out
    assert_no_leak(texts=[out.err, out.out], roots=[tmp_path])


def test_suppress_warnings_silences_option_warnings(make_app, emulator, tmp_path):
    src = copy_root("sphere-bad", tmp_path)
    app = build(make_app, src, emulator=emulator, suppress_warnings=["sphere.option", "sphere.name"])
    remaining = logged(app)
    assert [(w.type, w.subtype) for w in remaining] == [("myst", "directive_option")]
    assert app.statuscode == 0  # what the author silenced does not fail the build


def test_a_duplicate_name_is_its_own_subtype(make_app, emulator, tmp_path):
    src = copy_root("sphere-bad", tmp_path)
    app = build(make_app, src, emulator=emulator, suppress_warnings=["sphere.option"])
    remaining = [w for w in logged(app) if w.type != "myst"]
    assert len(remaining) == 1 and "duplicate value 'twin'" in remaining[0].message
    assert (remaining[0].type, remaining[0].subtype) == ("sphere", "name") and app.statuscode == 1


# -- faults and on_error -------------------------------------------------------------------


def test_transient_503_and_429_are_survived(make_app, emulator, tmp_path):
    src = copy_root("sphere-basic", tmp_path)
    emulator.set_faults(sequence=[503, 429, 503, 429], retry_after=0, routes=[CREATES])
    app = build(make_app, src, emulator=emulator, sphere_retries=3)
    assert warnings_of(app) == ""
    assert {n: len(f) for n, f in all_frames(app.outdir).items()} == EMBED_PAGES
    assert all(f["data-workspace"] for page in all_frames(app.outdir).values() for f in page)
    assert emulator.count(CREATES) == 8  # four faults, four successes


def test_dead_api_on_error_fail_stops_the_build(make_app, access_token, tmp_path):
    src = copy_root("sphere-basic", tmp_path)
    app = make_app("html", srcdir=src, confoverrides={
        "sphere_endpoint": dead_endpoint(), "sphere_retries": 0, "sphere_concurrency": 1,
        "sphere_on_error": "fail"})
    with pytest.raises(SphinxError) as caught:
        app.build()
    message = str(caught.value)
    assert message.startswith(
        f"sphere-workspaces: index.rst:10: cannot create a workspace for project {PROJECT}: ")
    assert "(and 3 more embed(s) not provisioned)" in message
    assert caught.value.category == "Sphere Engine workspaces error"
    assert_no_leak(texts=[message, app.status.getvalue(), app.warning.getvalue()], roots=[src])


def api_warnings(app) -> list[str]:
    return [str(w) for w in ours(app, "api")]


def test_dead_api_on_error_placeholder_then_recovers(make_app, emulator, tmp_path):
    src = copy_root("sphere-basic", tmp_path)
    emulator.set_faults(rate=1.0, status=500, routes=[CREATES])
    app = build(make_app, src, emulator=emulator, sphere_retries=0, sphere_on_error="placeholder")
    located = sorted(line.split(": WARNING: ")[0] for line in api_warnings(app))
    assert located == sorted([f"{src / 'index.rst'}:10", f"{src / 'lesson.rst'}:6",
                              f"{src / 'lesson.rst'}:14", f"{src / 'mystpage.md'}:3"])
    first = api_warnings(app)[0]
    assert f"sphere-workspaces: workspace for project {PROJECT} unavailable (" in first
    assert first.endswith("); showing a placeholder [sphere.api]")
    pages = html_pages(app.outdir)
    assert all_frames(app.outdir) == {}
    for page, count in EMBED_PAGES.items():
        assert pages[page].count('data-sphere-mode="unavailable"') == count
        assert pages[page].count("Workspace unavailable.") == count
        assert loader_count(pages[page]) == 1  # the stylesheet for the box comes with it

    # the API is back: an unchanged rebuild retries exactly the failed embeds
    emulator.set_faults()
    emulator.reset_stats()
    again = build(make_app, src, emulator=emulator, sphere_retries=0, sphere_on_error="placeholder")
    assert warnings_of(again) == ""
    assert emulator.count(CREATES) == 4
    assert {n: len(f) for n, f in all_frames(again.outdir).items()} == EMBED_PAGES
    assert 'data-sphere-mode="unavailable"' not in html_pages(again.outdir)["lesson.html"]


def test_dead_api_on_error_lazy_falls_back_to_lazy_embeds(make_app, access_token, tmp_path):
    src = copy_root("sphere-basic", tmp_path)
    app = build(make_app, src, sphere_endpoint=dead_endpoint(), sphere_retries=0,
                sphere_on_error="lazy")
    warned = api_warnings(app)
    assert len(warned) == 4 and all("falling back to a lazy embed" in w for w in warned)
    pages = html_pages(app.outdir)
    for page, count in EMBED_PAGES.items():
        assert pages[page].count('data-sphere-mode="lazy"') == count
        assert "data-workspace=" not in pages[page]
        assert 'id="sphere-docs-lazy-js"' in pages[page] and loader_count(pages[page]) == 1
    assert_no_leak(texts=[app.status.getvalue(), warnings_of(app)], roots=[src])


def test_missing_token(make_app, emulator, tmp_path, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV)
    src = copy_root("sphere-basic", tmp_path)
    app = make_app("html", srcdir=src, confoverrides={"sphere_endpoint": emulator.url})
    with pytest.raises(SphinxError, match=rf"no access token: set the environment variable {TOKEN_ENV}"):
        app.build()
    # said plainly in the build log too, not only inside Sphinx's crash report
    (said,) = ours(app)
    assert said.level == "ERROR" and said.subtype == "config"
    assert said.message.startswith(f"sphere-workspaces: no access token: set the environment variable {TOKEN_ENV}")
    assert said.message in warnings_of(app)  # really printed
    app.cleanup()

    placeholder = build(make_app, copy_root("sphere-basic", tmp_path / "p"), emulator=emulator,
                        sphere_on_error="placeholder")
    warned = api_warnings(placeholder)
    assert len(warned) == 4
    assert f"(no access token: set the environment variable {TOKEN_ENV}" in warned[0]
    assert emulator.count(CREATES) == 0


# -- lazy mode, MyST, config ---------------------------------------------------------------


def test_lazy_mode_needs_no_token_and_carries_no_ids(make_app, emulator, tmp_path, monkeypatch):
    monkeypatch.delenv(TOKEN_ENV)
    src = copy_root("sphere-basic", tmp_path)
    app = build(make_app, src, emulator=emulator, sphere_mode="lazy")
    assert warnings_of(app) == ""
    assert emulator.stats()["total_requests"] == 0
    pages = html_pages(app.outdir)
    for page, count in EMBED_PAGES.items():
        assert pages[page].count('data-sphere-mode="lazy"') == count
        assert "data-workspace=" not in pages[page]
        assert 'data-endpoint="http://127.0.0.1:9/sphere/workspaces"' in pages[page]
        assert f'data-page="{page.replace(".html", "")}.' in pages[page]
        assert loader_count(pages[page]) == 1 and loader_right_after_body(pages[page])
    manifest = json.loads((app.outdir / "sphere-workspaces.json").read_text())
    modes = {e["mode"] for embeds in manifest["pages"].values() for e in embeds}
    assert modes == {"lazy"}


def normalised(markup: str) -> str:
    """An embed's markup without what differs per page: workspace, token, page path."""
    markup = re.sub(r'data-workspace="[0-9a-f]{32}"', 'data-workspace="ID"', markup)
    markup = re.sub(r'data-workspace-token="[^"]+"', 'data-workspace-token="TOKEN"', markup)
    return re.sub(r'data-page="[^"]+"', 'data-page="PAGE"', markup)


def test_myst_and_rst_pages_give_the_same_div(make_app, emulator, tmp_path):
    src = copy_root("sphere-same", tmp_path)
    app = build(make_app, src, emulator=emulator)
    assert warnings_of(app) == ""
    pages = html_pages(app.outdir)
    rst, md = embed_markup(pages["rstpage.html"]), embed_markup(pages["mdpage.html"])
    assert len(rst) == len(md) == 2
    assert [normalised(m) for m in rst] == [normalised(m) for m in md]
    assert 'class="sphere-workspace wide framed"' in rst[0]
    assert "<strong>tests</strong>" in rst[0]
    assert 'data-launch="visible"' in rst[1]


@pytest.mark.parametrize(("setting", "value", "message"), [
    ("sphere_mode", "eager",
     "sphere-workspaces: invalid value 'eager' for setting 'sphere_mode'; expected build | lazy"),
    ("sphere_on_error", "ignore",
     "sphere-workspaces: invalid value 'ignore' for setting 'sphere_on_error'; "
     "expected fail | placeholder | lazy"),
    ("sphere_concurrency", 0,
     "sphere-workspaces: invalid value 0 for setting 'sphere_concurrency'; "
     "expected a whole number from 1 to 64"),
    ("sphere_endpoint", "ftp://example.com",
     "sphere-workspaces: invalid value 'ftp://example.com' for setting 'sphere_endpoint'; "
     "expected a customer host such as 12345678.containers.sphere-engine.com "
     "or a URL such as http://127.0.0.1:8123"),
    ("sphere_token_env", "NOT A NAME",
     "sphere-workspaces: invalid value 'NOT A NAME' for setting 'sphere_token_env'; "
     "expected an environment variable name such as SPHERE_ENGINE_ACCESS_TOKEN"),
    ("sphere_lazy_endpoint", None, "sphere-workspaces: missing setting 'sphere_lazy_endpoint'; "
     "expected the URL of the lazy endpoint, because 'sphere_mode' is 'lazy' "
     "(e.g. https://docs.example.com/sphere/workspaces)"),
])
def test_bad_config_values_are_config_errors(make_app, tmp_path, setting, value, message):
    src = copy_root("sphere-basic", tmp_path)
    extra = {setting: value}
    if setting == "sphere_lazy_endpoint":
        extra["sphere_mode"] = "lazy"
    with pytest.raises(ConfigError) as caught:
        make_app("html", srcdir=src, confoverrides=extra)
    assert str(caught.value) == message


def test_command_line_overrides_are_converted(make_app, emulator, tmp_path):
    src = copy_root("sphere-basic", tmp_path)
    app = build(make_app, src, emulator=emulator, sphere_concurrency="2", sphere_retries="0")
    assert warnings_of(app) == "" and emulator.count(CREATES) == 4


def test_missing_endpoint_is_named(make_app, access_token, tmp_path):
    src = copy_root("sphere-basic", tmp_path)
    app = make_app("html", srcdir=src, confoverrides={"sphere_endpoint": None})
    with pytest.raises(SphinxError) as caught:
        app.build()
    app.cleanup()
    assert str(caught.value) == (
        "sphere-workspaces: missing setting 'sphere_endpoint'; expected a customer host such as "
        "12345678.containers.sphere-engine.com")


def test_lazy_embed_without_lazy_endpoint_is_a_located_config_error(make_app, emulator, tmp_path):
    src = copy_root("sphere-same", tmp_path)
    app = build(make_app, src, emulator=emulator, sphere_lazy_endpoint=None)
    assert sorted(line for line in warning_lines(app) if "[sphere.config]" in line) == sorted(
        f"{src / page}:{line}: ERROR: sphere-workspace: mode 'lazy' needs the "
        "sphere_lazy_endpoint setting (the URL of the lazy endpoint); expected sphere_lazy_endpoint "
        "in conf.py [sphere.config]"
        for page, line in (("rstpage.rst", 14), ("mdpage.md", 14)))
    page = html_pages(app.outdir)["rstpage.html"]
    assert page.count('data-sphere-mode="unavailable"') == 1  # visible, not dropped
    assert "Lazy mode needs the sphere_lazy_endpoint setting." in page
    assert page.count('data-sphere-mode="build"') == 1
    assert app.statuscode == 1  # an error in every engine: the embed cannot work on the site


def test_lazy_site_without_sdk_host_is_a_config_error(make_app, tmp_path):
    src = copy_root("sphere-basic", tmp_path)
    with pytest.raises(ConfigError, match="embeds need the Sphere Engine SDK: set sphere_endpoint"):
        make_app("html", srcdir=src, confoverrides={"sphere_mode": "lazy", "sphere_endpoint": None})


def test_a_token_in_conf_py_is_refused_without_echoing_it(make_app, tmp_path):
    src = copy_root("sphere-basic", tmp_path)
    conf = src / "conf.py"
    conf.write_text(conf.read_text() + f'\nsphere_token = "{SECRET_TOKEN}"\n')
    with pytest.raises(ConfigError) as caught:
        make_app("html", srcdir=src)
    assert str(caught.value) == (
        "sphere-workspaces: the access token is never a setting: remove sphere_token from conf.py "
        "and export it in the environment variable named by sphere_token_env "
        "(default SPHERE_ENGINE_ACCESS_TOKEN)")


def test_a_misspelt_setting_is_a_config_warning(make_app, emulator, tmp_path):
    src = copy_root("sphere-basic", tmp_path)
    conf = src / "conf.py"
    conf.write_text(conf.read_text() + '\nsphere_concurency = 4\n')
    app = build(make_app, src, emulator=emulator)
    (said,) = logged(app)
    assert said.message.startswith(
        "sphere-workspaces: unknown setting 'sphere_concurency' in conf.py; "
        "valid settings: sphere_cache, sphere_concurrency, ")
    assert (said.location, said.level, said.type, said.subtype) == (None, "WARNING", "sphere", "config")
    assert warnings_of(app).startswith(f"WARNING: {said.message}")  # really printed


def test_importing_the_extension_package_needs_no_sphinx():
    """``sphere_docs.sphinx`` imports Sphinx only when Sphinx calls ``setup()``."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['sphinx'] = None; sys.modules['docutils'] = None; "
            "import sphere_docs.sphinx as ext; assert ext.__all__ == ['setup']; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.stdout.strip() == "ok", done.stderr
