"""Stage: train the VQ-VAE on the frames of the training split."""

from __future__ import annotations

import argparse
import logging
from typing import Any

import torch

from lvt.data.dataset import VideoArrays
from lvt.models.vqvae import VQVAE, VQVAEConfig
from lvt.stages.common import from_section, run_stage, training_parser
from lvt.training.loop import LoopSettings
from lvt.training.run import (
    PublishedModel,
    RunFiles,
    fingerprint,
    train_and_publish,
    training_processes,
)
from lvt.training.vqvae import AdamSettings, VQVAETraining

log = logging.getLogger("lvt.stages.train_vqvae")


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    train_settings = settings["vqvae"]["train"]
    loop = from_section(LoopSettings, train_settings)
    with training_processes("vqvae", loop, args.threads) as distributed:
        config = VQVAEConfig(**settings["vqvae"]["model"])
        torch.manual_seed(loop.seed)
        model = VQVAE(config)
        frames = VideoArrays(args.dataset, "frames")
        log.info("training on %d frames of %d videos from %s on %s, %d process(es)",
                 frames.num_items, frames.num_videos, args.dataset, distributed.device,
                 distributed.world_size)
        task = VQVAETraining(model, frames, loop, from_section(AdamSettings, train_settings),
                             distributed)
        train_and_publish(task, loop, RunFiles(args.state_dir, args.model, args.metrics),
                          fingerprint(settings, args.dataset),
                          PublishedModel("vqvae", config, model, {"dataset": str(args.dataset)}),
                          distributed)


def cli() -> None:
    run_stage(main, training_parser(__doc__, "--dataset", "training frames (HDF5)"))


if __name__ == "__main__":
    cli()
