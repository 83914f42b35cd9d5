"""The package-level exception roots.

::

    SphereDocsError
    ├── SettingsError          a bad site setting (mkdocs.yml / conf.py) or a missing token
    ├── ProvisionError         build-time creation failed with on_error = fail (sphere_docs.pipeline.provision)
    └── SphereEngineError      the Containers API said no, or could not be reached (sphere_docs.api.client)

Option errors in a directive are :class:`sphere_docs.core.options.OptionError`
(a ``ValueError``), because they are the author's input, not a failure.
No message of any of these ever contains the access token.
"""

from __future__ import annotations

__all__ = ["SettingsError", "SphereDocsError"]


class SphereDocsError(Exception):
    """Root of every error this package raises on purpose."""


class SettingsError(SphereDocsError, ValueError):
    """A site setting is wrong or missing; the message names it and what would be valid."""

    def __init__(
        self,
        setting: str,
        value: object,
        valid: str,
        problem: str = "invalid value",
        message: str | None = None,
    ):
        self.setting = setting
        self.value = value
        self.valid = valid
        if message is None:
            if problem == "missing setting":
                message = f"sphere-workspaces: missing setting {setting!r}; expected {valid}"
            elif problem == "unknown setting":
                message = f"sphere-workspaces: unknown setting {setting!r}; valid settings: {valid}"
            else:
                message = f"sphere-workspaces: {problem} {value!r} for setting {setting!r}; expected {valid}"
        super().__init__(message)

    def __reduce__(self) -> tuple[object, ...]:  # crosses from the provisioning process (process_pool)
        return (type(self), (self.setting, self.value, self.valid, "invalid value", str(self)))
