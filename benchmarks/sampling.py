"""Time the plain full-recompute sampler against the fast one on the paper-size DSFVT.

One BAIR video: 16 latent frames of 16 × 16 positions, 1 priming frame, so 15 encoder calls and
3,840 sampled positions. The full recompute takes minutes per position batch on a CPU, so it is
timed over a few positions of slice 1 after a warm-up and projected to the whole video; the fast
sampler is timed on the whole video at batch 1 and over the rest of slice 1 at larger batches
(projected; options change both). Random weights: the cost does not depend on them. At batch 1
the fast sampler is bound by reading the weights once per position; the script prints that
bound from a measured matrix-vector stream.

    python benchmarks/sampling.py [--threads N] [--batch 1 32] [--positions 32]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import time
from collections.abc import Callable

import torch

from lvt.config import paper_model_configs
from lvt.models.transformer import LatentVideoTransformer, count_parameters
from lvt.sampling import encode_slice, sample_codes, sample_codes_fast, sampling_plan

FRAMES, SIZE, N_PRIME = 16, 16, 1
Sampler = Callable[..., torch.Tensor]


class Enough(Exception):
    """Raised from the progress callback to stop a sampler after the positions we time."""


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on `device` (CUDA runs asynchronously), so that clocks read
    between calls time the work itself."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_positions(
    sampler: Sampler,
    model: LatentVideoTransformer,
    video: torch.Tensor,
    warmup: int,
    count: int | None,
) -> tuple[float, int]:
    """Seconds for `count` sampled positions after `warmup` ones (None: the whole video after
    the warm-up), measured between progress calls so that no encoder call falls inside."""
    marks: dict[int, float] = {}

    def progress(done: int, total: int) -> None:
        if done in (warmup, warmup + (count or total - warmup)):
            synchronize(video.device)
            marks[done] = time.perf_counter()
            if len(marks) == 2:
                raise Enough

    with contextlib.suppress(Enough):
        sampler(model, video, N_PRIME, generator=torch.Generator(video.device).manual_seed(0),
                progress=progress)
    (start, begin), (stop, end) = sorted(marks.items())
    return end - begin, stop - start


def time_encoder(model: LatentVideoTransformer, video: torch.Tensor, repeats: int = 3) -> float:
    """Seconds per encoder call (slice 1, after one warm-up call)."""
    encode_slice(model, video, 1, (1, 0, 0))
    synchronize(video.device)
    begin = time.perf_counter()
    for _ in range(repeats):
        encode_slice(model, video, 1, (1, 0, 0))
    synchronize(video.device)
    return (time.perf_counter() - begin) / repeats


def time_whole_video(model: LatentVideoTransformer, video: torch.Tensor) -> float:
    begin = time.perf_counter()
    sample_codes_fast(model, video, N_PRIME, generator=torch.Generator().manual_seed(0))
    return time.perf_counter() - begin


def weights_per_position(model: LatentVideoTransformer) -> int:
    """Bytes of the parameters the fast sampler reads for every position."""
    modules = [model.decoder.causal_conv, model.decoder.layers, model.predictor]
    return 4 * sum(count_parameters(module) for module in modules)


def stream_bandwidth(megabytes: int = 128, repeats: int = 5) -> float:
    """Bytes per second of a vector times 2 MB matrices (weights too large for the caches)."""
    matrices = torch.randn(megabytes // 2, 1024, 512).unbind()
    vector = torch.randn(1, 1024)
    best = float("inf")
    for _ in range(repeats):
        begin = time.perf_counter()
        for matrix in matrices:
            vector @ matrix
        best = min(best, time.perf_counter() - begin)
    return megabytes * 2**20 / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="torch intra-op threads (default: all cores)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 32],
                        help="videos sampled together (default: 1 32)")
    parser.add_argument("--positions", type=int, default=32,
                        help="positions timed with full recompute at batch 1 (default 32)")
    parser.add_argument("--batched-positions", type=int, default=4,
                        help="positions timed with full recompute at batch > 1 (default 4)")
    parser.add_argument("--warmup", type=int, default=2, help="positions before timing")
    parser.add_argument("--fast-positions", type=int, default=0,
                        help="positions timed with the fast sampler at batch 1, projected "
                             "(default 0: the whole video, measured)")
    parser.add_argument("--batched-fast-positions", type=int, default=SIZE * SIZE - 2,
                        help="the same at batch > 1 (default: the rest of slice 1)")
    args = parser.parse_args()
    timed = [args.positions, args.batched_positions, args.fast_positions or 1,
             args.batched_fast_positions or 1]
    if args.warmup < 1 or min(timed) < 1 or args.warmup + max(timed) > SIZE * SIZE:
        parser.error(f"warm-up ≥ 1 and timed positions ≥ 1 must fit in slice 1 ({SIZE * SIZE})")

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    _, config = paper_model_configs()  # DSFVT
    model = LatentVideoTransformer(config).eval()
    plan = sampling_plan(config, (FRAMES, SIZE, SIZE), N_PRIME)
    positions = sum(len(p) for _, _, p in plan)
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    print(f"model: DSFVT, {count_parameters(model) / 1e6:.1f} M parameters, random weights; "
          f"video: {FRAMES} × {SIZE} × {SIZE} codes, {N_PRIME} priming frame, "
          f"{len(plan)} encoder calls, {positions} sampled positions")
    weights, bandwidth = weights_per_position(model), stream_bandwidth()
    print(f"memory bound of the fast sampler at batch 1: {weights / 1e6:.0f} MB of weights read "
          f"per position at {bandwidth / 1e9:.1f} GB/s (measured matrix-vector stream) = "
          f"{weights / bandwidth * positions:.1f} s per video")
    rows = []
    with torch.no_grad():
        for batch in args.batch:
            video = torch.randint(0, config.codebook_size,
                                  (batch, config.codebooks, FRAMES, SIZE, SIZE))
            encoder = time_encoder(model, video)
            measured = args.positions if batch == 1 else args.batched_positions
            seconds, count = time_positions(sample_codes, model, video, args.warmup, measured)
            full = (seconds / count * positions + encoder * len(plan)) / batch
            print(f"batch {batch:3d}  full recompute: measured {seconds / count:.3f} s per "
                  f"position step ({count} steps), {encoder:.3f} s per encoder call -> "
                  f"projected {full:.1f} s per video")
            fast_positions = args.fast_positions if batch == 1 else args.batched_fast_positions
            if not fast_positions:
                fast = time_whole_video(model, video) / batch
                how = "measured on the whole video"
            else:
                seconds, count = time_positions(sample_codes_fast, model, video, args.warmup,
                                                fast_positions)
                fast = (seconds / count * positions + encoder * len(plan)) / batch
                how = f"projected from {count} steps"
            print(f"batch {batch:3d}  fast: {fast:.2f} s per video ({how}); "
                  f"full / fast = {full / fast:.0f}×")
            rows.append((batch, full, fast))
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    print("batch  full recompute s/video (projected)  fast s/video  ratio")
    for batch, full, fast in rows:
        print(f"{batch:5d}  {full:35.1f}  {fast:12.2f}  {full / fast:5.0f}×")


if __name__ == "__main__":
    main()
