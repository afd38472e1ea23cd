"""Stage: train the Latent Video Transformer on the codes of the training split, scoring bits per
code on fixed clips of the test split as it goes."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import torch

from lvt.config import model_configs
from lvt.data.dataset import VideoArrays
from lvt.models.transformer import LatentVideoTransformer
from lvt.stages.common import from_section, run_stage, training_parser
from lvt.training.loop import LoopSettings
from lvt.training.run import (
    PublishedModel,
    RunFiles,
    fingerprint,
    train_and_publish,
    training_processes,
)
from lvt.training.transformer import (
    ClipSettings,
    HeldOutBits,
    RMSpropSettings,
    TransformerTraining,
)

log = logging.getLogger("lvt.stages.train_transformer")


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    train_settings = settings["transformer"]["train"]
    loop = from_section(LoopSettings, train_settings)
    with training_processes("transformer", loop, args.threads) as distributed:
        _, config = model_configs(settings)
        torch.manual_seed(loop.seed)
        model = LatentVideoTransformer(config)
        codes = VideoArrays(args.codes, "codes")
        log.info("training on %d code frames of %d videos from %s on %s, %d process(es)",
                 codes.num_items, codes.num_videos, args.codes, distributed.device,
                 distributed.world_size)
        task = TransformerTraining(model, codes, loop, from_section(ClipSettings, train_settings),
                                   from_section(RMSpropSettings, train_settings), distributed)
        held_out = HeldOutBits(task, VideoArrays(args.held_out_codes, "codes"),
                               train_settings["held_out_videos"], train_settings["held_out_every"])
        log.info("held-out bits per code every %d steps on %d clips of %s", held_out.every,
                 len(held_out.videos), args.held_out_codes)
        train_and_publish(task, loop, RunFiles(args.state_dir, args.model, args.metrics),
                          fingerprint(settings, args.codes, args.held_out_codes),
                          PublishedModel("transformer", config, model,
                                         {"codes": str(args.codes),
                                          "vqvae_sha256": codes.attrs.get("vqvae_sha256", "")}),
                          distributed, held_out)


def cli() -> None:
    parser = training_parser(__doc__, "--codes", "training codes (HDF5)")
    parser.add_argument("--held-out-codes", type=Path, required=True,
                        help="test codes (HDF5) whose first clips are scored during training")
    run_stage(main, parser)


if __name__ == "__main__":
    cli()
