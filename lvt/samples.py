"""Completed test videos for people to look at: what the sample stage writes.

Per test video and sample: PNG frames (the reference's 0.png ... 15.png) and a GIF of the real
clip beside the sample at the video's own frame rate, priming frames marked. Per test video a
contact sheet (contact_sheet.png: the real clip as one row of frames, each sample as a row below
it), and one of the first `OVERVIEW_VIDEOS` videos together (contact_sheet.png at the top). All
sampled codes in samples.h5; an index.json with each sample's files and frame rate.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from lvt.atomic import write_json
from lvt.config import ConfigError
from lvt.data.dataset import VideoArrays
from lvt.inference import TrainedModels, decode_videos, videos_long_enough
from lvt.media import SheetRow, write_contact_sheet, write_sample
from lvt.sampling import Progress, complete_videos

OVERVIEW_VIDEOS = 8
"""Test videos on the overview contact sheet: enough to judge at a glance, few enough to see."""
SHEET_NAME = "contact_sheet.png"


@dataclass(frozen=True)
class SampleOptions:
    """The config's `sample` section (its defaults are the schema's)."""

    n_prime: int
    frames: int
    videos: int | None
    samples_per_video: int
    batch_size: int
    temperature: float
    seed: int


def safe_name(video_id: str) -> str:
    """A folder name for a video id."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", video_id)


def progress_to(bar: tqdm) -> Progress:
    """A sampler progress callback that moves `bar` to `done` of `total` positions."""
    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return update


def sample_and_decode(
    models: TrainedModels,
    prime_codes: Tensor,
    frames: int,
    temperature: float,
    generator: torch.Generator,
    progress: Progress | None = None,
) -> tuple[Tensor, np.ndarray]:
    """Complete code videos from their priming codes (B, codebooks, n_prime, h, w) and decode
    them: the codes (B, codebooks, T, h, w) and uint8 videos (B, T, H, W, 3)."""
    codes = complete_videos(models.transformer, prime_codes, frames, temperature, generator,
                            progress=progress)
    return codes, decode_videos(models.vqvae, codes, prime_codes.device)


def write_test_samples(
    models: TrainedModels,
    codes: VideoArrays,
    frames: VideoArrays,
    options: SampleOptions,
    device: torch.device,
    out: Path,
    made_from: Mapping[str, str],
) -> int:
    """Complete the test videos long enough (`codes`, their real frames in `frames`)
    `options.samples_per_video` times each, `options.batch_size` clips at a time from one seeded
    stream, and write everything into the folder `out`; returns the number of samples.

    `made_from` (the models' SHA-256) goes into index.json beside the options.
    """
    videos = videos_long_enough(codes, options.frames, options.videos)
    if not videos:
        raise ConfigError(f"config key sample.frames: no video of {codes.path} has "
                          f"{options.frames} frames")
    jobs = [(video, k) for video in videos for k in range(options.samples_per_video)]
    generator = torch.Generator(device).manual_seed(options.seed)
    entries, sampled = [], []
    sheets: dict[int, list[SheetRow]] = {}
    for start in range(0, len(jobs), options.batch_size):
        batch = jobs[start:start + options.batch_size]
        prime = torch.from_numpy(np.stack(
            [codes.clip(video, 0, options.n_prime) for video, _ in batch]).astype(np.int64))
        with tqdm(desc=f"videos {start + 1}-{start + len(batch)} of {len(jobs)}",
                  unit="position", mininterval=5.0) as bar:
            sample, decoded = sample_and_decode(
                models, prime.permute(0, 2, 1, 3, 4).to(device), options.frames,
                options.temperature, generator, progress_to(bar),
            )
        for (video, k), codes_k, video_k in zip(batch, sample.cpu(), decoded, strict=True):
            real = frames.clip(video, 0, options.frames)
            entries.append(write_test_sample(out, codes.video_ids[video], k, video_k, real,
                                             float(frames.fps[video]), options.n_prime))
            sheets.setdefault(video, [("real", real)]).append((f"sample {k}", video_k))
            sampled.append(codes_k.permute(1, 0, 2, 3).numpy().astype(np.uint16))
    groups = [(codes.video_ids[video], rows) for video, rows in sheets.items()]
    write_contact_sheets(out, groups, options.n_prime)
    write_sampled_codes(out / "samples.h5", np.stack(sampled), entries)
    write_json(out / "index.json", {
        "n_prime": options.n_prime, "frames": options.frames,
        "temperature": options.temperature, "seed": options.seed, **made_from,
        "samples": entries, "contact_sheet": SHEET_NAME,
        "contact_sheet_videos": min(len(groups), OVERVIEW_VIDEOS),
    })
    return len(entries)


def write_test_sample(
    out: Path, video_id: str, k: int, video: np.ndarray, real: np.ndarray, fps: float,
    n_prime: int,
) -> dict[str, Any]:
    """Sample `k` of a test video as `<video>/sample_<k>/` PNGs and `<video>/sample_<k>.gif`
    (the real clip beside it) under `out`; returns its index.json entry."""
    name = f"{safe_name(video_id)}/sample_{k}"
    write_sample(out / name, video, n_prime, fps, real=real)
    return {"video_id": video_id, "sample": k, "frames": f"{name}/", "gif": f"{name}.gif",
            "fps": fps, "contact_sheet": f"{safe_name(video_id)}/{SHEET_NAME}"}


def write_contact_sheets(
    out: Path, groups: Sequence[tuple[str, Sequence[SheetRow]]], n_prime: int
) -> None:
    """One contact sheet per test video in its folder, and one of the first `OVERVIEW_VIDEOS`
    at the top of `out`."""
    for group in groups:
        write_contact_sheet(out / safe_name(group[0]) / SHEET_NAME, [group], n_prime)
    write_contact_sheet(out / SHEET_NAME, groups[:OVERVIEW_VIDEOS], n_prime)


def write_sampled_codes(
    path: Path, codes: np.ndarray, entries: Sequence[Mapping[str, Any]]
) -> None:
    """samples.h5: the sampled codes (N, T, codebooks, h, w) uint16 with each one's video id and
    sample index."""
    with h5py.File(path, "w") as file:
        file.create_dataset("codes", data=codes)
        file.create_dataset("video_ids", data=[e["video_id"] for e in entries],
                            dtype=h5py.string_dtype())
        file.create_dataset("sample_index", data=[e["sample"] for e in entries])
