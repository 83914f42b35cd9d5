"""The one option schema shared by every front end.

A directive hands us its argument (the project id) and a mapping of option
strings, exactly as the author wrote them.  :func:`parse_options` validates
them against :data:`OPTIONS` and returns a frozen :class:`WorkspaceSpec`.

Errors are :class:`OptionError` values that know the option, the bad value and
what would have been valid; the front end adds the file and line with
:meth:`OptionError.at` so every engine prints the same sentence.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

__all__ = [
    "BUILD_LIFECYCLE_DEFAULTS",
    "MODES",
    "OPTIONS",
    "OptionError",
    "WorkspaceSpec",
    "parse_options",
]

PROJECT_ID_RE = re.compile(r"^[0-9a-fA-F]{32}$")
#: the API's identifier shapes: what html.py puts in a page and the provisioner accepts from the API
WORKSPACE_ID_RE = re.compile(r"^[0-9a-f]{32}$")
TOKEN_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z-]{7,127}$")
#: ASCII digits only: ``\d`` alone also takes full-width and other Unicode digits, invalid in CSS
CSS_LENGTH_RE = re.compile(
    r"^(0|(\d+(\.\d+)?|\.\d+)(px|em|rem|vh|vw|vmin|vmax|%|ch|ex|cm|mm|in|pt|pc|dvh|svh|lvh))$",
    re.ASCII,
)
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
CSS_CLASS_RE = re.compile(r"^-?[_a-zA-Z][_a-zA-Z0-9-]*$")
#: C0 controls other than tab and newlines, and DEL: invalid in HTML text, and the Markdown
#: extension's own markers are made of them
_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

MODES = ("build", "lazy")
LAUNCHES = ("click", "visible", "load")
#: author-facing feature name -> the SDK's ``data-features`` value
FEATURES = {"fullscreen": "fullscreenmode"}
TRUE_WORDS = ("true", "yes", "on", "1")
FALSE_WORDS = ("false", "no", "off", "0")


class OptionError(ValueError):
    """A bad directive argument or option.

    ``option`` is the option name (``"project"`` for the argument), ``value``
    what the author wrote, ``valid`` a human description of what would be
    accepted.  ``str(err)`` is the location-free sentence; :meth:`at` prefixes
    ``file:line``.
    """

    def __init__(self, option: str, value: object, valid: str, problem: str | None = None,
                 suggestion: str | None = None):
        self.option = option
        self.value = value
        self.valid = valid
        self.problem = problem or "invalid value"
        self.suggestion = suggestion  #: the closest valid name or word, for "did you mean ...?"
        #: every problem of the directive, this one first (``parse_options`` reports them all)
        self.all: list[OptionError] = [self]
        super().__init__(self.describe())

    def describe(self) -> str:
        if self.option == "project":
            if self.value in (None, ""):
                return f"sphere-workspace: missing project id; expected {self.valid}"
            return f"sphere-workspace: invalid project id {self.value!r}; expected {self.valid}"
        hint = f" (did you mean {self.suggestion!r}?)" if self.suggestion else ""
        if self.problem == "unknown option":
            return (
                f"sphere-workspace: unknown option {self.option!r}{hint}; valid options: {self.valid}"
            )
        return (
            f"sphere-workspace: {self.problem} {self.value!r} for option {self.option!r}{hint}; "
            f"expected {self.valid}"
        )

    def at(self, file: str | None, line: int | None) -> str:
        """The message with a ``file:line:`` prefix (parts that are unknown are left out)."""
        where = ":".join(str(part) for part in (file, line) if part not in (None, ""))
        return f"{where}: {self.describe()}" if where else self.describe()


# -- converters: each takes the raw string and returns the typed value or raises ValueError
#    with the "expected ..." text; parse_options turns that into an OptionError.


def _css_length(raw: str) -> str:
    value = raw.strip()
    if not CSS_LENGTH_RE.match(value):
        raise ValueError("a CSS length such as 600px, 70vh, 40em or 100%")
    return value


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def convert(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(" | ".join(choices))
        return value

    convert.choices = choices  # type: ignore[attr-defined]  # for "did you mean ...?"
    return convert


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate an author most likely meant (a typo away), or ``None``."""
    found = difflib.get_close_matches(word.strip().lower(), list(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


def truth(text: object) -> bool | None:
    """``True`` / ``False`` for a word of :data:`TRUE_WORDS` / :data:`FALSE_WORDS` (any case), else ``None``.

    The one reader of true/false words: directive options, settings from the command line,
    the API's answers and the endpoint's variables; each caller says what "" and other words mean.
    """
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    return True if value in TRUE_WORDS else False if value in FALSE_WORDS else None


def _boolean(raw: str) -> bool:
    if not raw.strip():  # a bare flag (`:token-required:`) means true
        return True
    value = truth(raw)
    if value is None:
        raise ValueError("true | false")
    return value


def _minutes(raw: str) -> int:
    value = raw.strip()
    if not (value.isascii() and value.isdigit()) or int(value) > 60 * 24 * 365:
        raise ValueError("a whole number of minutes between 0 and 525600")
    return int(value)


def _features(raw: str) -> tuple[str, ...]:
    names = [part.strip().lower() for part in raw.split(",") if part.strip()]
    unknown = [n for n in names if n not in FEATURES]
    if unknown or not names:
        raise ValueError("a comma-separated list of: " + ", ".join(FEATURES))
    return tuple(dict.fromkeys(names))  # keep order, drop repeats


def _name(raw: str) -> str:
    value = raw.strip()
    if not NAME_RE.match(value):
        raise ValueError(
            "an identifier: a letter, then up to 63 letters, digits, '-' or '_'"
        )
    return value


def _classes(raw: str) -> tuple[str, ...]:
    names = raw.split()
    if not names or not all(CSS_CLASS_RE.match(n) for n in names):
        raise ValueError("space-separated CSS class names")
    return tuple(names)


class Option(NamedTuple):
    name: str  #: as written in the directive (hyphenated)
    attr: str  #: the WorkspaceSpec field it fills
    convert: Callable[[str], Any]
    valid: str  #: shown in docs tables
    doc: str


OPTIONS: dict[str, Option] = {
    o.name: o
    for o in (
        Option("mode", "mode", _choice(MODES), "build | lazy",
               "create the workspace at build time, or per reader through the lazy endpoint"),
        Option("height", "height", _css_length, "CSS length (default 600px)", "height of the embed"),
        Option("width", "width", _css_length, "CSS length (default 100%)", "width of the embed"),
        Option("features", "features", _features, "fullscreen",
               "SDK features, comma separated (fullscreen adds a full-screen toggle)"),
        Option("launch", "launch", _choice(LAUNCHES), "click | visible | load",
               "lazy mode: when the reader's workspace is created"),
        Option("token-required", "token_required", _boolean, "true | false (default true)",
               "require the workspace token in the embed (recommended)"),
        Option("inactivity-timeout", "inactivity_timeout", _minutes, "minutes",
               "stop/remove the workspace after this much inactivity"),
        Option("retention-stopped", "retention_stopped", _minutes, "minutes",
               "how long a stopped workspace is kept"),
        Option("retention-total", "retention_total", _minutes, "minutes",
               "total lifetime of the workspace"),
        Option("auto-resume", "auto_resume", _boolean, "true | false",
               "resume a stopped workspace when the reader opens it"),
        Option("name", "name", _name, "identifier",
               "the data-id handle; the default stays when other embeds are added, moved or removed"),
        Option("class", "classes", _classes, "CSS classes", "extra classes on the wrapper"),
    )
}

# Options whose value goes to the API on create: (spec attribute, API field name).
CREATE_FIELDS = (
    ("token_required", "workspace_token_required"),
    ("inactivity_timeout", "inactivity_timeout"),
    ("retention_stopped", "retention_time_stopped"),
    ("retention_total", "retention_time_total"),
    ("auto_resume", "auto_resume"),
)


#: Creation options a **build-mode** embed gets when its author did not set them (spec
#: attribute -> value).  A build-mode workspace is shared by every reader of the deployed
#: page and must outlive the build: the vendor documents that stop/resume is off by default,
#: so an idle workspace is *removed* (STOP-RESUME, FREEZING pages of the reference).  With
#: these it is *stopped* after 15 minutes without a reader (slots released, files kept),
#: resumed when a reader opens the page, and removed only after 30 days stopped — that is,
#: 30 days without any reader.  Lazy embeds (one workspace per reader) get none of them.
#:
#: * ``inactivity_timeout`` 15: the value of the vendor's example response; sent explicitly
#:   so the lifecycle does not depend on an account default we cannot read.
#: * ``retention_stopped`` 43200 (30 days): "some weeks" — longer than a term's usual gaps
#:   between rebuilds and visits (holidays, exam weeks), short enough that the workspaces
#:   of a site nobody opens any more disappear by themselves.  Capped at the author's
#:   ``retention-total`` when that is shorter (the vendor calls a stop retention longer than
#:   the total lifetime a conflict).
#: * ``auto_resume`` true: readers have no API token, so only auto-resume brings a stopped
#:   shared workspace back.  The vendor's example shows true as the default; we send it.
#: * ``retention_total`` is left to the API (0 = never removed, FREEZING page): a total cap
#:   would kill a deployed site mid-term however much it is used.
BUILD_LIFECYCLE_DEFAULTS: Mapping[str, int | bool] = {
    "inactivity_timeout": 15,
    "retention_stopped": 60 * 24 * 30,
    "auto_resume": True,
}


class WorkspaceSpec(NamedTuple):
    """One embed, validated.  ``mode`` is already resolved against the site default.

    Immutable; :meth:`with_name` (or ``_replace``) makes a changed copy.  A NamedTuple
    rather than a dataclass because every build imports it, and a 14-field frozen
    dataclass alone costs about 1.5 ms to define on CPython 3.11.
    """

    project_id: str
    mode: str = "build"
    height: str = "600px"
    width: str = "100%"
    features: tuple[str, ...] = ()
    launch: str = "click"
    token_required: bool = True
    inactivity_timeout: int | None = None
    retention_stopped: int | None = None
    retention_total: int | None = None
    auto_resume: bool | None = None
    name: str | None = None
    classes: tuple[str, ...] = ()
    caption: str = ""

    @property
    def sdk_features(self) -> str:
        """The ``data-features`` attribute value ("" when none)."""
        return ",".join(FEATURES[f] for f in self.features)

    def lifecycle(self) -> dict[str, Any]:
        """The creation options this embed's workspace gets (spec attribute -> value or None).

        The author's values; for a build-mode embed, :data:`BUILD_LIFECYCLE_DEFAULTS` fill
        the ones left unset.  ``None`` means the API's own default applies.
        """
        values = {attr: getattr(self, attr) for attr, _ in CREATE_FIELDS}
        if self.mode == "build":
            for attr, default in BUILD_LIFECYCLE_DEFAULTS.items():
                if values[attr] is None:
                    values[attr] = default
            total = values["retention_total"]
            if self.retention_stopped is None and total:
                values["retention_stopped"] = min(values["retention_stopped"], total)
        return values

    def create_fields(self) -> dict[str, str]:
        """Form fields for ``POST /workspaces`` (booleans as ``true``/``false`` as documented).

        Build-mode embeds include :data:`BUILD_LIFECYCLE_DEFAULTS` for the options their
        author left unset, so the fields (and :meth:`creation_key`, the ledger entry and the
        default name) are the same in every engine.
        """
        fields = {"project_id": self.project_id}
        lifecycle = self.lifecycle()
        for attr, api_name in CREATE_FIELDS:
            value = lifecycle[attr]
            if value is None:
                continue
            fields[api_name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
        return fields

    def creation_key(self) -> str:
        """A short stable hash of everything that shapes the created workspace.

        Display options (height, class, ...) are left out on purpose: changing
        them must not create a new workspace.
        """
        blob = json.dumps(self.create_fields(), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def with_name(self, name: str) -> WorkspaceSpec:
        return self._replace(name=name)


def parse_options(
    project: str | None,
    options: Mapping[str, str | None],
    *,
    caption: str = "",
    default_mode: str = "build",
) -> WorkspaceSpec:
    """Validate a directive's argument and options into a :class:`WorkspaceSpec`.

    ``options`` maps option names (hyphenated, as authors write them; the
    underscore spelling is accepted too) to their raw string values (``None``
    for a bare flag).  Raises :class:`OptionError` for the first problem found
    (the project id first, then options in the order written); its ``all``
    lists every problem of the directive, so a front end can report them all.
    """
    problems: list[OptionError] = []
    project_id = (project or "").strip()
    if not PROJECT_ID_RE.match(project_id):
        problems.append(OptionError("project", project, "a project id of 32 hexadecimal characters"))
    if default_mode not in MODES:
        raise OptionError("mode", default_mode, " | ".join(MODES))

    values: dict[str, Any] = {"mode": default_mode}
    for raw_name, raw_value in options.items():
        name = str(raw_name).strip().lower().replace("_", "-")
        option = OPTIONS.get(name)
        if option is None:
            problems.append(OptionError(raw_name, raw_value, ", ".join(OPTIONS), problem="unknown option",
                                        suggestion=closest(name, OPTIONS)))
            continue
        text = "" if raw_value is None else str(raw_value)
        if isinstance(raw_value, bool):  # YAML option blocks give real booleans
            text = "true" if raw_value else "false"
        try:
            values[option.attr] = option.convert(text)
        except ValueError as exc:
            choices = getattr(option.convert, "choices", None)
            problems.append(OptionError(option.name, raw_value, str(exc),
                                        suggestion=closest(text, choices) if choices else None))

    control = _CONTROL_RE.search(caption)
    if control:
        problems.append(OptionError("caption", f"U+{ord(control.group()):04X}",
                                    "text without control characters", problem="invalid character"))
    if problems:
        first = problems[0]
        first.all = problems
        raise first
    return WorkspaceSpec(project_id=project_id.lower(), caption=caption.strip(), **values)
