"""What the evaluation protocol's stages share (fvd_sample, fvd, frame_scores): the protocol read
from the `fvd` config section, and the inputs that FVD and the frame scores are computed from."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lvt.data.dataset import VideoArrays
from lvt.evaluation import (
    Protocol,
    ProtocolSamples,
    copy_last_frame,
    decoded_clips,
    first_clips,
    protocol_videos,
    read_protocol_samples,
    real_clips,
)
from lvt.generate import TrainedModels, load_trained_models


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
