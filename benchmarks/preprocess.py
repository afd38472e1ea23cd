"""Time frame preparation on the same videos, three ways, and print frames per second.

(a) ours: lvt.data.clips.trim_many (stream copies, BATCH_SIZE per ffmpeg process),
    lvt.data.frames.read_frames over the window (the central square, resized), the frame shard,
    then the packed HDF5 dataset, as the trim, frames and crop stages do;
(b) the reference (scripts/download_kinetics.py and scripts/convert_kinetics.py of rakhimovv/lvt
    at commit 0899c21): ffmpeg re-encodes the window with libx264 (output seeking, audio copied,
    1 thread), dumps every frame as a full-size PNG, and Pillow reopens each one, center-crops it
    to a square, resizes it with Lanczos and saves it again;
(c) the floor: PyAV seeks to the window and only decodes it, opening the video as (a) does.

The inputs are generated Kinetics-like videos: H.264 with AAC audio, textured panning content
with grain, a keyframe every few seconds, and a window that starts between keyframes. Per-core
speed is frames per CPU second (this process, its threads and its child processes).

    python benchmarks/preprocess.py --videos 6 --width 640 --height 360
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path

import av
import h5py
import numpy as np
import PIL
from PIL import Image

import lvt
from lvt.data.clips import Window, clip_path, trim_many
from lvt.data.dataset import FrameShard, FrameShardWriter, VideoArrays, VideoArraysWriter
from lvt.data.frames import read_frames, window_bounds
from lvt.data.sources import SourceRow
from lvt.data.video_io import ffmpeg_executable, open_video

AUDIO_RATE = 44100


@dataclass(frozen=True)
class Timing:
    """What one route did on all videos and what it cost."""

    frames: int
    wall: float
    cpu: float


def cpu_seconds() -> float:
    """User and system CPU time of this process (all threads) and its waited-for children."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(route: Callable[[], int]) -> Timing:
    """Run a route once; it returns how many frames it produced."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    frames = route()
    return Timing(frames, time.perf_counter() - wall, cpu_seconds() - cpu)


def make_videos(folder: Path, args: argparse.Namespace) -> list[SourceRow]:
    """Write the input videos; each row's window lies between keyframes."""
    rng = np.random.default_rng(args.seed)
    rate = Fraction(str(args.fps)).limit_denominator(1001)
    rows = []
    for index in range(args.videos):
        path = folder / f"video{index:03d}.mp4"
        gop_seconds = rng.uniform(*args.keyframe_seconds)
        _encode(path, rng, args.width, args.height, rate, args.seconds, gop_seconds)
        latest = args.seconds - args.window - 0.5
        start = round(float(rng.uniform(min(0.5, latest), latest)), 3)
        rows.append(SourceRow(f"video{index:03d}", str(path), "train", start, start + args.window))
    return rows


def _encode(
    path: Path,
    rng: np.random.Generator,
    width: int,
    height: int,
    rate: Fraction,
    seconds: float,
    gop_seconds: float,
) -> None:
    """A panning, grainy texture with a moving bright box, as H.264 (CRF 23) plus AAC audio."""
    frame_count = round(seconds * rate)
    coarse = rng.integers(0, 256, (height // 8 + 24, width // 8 + 48, 3), dtype=np.uint8)
    texture = (
        av.VideoFrame.from_ndarray(coarse, format="rgb24")
        .reformat(coarse.shape[1] * 8, coarse.shape[0] * 8, interpolation="BICUBIC")
        .to_ndarray()
    )
    grain = rng.integers(-6, 7, (8, height, width, 3), dtype=np.int16)
    velocity = rng.uniform(-1.5, 1.5, size=2) * 60 / float(rate)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.gop_size = max(round(gop_seconds * rate), 1)
        video.options = {"crf": "23", "preset": "veryfast", "sc_threshold": "0"}
        audio = out.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        for index in range(frame_count):
            span_y, span_x = texture.shape[0] - height, texture.shape[1] - width
            y = int(abs((index * velocity[0]) % (2 * span_y) - span_y))
            x = int(abs((index * velocity[1]) % (2 * span_x) - span_x))
            image = texture[y : y + height, x : x + width].astype(np.int16) + grain[index % 8]
            top, left = (index * 3) % (height - height // 5), (index * 5) % (width - width // 5)
            image[top : top + height // 5, left : left + width // 5] = 235
            frame = av.VideoFrame.from_ndarray(np.clip(image, 0, 255).astype(np.uint8), "rgb24")
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        samples = round(seconds * AUDIO_RATE)
        tone = np.sin(2 * np.pi * 440 * np.arange(samples) / AUDIO_RATE).astype(np.float32)
        for first in range(0, samples, 1024):
            chunk = av.AudioFrame.from_ndarray(
                tone[None, first : first + 1024], format="fltp", layout="mono"
            )
            chunk.sample_rate, chunk.pts = AUDIO_RATE, first
            out.mux(audio.encode(chunk))
        out.mux(audio.encode(None))


def ours(rows: list[SourceRow], work: Path, size: int) -> int:
    """Route (a): trim, frames (window, crop, resize) into a frame shard, and pack."""
    clips, shard_path = work / "clips", work / "frames.h5"
    clips.mkdir(parents=True)
    windows = [Window(row.path, clip_path(clips, row.video_id), row.start, row.end) for row in rows]
    errors = [error for error in trim_many(windows) if error]
    if errors:
        raise errors[0]
    with FrameShardWriter(shard_path, size) as shard:
        for row, window in zip(rows, windows, strict=True):
            shard.add(row, *read_frames(window.target, None, size, window=(row.start, row.end)))
    with (
        FrameShard(shard_path) as shard,
        VideoArraysWriter(
            work / "data.h5", "frames", np.uint8, {"size": size}, (size, size, 3)
        ) as writer,
    ):
        for row in shard.rows:
            writer.add(row.video_id, shard.frames(row.video_id)[0])
    return VideoArrays(work / "data.h5").num_items


def reference(rows: list[SourceRow], work: Path, size: int) -> int:
    """Route (b): libx264 re-encode of the window, full-size PNGs, Pillow crop + Lanczos + save."""
    ffmpeg = ffmpeg_executable()
    count = 0
    for row in rows:
        clip, folder = work / f"{row.video_id}.mp4", work / row.video_id
        folder.mkdir()
        quiet = ["-nostdin", "-loglevel", "panic", "-y"]
        duration = str(row.end - row.start)
        trim_window = ["-i", row.path, "-ss", str(row.start), "-t", duration]
        x264 = ["-c:v", "libx264", "-c:a", "copy", "-threads", "1"]
        subprocess.run([ffmpeg, *trim_window, *x264, *quiet, str(clip)], check=True)
        dump = ["-threads", "1", "-i", str(clip), str(folder / "%d.png")]
        subprocess.run([ffmpeg, *quiet, *dump], check=True)
        for png in folder.iterdir():
            with Image.open(png) as image:
                side = min(image.size)
                left, top = (image.width - side) // 2, (image.height - side) // 2
                square = image.crop((left, top, left + side, top + side))
                square.resize((size, size), Image.LANCZOS).save(png)
            count += 1
    return count


def floor(rows: list[SourceRow]) -> int:
    """Route (c): seek to each window with PyAV and decode it, nothing else.

    It opens the videos and picks the window's frames as (a) does (`open_video`, timestamps
    compared in the stream's time base), so that the two differ only in what (a) adds.
    """
    count = 0
    for row in rows:
        with open_video(row.path) as (container, stream):
            start = (container.start_time or 0) / av.time_base
            first, stop = window_bounds(start + row.start, start + row.end, stream.time_base)
            container.seek(round((start + row.start) / stream.time_base), stream=stream)
            for frame in container.decode(stream):
                if frame.pts >= stop:
                    break
                count += int(frame.pts >= first)
    return count


def compare(work: Path, rows: list[SourceRow]) -> tuple[float, Counter[int], list[str]]:
    """How close our 64x64 frames are to the reference's PNGs.

    The reference's re-encode (output seeking, constant frame rate) starts at the frame nearest to
    the window's start, which can be the one before it; ours starts at the first frame at or after
    it. So each video is compared at the alignment, among the reference one frame earlier, the
    same, or one later, with the smallest mean absolute difference (0-255). Returns that mean over
    all videos, how many videos took each alignment (+1: the reference starts one frame
    earlier), and the videos whose frame counts differ.
    """
    ours_data = VideoArrays(work / "a0" / "data.h5")
    differences, alignments, mismatches = [], Counter(), []
    for index, row in enumerate(rows):
        pngs = sorted((work / "b" / row.video_id).glob("*.png"), key=lambda path: int(path.stem))
        theirs = np.stack([np.asarray(Image.open(png).convert("RGB")) for png in pngs]).astype(int)
        mine = ours_data.video(index).astype(int)
        by_shift = {}
        for shift in (-1, 0, 1):
            first_mine, first_theirs = max(0, -shift), max(0, shift)
            count = min(len(mine) - first_mine, len(theirs) - first_theirs)
            ours_part = mine[first_mine : first_mine + count]
            theirs_part = theirs[first_theirs : first_theirs + count]
            by_shift[shift] = float(np.abs(ours_part - theirs_part).mean())
        best = min(by_shift, key=by_shift.__getitem__)
        differences.append(by_shift[best])
        alignments[best] += 1
        if len(theirs) != len(mine):
            mismatches.append(
                f"{row.video_id} [{row.start}, {row.end}) s: ours {len(mine)}, "
                f"reference {len(theirs)}"
            )
    return float(np.mean(differences)), alignments, mismatches


def machine() -> str:
    """CPU model, cores, and the versions that matter here."""
    model = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        model = names[0] if names else model
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    ffmpeg = subprocess.run(
        [ffmpeg_executable(), "-version"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[0]
    libraries = ", ".join(
        f"{name} {'.'.join(map(str, v))}"
        for name, v in av.library_versions.items()
        if name in ("libavcodec", "libavformat", "libswscale")
    )
    return "\n".join(
        [
            f"machine: {model}; {os.cpu_count()} cores, {usable} usable; {platform.platform()}",
            f"python {platform.python_version()}, lvt {lvt.__version__}, numpy {np.__version__}, "
            f"h5py {h5py.__version__}, Pillow {PIL.__version__}",
            f"PyAV {av.__version__} ({libraries})",
            f"ffmpeg executable: {ffmpeg_executable()} ({ffmpeg})",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=6, help="number of input videos")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=12.0, help="length of each video")
    parser.add_argument("--window", type=float, default=10.0, help="seconds kept per video")
    parser.add_argument(
        "--keyframe-seconds",
        type=float,
        nargs=2,
        default=(2.0, 5.0),
        metavar=("MIN", "MAX"),
        help="keyframe interval, drawn per video",
    )
    parser.add_argument("--size", type=int, default=64, help="output frame side")
    parser.add_argument(
        "--repeats", type=int, default=5, help="runs of (a) and (c), in turns; best counts"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.window + 1.0 > args.seconds:
        parser.error("--seconds must exceed --window by at least 1 s")

    print(machine())
    with tempfile.TemporaryDirectory(prefix="lvt-bench-") as folder:
        work = Path(folder)
        (work / "videos").mkdir()
        started = time.perf_counter()
        rows = make_videos(work / "videos", args)
        size_mb = sum(Path(row.path).stat().st_size for row in rows) / 1e6
        print(
            f"inputs: {args.videos} H.264+AAC videos, {args.width}x{args.height} at {args.fps:g} "
            f"fps, {args.seconds:g} s each, keyframes every {args.keyframe_seconds[0]:g}-"
            f"{args.keyframe_seconds[1]:g} s, windows of {args.window:g} s; "
            f"{size_mb * 8 / args.videos / args.seconds:.2f} Mbit/s; "
            f"made in {time.perf_counter() - started:.0f} s"
        )

        floor_runs, ours_runs = [], []
        for repeat in range(args.repeats):
            floor_runs.append(measure(lambda: floor(rows)))
            ours_runs.append(measure(partial(ours, rows, work / f"a{repeat}", args.size)))
        floor_timing = min(floor_runs, key=lambda timing: timing.cpu)
        ours_timing = min(ours_runs, key=lambda timing: timing.cpu)
        (work / "b").mkdir()
        reference_timing = measure(lambda: reference(rows, work / "b", args.size))
        difference, alignments, mismatches = compare(work, rows)

    timings = {
        "(a) ours: trim -> frames -> crop": ours_timing,
        "(b) reference: x264 -> PNG -> Pillow": reference_timing,
        "(c) floor: PyAV decode only": floor_timing,
    }
    print(
        f"\n{'route':40s} {'frames':>7s} {'wall s':>8s} {'CPU s':>8s} {'fps':>8s} {'fps/core':>9s}"
    )
    for name, timing in timings.items():
        print(
            f"{name:40s} {timing.frames:7d} {timing.wall:8.2f} {timing.cpu:8.2f} "
            f"{timing.frames / timing.wall:8.1f} {timing.frames / timing.cpu:9.1f}"
        )
    print(
        f"\n(a) vs (b): {reference_timing.wall / ours_timing.wall:.1f}x faster (wall), "
        f"{reference_timing.cpu / ours_timing.cpu:.1f}x per core (goal: at least 10x)"
    )
    print(
        f"(a) vs (c): {ours_timing.wall / floor_timing.wall:.2f}x the floor's time (wall), "
        f"{ours_timing.cpu / floor_timing.cpu:.2f}x per core (goal: at most 1.5x)"
    )
    print(
        f"(a) vs (b) content: mean absolute difference of the 64x64 frames {difference:.2f} of 255"
        " (swscale from YUV vs Pillow from RGB PNGs, after the reference's x264 re-encoding);"
        f" videos by alignment (+1: the reference starts one frame earlier): {dict(alignments)}"
    )
    for mismatch in mismatches:
        print(f"frame counts differ: {mismatch}")
    if ours_timing.frames != floor_timing.frames:
        print(f"frame counts differ: ours {ours_timing.frames}, floor {floor_timing.frames}")
    print(
        f"(a) and (c): best of {args.repeats} runs by CPU time, taken in turns; (b): one run"
    )


if __name__ == "__main__":
    sys.exit(main())
