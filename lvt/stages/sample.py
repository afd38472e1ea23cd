"""Stage: complete test videos from their priming frames and write them for people to look at.

Per test video and sample: PNG frames (the reference's 0.png ... 15.png) and a GIF of the real
clip beside the sample at the video's own frame rate, priming frames marked. Per test video a
contact sheet (contact_sheet.png: the real clip as one row of frames, each sample as a row below
it), and one of the first `OVERVIEW_VIDEOS` videos together (contact_sheet.png at the top). All
sampled codes in samples.h5; an index.json with each sample's files and frame rate.
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Callable
from typing import Any

import h5py
import numpy as np
import torch
from tqdm import tqdm

from lvt.atomic import atomic_path, write_json
from lvt.checkpoints import file_sha256
from lvt.config import ConfigError
from lvt.data.dataset import VideoArrays
from lvt.devices import select_device
from lvt.generate import (
    check_models_fit,
    complete_videos,
    decode_videos,
    load_trained_models,
    videos_long_enough,
)
from lvt.media import (
    SheetRow,
    mark_priming,
    side_by_side,
    write_contact_sheet,
    write_gif,
    write_png_frames,
)
from lvt.stages.common import (
    add_model_inputs,
    add_threads_option,
    run_stage,
    stage_parser,
)

log = logging.getLogger("lvt.stages.sample")

OVERVIEW_VIDEOS = 8
"""Test videos on the overview contact sheet: enough to judge at a glance, few enough to see."""
SHEET_NAME = "contact_sheet.png"


def safe_name(video_id: str) -> str:
    """A folder name for a video id."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", video_id)


def progress_to(bar: tqdm) -> Callable[[int, int], None]:
    """A sampler progress callback that moves `bar` to `done` of `total` positions."""
    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return update


def main(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    options = settings["sample"]
    device = select_device("auto", args.threads)
    models = load_trained_models(args.vqvae, args.transformer, device)
    codes = VideoArrays(args.codes, "codes")
    check_models_fit(args.vqvae, models.vqvae_config, args.transformer, models.transformer_config,
                     (options["frames"], *codes.item_shape[1:]))
    frames = VideoArrays(args.dataset, "frames")
    videos = videos_long_enough(codes, options["frames"], options["videos"])
    if not videos:
        raise ConfigError(f"config key sample.frames: no video of {args.codes} has "
                          f"{options['frames']} frames")
    jobs = [(video, k) for video in videos for k in range(options["samples_per_video"])]
    generator = torch.Generator(device).manual_seed(options["seed"])
    n_prime = options["n_prime"]
    entries, sampled = [], []
    sheets: dict[int, list[SheetRow]] = {}
    with atomic_path(args.out_dir) as out:
        for start in range(0, len(jobs), options["batch_size"]):
            batch = jobs[start:start + options["batch_size"]]
            prime = torch.from_numpy(np.stack(
                [codes.clip(video, 0, n_prime) for video, _ in batch]).astype(np.int64))
            with tqdm(desc=f"videos {start + 1}-{start + len(batch)} of {len(jobs)}",
                      unit="position", mininterval=5.0) as bar:
                sample = complete_videos(
                    models.transformer, prime.permute(0, 2, 1, 3, 4).to(device),
                    options["frames"], options["temperature"], generator,
                    progress=progress_to(bar),
                )
            decoded = decode_videos(models.vqvae, sample, device)
            for (video, k), codes_k, video_k in zip(batch, sample.cpu(), decoded, strict=True):
                name = f"{safe_name(codes.video_ids[video])}/sample_{k}"
                real = frames.clip(video, 0, options["frames"])
                fps = float(frames.fps[video])
                write_png_frames(video_k, out / name)
                write_gif(side_by_side(mark_priming(real, n_prime), mark_priming(video_k, n_prime)),
                          out / f"{name}.gif", fps)
                sheets.setdefault(video, [("real", real)]).append((f"sample {k}", video_k))
                entries.append({"video_id": codes.video_ids[video], "sample": k,
                                "frames": f"{name}/", "gif": f"{name}.gif", "fps": fps,
                                "contact_sheet": f"{safe_name(codes.video_ids[video])}/"
                                                 f"{SHEET_NAME}"})
                sampled.append(codes_k.permute(1, 0, 2, 3).numpy().astype(np.uint16))
        groups = [(codes.video_ids[video], rows) for video, rows in sheets.items()]
        for group in groups:
            write_contact_sheet(out / safe_name(group[0]) / SHEET_NAME, [group], n_prime)
        write_contact_sheet(out / SHEET_NAME, groups[:OVERVIEW_VIDEOS], n_prime)
        with h5py.File(out / "samples.h5", "w") as file:
            file.create_dataset("codes", data=np.stack(sampled))
            file.create_dataset("video_ids", data=[e["video_id"] for e in entries],
                                dtype=h5py.string_dtype())
            file.create_dataset("sample_index", data=[e["sample"] for e in entries])
        write_json(out / "index.json", {
            "n_prime": n_prime, "frames": options["frames"], "temperature": options["temperature"],
            "seed": options["seed"], "vqvae_sha256": file_sha256(args.vqvae),
            "transformer_sha256": file_sha256(args.transformer), "samples": entries,
            "contact_sheet": SHEET_NAME, "contact_sheet_videos": min(len(groups), OVERVIEW_VIDEOS),
        })
    log.info("wrote %d samples to %s", len(entries), args.out_dir)


def cli() -> None:
    parser = stage_parser(__doc__)
    add_model_inputs(parser)
    parser.add_output("--out-dir", help="folder for the samples (PNG, GIF, samples.h5, index.json)")
    add_threads_option(parser)
    run_stage(main, parser)


if __name__ == "__main__":
    cli()
