"""Per-step PSNR and SSIM of predicted frames, best of K and mean, beside the baselines
(lvt.frame_scores)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lvt.frame_scores import best_and_mean, prediction_summary, scores_against_truth
from lvt.protocol import copy_last_frame

RNG = np.random.default_rng(0)


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
