"""The README's CI recipes, run as written: fresh clones, the deployed site as the ledger of record.

Each test copies a small site (no ``.sphere-docs-cache``: a fresh clone on a CI
machine) and runs the commands of the README's ``.readthedocs.yaml`` or GitHub
Actions workflow in it, as subprocesses, against the emulator on a loopback
port.  A stdlib ``http.server`` in a thread serves "the deployed site": each
deploy replaces what it serves with the site just built.  Nothing is mocked.

What must hold (issue 14): a second fresh clone reuses every workspace of the
deployed site (0 created, the same ids in the pages); changing one embed's
creation option creates exactly 1, and ``prune --previous ... --current ...``
removes exactly the replaced one; an unreachable previous manifest is one
warning naming the URL and the build succeeds - for MkDocs and for Sphinx.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import SECRET_TOKEN, TOKEN_ENV, assert_no_leak

from sphere_docs.services.emulator import DEMO_PROJECT_ID, EmulatorServer

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
P = DEMO_PROJECT_ID
MANIFEST = "sphere-workspaces.json"
CHANGED_OPTION = ":inactivity-timeout: 45"  # a creation option: a new workspace for that embed only
EMBEDS = 3


# --------------------------------------------------------------------------- the README's recipes


def _yaml_block(marker: str) -> tuple[str, dict[str, Any]]:
    for block in re.findall(r"^```yaml\n(.*?)^```$", README, flags=re.M | re.S):
        if marker in block:
            return block, yaml.safe_load(block)
    raise AssertionError(f"no yaml block with {marker!r} in README.md")


def _sphinx_variant(block: str, command: str) -> str:
    """The ``# Sphinx: ...`` alternative the README gives next to ``command``."""
    lines = block.splitlines()
    for n, line in enumerate(lines):
        if command not in line:
            continue
        for candidate in (line, lines[n + 1] if n + 1 < len(lines) else ""):  # beside it, or the line below
            found = re.search(r"# Sphinx: (.+)$", candidate)
            if found and " -b html " in found.group(1):
                return found.group(1).strip()
    raise AssertionError(f"no Sphinx variant of {command!r}")


def rtd_recipe(engine: str) -> tuple[list[str], list[str]]:
    """The ``build.jobs.build.html`` and ``post_build`` commands of the README's ``.readthedocs.yaml``."""
    block, config = _yaml_block("version: 2")
    jobs = config["build"]["jobs"]
    html = list(jobs["build"]["html"])
    assert config["mkdocs"] == {"configuration": "mkdocs.yml"}
    if engine == "sphinx":
        html = [_sphinx_variant(block, html[0]) if "mkdocs build" in c else c for c in html]
    return html, list(jobs["post_build"])


@dataclass
class Step:
    run: str | None = None
    deploy: bool = False  # actions/deploy-pages: the site goes live
    env: dict[str, str] | None = None


def gha_recipe(engine: str) -> tuple[dict[str, str], list[Step]]:
    """The README workflow's job env and steps: ``run`` steps, and where the deploy happens."""
    block, config = _yaml_block("actions/deploy-pages")
    (job,) = config["jobs"].values()
    steps: list[Step] = []
    for step in job["steps"]:
        uses = step.get("uses", "")
        if "run" in step:
            run = step["run"]
            if run.startswith("pip install"):
                continue  # this environment has the package installed already
            if engine == "sphinx" and run.startswith("mkdocs build"):
                run = _sphinx_variant(block, "run: mkdocs build")
            steps.append(Step(run=run, env=step.get("env")))
        elif uses.startswith("actions/deploy-pages"):
            steps.append(Step(deploy=True))
        else:
            assert uses.startswith(("actions/checkout", "actions/setup-python", "actions/upload-pages-artifact")), uses
    return dict(job["env"]), steps


# --------------------------------------------------------------------------- the deployed site


class DeployedSite:
    """A web server on 127.0.0.1 (port 0) serving the last deployed site; counts manifest fetches."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.fetches: list[str] = []
        site = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.endswith(MANIFEST):
                    site.fetches.append(self.path)
                super().do_GET()

        handler = functools.partial(Handler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"

    def deploy(self, site_dir: Path) -> None:
        shutil.rmtree(self.root)
        shutil.copytree(site_dir, self.root)

    def manifest(self) -> dict[str, Any]:
        return json.loads((self.root / MANIFEST).read_text())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[DeployedSite]:
    site = DeployedSite(tmp_path / "deployed")
    yield site
    site.close()


# --------------------------------------------------------------------------- the small site


def make_origin(root: Path, engine: str, endpoint: str) -> Path:
    """The repository: 3 build-mode embeds on 2 pages (one named), a page without any."""
    if engine == "mkdocs":
        (root / "docs/lessons").mkdir(parents=True)
        (root / "mkdocs.yml").write_text(
            "site_name: Course\nplugins:\n  - sphere-workspaces:\n"
            f"      endpoint: {endpoint}\n", encoding="utf-8")
        (root / "docs/index.md").write_text("# Course\n\nNo workspace here.\n")
        fence = "```{sphere-workspace} " + P + "\n{options}\nTry it.\n```\n"
        (root / "docs/lessons/one.md").write_text(
            "# One\n\n" + fence.replace("{options}", ":height: 400px\n") + "\n"
            + fence.replace("{options}", ":name: second\n"))
        (root / "docs/lessons/two.md").write_text("# Two\n\n" + fence.replace("{options}", ""))
    else:
        (root / "docs/lessons").mkdir(parents=True)
        (root / "docs/conf.py").write_text(
            'project = "Course"\nextensions = ["sphere_docs.sphinx"]\n'
            f"sphere_endpoint = {endpoint!r}\n", encoding="utf-8")
        (root / "docs/index.rst").write_text(
            "Course\n======\n\nNo workspace here.\n\n.. toctree::\n\n   lessons/one\n   lessons/two\n")
        directive = ".. sphere-workspace:: " + P + "\n{options}\n   Try it.\n"
        (root / "docs/lessons/one.rst").write_text(
            "One\n===\n\n" + directive.replace("{options}", "   :height: 400px\n") + "\n"
            + directive.replace("{options}", "   :name: second\n"))
        (root / "docs/lessons/two.rst").write_text("Two\n===\n\n" + directive.replace("{options}", ""))
    return root


def change_one_option(clone: Path, engine: str) -> None:
    """Give lessons/two's embed another creation option (as a commit would)."""
    if engine == "mkdocs":
        page = clone / "docs/lessons/two.md"
        page.write_text(page.read_text().replace(P + "\n", P + "\n" + CHANGED_OPTION + "\n", 1))
    else:
        page = clone / "docs/lessons/two.rst"
        page.write_text(page.read_text().replace(P + "\n", P + "\n   " + CHANGED_OPTION + "\n", 1))


def fresh_clone(origin: Path, dest: Path) -> Path:
    shutil.copytree(origin, dest)
    assert not (dest / ".sphere-docs-cache").exists() and not (dest / "docs/.sphere-docs-cache").exists()
    return dest


def page_ids(site_dir: Path) -> dict[str, list[str]]:
    """Workspace ids per built page (data-workspace attributes), pages with embeds only."""
    found: dict[str, list[str]] = {}
    for page in sorted(site_dir.rglob("*.html")):
        ids = re.findall(r'data-workspace="([0-9a-f]{32})"', page.read_text())
        if ids:
            found[page.relative_to(site_dir).as_posix()] = ids
    return found


def all_ids(site_dir: Path) -> set[str]:
    return {i for ids in page_ids(site_dir).values() for i in ids}


# --------------------------------------------------------------------------- running commands


@dataclass
class Ran:
    command: str
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPHERE_DOCS_", "READTHEDOCS"))}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env[TOKEN_ENV] = SECRET_TOKEN
    env.update(extra)
    return env


def sh(command: str, cwd: Path, env: dict[str, str]) -> Ran:
    """One recipe command, as the CI runs it (``bash -e``); no time limit (the emulator answers)."""
    proc = subprocess.run(["bash", "-e", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                          check=False)
    return Ran(command, proc.returncode, proc.stdout, proc.stderr)


@dataclass
class Run:
    """One CI run of a recipe in one clone."""

    created: int
    removed: int
    ids: dict[str, list[str]]
    outputs: list[Ran]
    fetches_during_build: int

    def output(self, needle: str) -> Ran:
        return next(r for r in self.outputs if needle in r.command)


def run_rtd(clone: Path, engine: str, emulator: EmulatorServer, deployed: DeployedSite) -> Run:
    """Read the Docs: its html build command (README override), post_build, then the upload."""
    html_cmds, post_build = rtd_recipe(engine)
    output = clone / "_readthedocs"
    env = base_env(READTHEDOCS_CANONICAL_URL=deployed.url, READTHEDOCS_OUTPUT=str(output))
    emulator.reset_stats()
    outputs: list[Ran] = []
    deployed.fetches.clear()
    for command in html_cmds:
        outputs.append(ran := sh(command, clone, env))
        assert ran.code == 0, ran
    fetches = len(deployed.fetches)
    created = emulator.count("POST /workspaces")
    for command in post_build:
        outputs.append(ran := sh(command, clone, env))
        assert ran.code == 0, ran
    removed = emulator.count("PUT /workspaces/{id}/remove")
    site_dir = output / "html"
    deployed.deploy(site_dir)  # Read the Docs uploads after post_build
    return Run(created, removed, page_ids(site_dir), outputs, fetches)


def run_gha(clone: Path, engine: str, emulator: EmulatorServer, deployed: DeployedSite) -> Run:
    """GitHub Actions: the workflow's run steps in order, deploy-pages where the workflow deploys."""
    job_env, steps = gha_recipe(engine)
    env = base_env(**{k: v for k, v in job_env.items() if "${{" not in v})
    env["SITE_URL"] = deployed.url  # the repository's setting: where the site is deployed
    assert job_env[TOKEN_ENV] == "${{ secrets.SPHERE_ENGINE_ACCESS_TOKEN }}"
    emulator.reset_stats()
    outputs: list[Ran] = []
    created = fetches = -1
    for step in steps:
        if step.deploy:
            created = emulator.count("POST /workspaces")
            deployed.deploy(clone / "site")
            continue
        assert step.run is not None
        before = len(deployed.fetches)
        outputs.append(ran := sh(step.run, clone, {**env, **(step.env or {})}))
        assert ran.code == 0, ran
        if "build" in step.run and "prune" not in step.run:
            fetches = len(deployed.fetches) - before
    removed = emulator.count("PUT /workspaces/{id}/remove")
    return Run(created, removed, page_ids(clone / "site"), outputs, fetches)


RECIPES: dict[str, Callable[[Path, str, EmulatorServer, DeployedSite], Run]] = {
    "readthedocs": run_rtd,
    "github-actions": run_gha,
}


# --------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("engine", ["mkdocs", "sphinx"])
@pytest.mark.parametrize("recipe", list(RECIPES))
def test_fresh_clones_reuse_the_deployed_workspaces_and_prune_the_replaced_one(
        recipe: str, engine: str, emulator: EmulatorServer, deployed: DeployedSite, tmp_path: Path) -> None:
    origin = make_origin(tmp_path / "origin", engine, emulator.url)
    run = RECIPES[recipe]

    # 1. the first deploy: nothing deployed yet, every workspace created, nothing pruned
    first = run(fresh_clone(origin, tmp_path / "clone-1"), engine, emulator, deployed)
    assert first.created == EMBEDS and first.removed == 0
    first_ids = first.ids
    assert sum(len(ids) for ids in first_ids.values()) == EMBEDS == len({i for v in first_ids.values() for i in v})
    listed = {e["workspace_id"] for es in deployed.manifest()["pages"].values() for e in es}
    assert listed == {i for v in first_ids.values() for i in v}  # the deployed manifest names them all

    # 2. a second fresh clone, the same sources: 0 created, the same ids in the same pages
    second = run(fresh_clone(origin, tmp_path / "clone-2"), engine, emulator, deployed)
    assert second.created == 0, second.outputs
    assert second.ids == first_ids
    assert second.removed == 0
    # the previous manifest: fetched once per build (GitHub Actions: by curl, the build reads the copy)
    assert second.fetches_during_build == (1 if recipe == "readthedocs" else 0)
    ledger = json.loads(next((tmp_path / "clone-2").rglob("ledger.json")).read_text())
    reused = [e for e in ledger["entries"].values() if e.get("note") == "reused from the deployed site"]
    assert len(reused) == EMBEDS  # recorded: the clone's next build needs no manifest

    # 3. a third fresh clone with one creation option changed: exactly 1 created, the replaced one pruned
    third_clone = fresh_clone(origin, tmp_path / "clone-3")
    change_one_option(third_clone, engine)
    third = run(third_clone, engine, emulator, deployed)
    assert third.created == 1, third.outputs
    (two_page,) = [p for p in first_ids if "two" in p]
    (replaced,) = first_ids[two_page]
    (new_id,) = third.ids[two_page]
    assert new_id != replaced
    assert {p: ids for p, ids in third.ids.items() if p != two_page} == {
        p: ids for p, ids in first_ids.items() if p != two_page}
    assert third.removed == 1
    prune_out = third.output("prune").out
    assert f"removed {replaced} (lessons/two." in prune_out
    assert "removed 1 workspace(s) of the previous site, kept 2 still deployed" in prune_out
    states = {ws_id: emulator.app.workspace(ws_id)["state"]["name"]
              for ids in (*first_ids.values(), *third.ids.values()) for ws_id in ids}
    assert states.pop(replaced) == "removed"
    assert set(states.values()) == {"running"}  # everything the deployed site shows is alive

    for each in (first, second, third):
        assert_no_leak([r.text for r in each.outputs])
    assert_no_leak(roots=[tmp_path])
    manifest_text = (deployed.root / MANIFEST).read_text()
    assert "token" not in manifest_text  # ids and creation keys only


@pytest.mark.parametrize("engine", ["mkdocs", "sphinx"])
def test_unreachable_previous_manifest_is_one_warning_and_the_build_succeeds(
        engine: str, emulator: EmulatorServer, tmp_path: Path) -> None:
    with socket.socket() as probe:  # a loopback port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/course/{MANIFEST}"
    clone = fresh_clone(make_origin(tmp_path / "origin", engine, emulator.url), tmp_path / "clone")
    command = "mkdocs build" if engine == "mkdocs" else "sphinx-build -b html docs site"
    ran = sh(command, clone, base_env(SPHERE_DOCS_PREVIOUS_MANIFEST=url))
    assert ran.code == 0, ran
    warnings = [line for line in ran.text.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, warnings
    assert url in warnings[0] and "not available" in warnings[0]
    assert emulator.count("POST /workspaces") == EMBEDS  # created as without it
    assert len(all_ids(clone / "site")) == EMBEDS
    assert_no_leak([ran.text], [clone])


@pytest.mark.parametrize("engine", ["mkdocs", "sphinx"])
def test_malformed_previous_manifest_is_a_located_error(
        engine: str, emulator: EmulatorServer, deployed: DeployedSite, tmp_path: Path) -> None:
    (deployed.root / MANIFEST).write_text(json.dumps({"version": 1, "projects": [], "pages": {
        "lessons/two.md": [{"project_id": P, "name": "x", "workspace_id": "not-an-id"}]}}))
    clone = fresh_clone(make_origin(tmp_path / "origin", engine, emulator.url), tmp_path / "clone")
    command = "mkdocs build" if engine == "mkdocs" else "sphinx-build -b html docs site"
    ran = sh(command, clone, base_env(SPHERE_DOCS_PREVIOUS_MANIFEST=deployed.url + MANIFEST))
    assert ran.code != 0
    assert "previous manifest" in ran.text and f"{deployed.url}{MANIFEST}: page 'lessons/two.md', embed 1 ('x'): " \
        "'workspace_id' must be 32 hexadecimal characters" in ran.text, ran.text
    assert "Traceback" not in ran.text
    assert emulator.count("POST /workspaces") == 0  # stopped before anything was created
    assert_no_leak([ran.text])


def test_a_deployed_workspace_that_is_gone_is_created_again_and_not_pruned_twice(
        emulator: EmulatorServer, deployed: DeployedSite, tmp_path: Path) -> None:
    origin = make_origin(tmp_path / "origin", "mkdocs", emulator.url)
    first = run_gha(fresh_clone(origin, tmp_path / "clone-1"), "mkdocs", emulator, deployed)
    gone = first.ids["lessons/one/index.html"][0]
    from sphere_docs.api.client import ContainersClient

    with ContainersClient(emulator.url + "/api/v1", SECRET_TOKEN) as client:
        client.remove(gone)  # removed by hand (or expired) since the deploy
    second = run_gha(fresh_clone(origin, tmp_path / "clone-2"), "mkdocs", emulator, deployed)
    assert second.created == 1
    assert second.ids["lessons/one/index.html"][0] != gone
    assert second.ids["lessons/one/index.html"][1:] == first.ids["lessons/one/index.html"][1:]
    prune_out = second.output("prune").out
    assert f"already gone {gone}" in prune_out and second.removed == 0


def test_prune_previous_never_touches_what_neither_manifest_lists(
        emulator: EmulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sphere_docs.api.client import ContainersClient
    from sphere_docs.core.options import WorkspaceSpec
    from sphere_docs.tools.cli import main

    with ContainersClient(emulator.url + "/api/v1", SECRET_TOKEN) as client:
        listed, kept, other = (client.create_workspace(WorkspaceSpec(P).create_fields()) for _ in range(3))
    spec = WorkspaceSpec(P, name="a")

    def manifest(path: Path, *ids: str) -> str:
        pages = {f"p{n}.md": [{"project_id": P, "mode": "build", "name": "a",
                               "creation_key": spec.creation_key(), "workspace_id": i}] for n, i in enumerate(ids)}
        path.write_text(json.dumps({"version": 1, "pages": pages, "projects": [P]}))
        return str(path)

    previous = manifest(tmp_path / "previous.json", listed.id, kept.id)
    current = manifest(tmp_path / "current.json", kept.id)
    assert main(["prune", "--previous", previous, "--current", current, "--dry-run"]) == 0
    assert f"would remove {listed.id} (p0.md a, project {P})" in capsys.readouterr().out
    assert emulator.count("PUT /workspaces/{id}/remove") == 0
    args = ["prune", "--previous", previous, "--current", current, "--endpoint", emulator.url]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"removed {listed.id} (p0.md a, project {P})" in out
    states = {w.id: emulator.app.workspace(w.id)["state"]["name"] for w in (listed, kept, other)}
    assert states == {listed.id: "removed", kept.id: "running", other.id: "running"}
    assert main(args) == 0  # again: already gone, nothing else
    assert f"already gone {listed.id}" in capsys.readouterr().out

    # an older current manifest (no workspace ids) would make everything look dropped: refused
    (tmp_path / "old.json").write_text(json.dumps(
        {"version": 1, "pages": {"p.md": [{"project_id": P, "mode": "build", "name": "a"}]}, "projects": [P]}))
    assert main(["prune", "--previous", previous, "--current", str(tmp_path / "old.json"),
                 "--endpoint", emulator.url]) == 2
    assert "written by a sphere-docs before 0.2" in capsys.readouterr().err
    assert main(["prune", "--previous", previous]) == 2  # --current is needed too
    assert emulator.app.workspace(other.id)["state"]["name"] == "running"
