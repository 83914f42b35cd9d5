"""Embed names: the default ``name`` of an unnamed embed, and the duplicate-name rule.

Every engine (the Markdown extension, Sphinx, ``check``) names embeds here, so a
page gets the same names and the same duplicate sentence whatever builds it.

Why the default is not the position on the page
-----------------------------------------------
A build-mode embed's workspace is found again by its name (the ledger key is
``page#name``), and a lazy reader's claim too.  A positional default moved
when an author inserted an embed above another: the old workspace went to the
new embed and the moved one got a new workspace.  The default is therefore
derived from what the embed *creates* — page, project, mode and creation
options — plus its ordinal among the page's embeds that create exactly the
same thing.  Adding, removing or reordering other embeds leaves it alone; only
reordering *identical* embeds swaps their names, and identical embeds are
interchangeable.  Authors who want a name to survive a change of project or
creation options set ``:name:`` themselves.

Ledgers written before this scheme hold positional names
(:func:`legacy_default_name`); :func:`legacy_adoptions` maps them to the new
names so those workspaces are adopted, not orphaned.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping

from .options import OptionError, WorkspaceSpec

__all__ = [
    "PageNamer",
    "default_name",
    "duplicate_name_error",
    "legacy_adoptions",
    "legacy_default_name",
]

_SLUG_BREAK_RE = re.compile(r"[^A-Za-z0-9]+")


def _slug(page: str, limit: int) -> str:
    return (_SLUG_BREAK_RE.sub("-", page).strip("-").lower() or "page")[:limit].rstrip("-") or "page"


def identity(spec: WorkspaceSpec) -> tuple[str, str, str]:
    """What an unnamed embed is known by: project, mode and creation options."""
    return (spec.project_id, spec.mode, spec.creation_key())


def default_name(page: str, spec: WorkspaceSpec, ordinal: int = 0) -> str:
    """The ``data-id`` of an unnamed embed: the ``ordinal``-th (0-based) on ``page`` creating ``spec``'s workspace.

    An identifier of at most 64 characters, safe as an HTML id and a ``localStorage`` key.
    """
    digest = hashlib.sha1("\0".join((page, *identity(spec))).encode()).hexdigest()[:8]
    return f"ws-{_slug(page, 32)}-{digest}-{ordinal + 1}"


def legacy_default_name(page: str, index: int) -> str:
    """The positional default of sphere-docs 0.1 (the ``index``-th embed of ``page``); ledgers may hold it."""
    digest = hashlib.sha1(page.encode()).hexdigest()[:6]
    return f"ws-{_slug(page, 40)}-{digest}-{index + 1}"


def _legacy_pattern(page: str) -> re.Pattern[str]:
    prefix = legacy_default_name(page, 0)[: -len("1")]
    return re.compile(re.escape(prefix) + r"(\d+)$")


class PageNamer:
    """Gives the unnamed embeds of one page their defaults, in page order, and applies the duplicate rule."""

    __slots__ = ("_first_line", "_ordinals", "page")

    def __init__(self, page: str) -> None:
        self.page = page
        self._ordinals: dict[tuple[str, str, str], int] = {}
        self._first_line: dict[str, int | None] = {}

    def name(self, spec: WorkspaceSpec, line: int | None = None) -> WorkspaceSpec:
        """``spec`` with its name set; :class:`OptionError` if another embed of the page has it."""
        if not spec.name:
            key = identity(spec)
            ordinal = self._ordinals.get(key, 0)
            self._ordinals[key] = ordinal + 1
            spec = spec.with_name(default_name(self.page, spec, ordinal))
        assert spec.name is not None
        if spec.name in self._first_line:
            raise duplicate_name_error(spec.name, self._first_line[spec.name])
        self._first_line[spec.name] = line
        return spec


def duplicate_name_error(name: str, first_line: int | None) -> OptionError:
    """The one sentence for a name given to two embeds of a page (every engine and ``check``)."""
    where = f" (line {first_line})" if first_line else ""
    return OptionError("name", name, f"a name not used by another embed on this page{where}",
                       problem="duplicate value")


def legacy_adoptions(
    entry_keys: Iterable[str],
    wanted: Mapping[str, tuple[str, WorkspaceSpec]],
) -> dict[str, str]:
    """Which old ledger entries the embeds of this build take over: ``{new key: old key}``.

    ``entry_keys`` are the ledger's keys (``api|project|creation key|page#name``);
    ``wanted`` maps the ledger key each build-mode embed looks for to its
    ``(page, spec)``.  An embed whose key is missing adopts an entry of the
    same page, project and creation options whose name is a positional default
    of that page, in page order (old index order matches ordinal order, since
    both follow the page), and only entries no embed of this build asks for.
    """
    keys = set(entry_keys)
    missing = {k: v for k, v in wanted.items() if k not in keys and v[1].name}
    if not missing:
        return {}
    claimed = set(wanted)
    groups: dict[tuple[str, str], list[str]] = {}  # (stem up to "page#", page) -> new keys in order
    for new_key, (page, spec) in missing.items():
        name = spec.name or ""
        if not name.startswith("ws-") or not name.endswith(f"-{_ordinal_of(name)}"):
            continue
        stem = new_key[: len(new_key) - len(name)]
        if stem.endswith(f"{page}#") and name == default_name(page, spec, _ordinal_of(name) - 1):
            groups.setdefault((stem, page), []).append(new_key)
    adopted: dict[str, str] = {}
    for (stem, page), new_keys in groups.items():
        pattern = _legacy_pattern(page)
        old = sorted(
            (int(m.group(1)), key) for key in keys
            if key.startswith(stem) and key not in claimed
            and (m := pattern.fullmatch(key[len(stem):]))
        )
        new_keys.sort(key=lambda k: _ordinal_of(missing[k][1].name or ""))
        for new_key, (_, old_key) in zip(new_keys, old, strict=False):
            adopted[new_key] = old_key
    return adopted


def _ordinal_of(name: str) -> int:
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0
