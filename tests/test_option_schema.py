"""The shared option schema: every option, every pinned error sentence."""

from __future__ import annotations

import pytest

from sphere_docs.core.options import OPTIONS, OptionError, WorkspaceSpec, parse_options

PROJECT = "eef024c1d14f46319517a65edafb5ee3"


def test_defaults() -> None:
    spec = parse_options(PROJECT, {})
    assert spec == WorkspaceSpec(project_id=PROJECT)
    assert (spec.mode, spec.height, spec.width, spec.launch, spec.token_required) == ("build", "600px", "100%", "click", True)
    # build mode: the lifecycle defaults that keep a shared workspace usable between builds
    assert spec.create_fields() == {"project_id": PROJECT, "workspace_token_required": "true",
                                    "inactivity_timeout": "15", "retention_time_stopped": "43200",
                                    "auto_resume": "true"}
    lazy = parse_options(PROJECT, {}, default_mode="lazy")
    assert lazy.create_fields() == {"project_id": PROJECT, "workspace_token_required": "true"}


def test_build_lifecycle_defaults_fill_only_what_the_author_left_unset() -> None:
    def fields(**options: str) -> dict[str, str]:
        spec = parse_options(PROJECT, {k.replace("_", "-"): v for k, v in options.items()})
        return {k: v for k, v in spec.create_fields().items()
                if k not in ("project_id", "workspace_token_required")}

    assert fields(inactivity_timeout="30") == {
        "inactivity_timeout": "30", "retention_time_stopped": "43200", "auto_resume": "true"}
    assert fields(retention_stopped="0", auto_resume="false") == {
        "inactivity_timeout": "15", "retention_time_stopped": "0", "auto_resume": "false"}
    # a total lifetime shorter than the default stop retention caps it (the vendor calls that a conflict)
    assert fields(retention_total="1440") == {
        "inactivity_timeout": "15", "retention_time_stopped": "1440",
        "retention_time_total": "1440", "auto_resume": "true"}
    assert fields(retention_total="100000")["retention_time_stopped"] == "43200"
    # the defaults are part of the creation key: an explicit default is the same workspace
    explicit = parse_options(PROJECT, {"inactivity-timeout": "15", "retention-stopped": "43200",
                                       "auto-resume": "true"})
    assert explicit.creation_key() == parse_options(PROJECT, {}).creation_key()
    assert parse_options(PROJECT, {}, default_mode="lazy").creation_key() != explicit.creation_key()


def test_every_option_parses() -> None:
    spec = parse_options(
        PROJECT.upper(),
        {
            "mode": "LAZY",
            "height": "70vh",
            "width": "40em",
            "features": "fullscreen, fullscreen",
            "launch": "visible",
            "token-required": "no",
            "inactivity-timeout": "15",
            "retention_stopped": "2880",
            "retention-total": "10080",
            "auto-resume": None,
            "name": "intro-shell",
            "class": "wide  dark-ok",
        },
        caption="  Try it.  ",
    )
    assert spec.project_id == PROJECT
    assert spec.mode == "lazy" and spec.height == "70vh" and spec.width == "40em"
    assert spec.features == ("fullscreen",) and spec.sdk_features == "fullscreenmode"
    assert spec.launch == "visible" and spec.token_required is False and spec.auto_resume is True
    assert (spec.inactivity_timeout, spec.retention_stopped, spec.retention_total) == (15, 2880, 10080)
    assert spec.name == "intro-shell" and spec.classes == ("wide", "dark-ok") and spec.caption == "Try it."
    assert spec.create_fields() == {
        "project_id": PROJECT,
        "workspace_token_required": "false",
        "inactivity_timeout": "15",
        "retention_time_stopped": "2880",
        "retention_time_total": "10080",
        "auto_resume": "true",
    }


def test_yaml_booleans_and_site_default_mode() -> None:
    spec = parse_options(PROJECT, {"token-required": False, "auto-resume": True}, default_mode="lazy")  # type: ignore[dict-item]
    assert spec.token_required is False and spec.auto_resume is True and spec.mode == "lazy"


def test_creation_key_ignores_display_options() -> None:
    a = parse_options(PROJECT, {"height": "300px", "class": "x"})
    b = parse_options(PROJECT, {"height": "900px", "features": "fullscreen"})
    c = parse_options(PROJECT, {"inactivity-timeout": "5"})
    assert a.creation_key() == b.creation_key() != c.creation_key()


@pytest.mark.parametrize(
    ("project", "options", "message"),
    [
        (None, {}, "lesson.md:7: sphere-workspace: missing project id; expected a project id of 32 hexadecimal characters"),
        ("eef024c1", {}, "lesson.md:7: sphere-workspace: invalid project id 'eef024c1'; expected a project id of 32 hexadecimal characters"),
        (PROJECT, {"heigth": "1px"}, "lesson.md:7: sphere-workspace: unknown option 'heigth' (did you mean 'height'?); valid options: mode, height, width, features, launch, token-required, inactivity-timeout, retention-stopped, retention-total, auto-resume, name, class"),
        (PROJECT, {"mode": "eager"}, "lesson.md:7: sphere-workspace: invalid value 'eager' for option 'mode'; expected build | lazy"),
        (PROJECT, {"height": "tall"}, "lesson.md:7: sphere-workspace: invalid value 'tall' for option 'height'; expected a CSS length such as 600px, 70vh, 40em or 100%"),
        (PROJECT, {"width": "100%;color:red"}, "lesson.md:7: sphere-workspace: invalid value '100%;color:red' for option 'width'; expected a CSS length such as 600px, 70vh, 40em or 100%"),
        (PROJECT, {"features": "zoom"}, "lesson.md:7: sphere-workspace: invalid value 'zoom' for option 'features'; expected a comma-separated list of: fullscreen"),
        (PROJECT, {"launch": "hover"}, "lesson.md:7: sphere-workspace: invalid value 'hover' for option 'launch'; expected click | visible | load"),
        (PROJECT, {"token-required": "maybe"}, "lesson.md:7: sphere-workspace: invalid value 'maybe' for option 'token-required'; expected true | false"),
        (PROJECT, {"inactivity-timeout": "-5"}, "lesson.md:7: sphere-workspace: invalid value '-5' for option 'inactivity-timeout'; expected a whole number of minutes between 0 and 525600"),
        (PROJECT, {"name": "1st"}, "lesson.md:7: sphere-workspace: invalid value '1st' for option 'name'; expected an identifier: a letter, then up to 63 letters, digits, '-' or '_'"),
        (PROJECT, {"class": "a\"b"}, "lesson.md:7: sphere-workspace: invalid value 'a\"b' for option 'class'; expected space-separated CSS class names"),
    ],
)
def test_pinned_error_messages(project: str | None, options: dict, message: str) -> None:
    with pytest.raises(OptionError) as info:
        parse_options(project, options)
    assert info.value.at("lesson.md", 7) == message
    assert str(info.value) == message.removeprefix("lesson.md:7: ")


def test_error_carries_structured_fields() -> None:
    with pytest.raises(OptionError) as info:
        parse_options(PROJECT, {"launch": "hover"})
    err = info.value
    assert (err.option, err.value, err.valid) == ("launch", "hover", "click | visible | load")
    assert err.at(None, None) == str(err)


def test_options_table_is_complete() -> None:
    assert set(OPTIONS) == {
        "mode", "height", "width", "features", "launch", "token-required", "inactivity-timeout",
        "retention-stopped", "retention-total", "auto-resume", "name", "class",
    }


