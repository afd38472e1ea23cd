"""What several test modules share: the golden fixtures' location, a tiny transformer, a small
prediction protocol, options built from the schema's defaults, and how to run the real workflow
on a tiny configuration in a temporary folder."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TypeVar

import torch
import yaml
from snakemake.utils import update_config

from lvt.checkpoints import save_model
from lvt.config import validate
from lvt.data.synthetic import SyntheticVideos
from lvt.models.transformer import LatentVideoTransformer, TransformerConfig
from lvt.models.vqvae import VQVAE, VQVAEConfig
from lvt.protocol import Protocol
from lvt.stages.common import from_section

FIXTURES = Path(__file__).resolve().parent / "fixtures/original"
"""Golden outputs of the authors' code (rakhimovv/lvt at commit 0899c21); see its README.md."""

TINY_TRANSFORMER = {
    "codebooks": 2,
    "codebook_size": 8,
    "embedding_dim": 8,
    "model_dim": 12,
    "head_dim": 4,
    "heads": 2,
    "encoder_layers": 1,
    "decoder_layers": 1,
}
"""TransformerConfig fields of a model small enough to sample whole videos in a test."""
TINY_VQVAE = {"channels": 8, "residual_channels": 4, "residual_blocks": 1, "codebooks": 2,
              "codebook_size": 8}
"""VQVAEConfig sizes of a model small enough to train a few steps in a test."""
Options = TypeVar("Options")


def protocol(**changes: object) -> Protocol:
    """A small protocol: 2 videos x 3 samples x 2 trials of 4 frames, 1 priming, batches of 4."""
    fields = {"videos": (0, 2), "n_prime": 1, "frames": 4, "samples_per_video": 3, "trials": 2,
              "temperature": 1.0, "seed": 7, "batch_size": 4}
    return Protocol(**{**fields, **changes})


def train_options(options: type[Options], section: str, **changes: object) -> Options:
    """Training options (LoopSettings, AdamSettings, ...) as a stage builds them from the
    schema's `<section>.train` defaults, with `changes`."""
    return from_section(options, {**validate({})[section]["train"], **changes})


def synthetic_videos(**changes: object) -> SyntheticVideos:
    """Demo video options: the schema's defaults (source.synthetic) with `changes`."""
    return SyntheticVideos(**{**validate({})["source"]["synthetic"], **changes})


ROOT = Path(__file__).resolve().parents[1]
TEST_CONFIG = ROOT / ".test" / "config.yaml"
TINY = yaml.safe_load(TEST_CONFIG.read_text())
"""The workflow's test configuration (.test/config.yaml): overlaid on the demo's config.yaml, it
takes the demo's DAG through every stage in about a minute."""
RUN = TINY["run"]


def overlay(base: dict, update: dict) -> dict:
    """`base` with a copy of `update` merged into it by Snakemake's own merge of --configfile
    files."""
    update_config(base, copy.deepcopy(update))
    return base


SETTINGS = validate(overlay(yaml.safe_load((ROOT / "config.yaml").read_text()), TINY))
"""The settings the tests' workflow runs with: the test configuration over the demo's."""


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run Snakemake as a user would, with this interpreter's bin folder first on PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *args],
                            cwd=workdir, env=env, capture_output=True, text=True)
    if check and result.returncode:
        raise AssertionError(f"snakemake {args} failed:\n{result.stdout}\n{result.stderr}")
    return result


def copy_workflow(target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(ROOT / name, target / name)
    for name in ("workflow", "envs"):
        shutil.copytree(ROOT / name, target / name)
    return target


def write_config(path: Path, config: dict) -> str:
    path.write_text(yaml.safe_dump(config))
    return str(path)


def save_random_models(folder: Path, vqvae: VQVAEConfig,
                       transformer: TransformerConfig) -> tuple[Path, Path]:
    """Model files of randomly initialised (seed 0) models: vqvae.pt and transformer.pt."""
    torch.manual_seed(0)
    save_model(folder / "vqvae.pt", "vqvae", vqvae, VQVAE(vqvae))
    save_model(folder / "transformer.pt", "transformer", transformer,
               LatentVideoTransformer(transformer))
    return folder / "vqvae.pt", folder / "transformer.pt"
