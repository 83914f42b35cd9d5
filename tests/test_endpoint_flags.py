"""Every endpoint setting is declared once (``sphere_docs.services.endpoint.config.SETTINGS``): its
variable, its ``sphere-docs endpoint`` flag (none for a secret) and its help come from there.

These tests parse with the real ``sphere-docs`` argument parser and run the real command.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields
from typing import Any

import pytest
import requests
from conftest import assert_no_leak
from test_lazy_endpoint import ORIGIN, PROJECT, SECOND, SECRET, reader

from sphere_docs.core.errors import SettingsError
from sphere_docs.services.endpoint import ENV_VARS, EndpointConfig, Window
from sphere_docs.services.endpoint.config import SETTINGS
from sphere_docs.tools.cli import build_parser
from sphere_docs.tools.commands.endpoint import flag_overrides

THIRD = "0123456789abcdef0123456789abcdef"
BASE_ENV = {"SPHERE_ENDPOINT_API": "http://127.0.0.1:9", "SPHERE_ENDPOINT_ALLOW_PROJECTS": PROJECT,
            "SPHERE_ENDPOINT_ALLOW_ORIGINS": ORIGIN}

#: field -> (variable's value, the flag's arguments, the field's value then)
OVERRIDES: dict[str, tuple[str, list[str], Any]] = {
    "api": ("http://127.0.0.1:9", ["--api", "http://127.0.0.1:10"], "http://127.0.0.1:10"),
    "token_env": ("A_TOKEN", ["--token-env", "B_TOKEN"], "B_TOKEN"),
    "allow_projects": (PROJECT, ["--allow-project", SECOND, "--allow-project", f"{THIRD},{PROJECT}"],
                       (SECOND, THIRD, PROJECT)),
    "manifest": ("/srv/a.json", ["--manifest", "/srv/b.json"], "/srv/b.json"),
    "allow_origins": (ORIGIN, ["--allow-origin", "https://Docs.Example.org"], ("https://docs.example.org",)),
    "claim_ttl": ("600", ["--claim-ttl", "700"], 700),
    "rate": ("1/1m", ["--rate", "2/1h"], Window(2, 3600)),
    "requests": ("10/1m", ["--requests", "20/30"], Window(20, 30)),
    "budget": ("5/1h", ["--budget", "1000/2h"], Window(1000, 7200)),
    "inflight": ("5", ["--inflight", "7"], 7),
    "storage": ("redis://127.0.0.1:1/0", ["--storage", "memory://"], "memory://"),
    "storage_failure": ("open", ["--storage-failure", "closed"], "closed"),
    "metrics": ("1", ["--no-metrics"], False),
    "create_options": ('{"*": {"inactivity-timeout": "15"}}', ["--create-options", '{"*": {"auto-resume": "true"}}'],
                       {"*": {"auto-resume": "true"}}),
    "timeout": ("3", ["--timeout", "4.5"], 4.5),
    "retries": ("0", ["--retries", "2"], 2),
    "max_body": ("1000", ["--max-body", "2000"], 2000),
    "trust_proxy": ("0", ["--trust-proxy", "1"], 1),
    "sdk_host": ("a.example.org", ["--sdk-host", "b.example.org:8443"], "b.example.org:8443"),
    "manifest_refresh": ("60", ["--manifest-refresh", "120"], 120),
    "host": ("127.0.0.1", ["--host", "::1"], "::1"),
    "port": ("8098", ["--port", "8099"], 8099),
}
SECRETS = {"secret"}  # no flag: a command line is visible to every user of the host (ps)


def parse(*argv: str) -> Any:
    return build_parser().parse_args(["endpoint", *argv])


def test_one_declaration_for_fields_variables_and_flags() -> None:
    assert [s.name for s in SETTINGS] == [f.name for f in fields(EndpointConfig)]
    assert {s.name: (s.var, s.help) for s in SETTINGS} == ENV_VARS
    assert {s.name for s in SETTINGS if s.option is None} == SECRETS
    assert set(OVERRIDES) == {s.name for s in SETTINGS if s.option is not None}
    endpoint = build_parser()._subparsers._group_actions[0].choices["endpoint"]  # type: ignore[union-attr]
    options = {o for action in endpoint._actions for o in action.option_strings}
    for setting in SETTINGS:
        assert setting.var.startswith("SPHERE_ENDPOINT_")
        if setting.option is None:
            assert not any(setting.name.replace("_", "-") in o for o in options), setting.name
            assert "no flag" in setting.help  # and the help says so
        else:
            assert setting.option in options, setting.name
    assert "SPHERE_ENDPOINT_SECRET" in (endpoint.epilog or "")


@pytest.mark.parametrize("name", list(OVERRIDES))
def test_a_flag_overrides_its_variable(name: str) -> None:
    setting = next(s for s in SETTINGS if s.name == name)
    env_value, argv, expected = OVERRIDES[name]
    env = {**BASE_ENV, setting.var: env_value}
    from_env = EndpointConfig.from_env(env)
    assert getattr(from_env, name) != expected  # the variable alone gives something else
    overrides, labels = flag_overrides(parse(*argv))
    assert set(overrides) == {name} and labels == {name: setting.option}
    assert getattr(EndpointConfig.from_env(env, labels=labels, **overrides), name) == expected


def test_metrics_flag_both_ways() -> None:
    for env_value, argv, expected in (("0", ["--metrics"], True), ("1", ["--no-metrics"], False), ("1", [], True)):
        overrides, labels = flag_overrides(parse(*argv))
        config = EndpointConfig.from_env({**BASE_ENV, "SPHERE_ENDPOINT_METRICS": env_value}, labels=labels,
                                         **overrides)
        assert config.metrics is expected


@pytest.mark.parametrize(("argv", "env", "message"), [
    (["--inflight", "0"], {}, "sphere-docs endpoint: invalid value 0 for --inflight; expected a whole number "
                              "from 1 to 100000"),
    ([], {"SPHERE_ENDPOINT_INFLIGHT": "0"}, "sphere-docs endpoint: invalid value 0 for SPHERE_ENDPOINT_INFLIGHT; "
                                            "expected a whole number from 1 to 100000"),
    (["--rate", "fast"], {}, "sphere-docs endpoint: invalid value 'fast' for --rate; expected COUNT/SECONDS such "
                             "as 5/600, 5/10m or 200/1h (both at least 1)"),
    (["--allow-origin", "docs.example.org"], {},
     "sphere-docs endpoint: invalid value 'docs.example.org' for --allow-origin; expected origins such as "
     "https://docs.example.org or http://127.0.0.1:8000"),
    (["--port", "http"], {}, "sphere-docs endpoint: invalid value 'http' for --port; expected a whole number"),
    (["--create-options", '{"*": {"height": "3px"}}'], {},
     "sphere-docs endpoint: unknown option 'height' for --create-options; expected options among: "
     "token-required, inactivity-timeout, retention-stopped, retention-total, auto-resume"),
    (["--storage", "redis://:hunter2-password@10.0.0.5:6379/0"], {},
     "sphere-docs endpoint: password in 'redis://:***@10.0.0.5:6379/0' for --storage; expected a URL without a "
     "password (a command line is visible to every user of the host): put it in SPHERE_ENDPOINT_STORAGE"),
])
def test_an_error_names_the_flag_or_the_variable_it_came_from(argv: list[str], env: dict[str, str],
                                                              message: str) -> None:
    with pytest.raises(SettingsError) as info:
        overrides, labels = flag_overrides(parse(*argv))
        EndpointConfig.from_env({**BASE_ENV, **env}, labels=labels, **overrides)
    assert str(info.value) == message
    assert "hunter2" not in str(info.value)


def test_there_is_no_secret_flag() -> None:
    with pytest.raises(SystemExit):
        parse("--secret", SECRET)


def test_the_command_takes_flags_over_variables(emulator: Any, access_token: str) -> None:
    """The real command: its variables say no metrics, an invalid in-flight cap and another API;
    the flags win, so it starts, serves /metrics and creates on the emulator."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SPHERE_ENDPOINT_")},
           "SPHERE_ENDPOINT_API": "http://127.0.0.1:9", "SPHERE_ENDPOINT_INFLIGHT": "0",
           "SPHERE_ENDPOINT_METRICS": "0", "SPHERE_ENDPOINT_BUDGET": "0/1h",
           "SPHERE_ENDPOINT_ALLOW_ORIGINS": "https://elsewhere.example.org", "SPHERE_ENDPOINT_SECRET": SECRET}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sphere_docs", "endpoint", "--api", emulator.url, "--allow-project", PROJECT,
         "--allow-origin", ORIGIN, "--inflight", "3", "--metrics", "--budget", "1/1h", "--port", "0", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read() if proc.stderr else ""
        assert requests.post(url + "/workspaces", json=reader(), headers={"Origin": ORIGIN},
                             timeout=30).status_code == 200
        second = requests.post(url + "/workspaces", json=reader(name="other"), headers={"Origin": ORIGIN},
                               timeout=30)
        assert (second.status_code, second.json()["code"]) == (429, "budget_exhausted")  # --budget 1/1h
        metrics = requests.get(url + "/metrics", timeout=30)
        assert metrics.status_code == 200 and "sphere_endpoint_creations_total" in metrics.text
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
    assert_no_leak([err])


def test_the_command_names_a_bad_flag(access_token: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPHERE_ENDPOINT_")}
    done = subprocess.run([sys.executable, "-m", "sphere_docs", "endpoint", "--api", "http://127.0.0.1:9",
                           "--allow-project", PROJECT, "--allow-origin", ORIGIN, "--storage-failure", "maybe"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == ("sphere-docs endpoint: invalid value 'maybe' for --storage-failure; "
                                   "expected closed or open")
