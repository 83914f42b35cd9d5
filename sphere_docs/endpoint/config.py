"""Configuration of the lazy endpoint, from the environment and/or the command line.

Every setting has an environment variable (``SPHERE_ENDPOINT_*``) so gunicorn
can serve ``sphere_docs.endpoint:create_app()`` with no arguments; the
``sphere-docs endpoint`` command maps its flags onto the same fields.
:data:`ENV_VARS` lists them (field, variable, meaning) for the README.

The access token is never a setting: it is read from the variable named by
``token_env`` (default ``SPHERE_ENGINE_ACCESS_TOKEN``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import urlsplit

from ..errors import SettingsError
from ..options import PROJECT_ID_RE, OptionError, parse_options
from ..settings import DEFAULT_TOKEN_ENV, ENV_NAME_RE, HOST_RE, parse_endpoint

__all__ = ["ENV_VARS", "EndpointConfig", "Window", "parse_window", "setting_error"]

#: options an operator may set per project for the workspaces the endpoint creates
CREATE_OPTION_NAMES = (
    "token-required",
    "inactivity-timeout",
    "retention-stopped",
    "retention-total",
    "auto-resume",
)


def setting_error(var: str, value: Any, valid: str, problem: str = "invalid value") -> SettingsError:
    """A :class:`SettingsError` naming the environment variable (or its CLI flag's variable)."""
    if problem == "missing setting":
        message = f"sphere-docs endpoint: missing setting {var}; expected {valid}"
    else:
        message = f"sphere-docs endpoint: {problem} {value!r} for {var}; expected {valid}"
    return SettingsError(var, value, valid, problem=problem, message=message)


_WINDOW_RE = re.compile(r"^\s*(\d{1,9})\s*/\s*(\d{1,9})\s*([smh]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


@dataclass(frozen=True)
class Window:
    """``limit`` events per ``seconds`` (a sliding window)."""

    limit: int
    seconds: int

    def __str__(self) -> str:
        return f"{self.limit}/{self.seconds}"


def parse_window(value: str | Window, setting: str) -> Window:
    """``"5/600"``, ``"5/10m"`` or ``"200/1h"`` → :class:`Window`."""
    if isinstance(value, Window):
        return value
    match = _WINDOW_RE.match(str(value))
    seconds = int(match.group(2)) * _UNITS[match.group(3)] if match else 0
    if not match or int(match.group(1)) < 1 or seconds < 1:
        raise setting_error(setting, value, "COUNT/SECONDS such as 5/600, 5/10m or 200/1h (both at least 1)")
    return Window(int(match.group(1)), seconds)


#: field -> (environment variable, meaning); the CLI flags mirror these.
ENV_VARS: dict[str, tuple[str, str]] = {
    "api": ("SPHERE_ENDPOINT_API", "Containers API endpoint: customer host or URL (required)"),
    "token_env": ("SPHERE_ENDPOINT_TOKEN_ENV",
                  f"name of the variable holding the API access token (default {DEFAULT_TOKEN_ENV})"),
    "allow_projects": ("SPHERE_ENDPOINT_ALLOW_PROJECTS", "project ids readers may start, comma or space separated"),
    "manifest": ("SPHERE_ENDPOINT_MANIFEST",
                 "path or URL of the sphere-workspaces.json a build wrote; its projects are allowed too"),
    "allow_origins": ("SPHERE_ENDPOINT_ALLOW_ORIGINS",
                      "origins of the docs sites (scheme://host[:port]), comma or space separated"),
    "secret": ("SPHERE_ENDPOINT_SECRET",
               "keys signing reuse claims, comma or space separated: the first signs, all verify (rotation); "
               "the same on every worker and host (random per process if unset)"),
    "claim_ttl": ("SPHERE_ENDPOINT_CLAIM_TTL", "seconds a reuse claim stays valid (default 86400)"),
    "rate": ("SPHERE_ENDPOINT_RATE", "creations per client per window (default 5/10m)"),
    "requests": ("SPHERE_ENDPOINT_REQUESTS", "requests per client per window (default 60/1m)"),
    "budget": ("SPHERE_ENDPOINT_BUDGET", "creations per window for the whole deployment (default 200/1h)"),
    "inflight": ("SPHERE_ENDPOINT_INFLIGHT",
                 "creates waiting on the API at once, deployment-wide; beyond it 429 busy, Retry-After 1 (default 50)"),
    "storage": ("SPHERE_ENDPOINT_STORAGE",
                "where limits are counted: memory:// (this process only, the default) or "
                "redis://HOST:PORT/DB (rediss:// for TLS), shared by every worker and host"),
    "storage_failure": ("SPHERE_ENDPOINT_STORAGE_FAILURE",
                        "when Redis does not answer: closed (503 storage_unavailable, the default) or "
                        "open (count in each process's memory meanwhile)"),
    "metrics": ("SPHERE_ENDPOINT_METRICS", "1 to serve GET /metrics in Prometheus text format (default 0)"),
    "create_options": ("SPHERE_ENDPOINT_CREATE_OPTIONS",
                       'JSON {"<project id>" or "*": {"inactivity-timeout": "15", ...}}'),
    "timeout": ("SPHERE_ENDPOINT_TIMEOUT", "seconds per API call (default 8)"),
    "retries": ("SPHERE_ENDPOINT_RETRIES", "retries of a failed API call (default 1)"),
    "max_body": ("SPHERE_ENDPOINT_MAX_BODY", "largest accepted request body in bytes (default 4096)"),
    "trust_proxy": ("SPHERE_ENDPOINT_TRUST_PROXY",
                    "number of reverse proxies whose X-Forwarded-For is trusted (default 0)"),
    "sdk_host": ("SPHERE_ENDPOINT_SDK_HOST", "SDK host reported as sdk_base (default: the API host)"),
    "manifest_refresh": ("SPHERE_ENDPOINT_MANIFEST_REFRESH", "seconds between manifest re-reads (default 300)"),
    "host": ("SPHERE_ENDPOINT_HOST", "sphere-docs endpoint only: address to listen on (default 127.0.0.1)"),
    "port": ("SPHERE_ENDPOINT_PORT", "sphere-docs endpoint only: port (default 0 = any free port)"),
}

_LIST_FIELDS = ("allow_projects", "allow_origins")
_INT_FIELDS = ("claim_ttl", "inflight", "retries", "max_body", "trust_proxy", "manifest_refresh", "port")


def _split(value: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        value = re.split(r"[\s,]+", value)
    return tuple(v.strip() for v in value if v and v.strip())


def _origin(value: str) -> str:
    parts = urlsplit(value.strip())
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or not HOST_RE.match(parts.netloc)
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise setting_error(
            ENV_VARS["allow_origins"][0], value, "origins such as https://docs.example.org or http://127.0.0.1:8000"
        )
    return f"{parts.scheme}://{parts.netloc}".lower()


def _hide_password(url: str) -> str:
    """A storage URL fit for logs and errors: any password replaced by ``***``."""
    parts = urlsplit(url or "")
    if parts.password:
        netloc = parts.netloc.rsplit("@", 1)
        user = (parts.username or "") + ":***"
        return parts._replace(netloc=user + "@" + netloc[-1]).geturl()
    return url


@dataclass(frozen=True)
class EndpointConfig:
    api: str | None = None
    token_env: str = DEFAULT_TOKEN_ENV
    allow_projects: tuple[str, ...] = ()
    manifest: str | None = None
    allow_origins: tuple[str, ...] = ()
    secret: str | None = field(default=None, repr=False)
    claim_ttl: int = 86400
    rate: Window = Window(5, 600)
    requests: Window = Window(60, 60)
    budget: Window = Window(200, 3600)
    inflight: int = 50
    storage: str = "memory://"
    storage_failure: str = "closed"
    metrics: bool = False
    create_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    timeout: float = 8.0
    retries: int = 1
    max_body: int = 4096
    trust_proxy: int = 0
    sdk_host: str | None = None
    manifest_refresh: int = 300
    host: str = "127.0.0.1"
    port: int = 0

    # -- construction

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> EndpointConfig:
        """Read every ``SPHERE_ENDPOINT_*`` variable; ``overrides`` (not None) win."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, (var, _doc) in ENV_VARS.items():
            raw = env.get(var, "").strip()
            if raw:
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_mapping(values)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> EndpointConfig:
        """Convert and validate raw values (strings as found in the environment, or typed)."""
        known = {f.name for f in fields(cls)}
        clean: dict[str, Any] = {}
        for name, value in values.items():
            if name not in known:
                raise setting_error(name, value, "one of: " + ", ".join(sorted(known)), problem="unknown setting")
            var = ENV_VARS[name][0]
            if name in _LIST_FIELDS:
                clean[name] = _split(value)
            elif name in _INT_FIELDS:
                try:
                    clean[name] = int(value)
                except (TypeError, ValueError):
                    raise setting_error(var, value, "a whole number") from None
            elif name == "timeout":
                try:
                    clean[name] = float(value)
                except (TypeError, ValueError):
                    raise setting_error(var, value, "a number of seconds") from None
            elif name == "metrics":
                text = str(value).strip().lower()
                if text not in ("1", "0", "true", "false", "yes", "no", "on", "off", ""):
                    raise setting_error(var, value, "1 or 0")
                clean[name] = text in ("1", "true", "yes", "on")
            elif name in ("rate", "requests", "budget"):
                clean[name] = parse_window(value, var)
            elif name == "create_options" and isinstance(value, str):
                try:
                    clean[name] = json.loads(value)
                except ValueError:
                    raise setting_error(var, value, 'a JSON object such as {"*": {"inactivity-timeout": "15"}}') from None
            else:
                clean[name] = value
        config = cls(**clean)
        config = replace(
            config,
            allow_projects=tuple(p.lower() for p in config.allow_projects),
            allow_origins=tuple(_origin(o) for o in config.allow_origins),
        )
        config.validate()
        return config

    def validate(self) -> None:
        def bad(name: str, value: Any, valid: str) -> SettingsError:
            return setting_error(ENV_VARS[name][0], value, valid)

        if not self.api:
            raise setting_error(ENV_VARS["api"][0], None, "the Containers API endpoint, e.g. "
                                "12345678.containers.sphere-engine.com or http://127.0.0.1:8123",
                                problem="missing setting")
        try:
            parse_endpoint(self.api)
        except SettingsError:
            raise bad("api", self.api, "a customer host such as 12345678.containers.sphere-engine.com "
                      "or a URL such as http://127.0.0.1:8123") from None
        if not ENV_NAME_RE.match(self.token_env or ""):
            raise bad("token_env", self.token_env, "an environment variable name")
        for project in self.allow_projects:
            if not PROJECT_ID_RE.match(project):
                raise bad("allow_projects", project, "project ids of 32 hexadecimal characters")
        if not self.allow_projects and not self.manifest:
            raise setting_error(ENV_VARS["allow_projects"][0], None,
                                "at least one allowed project (or a manifest: SPHERE_ENDPOINT_MANIFEST)",
                                problem="missing setting")
        if not self.allow_origins:
            raise setting_error(ENV_VARS["allow_origins"][0], None,
                                "at least one origin of the docs site, e.g. https://docs.example.org",
                                problem="missing setting")
        if not 60 <= self.claim_ttl <= 366 * 86400:
            raise bad("claim_ttl", self.claim_ttl, "seconds from 60 to 31622400")
        if not 1 <= self.inflight <= 100_000:
            raise bad("inflight", self.inflight, "a whole number from 1 to 100000")
        parts = urlsplit(self.storage or "")
        if self.storage != "memory://" and not (
            (parts.scheme in ("redis", "rediss") and parts.hostname) or (parts.scheme == "unix" and parts.path)
        ):
            raise bad("storage", _hide_password(self.storage),
                      "memory:// or a Redis URL such as redis://127.0.0.1:6379/0 (rediss:// for TLS)")
        if self.storage_failure not in ("closed", "open"):
            raise bad("storage_failure", self.storage_failure, "closed or open")
        if not 0 < self.timeout <= 120:
            raise bad("timeout", self.timeout, "seconds greater than 0, at most 120")
        if not 0 <= self.retries <= 5:
            raise bad("retries", self.retries, "a whole number from 0 to 5")
        if not 256 <= self.max_body <= 1 << 20:
            raise bad("max_body", self.max_body, "bytes from 256 to 1048576")
        if not 0 <= self.trust_proxy <= 5:
            raise bad("trust_proxy", self.trust_proxy, "a whole number from 0 to 5")
        if self.sdk_host is not None and not HOST_RE.match(self.sdk_host):
            raise bad("sdk_host", self.sdk_host, "host[:port] without a scheme")
        if not 0 <= self.port <= 65535:
            raise bad("port", self.port, "a port number from 0 to 65535")
        if not isinstance(self.create_options, Mapping):
            raise bad("create_options", self.create_options, 'a JSON object keyed by project id or "*"')
        for key in self.create_options:
            self.create_fields(key if key != "*" else "0" * 32)

    # -- derived values

    @property
    def secrets(self) -> tuple[str, ...]:
        """The claim keys, signing key first (``SPHERE_ENDPOINT_SECRET`` split at commas and spaces)."""
        return _split(self.secret or "")

    @property
    def sdk_base(self) -> str:
        return self.sdk_host or parse_endpoint(self.api or "").host

    def create_fields(self, project_id: str) -> dict[str, str]:
        """API form fields for a workspace of ``project_id``: ``"*"`` options, then the project's own."""
        merged: dict[str, Any] = {}
        for key in ("*", project_id):
            options = self.create_options.get(key) or {}
            if not isinstance(options, Mapping):
                raise setting_error(ENV_VARS["create_options"][0], options, "an object of option: value")
            merged.update(options)
        unknown = [k for k in merged if str(k).replace("_", "-") not in CREATE_OPTION_NAMES]
        if unknown:
            raise setting_error(ENV_VARS["create_options"][0], unknown[0],
                                "options among: " + ", ".join(CREATE_OPTION_NAMES), problem="unknown option")
        try:
            spec = parse_options(project_id, {str(k): v for k, v in merged.items()}, default_mode="lazy")
        except OptionError as exc:
            raise setting_error(ENV_VARS["create_options"][0], exc.value, exc.valid,
                                problem=f"invalid {exc.option!r} value") from None
        return spec.create_fields()

    def describe(self) -> dict[str, str]:
        """Settings as printable strings for startup logs (the secret is never shown)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "secret":
                value = f"({len(self.secrets)} keys)" if value else "(random per process)"
            elif f.name == "storage":
                value = _hide_password(value)
            elif isinstance(value, tuple):
                value = ", ".join(value) or "-"
            out[f.name] = str(value)
        return out
