"""Stage: train the Latent Video Transformer on the codes of the training split."""

from __future__ import annotations

import argparse
import logging
from typing import Any

import torch

from lvt.checkpoints import save_model
from lvt.data.dataset import VideoArrays
from lvt.models.transformer import TransformerConfig, VideoTransformer, optimizer
from lvt.stages.common import fingerprint, publish, run_stage, select_device, training_parser
from lvt.training.loop import LoopSettings, train
from lvt.training.transformer import TransformerTraining

log = logging.getLogger("lvt.stages.train_transformer")


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    train_settings = settings["transformer"]["train"]
    codebooks = settings["vqvae"]["model"]
    device = select_device(train_settings["device"], args.threads)
    config = TransformerConfig(codebooks=codebooks["codebooks"],
                               codebook_size=codebooks["codebook_size"],
                               **settings["transformer"]["model"])
    torch.manual_seed(train_settings["seed"])
    model = VideoTransformer(config).to(device)
    codes = VideoArrays(args.codes, "codes")
    log.info("training on %d code frames of %d videos from %s on %s",
             codes.num_items, codes.num_videos, args.codes, device)
    rmsprop = optimizer(model, lr=train_settings["lr"], alpha=train_settings["alpha"],
                        momentum=train_settings["momentum"], eps=train_settings["eps"])
    task = TransformerTraining(model, codes, train_settings["clip_frames"],
                               train_settings["n_prime"], train_settings["batch_size"],
                               rmsprop, train_settings["seed"], device)
    metrics = train(task, LoopSettings.from_settings(train_settings), args.state_dir,
                    fingerprint(settings, args.codes), log)
    sha = save_model(args.model, "transformer", config, model,
                     extra={"steps": train_settings["steps"], "codes": str(args.codes),
                            "vqvae_sha256": codes.attrs.get("vqvae_sha256", "")})
    publish(metrics, args.metrics)
    log.info("wrote %s (sha256 %s)", args.model, sha)


def cli() -> None:
    run_stage(main, training_parser(__doc__, "--codes", "training codes (HDF5)"))


if __name__ == "__main__":
    cli()
