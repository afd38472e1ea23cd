"""Stage: train the VQ-VAE on the frames of the training split."""

from __future__ import annotations

import argparse
import logging
from typing import Any

import torch

from lvt.data.dataset import VideoArrays
from lvt.models.vqvae import VQVAE, VQVAEConfig
from lvt.stages.common import run_stage, training_parser
from lvt.training.acceleration import Acceleration
from lvt.training.loop import LoopSettings
from lvt.training.run import RunFiles, fingerprint, train_and_publish, training_processes
from lvt.training.vqvae import VQVAETraining

log = logging.getLogger("lvt.stages.train_vqvae")


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    model_settings, train_settings = settings["vqvae"]["model"], settings["vqvae"]["train"]
    with training_processes("vqvae", train_settings, args.threads) as distributed:
        device = distributed.device
        config = VQVAEConfig(**model_settings)
        torch.manual_seed(train_settings["seed"])
        model = VQVAE(config)
        frames = VideoArrays(args.dataset, "frames")
        log.info("training on %d frames of %d videos from %s on %s, %d process(es)",
                 frames.num_items, frames.num_videos, args.dataset, device,
                 distributed.world_size)
        task = VQVAETraining(model, frames, train_settings["batch_size"], train_settings["lr"],
                             tuple(train_settings["betas"]), train_settings["seed"], distributed,
                             Acceleration.from_settings(train_settings, device),
                             fused_adam=train_settings["fused_adam"] and device.type == "cuda")
        files = RunFiles(args.state_dir, args.model, args.metrics)
        train_and_publish(files, task, LoopSettings.from_settings(train_settings),
                          fingerprint(settings, args.dataset), "vqvae", config, model,
                          {"dataset": str(args.dataset)}, distributed)


def cli() -> None:
    run_stage(main, training_parser(__doc__, "--dataset", "training frames (HDF5)"))


if __name__ == "__main__":
    cli()
