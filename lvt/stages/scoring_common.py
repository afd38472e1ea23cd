"""What the protocol's stages share (fvd_sample, fvd, frame_scores): the protocol read from the
`fvd` config section, and the scoring stages' arguments and inputs."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lvt.data.dataset import VideoArrays
from lvt.evaluation import Protocol, ProtocolSamples, protocol_videos, read_protocol_samples
from lvt.generate import TrainedModels, load_trained_models
from lvt.stages.common import add_model_inputs, add_threads_option, select_device


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
class ScoringInputs:
    """What the scoring stages share: the device, both models, the test split, the protocol's
    samples gathered from every shard."""

    device: torch.device
    models: TrainedModels
    codes: VideoArrays
    frames: VideoArrays
    protocol: Protocol
    samples: ProtocolSamples


def scoring_inputs(args: argparse.Namespace, options: dict[str, Any]) -> ScoringInputs:
    """Load the inputs named by `add_scoring_arguments` under the `fvd` section `options`."""
    device = select_device("auto", args.threads)
    models = load_trained_models(args.vqvae, args.transformer, device)
    codes = VideoArrays(args.codes, "codes")
    protocol = protocol_from_settings(options, codes)
    return ScoringInputs(device, models, codes, VideoArrays(args.dataset, "frames"), protocol,
                         read_protocol_samples(args.samples, protocol))


def add_scoring_arguments(parser: argparse.ArgumentParser) -> None:
    """The scoring stages' inputs and output: models, test split, sample shards, JSON."""
    add_model_inputs(parser)
    parser.add_argument("--samples", type=Path, nargs="+", required=True,
                        help="every shard of the fvd_sample stage")
    parser.add_argument("--out", type=Path, required=True, help="scores (JSON)")
    add_threads_option(parser)
