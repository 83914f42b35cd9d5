"""``conf.py`` settings: ``sphere_<name>`` for every entry of :data:`settings.SETTINGS`.

The settings are declared once, in :mod:`sphere_docs.settings`; this module
only registers them under the ``sphere_`` prefix and turns a :class:`SettingsError`
into Sphinx's :class:`~sphinx.errors.ConfigError` with the conf.py name of the
setting, at ``config-inited`` (before any document is read).
"""

from __future__ import annotations

import contextlib
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sphinx.errors import ConfigError
from sphinx.util import logging

from ..errors import SettingsError
from ..options import FALSE_WORDS, TRUE_WORDS
from ..settings import SETTINGS, SiteSettings

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.config import Config

logger = logging.getLogger(__name__)

__all__ = [
    "PREFIX",
    "SDK_MISSING",
    "config_name",
    "register",
    "site_settings",
    "sphinx_message",
    "validate_config",
]

PREFIX = "sphere_"

#: What a change of each setting invalidates (Sphinx's ``rebuild`` argument):
#: ``env`` re-reads every document (the default mode is applied while parsing,
#: and workspaces made on another endpoint are worthless); ``html`` rewrites the
#: pages (lazy endpoint URL, SDK loader); the rest only matter while provisioning.
REBUILD = {
    "endpoint": "env",
    "mode": "env",
    "lazy_endpoint": "html",
    "sdk_host": "html",
    "sdk_https": "html",
}

def _to_bool(text: str) -> bool | str:
    low = text.strip().lower()
    return True if low in TRUE_WORDS else False if low in FALSE_WORDS else text


#: ``sphinx-build -D sphere_concurrency=4`` hands us strings; convert the ones
#: whose setting is not a string, and leave anything unconvertible for the
#: validator to name.
_FROM_COMMAND_LINE: dict[str, Callable[[str], Any]] = {
    "concurrency": int,
    "retries": int,
    "timeout": float,
    "trust_checked": float,
    "sdk_https": _to_bool,
}


def config_name(setting: str) -> str:
    return PREFIX + setting


def register(app: Sphinx) -> None:
    """Declare every setting as a ``sphere_*`` config value.

    Types are left open (``Any``) on purpose: Sphinx's own type check would
    print a generic "has type str, defaults to int" warning, while
    :meth:`SiteSettings.validate` says what would be valid.
    """
    # ``description`` exists from Sphinx 7.4; 7.2 and 7.3 refuse it (asked once, not per value)
    described = "description" in inspect.signature(app.add_config_value).parameters
    for name, setting in SETTINGS.items():
        extra: dict[str, Any] = {"description": setting.doc} if described else {}
        app.add_config_value(
            config_name(name),
            setting.default,
            REBUILD.get(name, ""),  # type: ignore[arg-type]
            types=Any,
            **extra,
        )


def _raw_values(config: Config) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in SETTINGS:
        value = getattr(config, config_name(name))
        convert = _FROM_COMMAND_LINE.get(name)
        if convert is not None and isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = convert(value)
        values[name] = value
    return values


def sphinx_message(err: SettingsError) -> str:
    """The shared message, naming the setting the way conf.py spells it."""
    text = str(err)
    for name in SETTINGS:  # the setting, and any other setting the message mentions
        text = text.replace(repr(name), repr(config_name(name)))
    return text


def site_settings(config: Config, confdir: str | Path | None) -> SiteSettings:
    """The validated :class:`SiteSettings` of this project; raises :class:`ConfigError`."""
    try:
        return SiteSettings.from_mapping(_raw_values(config), base_dir=Path(confdir or "."))
    except SettingsError as err:
        raise ConfigError(sphinx_message(err)) from None


#: conf.py names that look like an attempt to put the token in the config file
TOKEN_LIKE = re.compile(r"^sphere_(access_)?(api_)?token$")


def _check_names(config: Config) -> None:
    """Unknown ``sphere_*`` names in conf.py: a token is an error, a typo a warning."""
    raw = getattr(config, "_raw_config", None) or {}
    known = {config_name(name) for name in SETTINGS}
    for name in sorted(k for k in raw if isinstance(k, str) and k.startswith(PREFIX)):
        if name in known:
            continue
        if TOKEN_LIKE.match(name):
            raise ConfigError(
                f"sphere-workspaces: the access token is never a setting: remove {name} from "
                f"conf.py and export it in the environment variable named by "
                f"{config_name('token_env')} (default {SETTINGS['token_env'].default})"
            )
        logger.warning(
            f"sphere-workspaces: unknown setting {name!r} in conf.py; valid settings: "
            + ", ".join(sorted(known)),
            type="sphere", subtype="config",
        )


def validate_config(app: Sphinx, config: Config) -> None:
    """``config-inited``: fail early, before reading, on any bad ``sphere_*`` value."""
    _check_names(config)
    settings = site_settings(config, app.confdir)  # raises ConfigError, named as in conf.py
    if settings.mode == "lazy" and not (settings.endpoint or settings.sdk_host):
        raise ConfigError(SDK_MISSING)


#: Lazy embeds still need the SDK loader; its host follows the endpoint unless set.
SDK_MISSING = (
    f"sphere-workspaces: embeds need the Sphere Engine SDK: set {config_name('endpoint')} "
    f"(the customer host; the SDK host follows it) or {config_name('sdk_host')}"
)
