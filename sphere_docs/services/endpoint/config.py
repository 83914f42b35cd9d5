"""Configuration of the lazy endpoint, from the environment and/or the command line.

Every setting is declared once, in :data:`SETTINGS`: its field, environment
variable (``SPHERE_ENDPOINT_*``, so gunicorn can serve
``sphere_docs.endpoint:create_app()`` with no arguments), command-line flag of
``sphere-docs endpoint``, how its text is read, and its help.  :data:`ENV_VARS`
(field -> variable, meaning; the README's table), the command's flags and its
overrides are all generated from it.

Secret values have no flag (a command line is visible to every user of the host
through ``ps``): the claim keys are read from ``SPHERE_ENDPOINT_SECRET`` only, and the
access token is never a setting at all: it is read from the variable named by
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

from ...core.errors import SettingsError
from ...core.options import CREATE_FIELDS, OPTIONS, PROJECT_ID_RE, OptionError, parse_options, truth
from ...core.settings import DEFAULT_TOKEN_ENV, ENV_NAME_RE, HOST_RE, parse_endpoint

__all__ = ["ENV_VARS", "SETTINGS", "EndpointConfig", "Setting", "Window", "parse_window", "setting_error"]

#: options an operator may set per project for the workspaces the endpoint creates: the directive's
#: options that go to the API on create (the one schema's CREATE_FIELDS, by their option names)
CREATE_OPTION_NAMES = tuple(option.name for option in OPTIONS.values() if option.attr in dict(CREATE_FIELDS))


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


@dataclass(frozen=True)
class Setting:
    """One endpoint setting, declared once: its field, variable, flag and help.

    ``flag`` is ``None`` for a secret value (it never goes on a command line, where
    ``ps`` shows it to every user of the host); ``repeat`` makes a list setting's flag
    repeatable.  ``kind`` says how a raw string becomes the field's value.
    """

    name: str
    var: str
    help: str
    kind: str = "str"  # str, int, float, bool, list, window, json
    metavar: str | None = None
    flag: str | None = ""  # "" = --<name with dashes>; None = no flag (secret)
    repeat: bool = False

    @property
    def option(self) -> str | None:
        """The command-line flag, or None."""
        if self.flag is None:
            return None
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def secret(self) -> bool:
        return self.flag is None


_E = "SPHERE_ENDPOINT_"

#: every setting, in the order of ``--help`` and the README table
SETTINGS: tuple[Setting, ...] = (
    Setting("api", _E + "API", "Containers API endpoint: customer host or URL (required)", metavar="HOST|URL"),
    Setting("token_env", _E + "TOKEN_ENV",
            f"name of the variable holding the API access token (default {DEFAULT_TOKEN_ENV}); "
            "the token itself has no flag", metavar="NAME"),
    Setting("allow_projects", _E + "ALLOW_PROJECTS", "project ids readers may start, comma or space separated",
            kind="list", metavar="ID", flag="--allow-project", repeat=True),
    Setting("manifest", _E + "MANIFEST",
            "path or URL of the sphere-workspaces.json a build wrote; its projects are allowed too",
            metavar="PATH|URL"),
    Setting("allow_origins", _E + "ALLOW_ORIGINS",
            "origins of the docs sites (scheme://host[:port]), comma or space separated",
            kind="list", metavar="ORIGIN", flag="--allow-origin", repeat=True),
    Setting("secret", _E + "SECRET",
            "keys signing reuse claims, comma or space separated: the first signs, all verify (rotation); "
            "the same on every worker and host (random per process if unset); no flag: a secret on the "
            "command line is visible to every user of the host", flag=None),
    Setting("claim_ttl", _E + "CLAIM_TTL", "seconds a reuse claim stays valid (default 86400)",
            kind="int", metavar="SECONDS"),
    Setting("rate", _E + "RATE", "creations per client per window (default 5/10m)", kind="window",
            metavar="N/WINDOW"),
    Setting("requests", _E + "REQUESTS", "requests per client per window (default 60/1m)", kind="window",
            metavar="N/WINDOW"),
    Setting("budget", _E + "BUDGET", "creations per window for the whole deployment (default 200/1h)",
            kind="window", metavar="N/WINDOW"),
    Setting("inflight", _E + "INFLIGHT",
            "creates waiting on the API at once, deployment-wide; beyond it 429 busy, Retry-After 1, which the page retries by itself (default 50)",
            kind="int", metavar="N"),
    Setting("storage", _E + "STORAGE",
            "where limits are counted: memory:// (this process only, the default) or "
            "redis://HOST:PORT/DB (rediss:// for TLS), shared by every worker and host; "
            "a URL with a password belongs in the variable, not the flag", metavar="URL"),
    Setting("storage_failure", _E + "STORAGE_FAILURE",
            "when Redis does not answer: closed (503 storage_unavailable, the default) or "
            "open (count in each process's memory meanwhile)", metavar="closed|open"),
    Setting("metrics", _E + "METRICS", "serve GET /metrics in Prometheus text format (variable: 1 or 0; default 0)",
            kind="bool"),
    Setting("create_options", _E + "CREATE_OPTIONS",
            'JSON {"PROJECT_ID" or "*": {"inactivity-timeout": "15", ...}}: options of the workspaces created', kind="json", metavar="JSON"),
    Setting("timeout", _E + "TIMEOUT", "seconds per API call (default 8)", kind="float", metavar="SECONDS"),
    Setting("retries", _E + "RETRIES", "retries of a failed API call (default 1)", kind="int", metavar="N"),
    Setting("max_body", _E + "MAX_BODY", "largest accepted request body in bytes (default 4096)",
            kind="int", metavar="BYTES"),
    Setting("trust_proxy", _E + "TRUST_PROXY",
            "number of reverse proxies whose X-Forwarded-For is trusted (default 0)", kind="int", metavar="N"),
    Setting("sdk_host", _E + "SDK_HOST", "SDK host reported as sdk_base (default: the API host)",
            metavar="HOST"),
    Setting("manifest_refresh", _E + "MANIFEST_REFRESH", "seconds between manifest re-reads (default 300)",
            kind="int", metavar="SECONDS"),
    Setting("host", _E + "HOST", "sphere-docs endpoint only: address to listen on (default 127.0.0.1)",
            metavar="ADDRESS"),
    Setting("port", _E + "PORT", "sphere-docs endpoint only: port (default 0 = any free port)",
            kind="int", metavar="PORT"),
)
SETTING = {s.name: s for s in SETTINGS}

#: field -> (environment variable, meaning), generated from :data:`SETTINGS`
ENV_VARS: dict[str, tuple[str, str]] = {s.name: (s.var, s.help) for s in SETTINGS}



def markdown_table() -> str:
    """The README's table of settings, generated from :data:`SETTINGS` (tests/test_readme.py checks it)."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    rows = ["| variable (`SPHERE_ENDPOINT_…`) | flag of `sphere-docs endpoint` | meaning |", "|---|---|---|"]
    for s in SETTINGS:
        if s.option is None:
            flag = "none (secret)"
        elif s.kind == "bool":
            flag = f"`{s.option}`, `--no-{s.option[2:]}`"
        else:
            flag = f"`{s.option} {cell(s.metavar or 'VALUE')}`" + (" (repeatable)" if s.repeat else "")
        rows.append(f"| `{s.var.removeprefix(_E)}` | {flag} | {cell(s.help)} |")
    return "\n".join(rows) + "\n"




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
        raise ValueError(value)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _hide_password(url: str) -> str:
    """A storage URL fit for logs and errors: any password replaced by ``***``."""
    parts = urlsplit(url or "")
    if parts.password:
        netloc = parts.netloc.rsplit("@", 1)
        user = (parts.username or "") + ":***"
        return parts._replace(netloc=user + "@" + netloc[-1]).geturl()
    return url


class _Labels:
    """How an error names a setting: its flag when it came from one, else its variable."""

    def __init__(self, labels: Mapping[str, str] | None):
        self.labels = labels or {}

    def __call__(self, name: str) -> str:
        return self.labels.get(name) or SETTING[name].var


def _coerce(setting: Setting, value: Any, label: str) -> Any:
    """A raw value (a string from the environment or a flag, or already typed) as the field's type."""
    kind = setting.kind
    if kind == "list":
        if isinstance(value, (list, tuple)):  # a repeated flag: each may be a list itself
            return tuple(item for v in value for item in _split(v))
        return _split(value)
    if kind == "int":
        try:
            return int(value)
        except (TypeError, ValueError):
            raise setting_error(label, value, "a whole number") from None
    if kind == "float":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise setting_error(label, value, "a number of seconds") from None
    if kind == "bool":
        if isinstance(value, bool):
            return value
        found = truth(value) if str(value).strip() else False  # an empty variable is off
        if found is None:
            raise setting_error(label, value, "1 or 0")
        return found
    if kind == "window":
        return parse_window(value, label)
    if kind == "json" and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise setting_error(label, value, 'a JSON object such as {"*": {"inactivity-timeout": "15"}}') from None
    return value


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
    def from_env(cls, environ: Mapping[str, str] | None = None, *, labels: Mapping[str, str] | None = None,
                 **overrides: Any) -> EndpointConfig:
        """Read every ``SPHERE_ENDPOINT_*`` variable; ``overrides`` (not None) win.

        ``labels`` names where an override came from (``{"port": "--port"}``) for error messages;
        a setting read from the environment is named by its variable.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for setting in SETTINGS:
            raw = env.get(setting.var, "").strip()
            if raw:
                values[setting.name] = raw
        given = {k: v for k, v in overrides.items() if v is not None}
        values.update(given)
        return cls.from_mapping(values, labels={k: v for k, v in (labels or {}).items() if k in given})

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], *, labels: Mapping[str, str] | None = None) -> EndpointConfig:
        """Convert and validate raw values (strings as found in the environment, or typed)."""
        names = _Labels(labels)
        clean: dict[str, Any] = {}
        for name, value in values.items():
            if name not in SETTING:
                raise setting_error(name, value, "one of: " + ", ".join(sorted(SETTING)), problem="unknown setting")
            clean[name] = _coerce(SETTING[name], value, names(name))
        config = cls(**clean)
        try:
            origins = tuple(_origin(o) for o in config.allow_origins)
        except ValueError as exc:
            raise setting_error(names("allow_origins"), exc.args[0],
                                "origins such as https://docs.example.org or http://127.0.0.1:8000") from None
        config = replace(config, allow_projects=tuple(p.lower() for p in config.allow_projects),
                         allow_origins=origins)
        config.validate(labels=labels)
        return config

    def validate(self, *, labels: Mapping[str, str] | None = None) -> None:
        names = _Labels(labels)

        def bad(name: str, value: Any, valid: str) -> SettingsError:
            return setting_error(names(name), value, valid)

        if not self.api:
            raise setting_error(names("api"), None, "the Containers API endpoint, e.g. "
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
            raise setting_error(names("allow_projects"), None,
                                "at least one allowed project (or a manifest: SPHERE_ENDPOINT_MANIFEST)",
                                problem="missing setting")
        if not self.allow_origins:
            raise setting_error(names("allow_origins"), None,
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
            self.create_fields(key if key != "*" else "0" * 32, label=names("create_options"))

    # -- derived values

    @property
    def secrets(self) -> tuple[str, ...]:
        """The claim keys, signing key first (``SPHERE_ENDPOINT_SECRET`` split at commas and spaces)."""
        return _split(self.secret or "")

    @property
    def sdk_base(self) -> str:
        return self.sdk_host or parse_endpoint(self.api or "").host

    def create_fields(self, project_id: str, *, label: str = _E + "CREATE_OPTIONS") -> dict[str, str]:
        """API form fields for a workspace of ``project_id``: ``"*"`` options, then the project's own."""
        merged: dict[str, Any] = {}
        for key in ("*", project_id):
            options = self.create_options.get(key) or {}
            if not isinstance(options, Mapping):
                raise setting_error(label, options, "an object of option: value")
            merged.update(options)
        unknown = [k for k in merged if str(k).replace("_", "-") not in CREATE_OPTION_NAMES]
        if unknown:
            raise setting_error(label, unknown[0],
                                "options among: " + ", ".join(CREATE_OPTION_NAMES), problem="unknown option")
        try:
            spec = parse_options(project_id, {str(k): v for k, v in merged.items()}, default_mode="lazy")
        except OptionError as exc:
            raise setting_error(label, exc.value, exc.valid,
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

