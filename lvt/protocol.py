"""The video-prediction protocol that FVD, PSNR and SSIM are computed on: which test videos are
completed from their first frames, how many times, with which random streams; how one shard's
samples are laid out in HDF5 and all shards gathered again; and the baselines the samples are
read against.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from lvt.data.dataset import VideoArrays
from lvt.data.progress import BatchedOutput, preallocate
from lvt.errors import InputError
from lvt.inference import videos_long_enough
from lvt.models.transformer import LatentVideoTransformer
from lvt.sampling import complete_videos


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


def protocol_from_settings(options: dict[str, Any], codes: VideoArrays) -> Protocol:
    """The protocol the `fvd` config section describes, on these test codes."""
    return Protocol(
        videos=tuple(protocol_videos(codes, options["frames"], options["videos"])),
        n_prime=options["n_prime"],
        frames=options["frames"],
        samples_per_video=options["samples_per_video"],
        trials=options["trials"],
        temperature=options["temperature"],
        seed=options["seed"],
        batch_size=options["batch_size"],
    )


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
    transformer: LatentVideoTransformer,
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
    transformer: LatentVideoTransformer,
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


BASELINES = {
    "copy_last_frame": "every predicted frame is the last real priming frame (nothing moves)",
    "reconstruction": "the VQ-VAE's decoding of the true codes (the tokenizer's ceiling)",
}
"""The clips that the samples' scores are read against, scored on the same videos alike."""


def copy_last_frame(clips: np.ndarray, n_prime: int) -> np.ndarray:
    """The copy-last-frame baseline of uint8 clips (B, T, H, W, 3): each frame after the first
    `n_prime` replaced by the last (real) priming frame, as a predictor that assumes nothing
    moves would give."""
    copied = clips.copy()
    copied[:, n_prime:] = clips[:, n_prime - 1:n_prime]
    return copied
