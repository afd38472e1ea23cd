"""Stage: PSNR and SSIM of the protocol's predicted frames against the true frames, per time
step, best of the K samples of each video and mean over them, next to the same scores of the
copy-last-frame baseline and of the VQ-VAE reconstruction on the same frames; written to one JSON
file."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from lvt.atomic import write_json
from lvt.checkpoints import file_sha256
from lvt.devices import select_device
from lvt.frame_scores import prediction_summary, scores_against_truth
from lvt.scoring import ScoringFiles, ScoringInputs
from lvt.stages.common import add_scoring_arguments, run_stage, stage_parser

log = logging.getLogger("lvt.stages.frame_scores")


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    files = ScoringFiles(args.vqvae, args.transformer, args.codes, args.dataset, args.samples)
    run = ScoringInputs.load(files, settings, select_device("auto", args.threads))
    protocol, owners = run.protocol, run.samples.jobs[:, 1]
    baselines = {
        name: scores_against_truth(run.real_clips(protocol.videos), clips, protocol.n_prime,
                                   run.device)
        for name, clips in (("copy_last_frame", run.copied_clips()),
                            ("reconstruction", run.reconstructed_clips()))
    }
    sampled = scores_against_truth(run.real_clips(owners), run.generated_clips(),
                                   protocol.n_prime, run.device)
    summary = prediction_summary(sampled, owners, baselines, protocol.n_prime)
    log.info("predicted frames: PSNR %.2f dB best of %d, %.2f dB mean, %.2f dB copy-last-frame; "
             "SSIM %.4f best, %.4f mean, %.4f copy-last-frame", summary["psnr_db_best_of_k"],
             summary["k"], summary["psnr_db_mean"], summary["copy_last_frame_psnr_db"],
             summary["ssim_best_of_k"], summary["ssim_mean"], summary["copy_last_frame_ssim"])
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
