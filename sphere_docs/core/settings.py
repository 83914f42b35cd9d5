"""Site-wide settings, each declared once for every front end.

``mkdocs.yml`` (``plugins: - sphere-workspaces: {endpoint: ...}``) and
``conf.py`` (``sphere_endpoint = ...``) carry the same names; both front ends
build a :class:`SiteSettings` through :meth:`SiteSettings.from_mapping`, so the
rules and the error texts exist once.  Each setting is one field of
:class:`SiteSettings` (``name: type = setting(...)``); :data:`SETTINGS` collects
those declarations (:class:`Setting`) for what is made from them: MkDocs' config
class, Sphinx's config values, the README's and the demos' tables.  A new setting
is one new field (and its README row, which a test compares with
:func:`settings_table`).

The access token is never a setting: it is read from the environment variable
named by ``token_env`` (default ``SPHERE_ENGINE_ACCESS_TOKEN``) when needed.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple, get_args, get_type_hints
from urllib.parse import urlsplit

from .errors import SettingsError
from .options import MODES, truth

__all__ = [
    "ON_ERROR",
    "PREVIOUS_MANIFEST_ENV",
    "SETTINGS",
    "Endpoint",
    "Setting",
    "SiteSettings",
    "parse_endpoint",
    "renamed",
    "settings_table",
    "token_from_env",
]

ON_ERROR = ("fail", "placeholder", "lazy")
DEFAULT_TOKEN_ENV = "SPHERE_ENGINE_ACCESS_TOKEN"
#: overrides the ``previous_manifest`` setting (CI: the deployed site's manifest URL)
PREVIOUS_MANIFEST_ENV = "SPHERE_DOCS_PREVIOUS_MANIFEST"
HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:\d{1,5})?$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: what a wrong ``endpoint`` is told (the setting, and :func:`parse_endpoint`)
ENDPOINT_EXPECTED = ("a customer host such as 12345678.containers.sphere-engine.com or a URL such as "
                     "http://127.0.0.1:8123")
#: what a wrong ``previous_manifest`` (or ``$SPHERE_DOCS_PREVIOUS_MANIFEST``) is told
MANIFEST_EXPECTED = "the URL of a deployed sphere-workspaces.json (https://...) or a path to one"


# The records here are NamedTuples, not dataclasses: every build imports this module, and a
# dataclass costs far more to define (0.5-1 ms each on CPython 3.11).
class Endpoint(NamedTuple):
    """Where the API and the SDK live, derived from the ``endpoint`` setting."""

    api_base: str  #: e.g. https://12345678.containers.sphere-engine.com/api/v1
    host: str  #: host[:port], no scheme
    https: bool


def parse_endpoint(value: str) -> Endpoint:
    """Accept a customer host (https implied) or a full base URL.

    ``12345678.containers.sphere-engine.com`` →
    ``https://12345678.containers.sphere-engine.com/api/v1``;
    ``http://127.0.0.1:8123`` (the emulator) → ``http://127.0.0.1:8123/api/v1``.
    A trailing ``/api/v1`` is tolerated.
    """
    text = (value or "").strip()
    if not text:
        raise SettingsError("endpoint", value, ENDPOINT_EXPECTED)
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or not HOST_RE.match(parts.netloc) or parts.query:
        raise SettingsError("endpoint", value, ENDPOINT_EXPECTED)
    path = parts.path.rstrip("/")
    if path.endswith("/api/v1"):
        path = path[: -len("/api/v1")]
    return Endpoint(
        api_base=f"{parts.scheme}://{parts.netloc}{path}/api/v1",
        host=parts.netloc,
        https=parts.scheme == "https",
    )


class Setting(NamedTuple):
    """One site setting: all that the front ends, the tables and the messages know of it.

    Declared once, as a field of :class:`SiteSettings` (``name: type = setting(...)``): the
    field gives the name and the type, :func:`setting` the rest.  From it come the
    record's default and check, MkDocs' config option (:mod:`sphere_docs.engines.mkdocs`),
    Sphinx's ``sphere_<name>`` config value and ``-D`` conversion
    (:mod:`sphere_docs.engines.sphinx.config`) and the README's settings table
    (:func:`settings_table`).
    """

    default: Any  #: None: not set
    valid: str  #: the values, in short (the docs' tables)
    doc: str  #: what it does (README table, Sphinx's description, the Markdown extension's help)
    expected: str  #: "expected ..." of the message when the value is wrong
    #: the rule a value of the right type must pass (None: every such value is fine)
    check: Callable[[Any], object] | None = None
    #: "expected ..." when the value has the wrong type, if that is worth other words
    expected_type: str | None = None
    #: what a change invalidates in Sphinx: ``env`` re-reads every document (the default
    #: mode is applied while parsing, and workspaces made on another endpoint are
    #: worthless), ``html`` rewrites the pages (lazy endpoint URL, SDK loader), ``""``
    #: nothing (the rest only matter while provisioning)
    rebuild: Literal["env", "html", ""] = ""
    unset: str = "—"  #: what no value means (the README's default column)
    name: str = ""  #: filled in from the field
    #: the types a value may have, from the field's annotation (an int counts as a
    #: float; a bool never counts as a number)
    types: tuple[type, ...] = ()

    def validate(self, value: Any) -> None:
        """Raise the setting's :class:`SettingsError` unless ``value`` is valid (None: not set)."""
        if value is None and self.default is None:
            return
        if not isinstance(value, self.types) or (isinstance(value, bool) and bool not in self.types):
            raise SettingsError(self.name, value, self.expected_type or self.expected)
        if self.check is not None and not self.check(value):
            raise SettingsError(self.name, value, self.expected)

    def from_text(self, text: str) -> Any:
        """A command-line string (``sphinx-build -D``) as a value of the setting's type.

        A string that does not convert is returned as it is, for :meth:`validate` to name.
        """
        if str in self.types:
            return text
        if bool in self.types:
            value = truth(text)
            return text if value is None else value
        try:
            return float(text) if float in self.types else int(text)
        except ValueError:
            return text


def setting(default: Any, valid: str, doc: str, expected: str, **more: Any) -> Any:
    """The declaration of a :class:`SiteSettings` field (see :class:`Setting`).

    Typed ``Any`` so that it stands where the field's default goes; the real default
    is put in place when the class is made.
    """
    return Setting(default, valid, doc, expected, **more)


def _types(hint: Any) -> tuple[type, ...]:
    types = tuple(t for t in (get_args(hint) or (hint,)) if t is not type(None))
    return (int, *types) if float in types and int not in types else types


def _is_endpoint(value: str) -> bool:
    try:
        parse_endpoint(value)
    except SettingsError:
        return False
    return True


def _is_lazy_url(value: str) -> bool:
    return urlsplit(value).scheme in ("http", "https") or value.startswith("/")


def _is_manifest_source(value: str) -> bool:
    """A manifest location: an http(s) URL or a path (``file://`` accepted)."""
    text = value.strip()
    if not text:
        return False
    if "://" in text:
        parts = urlsplit(text)
        return parts.scheme == "file" or (parts.scheme in ("http", "https") and bool(parts.netloc))
    return True


def token_from_env(token_env: str, *, who: str, why: str = "") -> str:
    """The access token in the environment variable ``token_env`` (the only place it is read from).

    A missing or empty variable is a :class:`SettingsError` whose message, prefixed with
    ``who``, names the variable to set; the token itself never appears in a message.
    """
    value = os.environ.get(token_env, "").strip()
    if not value:
        raise SettingsError(
            "token_env", token_env, "an exported token",
            message=(f"{who}: no access token: set the environment variable {token_env} "
                     f"(export {token_env}=...) to your Sphere Engine API token{why}"),
        )
    return value


class SiteSettings(NamedTuple):
    """The site-wide settings, validated by :meth:`from_mapping` (or :meth:`validate`).

    Each field but ``base_dir`` is the one declaration of a setting (:class:`Setting`),
    in the order of the README's table and of MkDocs' checks.
    """

    endpoint: str | None = setting(
        None, "customer host or URL",
        "the customer host (`12345678.containers.sphere-engine.com`, https implied) or a base URL "
        "(`http://127.0.0.1:8123` for the emulator); needed for build mode (and `prune`, `doctor`)",
        ENDPOINT_EXPECTED, check=_is_endpoint, expected_type="a customer host or URL, as a string",
        rebuild="env")
    mode: str = setting(
        "build", " | ".join(MODES),
        "default mode of embeds without `:mode:`: `build` (the workspace is created when the site "
        "is built) or `lazy` (per reader, through the lazy endpoint)",
        " | ".join(MODES), check=MODES.__contains__, rebuild="env")
    lazy_endpoint: str | None = setting(
        None, "URL",
        "URL of the lazy endpoint (the `POST` target of lazy embeds); needed for lazy mode and "
        "`on_error: lazy`",
        "an http(s) URL or a path starting with /", check=_is_lazy_url,
        expected_type="a URL, as a string", rebuild="html")
    on_error: str = setting(
        "fail", " | ".join(ON_ERROR),
        "when a workspace cannot be created: `fail` the build, render a visible `placeholder` "
        "(with a warning, so `--strict`/`-W` still fail), or fall back to `lazy`",
        " | ".join(ON_ERROR), check=ON_ERROR.__contains__)
    concurrency: int = setting(
        8, "1..64", "API calls in flight at once while provisioning",
        "a whole number from 1 to 64", check=lambda n: 1 <= n <= 64)
    timeout: float = setting(
        10.0, "seconds > 0", "seconds per API call",
        "a number of seconds greater than 0", check=lambda s: s > 0)
    trust_checked: float = setting(
        300.0, "seconds >= 0",
        "seconds a workspace the API confirmed live (checked or created) is used without asking "
        "again, in this process and the next; `0` checks every recorded workspace on every build "
        "(see *Rebuilds without API calls*)",
        "a number of seconds, 0 or more (0: always check)", check=lambda s: 0 <= s < math.inf)
    retries: int = setting(
        3, "0..10",
        "retries of a failed API call, where repeating it is safe (see *Retries*)",
        "a whole number from 0 to 10", check=lambda n: 0 <= n <= 10)
    cache: str | Path = setting(
        ".sphere-docs-cache", "folder",
        "where the ledger of created workspaces is kept (relative to the config file; keep it out "
        "of the site)",
        "a folder path, as a string")
    previous_manifest: str | None = setting(
        None, "URL or path",
        "the `sphere-workspaces.json` of the last deployed site (URL, or a path relative to the "
        "config file; a URL ending in `/` names the site): an embed the ledger does not know reuses "
        "the workspace listed there (see *Building on CI*); the environment variable "
        f"`{PREVIOUS_MANIFEST_ENV}` overrides it",
        MANIFEST_EXPECTED, check=_is_manifest_source)
    token_env: str = setting(
        DEFAULT_TOKEN_ENV, "environment variable name",
        "the environment variable holding the API access token (the token is never a setting)",
        f"an environment variable name such as {DEFAULT_TOKEN_ENV}", check=ENV_NAME_RE.match)
    sdk_host: str | None = setting(
        None, "host[:port]", "host (and port) of the SDK script",
        "host[:port] without a scheme", check=HOST_RE.match,
        expected_type="host[:port] without a scheme, as a string", rebuild="html",
        unset="the endpoint's host")
    sdk_https: bool | None = setting(
        None, "true | false", "load the SDK over https",
        "true | false", rebuild="html", unset="the endpoint's scheme")
    #: folder that relative paths (``cache``, ``previous_manifest``) are resolved against
    base_dir: Path = Path(".")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, base_dir: Path | str = ".") -> SiteSettings:
        """Validate a mapping of setting names to values; raises :class:`SettingsError`."""
        for key in values:
            if key not in SETTINGS:
                raise SettingsError(key, values[key], ", ".join(sorted(SETTINGS)), problem="unknown setting")
        clean = {k: v for k, v in values.items() if v is not None}
        settings = cls(**clean, base_dir=Path(base_dir))
        settings.validate()
        return settings

    def validate(self) -> None:
        # conf.py values are not type-checked by Sphinx: a wrong type must be a message too.
        for name, declared in SETTINGS.items():
            declared.validate(getattr(self, name))
        # the one rule across settings
        if self.lazy_endpoint is None:
            for name in ("mode", "on_error"):
                if getattr(self, name) == "lazy":
                    raise SettingsError(
                        "lazy_endpoint", None,
                        f"the URL of the lazy endpoint, because {name!r} is 'lazy' "
                        "(e.g. https://docs.example.com/sphere/workspaces)",
                        problem="missing setting",
                    )


    # -- derived values

    @property
    def api(self) -> Endpoint:
        if not self.endpoint:
            raise SettingsError("endpoint", None, "a customer host such as 12345678.containers.sphere-engine.com", problem="missing setting")
        return parse_endpoint(self.endpoint)

    @property
    def sdk(self) -> tuple[str, bool]:
        """``(host, https)`` for the SDK loader."""
        if self.sdk_host:
            https = True if self.sdk_https is None else self.sdk_https
            return self.sdk_host, https
        if not self.endpoint:
            # A site with only lazy embeds needs no API endpoint, but the loader needs a host.
            raise SettingsError(
                "sdk_host", None,
                "the host the Sphere Engine SDK loader comes from (your customer host, such as "
                "12345678.containers.sphere-engine.com), or set 'endpoint' and the SDK host follows it",
                problem="missing setting")
        api = self.api
        return api.host, api.https if self.sdk_https is None else self.sdk_https

    @property
    def cache_dir(self) -> Path:
        path = Path(self.cache)
        return path if path.is_absolute() else self.base_dir / path

    @property
    def previous_manifest_source(self) -> str | None:
        """Where the deployed site's manifest is: ``$SPHERE_DOCS_PREVIOUS_MANIFEST``, else the setting.

        A URL as given; a path made absolute (the variable's against the current
        folder, the setting's against the config file's folder); None when neither is set.
        """
        env = os.environ.get(PREVIOUS_MANIFEST_ENV, "").strip()
        if env:
            if not _is_manifest_source(env):
                raise SettingsError(
                    PREVIOUS_MANIFEST_ENV, env, MANIFEST_EXPECTED,
                    message=(f"sphere-workspaces: invalid value {env!r} for the environment variable "
                             f"{PREVIOUS_MANIFEST_ENV}; expected {MANIFEST_EXPECTED}"))
            value, base = env, Path.cwd()
        elif self.previous_manifest:
            value, base = str(self.previous_manifest).strip(), self.base_dir
        else:
            return None
        if value.startswith(("http://", "https://")):
            return value
        path = Path(value.removeprefix("file://")).expanduser()
        return str(path if path.is_absolute() else base / path)

    def token(self) -> str:
        """The access token from the environment, or a :class:`SettingsError` naming the variable."""
        return token_from_env(self.token_env, who="sphere-workspaces", why="; build-mode embeds need it")


def _declarations(record: type[SiteSettings]) -> dict[str, Setting]:
    """The :class:`Setting` of each field, completed; the record gets their real defaults."""
    hints = get_type_hints(record, globalns=globals())
    declared = {
        name: value._replace(name=name, types=_types(hints[name]))
        for name, value in record._field_defaults.items() if isinstance(value, Setting)
    }
    defaults = {name: declared[name].default if name in declared else value
                for name, value in record._field_defaults.items()}
    record.__new__.__defaults__ = tuple(defaults.values())  # type: ignore[attr-defined]
    record._field_defaults = defaults
    return declared


#: every setting, by name, in declaration order
SETTINGS: dict[str, Setting] = _declarations(SiteSettings)


def renamed(err: SettingsError, prefix: str) -> str:
    """The message of ``err`` with every setting it names spelled ``prefix + name`` (``sphere_``: conf.py)."""
    text = str(err)
    if prefix:
        for name in SETTINGS:  # the setting, and any other setting the message mentions
            text = text.replace(repr(name), repr(prefix + name))
    return text


def settings_table() -> str:
    """The README's settings table (Markdown), made from the declarations."""
    rows = ["| `mkdocs.yml` | `conf.py` | default | meaning |", "|---|---|---|---|"]
    for s in SETTINGS.values():
        default = s.unset if s.default is None else f"`{s.default}`"
        rows.append(f"| `{s.name}` | `sphere_{s.name}` | {default} | {s.doc} |")
    return "\n".join(rows)
