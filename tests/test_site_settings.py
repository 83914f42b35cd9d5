"""Site settings shared by mkdocs.yml and conf.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from sphere_docs.core.errors import SettingsError
from sphere_docs.core.settings import SETTINGS, SiteSettings, parse_endpoint


@pytest.mark.parametrize(
    ("value", "api", "host", "https"),
    [
        ("12345678.containers.sphere-engine.com", "https://12345678.containers.sphere-engine.com/api/v1", "12345678.containers.sphere-engine.com", True),
        ("https://12345678.containers.sphere-engine.com/api/v1/", "https://12345678.containers.sphere-engine.com/api/v1", "12345678.containers.sphere-engine.com", True),
        ("http://127.0.0.1:8123", "http://127.0.0.1:8123/api/v1", "127.0.0.1:8123", False),
    ],
)
def test_endpoint_forms(value: str, api: str, host: str, https: bool) -> None:
    endpoint = parse_endpoint(value)
    assert (endpoint.api_base, endpoint.host, endpoint.https) == (api, host, https)


@pytest.mark.parametrize("value", ["", "ftp://x", "http://", "https://a.com/?access_token=x", "a b"])
def test_bad_endpoint(value: str) -> None:
    with pytest.raises(SettingsError, match="for setting 'endpoint'"):
        parse_endpoint(value)


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"mode": "eager"}, "sphere-workspaces: invalid value 'eager' for setting 'mode'; expected build | lazy"),
        ({"on_error": "ignore"}, "sphere-workspaces: invalid value 'ignore' for setting 'on_error'; expected fail | placeholder | lazy"),
        ({"concurrency": 0}, "sphere-workspaces: invalid value 0 for setting 'concurrency'; expected a whole number from 1 to 64"),
        ({"timeout": -1}, "sphere-workspaces: invalid value -1 for setting 'timeout'; expected a number of seconds greater than 0"),
        ({"retries": 11}, "sphere-workspaces: invalid value 11 for setting 'retries'; expected a whole number from 0 to 10"),
        ({"token_env": "MY TOKEN"}, "sphere-workspaces: invalid value 'MY TOKEN' for setting 'token_env'; expected an environment variable name such as SPHERE_ENGINE_ACCESS_TOKEN"),
        ({"on_error": "lazy"}, "sphere-workspaces: missing setting 'lazy_endpoint'; expected the URL of the lazy endpoint, because 'on_error' is 'lazy' (e.g. https://docs.example.com/sphere/workspaces)"),
        ({"endpoint": 123}, "sphere-workspaces: invalid value 123 for setting 'endpoint'; expected a customer host or URL, as a string"),
        ({"sdk_host": 5}, "sphere-workspaces: invalid value 5 for setting 'sdk_host'; expected host[:port] without a scheme, as a string"),
        ({"cache": 5}, "sphere-workspaces: invalid value 5 for setting 'cache'; expected a folder path, as a string"),
        ({"lazy_endpoint": ["x"]}, "sphere-workspaces: invalid value ['x'] for setting 'lazy_endpoint'; expected a URL, as a string"),
        ({"access_token": "x"}, "sphere-workspaces: unknown setting 'access_token'; valid settings: cache, concurrency, endpoint, lazy_endpoint, mode, on_error, previous_manifest, retries, sdk_host, sdk_https, timeout, token_env, trust_checked"),
    ],
)
def test_pinned_setting_errors(mapping: dict, message: str) -> None:
    with pytest.raises(SettingsError) as info:
        SiteSettings.from_mapping(mapping)
    assert str(info.value) == message


def test_token_only_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = SiteSettings.from_mapping({"endpoint": "http://127.0.0.1:1", "token_env": "MY_SE_TOKEN"})
    monkeypatch.delenv("MY_SE_TOKEN", raising=False)
    with pytest.raises(SettingsError) as info:
        settings.token()
    assert str(info.value) == (
        "sphere-workspaces: no access token: set the environment variable MY_SE_TOKEN "
        "(export MY_SE_TOKEN=...) to your Sphere Engine API token; build-mode embeds need it"
    )
    monkeypatch.setenv("MY_SE_TOKEN", "abc")
    assert settings.token() == "abc"


def test_sdk_follows_endpoint_unless_set() -> None:
    assert SiteSettings(endpoint="http://127.0.0.1:9").sdk == ("127.0.0.1:9", False)
    assert SiteSettings(endpoint="http://127.0.0.1:9", sdk_host="cdn.example.com").sdk == ("cdn.example.com", True)
    assert SiteSettings(endpoint="a.example.com", sdk_https=False).sdk == ("a.example.com", False)


def test_missing_endpoint_names_the_setting() -> None:
    with pytest.raises(SettingsError, match="missing setting 'endpoint'"):
        _ = SiteSettings().api


def test_settings_table_matches_the_record() -> None:
    assert set(SETTINGS) == set(SiteSettings._fields) - {"base_dir"}
    assert SiteSettings().cache_dir.name == ".sphere-docs-cache"


# --------------------------------------------------------------------------- declared once
# Each setting is one field of SiteSettings; everything below is made from SETTINGS, and
# these tests fail when a place lists a setting, or a default, that is not the declared one.


def test_record_fields_and_defaults_are_the_declarations() -> None:
    assert list(SiteSettings._fields) == [*SETTINGS, "base_dir"]
    assert SiteSettings._field_defaults == {**{n: s.default for n, s in SETTINGS.items()}, "base_dir": Path(".")}
    assert all(s.name == n and s.types for n, s in SETTINGS.items())


def test_mkdocs_config_lists_exactly_the_declared_settings() -> None:
    pytest.importorskip("mkdocs")
    from mkdocs.config import config_options as c

    from sphere_docs.engines.mkdocs import SphereWorkspacesConfig

    schema = dict(SphereWorkspacesConfig._schema)
    assert list(schema) == list(SETTINGS)
    assert dict(SphereWorkspacesConfig()) == {n: s.default for n, s in SETTINGS.items()}
    for name, declared in SETTINGS.items():
        option = schema[name]
        assert isinstance(option, c.Optional) == (declared.default is None), name
        kind = getattr(option, "option", option)._type
        assert set(kind if isinstance(kind, tuple) else (kind,)) == set(declared.types) - {Path}, name


def test_sphinx_registers_exactly_the_declared_settings() -> None:
    pytest.importorskip("sphinx")
    from sphinx.config import Config

    from sphere_docs.engines.sphinx.config import register

    config = Config()
    register(SimpleNamespace(add_config_value=config.add))  # what Sphinx.add_config_value does
    registered = {v.name: (v.value, v.rebuild) for v in config if v.name.startswith("sphere_")}
    assert registered == {f"sphere_{n}": (s.default, s.rebuild) for n, s in SETTINGS.items()}


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [("concurrency", "4", 4), ("retries", " 0 ", 0), ("timeout", "2", 2.0), ("trust_checked", "0.5", 0.5),
     ("sdk_https", "Off", False), ("sdk_https", "yes", True), ("endpoint", "8", "8"), ("cache", "c", "c"),
     ("concurrency", "four", "four"), ("sdk_https", "maybe", "maybe")],
)
def test_command_line_text_is_read_as_the_declared_type(name: str, text: str, value: object) -> None:
    converted = SETTINGS[name].from_text(text)
    assert converted == value and type(converted) is type(value)


def test_a_wrong_type_is_named_with_the_declared_words() -> None:
    with pytest.raises(SettingsError, match=r"expected a whole number from 1 to 64$"):
        SiteSettings.from_mapping({"concurrency": True})  # a bool is never a number
    with pytest.raises(SettingsError, match=r"expected a number of seconds greater than 0$"):
        SiteSettings.from_mapping({"timeout": float("nan")})
    assert SiteSettings.from_mapping({"cache": Path("c")}).cache_dir == Path("c")  # conf.py may give a Path
