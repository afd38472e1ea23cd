"""No value from the config, the wildcards or the data reaches a shell unquoted.

The real workflow is parsed by Snakemake for every source kind, and every rule's shell command is
checked twice: statically (each `{placeholder}` is shell-quoted with `:q` unless listed below) and
by running it in bash with hostile values in every placeholder and a stub for `python`.
"""

from __future__ import annotations

import re
import shlex
import string
import subprocess
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import ROOT, copy_workflow, write_config
from snakemake.api import SnakemakeApi
from snakemake.iocontainers import Namedlist
from snakemake.rules import Rule
from snakemake.settings.enums import Quietness
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings
from snakemake.utils import format as snakemake_format

UNQUOTED_ALLOWED = {
    "threads": "an integer Snakemake sets",
    "params.launcher": "command text by design (`python` or torchrun with --nproc-per-node N), "
    "built in workflow/rules/common.smk from the integer resource gpu only",
}
"""Placeholders that may stay unquoted, and why."""

KINDS = {
    "synthetic": ({}, {"synthesize"}),
    "local": ({"local": {"path": "videos"}}, {"scan_local"}),
    "kinetics600": (
        {"kinetics600": {"train_csv": "train.csv", "test_csv": "test.csv", "folder": "k600"}},
        {"kinetics_download_shard", "kinetics_manifest"},
    ),
    "bair": (
        {"bair": {"folder": "bair data $(touch PWNED)"}},
        {"bair_download", "bair_extract", "bair_convert", "bair_pack_split"},
    ),
}
"""Per source kind: its source settings and the rules only it defines."""

HOSTILE = " $(touch PWNED) `touch PWNED` ;'\" *"
"""Appended to each placeholder's name to make the value it is rendered with."""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("workflow"))


@pytest.fixture(scope="module")
def rules_by_kind(workdir: Path) -> dict[str, dict[str, Rule]]:
    """The rules Snakemake parses from the real workflow, per source kind."""
    return {kind: parsed_rules(workdir, kind, source) for kind, (source, _) in KINDS.items()}


def parsed_rules(workdir: Path, kind: str, source: dict) -> dict[str, Rule]:
    """Parse the workflow in `workdir` with source.kind `kind` (no DAG is built, no job runs)."""
    config = {"run": "shell-test", "source": {"kind": kind, **source}}
    configfile = Path(write_config(workdir / f"{kind}.yaml", config))
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow_api = api.workflow(
            ResourceSettings(cores=1),
            ConfigSettings(configfiles=[configfile]),
            snakefile=workdir / "Snakefile",
            workdir=workdir,
        )
        return {rule.name: rule for rule in workflow_api._workflow.rules}


def placeholders(command: str) -> list[tuple[str, str]]:
    """(field name, format spec) of each `{...}` in a shell command."""
    return [(name, spec) for _, name, spec, _ in string.Formatter().parse(command)
            if name is not None]


def unquoted(command: str) -> list[str]:
    """The placeholders of `command` that are neither shell-quoted nor allowed unquoted."""
    return [name for name, spec in placeholders(command)
            if not spec.endswith("q") and name not in UNQUOTED_ALLOWED]


@pytest.mark.parametrize(
    ("command", "bad"),
    [
        ("python -m x --in {input.a:q} --n {threads} > {log:q} 2>&1", []),
        ("{params.launcher} -m x --settings {params.settings:q}", []),
        ("python -m x --in {input.a} > {log:q}", ["input.a"]),
        ("python -m x --out {output} --id {wildcards.record} > {log}",
         ["output", "wildcards.record", "log"]),
        ("python -m x --mem {resources.mem_mb} --dir {params.folder:u}",
         ["resources.mem_mb", "params.folder"]),
    ],
)
def test_the_check_finds_unquoted_placeholders(command: str, bad: list[str]) -> None:
    assert unquoted(command) == bad


def test_every_rule_of_every_source_kind_is_parsed(
    rules_by_kind: dict[str, dict[str, Rule]],
) -> None:
    declared = set()
    for path in (ROOT / "workflow" / "rules").glob("*.smk"):
        text = path.read_text()
        declared |= set(re.findall(r"^\s*(?:rule|checkpoint)\s+(\w+)\s*:", text, re.M))
        declared |= set(re.findall(r"^\s*use rule \w+ as (\w+)", text, re.M))
    assert declared - set().union(*rules_by_kind.values()) == set()
    for kind, (_, own) in KINDS.items():
        assert own <= {name for name, rule in rules_by_kind[kind].items() if rule.shellcmd}


def test_every_placeholder_is_shell_quoted(rules_by_kind: dict[str, dict[str, Rule]]) -> None:
    problems = {f"{kind} {name}: {', '.join(unquoted(rule.shellcmd))}"
                for kind, rules in rules_by_kind.items() for name, rule in rules.items()
                if rule.shellcmd and unquoted(rule.shellcmd)}
    assert not problems, "placeholders interpolated unquoted:\n" + "\n".join(sorted(problems))
    used = {name for rules in rules_by_kind.values() for rule in rules.values() if rule.shellcmd
            for name, _ in placeholders(rule.shellcmd)}
    assert set(UNQUOTED_ALLOWED) <= used, "an allowance is no longer used: remove it"


def render(rule: Rule) -> tuple[str, dict[str, str]]:
    """The rule's shell command with a hostile value in each placeholder (the launcher as for a
    two-GPU job), as Snakemake formats it; also each hostile value by placeholder."""
    groups: dict[str, dict[str, object]] = defaultdict(dict)
    values: dict[str, str] = {}
    for name, _ in placeholders(rule.shellcmd):
        if name == "threads":
            continue
        head, _, attribute = name.partition(".")
        if name == "params.launcher":
            groups[head][attribute] = rule.params.launcher(None, SimpleNamespace(gpu=2))
            continue
        values[name] = name + HOSTILE
        groups[head][attribute or head] = values[name]
    namespaces = {head: Namedlist(fromdict=fields) for head, fields in groups.items()}
    return snakemake_format(rule.shellcmd, threads=2, **namespaces), values


def test_hostile_values_reach_the_command_literally(
    rules_by_kind: dict[str, dict[str, Rule]], tmp_path: Path
) -> None:
    commands = {rule.shellcmd: rule for rules in rules_by_kind.values()
                for rule in rules.values() if rule.shellcmd}
    stub = 'python() { printf "%s\\n" "$@" > argv; }\n'  # one argument a line
    for index, rule in enumerate(commands.values()):
        folder = tmp_path / str(index)
        folder.mkdir()
        command, values = render(rule)
        result = subprocess.run(["bash", "-c", stub + command], cwd=folder, capture_output=True,
                                text=True)
        assert not list(tmp_path.rglob("PWNED")), f"{rule.name} ran a command: {command}"
        assert result.returncode == 0, f"{rule.name}: {command}\n{result.stderr}"
        arguments = (folder / "argv").read_text().splitlines()
        log = values.pop("log", None)
        assert set(values.values()) <= set(arguments), f"{rule.name}: {shlex.join(arguments)}"
        assert log is None or (folder / log).is_file(), f"{rule.name}: no log file {log!r}"
