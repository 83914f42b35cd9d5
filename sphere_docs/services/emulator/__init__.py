"""A faithful local emulator of the Sphere Engine Containers workspace API and SDK.

:class:`EmulatorServer` serves :class:`EmulatorApp` (a WSGI app, also usable
alone through :func:`create_app`) on a loopback port.  What it emulates, and
every choice made where the reference is silent, is documented in
:mod:`sphere_docs.services.emulator.app`; the emulated SDK in ``sdk.js``.
"""

from __future__ import annotations

from .app import (
    DEMO_PROJECT_ID,
    DEMO_PROJECTS,
    ERROR_CODES,
    STATE_NAMES,
    EmulatorApp,
    FaultPlan,
    ManualClock,
    create_app,
)
from .server import EmulatorServer

__all__ = [
    "DEMO_PROJECTS",
    "DEMO_PROJECT_ID",
    "ERROR_CODES",
    "STATE_NAMES",
    "EmulatorApp",
    "EmulatorServer",
    "FaultPlan",
    "ManualClock",
    "create_app",
]
