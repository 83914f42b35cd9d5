"""Default embed names that don't move, the one duplicate-name sentence, and old ledgers adopted."""

from __future__ import annotations

import markdown
import pytest

from sphere_docs.core.naming import (
    PageNamer,
    default_name,
    legacy_adoptions,
    legacy_default_name,
)
from sphere_docs.core.options import NAME_RE, OptionError, WorkspaceSpec, parse_options
from sphere_docs.core.settings import SiteSettings
from sphere_docs.markdown import SphereWorkspaceExtension

P = "eef024c1d14f46319517a65edafb5ee3"
Q = "5b4f1c2ad3e64e7f8a9b0c1d2e3f4a5b"


def names_of(text: str, page: str = "intro.md") -> list[str]:
    ext = SphereWorkspaceExtension(settings=SiteSettings(lazy_endpoint="https://lazy.example/ws"),
                                   deferred=True)
    ext.begin_page(page)
    markdown.Markdown(extensions=[ext]).convert(text)
    embeds, errors = ext.finish_page()
    assert errors == []
    return [e.spec.name or "" for e in embeds]


def fence(project: str = P, *options: str) -> str:
    return f"```{{sphere-workspace}} {project}\n" + "".join(f"{o}\n" for o in options) + "```\n\n"


def test_default_names_are_identifiers_and_distinct_per_page_identity_and_ordinal() -> None:
    specs = [WorkspaceSpec(P), WorkspaceSpec(Q), WorkspaceSpec(P, mode="lazy"),
             WorkspaceSpec(P, inactivity_timeout=30)]
    pages = ["a/b.md", "a-b.md", "a_b.md", "x" * 300 + ".md"]
    names = {default_name(page, spec, n) for page in pages for spec in specs for n in range(3)}
    assert len(names) == len(pages) * len(specs) * 3
    assert all(NAME_RE.match(name) for name in names)
    # display options are not part of what an embed creates: they don't rename it
    assert default_name("a.md", WorkspaceSpec(P, height="300px", classes=("x",))) == default_name("a.md", WorkspaceSpec(P))


def test_an_unnamed_embed_keeps_its_name_when_others_are_added_moved_or_removed() -> None:
    one, two = fence(P), fence(Q)
    lazy = fence(P, ":mode: lazy")
    base = names_of("Intro.\n\n" + one + two)
    assert base == [default_name("intro.md", WorkspaceSpec(P)), default_name("intro.md", WorkspaceSpec(Q))]
    # an unnamed embed inserted above both, of another project or mode: nobody moves
    assert names_of(lazy + one + two)[1:] == base
    assert names_of(fence(P, ":inactivity-timeout: 5") + one + two)[1:] == base
    # reordered, and one removed
    assert names_of(two + one) == base[::-1]
    assert names_of(two) == base[1:]
    # a named embed in between changes nothing either
    assert names_of(one + fence(P, ":name: mine") + two) == [base[0], "mine", base[1]]


def test_identical_embeds_are_told_apart_by_ordinal() -> None:
    names = names_of(fence(P) * 3)
    assert names == [default_name("intro.md", WorkspaceSpec(P), n) for n in range(3)]
    assert len(set(names)) == 3


def test_changing_creation_options_gives_a_new_name() -> None:
    (before,) = names_of(fence(P))
    (after,) = names_of(fence(P, ":auto-resume: false"))
    assert before != after  # a different workspace: the old one is not reused for it
    # writing out a build-mode default (auto-resume true) creates the same workspace: same name
    (same,) = names_of(fence(P, ":auto-resume: true"))
    assert same == before


def test_duplicate_names_have_one_sentence() -> None:
    namer = PageNamer("intro.md")
    namer.name(WorkspaceSpec(P, name="twin"), 3)
    with pytest.raises(OptionError) as info:
        namer.name(WorkspaceSpec(Q, name="twin"), 9)
    assert info.value.describe() == (
        "sphere-workspace: duplicate value 'twin' for option 'name'; "
        "expected a name not used by another embed on this page (line 3)"
    )


def key(page: str, spec: WorkspaceSpec, name: str, api: str = "https://api.example/api/v1") -> str:
    return "|".join((api, spec.project_id, spec.creation_key(), f"{page}#{name}"))


def test_old_positional_names_in_a_ledger_are_adopted_in_page_order() -> None:
    p, q = WorkspaceSpec(P), WorkspaceSpec(Q)
    # the old build named by position: P, Q, P
    old = {key("a.md", p, legacy_default_name("a.md", 0)), key("a.md", q, legacy_default_name("a.md", 1)),
           key("a.md", p, legacy_default_name("a.md", 2)),
           key("b.md", p, legacy_default_name("b.md", 0)),  # another page: never taken by a.md
           key("a.md", p, "mine")}  # an author's name: never adopted
    wanted = {}
    for spec, ordinal in ((p, 0), (q, 0), (p, 1)):
        named = spec.with_name(default_name("a.md", spec, ordinal))
        wanted[key("a.md", spec, named.name or "")] = ("a.md", named)
    adopted = legacy_adoptions(old, wanted)
    assert adopted == {
        key("a.md", p, default_name("a.md", p, 0)): key("a.md", p, legacy_default_name("a.md", 0)),
        key("a.md", q, default_name("a.md", q, 0)): key("a.md", q, legacy_default_name("a.md", 1)),
        key("a.md", p, default_name("a.md", p, 1)): key("a.md", p, legacy_default_name("a.md", 2)),
    }
    # an entry under the new name already: nothing to adopt
    assert legacy_adoptions(set(wanted) | old, wanted) == {}


def test_an_old_entry_another_embed_still_uses_is_not_adopted() -> None:
    p = WorkspaceSpec(P)
    legacy = legacy_default_name("a.md", 0)
    new_name = default_name("a.md", p)
    wanted = {key("a.md", p, new_name): ("a.md", p.with_name(new_name)),
              key("a.md", p, legacy): ("a.md", p.with_name(legacy))}  # an author named it so
    assert legacy_adoptions({key("a.md", p, legacy)}, wanted) == {}


@pytest.mark.parametrize(("option", "value"), [
    ("height", "\uff11\uff10\uff10px"),  # full-width digits
    ("width", "\u0661\u0660\u0660%"),  # Arabic-Indic digits
    ("inactivity-timeout", "\uff15"),
    ("inactivity-timeout", "\u00b2"),  # a superscript: isdigit() but not int()
])
def test_unicode_digits_are_not_css_or_minutes(option: str, value: str) -> None:
    with pytest.raises(OptionError) as info:
        parse_options(P, {option: value})
    assert info.value.option == option
    assert "expected" in info.value.describe() and "invalid literal" not in info.value.describe()


@pytest.mark.parametrize("char", ["\x02", "\x04", "\x01", "\x7f"])
def test_control_characters_in_a_caption_are_a_located_error(char: str) -> None:
    with pytest.raises(OptionError) as info:
        parse_options(P, {}, caption=f"Try{char}this")
    assert info.value.describe() == (
        f"sphere-workspace: invalid character 'U+{ord(char):04X}' for option 'caption'; "
        "expected text without control characters"
    )
    ext = SphereWorkspaceExtension(settings=SiteSettings(), deferred=True)
    ext.begin_page("intro.md")
    out = markdown.Markdown(extensions=[ext]).convert(f"```{{sphere-workspace}} {P}\n\nTry{char}this\n```\n")
    embeds, errors = ext.finish_page()
    if char == "\x02":  # Python-Markdown strips STX/ETX from every page before any extension
        assert errors == [] and len(embeds) == 1
    else:
        assert embeds == [] and [e.line for e in errors] == [1]
    assert char not in out


def test_a_build_adopts_the_workspaces_an_old_ledger_holds_under_positional_names(emulator, tmp_path) -> None:
    """Upgrading sphere-docs creates nothing and orphans nothing: old entries are re-keyed."""
    import json

    from sphere_docs.pipeline.provision import EmbedRequest, Provisioner
    from sphere_docs.services.emulator import DEMO_PROJECT_ID

    settings = SiteSettings.from_mapping({"endpoint": emulator.url, "cache": str(tmp_path / "cache"),
                                          "retries": 1})
    plain, timed = parse_options(DEMO_PROJECT_ID, {}), parse_options(DEMO_PROJECT_ID, {"inactivity-timeout": "30"})
    old = [EmbedRequest("a.md", plain.with_name(legacy_default_name("a.md", 0))),
           EmbedRequest("a.md", timed.with_name(legacy_default_name("a.md", 1))),
           EmbedRequest("a.md", plain.with_name(legacy_default_name("a.md", 2)))]
    with Provisioner(settings) as provisioner:
        first = provisioner.resolve(old)
    created = emulator.count("POST /workspaces")
    assert created == 3

    namer = PageNamer("a.md")
    new = [EmbedRequest("a.md", namer.name(spec)) for spec in (plain, timed, plain)]
    with Provisioner(settings) as provisioner:
        second = provisioner.resolve(new)
    assert emulator.count("POST /workspaces") == created  # nothing new
    assert [second[r.key].workspace_id for r in new] == [first[r.key].workspace_id for r in old]
    entries = json.loads((tmp_path / "cache" / "ledger.json").read_text())["entries"]
    assert sorted(e["name"] for e in entries.values()) == sorted(r.spec.name for r in new)
    assert not any("#" + legacy_default_name("a.md", i) in k for k in entries for i in range(3))
