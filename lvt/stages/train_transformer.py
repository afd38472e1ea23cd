"""Stage: train the Latent Video Transformer on the codes of the training split, scoring bits per
code on fixed clips of the test split as it goes."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import torch

from lvt.data.dataset import VideoArrays
from lvt.models.transformer import LatentVideoTransformer, TransformerConfig, optimizer
from lvt.stages.common import run_stage, training_parser
from lvt.training.acceleration import Acceleration
from lvt.training.loop import LoopSettings
from lvt.training.run import RunFiles, fingerprint, train_and_publish, training_processes
from lvt.training.transformer import HeldOutBits, TransformerTraining

log = logging.getLogger("lvt.stages.train_transformer")


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    train_settings = settings["transformer"]["train"]
    codebooks = settings["vqvae"]["model"]
    with training_processes("transformer", train_settings, args.threads) as distributed:
        device = distributed.device
        config = TransformerConfig(codebooks=codebooks["codebooks"],
                                   codebook_size=codebooks["codebook_size"],
                                   **settings["transformer"]["model"])
        torch.manual_seed(train_settings["seed"])
        model = LatentVideoTransformer(config).to(device)
        codes = VideoArrays(args.codes, "codes")
        log.info("training on %d code frames of %d videos from %s on %s, %d process(es)",
                 codes.num_items, codes.num_videos, args.codes, device, distributed.world_size)
        rmsprop = optimizer(model, lr=train_settings["lr"], alpha=train_settings["alpha"],
                            momentum=train_settings["momentum"], eps=train_settings["eps"])
        acceleration = Acceleration.from_settings(train_settings, device)
        task = TransformerTraining(model, codes, train_settings["clip_frames"],
                                   train_settings["n_prime"], train_settings["batch_size"],
                                   rmsprop, train_settings["seed"], distributed, acceleration)
        held_out = HeldOutBits(model, VideoArrays(args.held_out_codes, "codes"),
                               train_settings["held_out_videos"], train_settings["clip_frames"],
                               train_settings["n_prime"], train_settings["held_out_every"],
                               train_settings["batch_size"], device, acceleration)
        log.info("held-out bits per code every %d steps on %d clips of %s", held_out.every,
                 len(held_out.videos), args.held_out_codes)
        files = RunFiles(args.state_dir, args.model, args.metrics)
        train_and_publish(files, task, LoopSettings.from_settings(train_settings),
                          fingerprint(settings, args.codes, args.held_out_codes), "transformer",
                          config, model,
                          {"codes": str(args.codes),
                           "vqvae_sha256": codes.attrs.get("vqvae_sha256", "")},
                          distributed, held_out)


def cli() -> None:
    parser = training_parser(__doc__, "--codes", "training codes (HDF5)")
    parser.add_argument("--held-out-codes", type=Path, required=True,
                        help="test codes (HDF5) whose first clips are scored during training")
    run_stage(main, parser)


if __name__ == "__main__":
    cli()
