"""Stage: one shard of the clips that FVD, PSNR and SSIM are computed on (the `fvd` protocol).

Each batch of clips (test videos × samples × trials, completed from their ground-truth priming
codes by the fast sampler) draws from its own random stream, so the shard count does not change
the samples. Writes the sampled codes and their (trial, video, sample) rows to one HDF5 file,
batch by batch: a killed shard resumes from its first unfinished batch and gives the same samples.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from lvt.checkpoints import file_sha256
from lvt.data.dataset import VideoArrays
from lvt.data.progress import file_stamp
from lvt.devices import select_device
from lvt.inference import check_models_fit, load_trained_models
from lvt.protocol import protocol_from_settings, sample_shard
from lvt.stages.common import (
    add_model_inputs,
    add_threads_option,
    run_stage,
    stage_parser,
)

log = logging.getLogger("lvt.stages.fvd_sample")


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    options = settings["fvd"]
    device = select_device("auto", args.threads)
    models = load_trained_models(args.vqvae, args.transformer, device)
    codes = VideoArrays(args.codes, "codes")
    protocol = protocol_from_settings(options, codes)
    check_models_fit(args.vqvae, models.vqvae_config, args.transformer, models.transformer_config,
                     (protocol.frames, *codes.item_shape[1:]))
    log.info("shard %d of %d of %d clips (%s)", args.shard, options["shards"], protocol.clips,
             protocol.describe())
    made_from = {"transformer_sha256": file_sha256(args.transformer),
                 "codes": file_stamp(args.codes)}
    clips = sample_shard(models.transformer, codes, protocol, options["shards"], args.shard,
                         device, args.out, made_from)
    log.info("wrote %d clips to %s", clips, args.out)


def cli() -> None:
    parser = stage_parser(__doc__)
    add_model_inputs(parser, frames=False)
    parser.add_argument("--shard", type=int, required=True, help="which shard, from 0")
    parser.add_output("--out", help="the shard's samples (HDF5)")
    add_threads_option(parser)
    run_stage(main, parser)


if __name__ == "__main__":
    cli()
