"""Stage: one shard of the clips that FVD, PSNR and SSIM are computed on (the `fvd` protocol).

Each batch of clips (test videos × samples × trials, completed from their ground-truth priming
codes by the fast sampler) draws from its own random stream, so the shard count does not change
the samples. Writes the sampled codes and their (trial, video, sample) rows to one HDF5 file.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from lvt.atomic import atomic_path
from lvt.data.dataset import VideoArrays
from lvt.evaluation import sample_shard, write_protocol_samples
from lvt.generate import check_models_fit, load_trained_models
from lvt.stages.common import (
    add_model_inputs,
    add_threads_option,
    run_stage,
    select_device,
    stage_parser,
)
from lvt.stages.scoring_common import protocol_from_settings

log = logging.getLogger("lvt.stages.fvd_sample")


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
