"""Stage: PSNR and SSIM of the protocol's predicted frames against the true frames, per time
step, best of the K samples of each video and mean over them, next to the VQ-VAE reconstruction
of the same frames; written to one JSON file."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from lvt.atomic import write_json
from lvt.checkpoints import file_sha256
from lvt.evaluation import prediction_summary, scores_against_truth
from lvt.stages.common import run_stage, stage_parser
from lvt.stages.scoring_common import add_scoring_arguments, scoring_inputs

log = logging.getLogger("lvt.stages.frame_scores")


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    run = scoring_inputs(args, settings)
    protocol, owners = run.protocol, run.samples.jobs[:, 1]
    reconstructed = scores_against_truth(run.real_clips(protocol.videos),
                                         run.reconstructed_clips(), protocol.n_prime, run.device)
    sampled = scores_against_truth(run.real_clips(owners), run.generated_clips(),
                                   protocol.n_prime, run.device)
    summary = prediction_summary(sampled, owners, reconstructed, protocol.n_prime)
    log.info("predicted frames: PSNR %.2f dB best of %d, %.2f dB mean; SSIM %.4f best, %.4f mean",
             summary["psnr_db_best_of_k"], summary["k"], summary["psnr_db_mean"],
             summary["ssim_best_of_k"], summary["ssim_mean"])
    write_json(args.out, {
        "name": "PSNR (dB) and SSIM of the predicted frames (higher is better)",
        **summary,
        "protocol": protocol.record(file_sha256(args.vqvae), file_sha256(args.transformer)),
    })


def cli() -> None:
    parser = stage_parser(__doc__)
    add_scoring_arguments(parser)
    run_stage(main, parser)


if __name__ == "__main__":
    cli()
