"""What the API answers, parsed tolerantly: :class:`Workspace`, :class:`WorkspacePage`, :class:`Project`.

``state.code`` may be an int or a string; the create envelope and the bare
object are both accepted; every field not modelled stays in ``Workspace.raw``.

Layer: api.  Imports only the core.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.options import truth

__all__ = [
    "STATE_ERROR",
    "STATE_NAMES",
    "STATE_REMOVED",
    "STATE_RUNNING",
    "STATE_STARTING",
    "STATE_STOPPED",
    "Project",
    "Workspace",
    "WorkspacePage",
]

STATE_STARTING, STATE_RUNNING, STATE_STOPPED, STATE_REMOVED, STATE_ERROR = 1, 2, 3, 4, 5
STATE_NAMES = {
    STATE_STARTING: "starting",
    STATE_RUNNING: "running",
    STATE_STOPPED: "stopped",
    STATE_REMOVED: "removed",
    STATE_ERROR: "error",
}
_STATE_CODES = {name: code for code, name in STATE_NAMES.items()}


def _as_bool(value: Any, default: bool) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return default
    if not str(value).strip():
        return False
    found = truth(value)
    return default if found is None else found


def _state(data: Mapping[str, Any]) -> tuple[int, str]:
    state = data.get("state")
    code_raw: Any
    name_raw: Any
    if isinstance(state, Mapping):
        code_raw, name_raw = state.get("code"), state.get("name")
    else:
        code_raw, name_raw = state, None
    code = 0
    if isinstance(code_raw, bool):
        code_raw = None
    if isinstance(code_raw, int):
        code = code_raw
    elif isinstance(code_raw, str) and code_raw.strip().lstrip("-").isdigit():
        code = int(code_raw.strip())
    elif isinstance(code_raw, str) and code_raw.strip().lower() in _STATE_CODES:
        code = _STATE_CODES[code_raw.strip().lower()]
    name = str(name_raw).strip().lower() if name_raw else ""
    if not code and name in _STATE_CODES:
        code = _STATE_CODES[name]
    if not name:
        name = STATE_NAMES.get(code, "unknown")
    return code, name


@dataclass(frozen=True)
class Workspace:
    """One workspace as the API describes it; ``raw`` keeps every field as received."""

    id: str
    project_id: str | None
    project_name: str | None
    state_code: int
    state_name: str
    workspace_token: str | None = field(default=None, repr=False)
    token_required: bool = True
    auto_resume: bool = True
    created_at: str | None = None
    terminated_at: str | None = None
    last_usage: str | None = None
    inactivity_timeout: int | None = None
    workspace_url: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False, hash=False)

    @property
    def is_live(self) -> bool:
        """Usable by a reader now or on entering: starting, running, or stopped with auto-resume."""
        if self.state_code in (STATE_STARTING, STATE_RUNNING):
            return True
        return self.state_code == STATE_STOPPED and self.auto_resume

    @classmethod
    def from_api(cls, data: Any) -> Workspace:
        """Build from a create envelope (``{"workspace": {...}}``) or a bare workspace object.

        Raises ``ValueError`` when ``data`` is not a workspace at all.
        """
        if isinstance(data, Mapping) and isinstance(data.get("workspace"), Mapping):
            data = data["workspace"]
        if not isinstance(data, Mapping):
            raise ValueError("expected a JSON object describing a workspace")
        ws_id = data.get("id")
        if not isinstance(ws_id, (str, int)) or isinstance(ws_id, bool) or not str(ws_id).strip():
            raise ValueError("the workspace object has no id")
        project = data.get("project")
        if isinstance(project, Mapping):
            project_id, project_name = project.get("id"), project.get("name")
        else:
            project_id, project_name = data.get("project_id", project), None
        code, name = _state(data)
        timeout = data.get("inactivity_timeout")
        token = data.get("workspace_token")
        return cls(
            id=str(ws_id).strip(),
            project_id=str(project_id) if project_id is not None else None,
            project_name=str(project_name) if project_name is not None else None,
            state_code=code,
            state_name=name,
            workspace_token=str(token) if token not in (None, "") else None,
            token_required=_as_bool(data.get("workspace_token_required"), True),
            auto_resume=_as_bool(data.get("auto_resume"), True),
            created_at=_opt_str(data.get("created_at")),
            terminated_at=_opt_str(data.get("terminated_at")),
            last_usage=_opt_str(data.get("last_usage")),
            inactivity_timeout=_opt_int(timeout),
            workspace_url=_opt_str(data.get("workspace_url")),
            raw=dict(data),
        )


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _opt_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class WorkspacePage:
    """One page of ``GET /workspaces``."""

    items: list[Workspace]
    next_page_token: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class Project:
    id: str
    name: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False, hash=False)


def _next_page_token(data: Mapping[str, Any]) -> str | None:
    paging = data.get("paging")
    token = paging.get("next_page_token") if isinstance(paging, Mapping) else None
    if token is None:
        token = data.get("next_page_token")
    return str(token) if token not in (None, "") else None
