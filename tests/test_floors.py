"""Every version floor pyproject.toml declares is one CI really runs the suite on.

``.ci/constraints-oldest.txt`` pins each floor exactly (CI's "oldest" environment,
made by ``.ci/env oldest`` on requires-python's floor); these tests keep the two files
in step, and in that environment (``SPHERE_DOCS_CI_ENV=oldest``, set by ``.ci/test``)
check that the installed versions are the floors.
"""

from __future__ import annotations

import os
import re
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (tomli comes with pytest there)
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
FLOOR_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*>=\s*([0-9][0-9.]*)$")


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_floors() -> dict[str, str]:
    """``name -> floor`` of every ``name>=X`` requirement, build system included."""
    project = PYPROJECT["project"]
    requirements = [*PYPROJECT["build-system"]["requires"], *project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        requirements += extra
    floors = {}
    for requirement in requirements:
        if match := FLOOR_RE.match(requirement.strip()):
            floors[normal(match.group(1))] = match.group(2)
    return floors


def pinned() -> dict[str, str]:
    pins = {}
    for line in (ROOT / ".ci" / "constraints-oldest.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, pin = line.partition("==")
            pins[normal(name)] = pin.strip()
    return pins


def release(text: str) -> tuple[int, ...]:
    """``"7.2.0"`` -> ``(7, 2)``: a release without its trailing zeros, so 7.2 == 7.2.0."""
    parts = [int(part) for part in text.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def test_every_floor_is_pinned_exactly_in_the_oldest_environment() -> None:
    floors, pins = declared_floors(), pinned()
    assert {"sphinx", "docutils", "myst-parser", "mkdocs", "markdown", "pymdown-extensions",
            "mkdocs-material"} <= set(floors)
    for name, floor in floors.items():
        assert name in pins, f"{name}>={floor} is not pinned in .ci/constraints-oldest.txt"
        assert release(pins[name]) == release(floor), (
            f"{name}: pyproject.toml says >={floor}, the oldest environment pins {pins[name]}")


def test_the_oldest_environment_runs_on_the_python_floor() -> None:
    floor = re.fullmatch(r">=\s*(3\.\d+)", PYPROJECT["project"]["requires-python"]).group(1)  # type: ignore[union-attr]
    assert f"oldest) versions=({floor})" in (ROOT / ".ci" / "env").read_text(encoding="utf-8")


@pytest.mark.skipif(os.environ.get("SPHERE_DOCS_CI_ENV") != "oldest", reason="only in CI's oldest environment")
def test_this_is_the_oldest_environment() -> None:
    floor = PYPROJECT["project"]["requires-python"].removeprefix(">=")
    assert sys.version_info[:2] == release(floor)
    for name, pin in pinned().items():
        if name == "setuptools":  # only the build of the package uses it, in its own environment
            continue
        assert version(name) == pin, name
