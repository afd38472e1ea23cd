"""What the scoring stages (fvd, frame_scores) share: the files they read, and the four kinds of
clip that FVD and the frame scores are computed from (real, reconstructed by the VQ-VAE, the
copy-last-frame baseline, generated), decoded batch by batch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lvt.data.dataset import VideoArrays
from lvt.inference import TrainedModels, decode_videos, load_trained_models
from lvt.models.vqvae import VQVAE
from lvt.protocol import (
    Protocol,
    ProtocolSamples,
    copy_last_frame,
    first_clips,
    protocol_from_settings,
    read_protocol_samples,
)


def real_clips(
    frames: VideoArrays, videos: Sequence[int] | np.ndarray, length: int, batch_size: int
) -> Iterator[np.ndarray]:
    """The first `length` frames (B, length, H, W, 3) of the test videos, batch by batch."""
    for start in range(0, len(videos), batch_size):
        yield first_clips(frames, videos[start:start + batch_size], length)


def decoded_clips(
    vqvae: VQVAE, codes: np.ndarray, device: torch.device, batch_size: int
) -> Iterator[np.ndarray]:
    """Code clips (N, T, codebooks, h, w) decoded to uint8 videos (B, T, H, W, 3) in batches."""
    for start in range(0, len(codes), batch_size):
        batch = torch.from_numpy(codes[start:start + batch_size].astype(np.int64))
        yield decode_videos(vqvae, batch.permute(0, 2, 1, 3, 4).to(device), device)


@dataclass(frozen=True)
class ScoringFiles:
    """The files a scoring stage reads: both models, the test split's codes and frames, and
    every shard of the protocol's samples."""

    vqvae: Path
    transformer: Path
    codes: Path
    dataset: Path
    samples: Sequence[Path]


@dataclass(frozen=True)
class ScoringInputs:
    """What the scoring stages share: the device, both models, the test split, the protocol's
    samples gathered from every shard, and the four kinds of clip they score, in batches of
    `batch_size` (evaluate.i3d_batch_size)."""

    device: torch.device
    models: TrainedModels
    codes: VideoArrays
    frames: VideoArrays
    protocol: Protocol
    samples: ProtocolSamples
    batch_size: int

    @classmethod
    def load(
        cls, files: ScoringFiles, settings: dict[str, Any], device: torch.device
    ) -> ScoringInputs:
        """Load `files` onto `device`, under the `fvd` and `evaluate` sections of `settings`."""
        models = load_trained_models(files.vqvae, files.transformer, device)
        codes = VideoArrays(files.codes, "codes")
        protocol = protocol_from_settings(settings["fvd"], codes)
        return cls(device, models, codes, VideoArrays(files.dataset, "frames"), protocol,
                   read_protocol_samples(list(files.samples), protocol),
                   settings["evaluate"]["i3d_batch_size"])

    def real_clips(self, videos: Sequence[int] | np.ndarray) -> Iterator[np.ndarray]:
        """The protocol's first frames of these test videos, as they are."""
        return real_clips(self.frames, videos, self.protocol.frames, self.batch_size)

    def reconstructed_clips(self) -> Iterator[np.ndarray]:
        """The protocol's test clips, their true codes decoded by the VQ-VAE."""
        codes = first_clips(self.codes, self.protocol.videos, self.protocol.frames)
        return decoded_clips(self.models.vqvae, codes, self.device, self.batch_size)

    def copied_clips(self) -> Iterator[np.ndarray]:
        """The protocol's test clips, every predicted frame the last real priming frame: the
        copy-last-frame baseline."""
        return (copy_last_frame(clips, self.protocol.n_prime)
                for clips in self.real_clips(self.protocol.videos))

    def generated_clips(self) -> Iterator[np.ndarray]:
        """The protocol's sampled clips, decoded by the VQ-VAE."""
        return decoded_clips(self.models.vqvae, self.samples.codes, self.device, self.batch_size)
