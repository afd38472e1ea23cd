"""PSNR and SSIM of predicted frames: each frame of each sample against the true frame, per time
step; best of a video's K samples and mean over them, next to the protocol's baselines."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from lvt.metrics import SSIM_METHOD, frame_psnr, ssim
from lvt.protocol import BASELINES


def clip_scores(
    truth: np.ndarray, clips: np.ndarray, device: torch.device
) -> dict[str, np.ndarray]:
    """PSNR (dB) and SSIM of each frame of uint8 `clips` (B, T, H, W, 3) against `truth`: (B, T)."""
    batch, frames = clips.shape[:2]
    flat_truth = truth.reshape(-1, *truth.shape[2:])
    flat_clips = clips.reshape(-1, *clips.shape[2:])
    structural = ssim(torch.from_numpy(flat_truth).to(device), torch.from_numpy(flat_clips))
    return {"psnr_db": frame_psnr(flat_truth, flat_clips).reshape(batch, frames),
            "ssim": structural.cpu().numpy().reshape(batch, frames)}


def scores_against_truth(
    truth: Iterable[np.ndarray], clips: Iterable[np.ndarray], first_frame: int,
    device: torch.device,
) -> dict[str, np.ndarray]:
    """PSNR and SSIM (N, T - first_frame) of the frames from `first_frame` on of clips given in
    batches, against the matching batches of true clips."""
    parts = [clip_scores(real[:, first_frame:], clip[:, first_frame:], device)
             for real, clip in zip(truth, clips, strict=True)]
    return {name: np.concatenate([part[name] for part in parts]) for name in ("psnr_db", "ssim")}


def best_and_mean(values: np.ndarray, videos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per time step, over videos: the mean of each video's best sample at that step (the max
    over its K samples, step by step) and the mean of each video's mean over its K samples.

    `values` (N, T) holds one row per sample; `videos` (N,) says whose sample it is.
    """
    _, owner = np.unique(videos, return_inverse=True)
    count = owner.max() + 1
    best = np.full((count, values.shape[1]), -np.inf)
    total = np.zeros((count, values.shape[1]))
    np.maximum.at(best, owner, values)
    np.add.at(total, owner, values)
    samples = np.bincount(owner, minlength=count)[:, None]
    return best.mean(axis=0), (total / samples).mean(axis=0)


def prediction_summary(
    sample_scores: dict[str, np.ndarray],
    videos: np.ndarray,
    baseline_scores: Mapping[str, dict[str, np.ndarray]],
    first_frame: int,
) -> dict[str, Any]:
    """Per-step and overall PSNR/SSIM of the predicted frames: best of K and mean over samples,
    next to each of `BASELINES` (`baseline_scores[name]`, one row per test video) on the same
    frames, as `<baseline>_<score>`.

    The scores hold the predicted steps only; `first_frame` is the index of the first one.
    """
    per_step: dict[str, list[float]] = {}
    overall: dict[str, float] = {}
    for name, values in sample_scores.items():
        best, mean = best_and_mean(values, videos)
        curves = {f"{name}_best_of_k": best, f"{name}_mean": mean}
        curves |= {f"{baseline}_{name}": baseline_scores[baseline][name].mean(axis=0)
                   for baseline in BASELINES}
        for key, curve in curves.items():
            per_step[key] = curve.tolist()
            overall[key] = float(curve.mean())
    steps = next(iter(sample_scores.values())).shape[1]
    return {
        **overall,
        "k": int(np.bincount(np.unique(videos, return_inverse=True)[1]).min()),
        "best_of_k": "per video and time step, the best of its K samples; then the mean over "
                     "videos (an oracle: the best frames need not come from one sample)",
        "baselines": BASELINES,
        "per_step": {"frame": list(range(first_frame, first_frame + steps)), **per_step},
        "ssim_method": SSIM_METHOD,
    }
