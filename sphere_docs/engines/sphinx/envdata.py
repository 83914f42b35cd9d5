"""What the extension keeps in Sphinx's build environment.

Everything lives in one :class:`SphereEnvData` object on the environment, so
it is pickled with it (incremental builds) and copied into parallel readers.
Reading records embeds per document; ``env-purge-doc`` forgets a document
before it is re-read; ``env-merge-info`` copies what parallel readers found
back into the main process; provisioning (main process only, after reading)
fills :attr:`SphereEnvData.outcomes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING

from ...core.naming import PageNamer
from ...core.options import WorkspaceSpec
from ...pipeline import Embed
from ...pipeline.provision import Resolution

if TYPE_CHECKING:
    from sphinx.environment import BuildEnvironment

__all__ = ["Embed", "Outcome", "SphereEnvData", "env_data", "page_path"]

ATTR = "sphere_docs"


#: ``provision.Resolution``: how a build-mode embed was provisioned (never holds the access token)
Outcome = Resolution


@dataclass
class SphereEnvData:
    embeds: dict[str, list[Embed]] = field(default_factory=dict)  #: docname -> in order
    namers: dict[str, PageNamer] = field(default_factory=dict)  #: docname -> names given so far
    #: docname -> (line, sentence) of each author's mistake not suppressed: they fail the build
    errors: dict[str, list[tuple[int | None, str]]] = field(default_factory=dict)
    outcomes: dict[str, Outcome] = field(default_factory=dict)  #: Embed.key -> outcome

    # -- reading

    def namer(self, docname: str, page: str) -> PageNamer:
        namer = self.namers.get(docname)
        if namer is None:
            namer = self.namers[docname] = PageNamer(page)
        return namer

    def record_error(self, docname: str, line: int | None, sentence: str) -> None:
        self.errors.setdefault(docname, []).append((line, sentence))

    def record(self, docname: str, page: str, spec: WorkspaceSpec, line: int | None) -> Embed:
        embed = Embed(page=page, spec=spec, line=line, docname=docname)
        self.embeds.setdefault(docname, []).append(embed)
        return embed

    # -- environment events

    def purge(self, docname: str) -> None:
        for embed in self.embeds.pop(docname, ()):
            self.outcomes.pop(embed.key, None)
        self.namers.pop(docname, None)
        self.errors.pop(docname, None)

    def merge(self, docnames: set[str] | frozenset[str] | list[str], other: SphereEnvData) -> None:
        for docname in docnames:
            if docname in other.embeds:
                self.embeds[docname] = other.embeds[docname]
            if docname in other.namers:
                self.namers[docname] = other.namers[docname]
            if docname in other.errors:
                self.errors[docname] = other.errors[docname]

    # -- queries

    def all_embeds(self) -> list[Embed]:
        return [e for docname in sorted(self.embeds) for e in self.embeds[docname]]

    def pending(self) -> list[Embed]:
        """Build-mode embeds with no workspace yet: new or re-read, or failed last time."""
        return [
            e for e in self.all_embeds()
            if e.spec.mode == "build"
            and (e.key not in self.outcomes or self.outcomes[e.key].workspace_id is None)
        ]


def env_data(env: BuildEnvironment) -> SphereEnvData:
    data = getattr(env, ATTR, None)
    if not isinstance(data, SphereEnvData):
        data = SphereEnvData()
        setattr(env, ATTR, data)
    return data


def page_path(env: BuildEnvironment, docname: str) -> str:
    """``lessons/intro.md``: the page name shared with the MkDocs side and the lazy endpoint."""
    return PurePath(env.doc2path(docname, False)).as_posix()
