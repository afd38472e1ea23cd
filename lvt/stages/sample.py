"""Stage: complete test videos from their priming frames and write them for people to look at
(PNG frames, GIFs beside the real clips, contact sheets, samples.h5, index.json; see
lvt.samples)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from lvt.atomic import atomic_path
from lvt.checkpoints import file_sha256
from lvt.data.dataset import VideoArrays
from lvt.devices import select_device
from lvt.inference import check_models_fit, load_trained_models
from lvt.samples import SampleOptions, write_test_samples
from lvt.stages.common import (
    add_model_inputs,
    add_threads_option,
    run_stage,
    stage_parser,
)

log = logging.getLogger("lvt.stages.sample")


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    options = SampleOptions(**settings["sample"])
    device = select_device("auto", args.threads)
    models = load_trained_models(args.vqvae, args.transformer, device)
    codes = VideoArrays(args.codes, "codes")
    check_models_fit(args.vqvae, models.vqvae_config, args.transformer, models.transformer_config,
                     (options.frames, *codes.item_shape[1:]))
    frames = VideoArrays(args.dataset, "frames")
    made_from = {"vqvae_sha256": file_sha256(args.vqvae),
                 "transformer_sha256": file_sha256(args.transformer)}
    with atomic_path(args.out_dir) as out:
        count = write_test_samples(models, codes, frames, options, device, out, made_from)
    log.info("wrote %d samples to %s", count, args.out_dir)


def cli() -> None:
    parser = stage_parser(__doc__)
    add_model_inputs(parser)
    parser.add_output("--out-dir", help="folder for the samples (PNG, GIF, samples.h5, index.json)")
    add_threads_option(parser)
    run_stage(main, parser)


if __name__ == "__main__":
    cli()
