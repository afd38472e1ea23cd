"""Scores on the test split.

- VQ-VAE: PSNR of the decoded test codes against the test frames (the tokenizer's ceiling).
- Transformer: bits per code as the reference's `BitsEvaluator` computes it (every slice run
  once with teacher forcing over the first `frames` frames of each test video, leading `n_prime`
  frames left out), next to the entropy of the unigram distribution of the same codes: a model
  that learnt nothing beyond code frequencies scores about that entropy.

Reference: `BitsEvaluator` in the authors' code at commit 0899c21, over the logits of
`calculate_logits_for_entire_video` (vidgen/modeling/meta_arch/vt.py):
https://github.com/rakhimovv/lvt/blob/0899c21/vidgen/evaluation/bits_evaluation.py
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from lvt.data.dataset import VideoArrays
from lvt.data.progress import BatchedOutput, preallocate
from lvt.errors import InputError
from lvt.fvd import (
    I3D,
    NUM_CLASSES,
    RESIZE_METHOD,
    RESOLUTION,
    WEIGHTS_PACKAGE,
    WEIGHTS_SHA256,
    fvd,
    i3d_embeddings,
)
from lvt.generate import complete_videos, decode_codes, decode_videos, videos_long_enough
from lvt.metrics import entropy_bits, frame_psnr, nats_to_bits
from lvt.models.transformer import VideoTransformer, whole_video_logits
from lvt.models.vqvae import VQVAE


def reconstruction_psnr(
    vqvae: VQVAE,
    frames: VideoArrays,
    codes: VideoArrays,
    device: torch.device,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Mean per-frame PSNR (dB) of every decoded test frame against the original."""
    psnr = []
    for start in range(0, frames.num_items, batch_size):
        indices = np.arange(start, min(start + batch_size, frames.num_items))
        decoded = decode_codes(vqvae, codes.items(indices).astype(np.int64), device)
        psnr.append(frame_psnr(frames.items(indices), decoded))
    values = np.concatenate(psnr)
    return {"psnr_db": float(values.mean()), "psnr_db_min": float(values.min()),
            "frames": int(values.size)}


@torch.no_grad()
def bits_per_code(
    transformer: VideoTransformer,
    codes: VideoArrays,
    frames: int,
    n_prime: int,
    videos: list[int],
    device: torch.device,
    batch_size: int = 8,
) -> dict[str, Any]:
    """Teacher-forced bits per code and the unigram entropy of the scored codes."""
    config = transformer.config
    counts = np.zeros((config.codebooks, config.codebook_size), dtype=np.int64)
    nats = 0.0
    for start in range(0, len(videos), batch_size):
        clips = np.stack([codes.clip(v, 0, frames) for v in videos[start:start + batch_size]])
        video = torch.from_numpy(clips.astype(np.int64)).permute(0, 2, 1, 3, 4).to(device)
        logits = whole_video_logits(transformer, video)
        scored = video[:, :, n_prime:]
        nats += F.cross_entropy(logits[:, :, :, n_prime:].transpose(1, 2), scored,
                                reduction="sum").item()
        for k in range(config.codebooks):
            counts[k] += np.bincount(scored[:, k].flatten().cpu().numpy(),
                                     minlength=config.codebook_size)
    n_codes = int(counts.sum())
    if not n_codes:
        raise ValueError("no codes to score: every video is shorter than the clip")
    entropies = [entropy_bits(row) for row in counts]
    bits = nats_to_bits(nats) / n_codes
    unigram = float(np.mean(entropies))
    return {
        "bits_per_code": bits,
        "unigram_entropy_bits": unigram,
        "unigram_entropy_bits_per_codebook": entropies,
        "bits_to_unigram_ratio": bits / unigram if unigram else float("inf"),
        "codes_scored": n_codes,
        "videos": len(videos),
        "clip_frames": frames,
        "n_prime": n_prime,
    }


# ----------------------------------------------------------------------------------------------
# The video-prediction protocol behind FVD, PSNR and SSIM


@dataclass(frozen=True)
class Protocol:
    """Which clips are sampled: every test video in `videos` (indices into the test codes) is
    completed from its first `n_prime` frames to `frames` frames, `samples_per_video` times in
    each of `trials` trials, `batch_size` clips at a time (the batch fixes the random streams)."""

    videos: tuple[int, ...]
    n_prime: int
    frames: int
    samples_per_video: int
    trials: int
    temperature: float
    seed: int
    batch_size: int

    @property
    def clips(self) -> int:
        """Generated clips over all trials."""
        return len(self.videos) * self.samples_per_video * self.trials

    def jobs(self) -> np.ndarray:
        """(clips, 3) rows (trial, test video, sample) in sampling order."""
        trial, video, sample = np.meshgrid(np.arange(self.trials), np.asarray(self.videos),
                                           np.arange(self.samples_per_video), indexing="ij")
        return np.stack([trial.ravel(), video.ravel(), sample.ravel()], axis=1).astype(np.int64)

    def to_json(self) -> str:
        """Canonical JSON of every field: the sample shards carry it, the scorers compare it."""
        return json.dumps(asdict(self), sort_keys=True)

    def record(self, vqvae_sha256: str, transformer_sha256: str) -> dict[str, Any]:
        """The protocol as it goes next to a score (the video list as a count), with the hashes
        of the model files the clips were sampled with."""
        return {
            "summary": self.describe(),
            "videos": len(self.videos),
            "samples_per_video": self.samples_per_video,
            "trials": self.trials,
            "real_clips": len(self.videos),
            "generated_clips_per_trial": len(self.videos) * self.samples_per_video,
            "n_prime": self.n_prime,
            "predicted_frames": self.frames - self.n_prime,
            "frames": self.frames,
            "temperature": self.temperature,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "vqvae_sha256": vqvae_sha256,
            "transformer_sha256": transformer_sha256,
        }

    def describe(self) -> str:
        """'V videos × S samples × T trials'."""
        return (f"{len(self.videos)} videos × {self.samples_per_video} samples × "
                f"{self.trials} trials")


def protocol_videos(codes: VideoArrays, frames: int, wanted: int | None) -> list[int]:
    """The first `wanted` test videos with at least `frames` frames (None: all of them).

    Fewer than asked is an error rather than a smaller protocol, since FVD depends on the count.
    """
    eligible = videos_long_enough(codes, frames, None)
    count = len(eligible) if wanted is None else wanted
    if len(eligible) < max(count, 2):
        raise InputError(f"{codes.path}: {len(eligible)} test videos have {frames} frames, but "
                         f"the protocol (config key fvd.videos) needs {max(count, 2)}")
    return eligible[:count]


def shard_batches(protocol: Protocol, shards: int, shard: int) -> list[tuple[int, int, int]]:
    """(batch index, first job, end job) of the batches in `shard`: a contiguous run of whole
    batches, so that no draw depends on the number of shards."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} outside 0..{shards - 1}")
    count = -(-protocol.clips // protocol.batch_size)
    return [(int(b), int(b) * protocol.batch_size,
             min((int(b) + 1) * protocol.batch_size, protocol.clips))
            for b in np.array_split(np.arange(count), shards)[shard]]


def batch_generator(seed: int, batch: int, device: torch.device) -> torch.Generator:
    """The random stream of one batch of samples: independent of every other batch's."""
    state = np.random.SeedSequence([seed, batch]).generate_state(1, np.uint64)[0]
    return torch.Generator(device).manual_seed(int(state))


def sample_jobs(
    transformer: VideoTransformer,
    codes: VideoArrays,
    protocol: Protocol,
    jobs: np.ndarray,
    generator: torch.Generator,
    device: torch.device,
) -> np.ndarray:
    """Code clips (B, frames, codebooks, h, w) uint16 completing the test videos of `jobs` rows
    (trial, video, sample) from their ground-truth priming codes."""
    prime = first_clips(codes, jobs[:, 1], protocol.n_prime)
    prime_codes = torch.from_numpy(prime.astype(np.int64)).permute(0, 2, 1, 3, 4).to(device)
    videos = complete_videos(transformer, prime_codes, protocol.frames, protocol.temperature,
                             generator)
    return videos.permute(0, 2, 1, 3, 4).cpu().numpy().astype(np.uint16)


def sample_shard(
    transformer: VideoTransformer,
    codes: VideoArrays,
    protocol: Protocol,
    shards: int,
    shard: int,
    device: torch.device,
    out: Path,
    made_from: Mapping[str, Any],
) -> int:
    """Sample the clips of one shard into `out` (see `lay_out_protocol_samples`), batch by
    batch, resuming the batches a killed run left (`lvt.data.progress`); returns their count.

    Each batch draws from its own stream, so a resumed shard equals an uninterrupted one.
    `made_from` names the transformer and the test codes; the protocol and shard are added.
    """
    jobs = protocol.jobs()
    batches = shard_batches(protocol, shards, shard)
    first, end = (batches[0][1], batches[-1][2]) if batches else (0, 0)
    record = {**made_from, "protocol": protocol.to_json(), "shards": shards, "shard": shard}

    def lay_out(file: h5py.File) -> None:
        lay_out_protocol_samples(file, protocol, jobs[first:end], codes.item_shape)

    with BatchedOutput(out, record, len(batches), lay_out) as output:
        for batch, start, stop in batches[output.done:]:
            generator = batch_generator(protocol.seed, batch, device)
            sampled = sample_jobs(transformer, codes, protocol, jobs[start:stop], generator, device)
            output.write(start - first, {"codes": sampled})
    return end - first


@dataclass(frozen=True)
class ProtocolSamples:
    """Every generated clip of a protocol: codes (N, frames, codebooks, h, w) and their rows
    (trial, test video, sample), sorted by row."""

    codes: np.ndarray
    jobs: np.ndarray


def lay_out_protocol_samples(
    file: h5py.File, protocol: Protocol, jobs: np.ndarray, item_shape: tuple[int, ...]
) -> None:
    """Lay out one sampling shard: room for the codes (B, frames, codebooks, h, w) uint16 of its
    job rows (B, 3), the rows, and the protocol they are drawn under."""
    preallocate(file, "codes", (len(jobs), protocol.frames, *item_shape), np.uint16, 1)
    file.create_dataset("jobs", data=jobs.astype(np.int64).reshape(-1, 3))
    # a dataset, not an attribute: a Kinetics-600 protocol's video list (50,000 indices) is
    # over the 64 kB that an attribute may hold in HDF5's older file formats
    file.create_dataset("protocol", data=protocol.to_json())


def read_protocol_samples(paths: list[Path], protocol: Protocol) -> ProtocolSamples:
    """Gather the sampling shards, checking they hold exactly the protocol's clips once each."""
    codes, jobs = [], []
    expected = protocol.to_json()
    for path in paths:
        try:
            with h5py.File(path, "r") as file:
                found = file["protocol"].asstr()[()]
                if found != expected:
                    raise InputError(f"{path} was sampled under another protocol: {found}")
                codes.append(file["codes"][:])
                jobs.append(file["jobs"][:])
        except (OSError, KeyError) as error:
            raise InputError(f"cannot read the samples in {path}: {error}") from error
    all_jobs = np.concatenate(jobs)
    order = np.lexsort(all_jobs.T[::-1])
    if not np.array_equal(all_jobs[order], protocol.jobs()):
        raise InputError(f"the sample shards {[str(p) for p in paths]} do not hold each of the "
                         f"protocol's {protocol.clips} clips exactly once")
    return ProtocolSamples(np.concatenate(codes)[order], all_jobs[order])


def first_clips(
    arrays: VideoArrays, videos: Sequence[int] | np.ndarray, length: int
) -> np.ndarray:
    """The first `length` items of each of these videos, stacked: (V, length, *item shape)."""
    return np.stack([arrays.clip(int(video), 0, length) for video in videos])


def real_clips(
    frames: VideoArrays, videos: Sequence[int] | np.ndarray, length: int, batch_size: int
) -> Iterator[np.ndarray]:
    """The first `length` frames (B, length, H, W, 3) of the test videos, batch by batch."""
    for start in range(0, len(videos), batch_size):
        yield first_clips(frames, videos[start:start + batch_size], length)


def copy_last_frame(clips: np.ndarray, n_prime: int) -> np.ndarray:
    """The copy-last-frame baseline of uint8 clips (B, T, H, W, 3): each frame after the first
    `n_prime` replaced by the last (real) priming frame, as a predictor that assumes nothing
    moves would give."""
    copied = clips.copy()
    copied[:, n_prime:] = clips[:, n_prime - 1:n_prime]
    return copied


def decoded_clips(
    vqvae: VQVAE, codes: np.ndarray, device: torch.device, batch_size: int
) -> Iterator[np.ndarray]:
    """Code clips (N, T, codebooks, h, w) decoded to uint8 videos (B, T, H, W, 3) in batches."""
    for start in range(0, len(codes), batch_size):
        batch = torch.from_numpy(codes[start:start + batch_size].astype(np.int64))
        yield decode_videos(vqvae, batch.permute(0, 2, 1, 3, 4).to(device), device)


# ----------------------------------------------------------------------------------------------
# FVD


def embed(i3d: I3D, clips: Iterable[np.ndarray], batch_size: int) -> np.ndarray:
    """I3D embeddings (N, 400) of uint8 videos given batch by batch, through `fvd.preprocess`."""
    embeddings = [i3d_embeddings(batch, batch_size, model=i3d) for batch in clips]
    return np.concatenate(embeddings) if embeddings else np.zeros((0, NUM_CLASSES))


def _per_trial(reference: np.ndarray, generated: np.ndarray, trials: np.ndarray,
               name: str) -> dict[str, Any]:
    values = [fvd(reference, generated[trials == t]) for t in np.unique(trials)]
    return {
        name: float(np.mean(values)),
        f"{name}_std": float(np.std(values, ddof=1)) if len(values) > 1 else None,
        f"{name}_per_trial": values,
    }


def fvd_scores(
    real: np.ndarray,
    reconstructed: np.ndarray,
    generated: np.ndarray,
    trials: np.ndarray,
    copied: np.ndarray,
) -> dict[str, Any]:
    """FVD of the samples against the real clips and against the VQ-VAE reconstructions of the
    same clips (per trial; mean, sample standard deviation, values); of the reconstructions
    against the real clips (the tokenizer's floor); and of the copy-last-frame clips against the
    real clips (the baseline the samples must beat). All arguments are I3D embeddings."""
    return {
        **_per_trial(real, generated, trials, "fvd"),
        **_per_trial(reconstructed, generated, trials, "fvd_samples_vs_reconstructions"),
        "fvd_reconstructions_vs_real": fvd(real, reconstructed),
        "fvd_copy_last_frame": fvd(real, copied),
    }


def fvd_protocol(protocol: Protocol, vqvae_sha256: str, transformer_sha256: str) -> dict[str, Any]:
    """The protocol record that goes next to an FVD: clip counts, resizing, every file's hash."""
    return {
        **protocol.record(vqvae_sha256, transformer_sha256),
        "resize_method": RESIZE_METHOD,
        "resolution": RESOLUTION,
        "i3d": "Kinetics-400 I3D (TF-hub deepmind/i3d-kinetics-400/1) logits averaged over time",
        "i3d_weights": WEIGHTS_PACKAGE,
        "i3d_weights_sha256": WEIGHTS_SHA256,
    }


# ----------------------------------------------------------------------------------------------
# PSNR and SSIM of predicted frames

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
SSIM_METHOD = (f"Wang et al. 2004: {SSIM_WINDOW}x{SSIM_WINDOW} Gaussian window, sigma "
               f"{SSIM_SIGMA}, K1 {SSIM_K1}, K2 {SSIM_K2}, data range 255, window positions "
               "inside the image, mean over positions and RGB channels")


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Normalised 1-D Gaussian weights (float64); the 2-D window is their outer product."""
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    weights = torch.exp(-(offsets**2) / (2 * sigma**2))
    return weights / weights.sum()


def ssim(
    reference: np.ndarray | torch.Tensor,
    estimate: np.ndarray | torch.Tensor,
    data_range: float = 255.0,
) -> torch.Tensor:
    """SSIM (float64) of each image pair (N, H, W, C), as `SSIM_METHOD` says.

    This is scikit-image's `structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, channel_axis=-1)` and Wang et al.'s reference code.
    """
    x = torch.as_tensor(reference).to(torch.float64)
    y = torch.as_tensor(estimate).to(device=x.device, dtype=torch.float64)
    if x.shape != y.shape or x.ndim != 4 or min(x.shape[1:3]) < SSIM_WINDOW:
        raise ValueError(f"expected two image batches (N, H, W, C) of the same shape, at least "
                         f"{SSIM_WINDOW} pixels high and wide; got {tuple(x.shape)}, "
                         f"{tuple(y.shape)}")
    channels = x.shape[3]
    x, y = x.permute(0, 3, 1, 2), y.permute(0, 3, 1, 2)
    moments = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    window = gaussian_window().to(x.device)
    groups = 5 * channels
    moments = F.conv2d(moments, window.view(1, 1, -1, 1).expand(groups, 1, -1, 1), groups=groups)
    moments = F.conv2d(moments, window.view(1, 1, 1, -1).expand(groups, 1, 1, -1), groups=groups)
    mean_x, mean_y, xx, yy, xy = moments.split(channels, dim=1)
    var_x, var_y = xx - mean_x**2, yy - mean_y**2
    cov = xy - mean_x * mean_y
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    index = ((2 * mean_x * mean_y + c1) * (2 * cov + c2)) / (
        (mean_x**2 + mean_y**2 + c1) * (var_x + var_y + c2)
    )
    return index.mean(dim=(1, 2, 3))


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


BASELINES = {
    "copy_last_frame": "every predicted frame is the last real priming frame (nothing moves)",
    "reconstruction": "the VQ-VAE's decoding of the true codes (the tokenizer's ceiling)",
}
"""The clips that the samples' scores are read against, scored on the same videos alike."""


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
