"""Stage: one shard of the clips that FVD, PSNR and SSIM are computed on (the `fvd` protocol).

Each batch of clips (test videos × samples × trials, completed from their ground-truth priming
codes by the fast sampler) draws from its own random stream, so the shard count does not change
the samples. Writes the sampled codes and their (trial, video, sample) rows to one HDF5 file.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lvt.atomic import atomic_path
from lvt.data.dataset import VideoArrays
from lvt.evaluation import (
    Protocol,
    ProtocolSamples,
    protocol_videos,
    read_protocol_samples,
    sample_shard,
    write_protocol_samples,
)
from lvt.generate import TrainedModels, check_models_fit, load_trained_models
from lvt.stages.common import (
    add_model_inputs,
    add_threads_option,
    run_stage,
    select_device,
    stage_parser,
)

log = logging.getLogger("lvt.stages.fvd_sample")


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


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    options = settings["fvd"]
    device = select_device("auto", args.threads)
    models = load_trained_models(args.vqvae, args.transformer, device)
    codes = VideoArrays(args.codes, "codes")
    protocol = protocol_from_settings(options, codes)
    check_models_fit(args.vqvae, models.vqvae_config, args.transformer, models.transformer_config,
                     (protocol.frames, *codes.item_shape[1:]))
    started = time.monotonic()

    def report(done: int, total: int) -> None:
        log.info("%d of %d clips sampled, %.1f s per clip", done, total,
                 (time.monotonic() - started) / done)

    log.info("shard %d of %d of %d clips (%s)", args.shard, options["shards"], protocol.clips,
             protocol.describe())
    sampled, jobs = sample_shard(models.transformer, codes, protocol, options["shards"],
                                 args.shard, device, report)
    with atomic_path(args.out) as tmp:
        write_protocol_samples(tmp, protocol, sampled, jobs)
    log.info("wrote %d clips to %s", len(jobs), args.out)


def cli() -> None:
    parser = stage_parser(__doc__)
    add_model_inputs(parser, frames=False)
    parser.add_argument("--shard", type=int, required=True, help="which shard, from 0")
    parser.add_argument("--out", type=Path, required=True, help="the shard's samples (HDF5)")
    add_threads_option(parser)
    run_stage(main, parser)


if __name__ == "__main__":
    cli()
