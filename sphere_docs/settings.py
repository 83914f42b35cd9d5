"""Site-wide settings, declared once for every front end.

``mkdocs.yml`` (``plugins: - sphere-workspaces: {endpoint: ...}``) and
``conf.py`` (``sphere_endpoint = ...``) carry the same names; both front ends
build a :class:`SiteSettings` through :meth:`SiteSettings.from_mapping`, so the
rules and the error texts exist once.  :data:`SETTINGS` describes each
setting for docs tables and for the adapters that must declare them.

The access token is never a setting: it is read from the environment variable
named by ``token_env`` (default ``SPHERE_ENGINE_ACCESS_TOKEN``) when needed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from .errors import SettingsError
from .options import MODES

__all__ = ["ON_ERROR", "PREVIOUS_MANIFEST_ENV", "SETTINGS", "Endpoint", "SiteSettings", "parse_endpoint", "token_from_env"]

ON_ERROR = ("fail", "placeholder", "lazy")
DEFAULT_TOKEN_ENV = "SPHERE_ENGINE_ACCESS_TOKEN"
#: overrides the ``previous_manifest`` setting (CI: the deployed site's manifest URL)
PREVIOUS_MANIFEST_ENV = "SPHERE_DOCS_PREVIOUS_MANIFEST"
HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:\d{1,5})?$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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
        raise SettingsError("endpoint", value, "a customer host such as 12345678.containers.sphere-engine.com or a URL such as http://127.0.0.1:8123")
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or not HOST_RE.match(parts.netloc) or parts.query:
        raise SettingsError("endpoint", value, "a customer host such as 12345678.containers.sphere-engine.com or a URL such as http://127.0.0.1:8123")
    path = parts.path.rstrip("/")
    if path.endswith("/api/v1"):
        path = path[: -len("/api/v1")]
    return Endpoint(
        api_base=f"{parts.scheme}://{parts.netloc}{path}/api/v1",
        host=parts.netloc,
        https=parts.scheme == "https",
    )


class Setting(NamedTuple):
    name: str
    default: Any
    valid: str
    doc: str


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting("endpoint", None, "customer host or URL",
                "Containers API endpoint: the customer host (https implied) such as "
                "`12345678.containers.sphere-engine.com`, or a full base URL such as "
                "`http://127.0.0.1:8123` for the emulator. Needed for build mode."),
        Setting("mode", "build", "build | lazy", "default mode of embeds without `:mode:`"),
        Setting("lazy_endpoint", None, "URL",
                "URL of the lazy endpoint (`POST` target of lazy embeds). Needed for lazy mode."),
        Setting("on_error", "fail", "fail | placeholder | lazy",
                "what a build does when a workspace cannot be created"),
        Setting("concurrency", 8, "1..64", "API calls in flight at once while provisioning"),
        Setting("timeout", 10.0, "seconds > 0", "timeout of each API call"),
        Setting("trust_checked", 300.0, "seconds >= 0",
                "how long a workspace the API confirmed live (checked or created) is trusted without "
                "asking again; 0 checks every recorded workspace on every build"),
        Setting("retries", 3, "0..10", "retries of a failed API call (see Retries in the README: a create is retried only when it surely was not performed)"),
        Setting("cache", ".sphere-docs-cache", "folder",
                "where the ledger of created workspaces is kept (relative to the config file)"),
        Setting("previous_manifest", None, "URL or path",
                "the `sphere-workspaces.json` of the last deployed site (URL, or a path relative to the "
                "config file); a build whose ledger has no entry for an embed reuses the workspace it "
                f"lists. The environment variable `{PREVIOUS_MANIFEST_ENV}` overrides it"),
        Setting("token_env", DEFAULT_TOKEN_ENV, "environment variable name",
                "the environment variable holding the API access token"),
        Setting("sdk_host", None, "host[:port]", "SDK host; defaults to the endpoint's host"),
        Setting("sdk_https", None, "true | false", "load the SDK over https; defaults to the endpoint's scheme"),
    )
}


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


def _check_manifest_source(name: str, value: Any) -> None:
    """A manifest location: an http(s) URL or a path (``file://`` accepted)."""
    valid = "the URL of a deployed sphere-workspaces.json (https://...) or a path to one"
    message = (f"sphere-workspaces: invalid value {value!r} for the environment variable {name}; "
               f"expected {valid}") if name == PREVIOUS_MANIFEST_ENV else None
    if not isinstance(value, str) or not value.strip():
        raise SettingsError(name, value, valid, message=message)
    text = value.strip()
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme == "file":
            return
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SettingsError(name, value, valid, message=message)


class SiteSettings(NamedTuple):
    """The site-wide settings, validated by :meth:`from_mapping` (or :meth:`validate`)."""

    endpoint: str | None = None
    mode: str = "build"
    lazy_endpoint: str | None = None
    on_error: str = "fail"
    concurrency: int = 8
    timeout: float = 10.0
    retries: int = 3
    trust_checked: float = 300.0
    cache: str = ".sphere-docs-cache"
    token_env: str = DEFAULT_TOKEN_ENV
    sdk_host: str | None = None
    sdk_https: bool | None = None
    previous_manifest: str | None = None
    #: folder that relative paths (``cache``, ``previous_manifest``) are resolved against
    base_dir: Path = Path(".")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, base_dir: Path | str = ".") -> SiteSettings:
        """Validate a mapping of setting names to values; raises :class:`SettingsError`."""
        known = set(cls._fields) - {"base_dir"}
        for key in values:
            if key not in known:
                raise SettingsError(key, values[key], ", ".join(sorted(known)), problem="unknown setting")
        clean = {k: v for k, v in values.items() if v is not None}
        settings = cls(**clean, base_dir=Path(base_dir))
        settings.validate()
        return settings

    def validate(self) -> None:
        # conf.py values are not type-checked by Sphinx: a wrong type must be a message too.
        for name, valid in (("endpoint", "a customer host or URL, as a string"),
                            ("lazy_endpoint", "a URL, as a string"), ("cache", "a folder path, as a string"),
                            ("sdk_host", "host[:port] without a scheme, as a string")):
            value = getattr(self, name)
            allowed = (str, Path) if name == "cache" else str
            if value is not None and not isinstance(value, allowed):
                raise SettingsError(name, value, valid)
        if self.previous_manifest is not None:
            _check_manifest_source("previous_manifest", self.previous_manifest)
        if self.endpoint is not None:
            parse_endpoint(self.endpoint)
        if self.mode not in MODES:
            raise SettingsError("mode", self.mode, " | ".join(MODES))
        if self.on_error not in ON_ERROR:
            raise SettingsError("on_error", self.on_error, " | ".join(ON_ERROR))
        if isinstance(self.concurrency, bool) or not isinstance(self.concurrency, int) or not 1 <= self.concurrency <= 64:
            raise SettingsError("concurrency", self.concurrency, "a whole number from 1 to 64")
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)) or self.timeout <= 0:
            raise SettingsError("timeout", self.timeout, "a number of seconds greater than 0")
        if isinstance(self.trust_checked, bool) or not isinstance(self.trust_checked, (int, float)) \
                or not 0 <= self.trust_checked < float("inf"):
            raise SettingsError("trust_checked", self.trust_checked, "a number of seconds, 0 or more (0: always check)")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or not 0 <= self.retries <= 10:
            raise SettingsError("retries", self.retries, "a whole number from 0 to 10")
        if not isinstance(self.token_env, str) or not ENV_NAME_RE.match(self.token_env):
            raise SettingsError("token_env", self.token_env, "an environment variable name such as SPHERE_ENGINE_ACCESS_TOKEN")
        if self.sdk_host is not None and not HOST_RE.match(str(self.sdk_host)):
            raise SettingsError("sdk_host", self.sdk_host, "host[:port] without a scheme")
        if self.sdk_https is not None and not isinstance(self.sdk_https, bool):
            raise SettingsError("sdk_https", self.sdk_https, "true | false")
        if self.lazy_endpoint is None:
            for name in ("mode", "on_error"):
                if getattr(self, name) == "lazy":
                    raise SettingsError(
                        "lazy_endpoint", None,
                        f"the URL of the lazy endpoint, because {name!r} is 'lazy' "
                        "(e.g. https://docs.example.com/sphere/workspaces)",
                        problem="missing setting",
                    )
        else:
            parts = urlsplit(str(self.lazy_endpoint))
            if parts.scheme not in ("http", "https") and not str(self.lazy_endpoint).startswith("/"):
                raise SettingsError("lazy_endpoint", self.lazy_endpoint, "an http(s) URL or a path starting with /")

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
            _check_manifest_source(PREVIOUS_MANIFEST_ENV, env)
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
