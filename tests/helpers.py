"""What several test modules share: the golden fixtures' location, a tiny transformer, and how
to run the real workflow on a tiny configuration in a temporary folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from lvt.checkpoints import save_model
from lvt.models.transformer import TransformerConfig, VideoTransformer
from lvt.models.vqvae import VQVAE, VQVAEConfig

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

ROOT = Path(__file__).resolve().parents[1]
RUN = "tiny"
TINY = {
    "run": RUN,
    "source": {"synthetic": {"train_videos": 3, "test_videos": 2, "seconds": 1.5,
                             "window_start": 0.2, "window_seconds": 1.0, "width": 80,
                             "height": 64}},
    "vqvae": {"model": {"channels": 16, "residual_channels": 8, "residual_blocks": 1,
                        "codebook_size": 16},
              "train": {"steps": 20, "batch_size": 8, "checkpoint_every": 10, "log_every": 5}},
    "transformer": {"model": {"embedding_dim": 8, "model_dim": 16, "head_dim": 4, "heads": 2,
                              "encoder_layers": 1, "decoder_layers": 1},
                    "train": {"steps": 10, "batch_size": 2, "checkpoint_every": 5,
                              "log_every": 5}},
    # late priming frames leave fewer positions to sample, which is most of these stages' time
    "sample": {"videos": 1, "samples_per_video": 2, "batch_size": 2, "n_prime": 12},
    # 2 videos x 1 sample x 2 trials in one batch: 4 generated clips, 2 real, 2 reconstructed
    "fvd": {"videos": 2, "samples_per_video": 1, "trials": 2, "batch_size": 4, "n_prime": 8},
}
"""A configuration that takes the demo's DAG through every stage in about a minute."""


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
               VideoTransformer(transformer))
    return folder / "vqvae.pt", folder / "transformer.pt"
