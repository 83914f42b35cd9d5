"""The message catalog: every problem an author can meet in a directive, once.

Each problem has one **code** (the warning subtype Sphinx prints as
``[sphere.option]`` and that ``suppress_warnings`` takes), one **severity**
and one **sentence**.  Every engine (plain Markdown, MkDocs, Zensical,
Sphinx rST and MyST) and ``sphere-docs check`` build their messages here, so
the same mistake reads the same, at the same ``file:line``, everywhere.

Option problems are :class:`~sphere_docs.core.options.OptionError` values (their
sentence is :meth:`~sphere_docs.core.options.OptionError.describe`, with "did you
mean ...?" when a valid name or word is a typo away); :func:`option_problems`
turns each into a :class:`Problem` located at the line of the option itself.

Layer: core.  Imports only :mod:`sphere_docs.core.options`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import NamedTuple

from .options import OptionError

__all__ = [
    "DIRECTIVE",
    "Code",
    "Problem",
    "Severity",
    "colon_fence",
    "embed_lost",
    "lazy_endpoint_missing",
    "option_given_twice",
    "option_problems",
    "shown_as_text",
    "unclosed_fence",
]

DIRECTIVE = "sphere-workspace"


class Severity(str, Enum):
    ERROR = "error"  #: the build fails (Sphinx: at its end, after every page was read)
    WARNING = "warning"  #: ``mkdocs build --strict`` / ``sphinx-build -W`` fail


class Code(str, Enum):
    """A problem's code: Sphinx's warning type and subtype, ``check --format json``'s ``code``."""

    OPTION = "sphere.option"  #: a bad project id, option, value or option block
    NAME = "sphere.name"  #: a name two embeds of a page share
    FENCE = "sphere.fence"  #: a directive fence never closed
    TEXT = "sphere.text"  #: directive text the page shows as text, not as an embed
    CONFIG = "sphere.config"  #: a site setting the embed needs is missing
    LOST = "sphere.lost"  #: another extension removed the embed from the page

    @property
    def subtype(self) -> str:
        return self.value.split(".", 1)[1]

    @property
    def severity(self) -> Severity:
        return SEVERITY[self]


#: One severity per code.  Directive text shown as text is a warning (the page
#: still says something); everything else loses the embed, so it is an error.
SEVERITY: Mapping[Code, Severity] = {
    Code.OPTION: Severity.ERROR,
    Code.NAME: Severity.ERROR,
    Code.FENCE: Severity.ERROR,
    Code.TEXT: Severity.WARNING,
    Code.CONFIG: Severity.ERROR,
    Code.LOST: Severity.ERROR,
}


class Problem(NamedTuple):
    """One problem of one embed: what, where, and the sentence every engine prints."""

    code: Code
    sentence: str
    page: str | None = None
    line: int | None = None
    option: str | None = None  #: the option at fault, when there is one
    error: OptionError | None = None

    @property
    def severity(self) -> Severity:
        return self.code.severity

    def located(self) -> str:
        """``page:line: sentence`` (the parts that are unknown left out)."""
        if not self.page:
            return f"line {self.line}: {self.sentence}" if self.line else self.sentence
        return f"{self.page}:{self.line}: {self.sentence}" if self.line else f"{self.page}: {self.sentence}"


def option_problems(err: OptionError, page: str | None, line: int | None,
                    option_lines: Mapping[str, int] | None = None) -> list[Problem]:
    """Every problem ``err`` carries (:attr:`OptionError.all`), each at its option's own line.

    ``option_lines`` maps option names as written to their source line; a
    problem without one (the project id, the caption) stays at ``line``, the
    directive's.
    """
    lines = option_lines or {}
    out = []
    for one in err.all:
        code = Code.NAME if one.problem == "duplicate value" else Code.OPTION
        at = lines.get(one.option, lines.get(str(one.option).replace("_", "-"), line))
        out.append(Problem(code, one.describe(), page, at, one.option, one))
    return out


# -- sentences of problems that are no OptionError


def unclosed_fence(fence: str) -> str:
    """The directive's fence has no closing line (an error: the rest of the page would be its caption)."""
    return (f"{DIRECTIVE}: the fence opened here is never closed; "
            f"expected a closing {fence} line at the same indentation")


def colon_fence() -> str:
    """A ``:::{sphere-workspace}`` fence outside MyST: Markdown shows it as text."""
    return (f"{DIRECTIVE}: a ':::' colon fence is MyST syntax; "
            f"write ```{{{DIRECTIVE}}} ... ``` instead")


def shown_as_text() -> str:
    """Directive text Markdown reads as part of a paragraph or raw HTML."""
    return (f"{DIRECTIVE}: this directive is shown as text, not as an embed: Markdown reads it as part "
            "of the text or raw HTML around it; expected the fence on lines of its own, outside raw HTML "
            '(or in an element with markdown="1" and the md_in_html extension)')


def invalid_option_block_at(text: str) -> str:
    """rST: a line in the option block that is no ``:name: value`` field (e.g. a caption with no blank line)."""
    return (f"{DIRECTIVE}: invalid option block at {text!r}; expected "
            "':name: value' lines, then a blank line before the caption")


def invalid_option_block(detail: str) -> str:
    """rST: docutils' other complaints about the option block (``:two words: x``)."""
    return (f"{DIRECTIVE}: invalid option block ({detail}); expected "
            "':name: value' lines, then a blank line before the caption")


def option_given_twice(name: str) -> str:
    return f"{DIRECTIVE}: option {name!r} is given twice; give each option once"


def lazy_endpoint_missing(setting: str, where: str) -> str:
    """A lazy embed (or a lazy fallback) on a site whose lazy endpoint is not set.

    ``setting`` is the setting as the engine spells it (``lazy_endpoint``,
    ``sphere_lazy_endpoint``), ``where`` the file it goes in.
    """
    return (f"{DIRECTIVE}: mode 'lazy' needs the {setting} setting (the URL of the lazy endpoint); "
            f"expected {setting} in {where}")


def lazy_endpoint_missing_box(setting: str) -> str:
    """What the reader sees in place of that embed."""
    return f"Lazy mode needs the {setting} setting."


def embed_lost() -> str:
    return (f"{DIRECTIVE}: the embed was lost while the page was rendered "
            "(another extension removed it); expected it in the page")


def inside_caption(line: int) -> str:
    """Directive text inside the caption of another directive (whose fence it did not close)."""
    return (f"{DIRECTIVE}: this directive is shown as text, not as an embed: it is inside the caption "
            f"of the directive at line {line}; expected a closing fence for that directive before this one")
