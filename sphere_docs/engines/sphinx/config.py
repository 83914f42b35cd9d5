"""``conf.py`` settings: ``sphere_<name>`` for every entry of :data:`settings.SETTINGS`.

The settings are declared once, in :mod:`sphere_docs.core.settings`; this module
only registers them under the ``sphere_`` prefix (with each declaration's
default, description and rebuild scope), converts ``-D`` strings to each
declaration's type, and turns a :class:`SettingsError` into Sphinx's
:class:`~sphinx.errors.ConfigError` with the conf.py name of the setting, at
``config-inited`` (before any document is read).
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sphinx.errors import ConfigError
from sphinx.util import logging

from ...core.errors import SettingsError
from ...core.settings import SETTINGS, SiteSettings, renamed

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
        app.add_config_value(config_name(name), setting.default, setting.rebuild, types=Any, **extra)


def _raw_values(config: Config) -> dict[str, Any]:
    """The ``sphere_*`` values; ``sphinx-build -D sphere_concurrency=4`` hands us strings,
    read as the setting's type (what does not convert is left for the validator to name)."""
    values: dict[str, Any] = {}
    for name, setting in SETTINGS.items():
        value = getattr(config, config_name(name))
        values[name] = setting.from_text(value) if isinstance(value, str) else value
    return values


def sphinx_message(err: SettingsError) -> str:
    """The shared message, naming the setting the way conf.py spells it."""
    return renamed(err, PREFIX)


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
