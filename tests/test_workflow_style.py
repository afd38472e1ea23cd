"""The workflow as the Snakemake workflow catalog writes it: formatted by snakefmt, and without
a finding of `snakemake --lint` for any source kind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, copy_workflow, snakemake, write_config
from test_rule_shell_commands import KINDS


def test_the_workflow_is_formatted_by_snakefmt() -> None:
    snakefmt = Path(sys.executable).parent / "snakefmt"
    result = subprocess.run([str(snakefmt), "--check", "Snakefile", "workflow/"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_snakemake_lint_finds_nothing(tmp_path: Path, kind: str) -> None:
    """Every kind defines rules of its own; each set is linted, with the inputs its rules are
    parsed from (a videos folder, the Kinetics CSVs) in place."""
    workdir = copy_workflow(tmp_path)
    (workdir / "videos").mkdir()
    for split in ("train", "test"):
        (workdir / f"{split}.csv").write_text("label,youtube_id,time_start,time_end,split\n")
    source, _ = KINDS[kind]
    configfile = write_config(workdir / "lint.yaml", {"source": {"kind": kind, **source}})
    result = snakemake(workdir, "--lint", "--configfile", configfile, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
