"""Stage: VQ-VAE reconstruction PSNR and transformer bits per code on the test split (JSON)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from lvt.atomic import write_json
from lvt.checkpoints import file_sha256
from lvt.data.dataset import VideoArrays
from lvt.devices import select_device
from lvt.inference import load_trained_models, videos_long_enough
from lvt.likelihood import bits_per_code, reconstruction_psnr
from lvt.stages.common import (
    add_model_inputs,
    add_threads_option,
    run_stage,
    stage_parser,
)

log = logging.getLogger("lvt.stages.evaluate")


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    options = settings["evaluate"]
    device = select_device("auto", args.threads)
    models = load_trained_models(args.vqvae, args.transformer, device)
    frames = VideoArrays(args.dataset, "frames")
    codes = VideoArrays(args.codes, "codes")
    reconstruction = reconstruction_psnr(models.vqvae, frames, codes, device)
    log.info("VQ-VAE reconstruction PSNR %.2f dB over %d test frames",
             reconstruction["psnr_db"], reconstruction["frames"])
    videos = videos_long_enough(codes, options["frames"], options["bits_videos"])
    bits = bits_per_code(models.transformer, codes, options["frames"], options["n_prime"], videos,
                         device, options["batch_size"])
    log.info("bits per code %.4f; unigram entropy %.4f bits (ratio %.3f)",
             bits["bits_per_code"], bits["unigram_entropy_bits"], bits["bits_to_unigram_ratio"])
    write_json(args.out, {
        "vqvae": {"test_reconstruction": reconstruction, "sha256": file_sha256(args.vqvae)},
        "transformer": {"test_bits": bits, "sha256": file_sha256(args.transformer)},
    })


def cli() -> None:
    parser = stage_parser(__doc__)
    add_model_inputs(parser)
    parser.add_output("--out", help="metrics JSON")
    add_threads_option(parser)
    run_stage(main, parser)


if __name__ == "__main__":
    cli()
