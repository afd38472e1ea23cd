"""Bytes per frame and training read time of 64x64 frame datasets, raw or with a lossless codec.

Three kinds of content, all made as the pipeline makes frames (H.264 video decoded, central square
resized with Lanczos by lvt.data.frames.read_frames):

* natural: 426x240 (240p, what the Kinetics downloader asks for) views of a synthetic scene with
  natural image statistics (1/f^1.3 amplitude spectrum in luminance and colour, a gradient), the
  camera panning and zooming, a textured object moving across, sensor noise. The spectrum's slope
  makes Pillow's PNGs of the frames about 8 KB each, as the reference's 64x64 Kinetics PNGs were;
* photo: the same camera and object over a real photograph (matplotlib's grace_hopper.jpg);
* demo: the demo's bouncing shapes (lvt.data.synthetic, config.yaml's settings), which compress
  far better than real video.

Each codec's file is written by lvt.data.dataset.VideoArraysWriter with only the frames' filter
(and, for the image codec, the chunk) changed, and read back through lvt.data.dataset.VideoArrays
as the stages read it: random 16-frame clips with `clip` (sampling, evaluation, and the
transformer's clips of codes) and random batches of 32 frames with `items` (the VQ-VAE's
batches), also one frame per call. Every round times every codec on the same draws, codecs in
turn, and the median round counts; the file stays in the page cache, so the times are decoding
and HDF5, not the disk. hdf5plugin's codecs are measured where it is installed.

    python benchmarks/storage.py
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from matplotlib.cbook import get_sample_data
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from preprocess import machine  # noqa: E402

from lvt.config import validate  # noqa: E402
from lvt.data.dataset import CHUNK_ITEMS, VideoArrays, VideoArraysWriter  # noqa: E402
from lvt.data.frames import read_frames  # noqa: E402
from lvt.data.synthetic import SyntheticVideos, _encode, write_synthetic_videos  # noqa: E402
from lvt.images import frames_to_images  # noqa: E402

try:
    import hdf5plugin
except ImportError:
    hdf5plugin = None

SIZE = 64
WIDTH, HEIGHT = 426, 240
SPECTRUM_SLOPE = 1.3
"""Amplitude falls as 1/f^SPECTRUM_SLOPE: 1.0 gave PNGs of 9.2 KB a frame, 1.2 8.5 KB, 1.4 7.4 KB
(one video of 150 frames, seed 0)."""
CLIP_FRAMES = 16
BATCH_FRAMES = 32


@dataclass(frozen=True)
class Codec:
    """A way to store the frames: create_dataset's filter arguments and frames per chunk."""

    name: str
    filters: Mapping[str, Any] = field(default_factory=dict)
    chunk_items: int = CHUNK_ITEMS


def codecs() -> list[Codec]:
    """Raw, h5py's own filters, and hdf5plugin's lossless ones where it is installed."""
    found = [Codec("raw"), Codec("lzf", {"compression": "lzf"})]
    for level in (1, 4, 9):
        found.append(Codec(f"gzip {level}", {"compression": "gzip", "compression_opts": level}))
        found.append(Codec(f"gzip {level} + shuffle", {"compression": "gzip",
                                                       "compression_opts": level, "shuffle": True}))
    if hdf5plugin is None:
        return found
    found += [Codec("lz4", hdf5plugin.LZ4()), Codec("zstd 3", hdf5plugin.Zstd(clevel=3)),
              Codec("zstd 9", hdf5plugin.Zstd(clevel=9))]
    for cname, level in (("lz4", 5), ("zstd", 5)):
        for label, shuffle in (("shuffle", hdf5plugin.Blosc.SHUFFLE),
                               ("bitshuffle", hdf5plugin.Blosc.BITSHUFFLE)):
            found.append(Codec(f"blosc {cname} {level} + {label}",
                               hdf5plugin.Blosc(cname, level, shuffle)))
        for label, blosc2_filter in (("shuffle", hdf5plugin.Blosc2.SHUFFLE),
                                     ("bitshuffle", hdf5plugin.Blosc2.BITSHUFFLE),
                                     ("delta", hdf5plugin.Blosc2.DELTA)):
            found.append(Codec(f"blosc2 {cname} {level} + {label}",
                               hdf5plugin.Blosc2(cname, level, blosc2_filter)))
    # HTJ2K takes chunks of at most 3 dimensions other than 1: one frame per chunk. FciDecomp
    # (JPEG-LS) failed on such chunks (hdf5plugin 7.1.0: the frames did not read back).
    found.append(Codec("htj2k (JPEG 2000), 1 frame/chunk", hdf5plugin.Htj2k(), 1))
    return found


class CodecWriter(VideoArraysWriter):
    """VideoArraysWriter whose frames dataset has the codec's filter and chunk."""

    def __init__(self, path: Path, codec: Codec) -> None:
        super().__init__(path, "frames", np.uint8, {"size": SIZE}, (SIZE, SIZE, 3))
        self.codec = codec

    def _create_items(self, item_shape: tuple[int, ...]) -> h5py.Dataset:
        return self._file.create_dataset(
            self.name, shape=(0, *item_shape), maxshape=(None, *item_shape),
            chunks=(self.codec.chunk_items, *item_shape), dtype=self.dtype, **self.codec.filters,
        )


def _noise(rng: np.random.Generator, height: int, width: int, slope: float) -> np.ndarray:
    """Gaussian noise with amplitude spectrum 1/f^slope, unit variance."""
    fy, fx = np.fft.fftfreq(height)[:, None], np.fft.rfftfreq(width)[None, :]
    frequency = np.hypot(fy, fx)
    frequency[0, 0] = 1.0
    shape = (height, width // 2 + 1)
    spectrum = (rng.normal(size=shape) + 1j * rng.normal(size=shape)) / frequency**slope
    spectrum[0, 0] = 0.0
    noise = np.fft.irfft2(spectrum, s=(height, width))
    return noise / noise.std()


def _scene(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A float RGB picture: luminance and weaker colour texture on a graded background."""
    lum = _noise(rng, height, width, SPECTRUM_SLOPE)[..., None]
    red, blue = (_noise(rng, height, width, SPECTRUM_SLOPE + 0.3) for _ in range(2))
    colour = np.stack([red, np.zeros_like(red), blue], axis=-1)
    grade = np.linspace(-30, 30, height)[:, None, None] * rng.uniform(-1, 1, 3)
    return rng.uniform(70, 170, 3) + grade + 28 * lum + 12 * colour


def scene_canvas(rng: np.random.Generator) -> Image.Image:
    """A synthetic scene 2.5 times the frame's size in each direction."""
    scene = _scene(rng, int(HEIGHT * 2.5), int(WIDTH * 2.5))
    return Image.fromarray(np.clip(scene, 0, 255).astype(np.uint8))


def photo_canvas(rng: np.random.Generator) -> Image.Image:
    """A real photograph: matplotlib's sample grace_hopper.jpg (512x600)."""
    with Image.open(get_sample_data("grace_hopper.jpg")) as photo:
        return photo.convert("RGB")


def camera_frames(rng: np.random.Generator, canvas: Image.Image, view: float, count: int
                  ) -> Iterator[np.ndarray]:
    """`count` WIDTH x HEIGHT RGB frames: a camera panning and zooming over `canvas` (its view
    `view` times the frame's size in canvas pixels), a textured object moving across, noise."""
    side = HEIGHT // 2
    thing = _scene(rng, side, side)
    yy, xx = np.mgrid[:side, :side] - side / 2
    inside = ((yy / (side / 2)) ** 2 + (xx / (side / 2.5)) ** 2 < 1)[..., None]
    velocity, zoom = rng.uniform(-0.6, 0.6, 2) * view, rng.uniform(-3e-4, 3e-4)
    for t in range(count):
        half_h, half_w = HEIGHT / 2 * view * (1 + zoom * t), WIDTH / 2 * view * (1 + zoom * t)
        y = np.clip(canvas.height / 2 + velocity[0] * t, half_h, canvas.height - half_h)
        x = np.clip(canvas.width / 2 + velocity[1] * t, half_w, canvas.width - half_w)
        box = (x - half_w, y - half_h, x + half_w, y + half_h)
        frame = np.asarray(canvas.resize((WIDTH, HEIGHT), Image.BILINEAR, box=box), np.float32)
        py = int(HEIGHT * 0.3 + 30 * np.sin(t / 20))
        px = int(WIDTH * 0.4 + 0.8 * t) % (WIDTH - side)
        patch = frame[py : py + side, px : px + side]
        patch[:] = np.where(inside, thing, patch)
        frame = frame + rng.normal(0, 2, frame.shape)
        yield np.clip(frame, 0, 255).astype(np.uint8)


def camera_videos(folder: Path, videos: int, frames: int, seed: int,
                  canvas: Callable[[np.random.Generator], Image.Image], view: float
                  ) -> list[np.ndarray]:
    """Camera videos over a canvas, encoded as H.264 at 30 fps and decoded to 64x64 frames."""
    result = []
    for index in range(videos):
        path = folder / f"camera{index}.mp4"
        rng = np.random.default_rng([seed, index])
        _encode(path, camera_frames(rng, canvas(rng), view, frames), 30.0, WIDTH, HEIGHT, 60)
        result.append(read_frames(path, None, SIZE)[0])
    return result


def demo_videos(folder: Path, videos: int, frames: int, seed: int) -> list[np.ndarray]:
    """The demo's bouncing shapes (config.yaml's size, speed and count), decoded to 64x64."""
    demo = SyntheticVideos(**{**validate({})["source"]["synthetic"], "train_videos": videos,
                              "test_videos": 0, "seconds": frames / 30, "window_start": 0.0,
                              "window_seconds": frames / 30, "seed": seed})
    rows = write_synthetic_videos(folder, demo)
    return [read_frames(row.path, None, SIZE)[0] for row in rows]


def png_bytes(videos: list[np.ndarray]) -> float:
    """Mean size of Pillow's PNG of a frame (default settings, as the reference saved them)."""
    sizes = []
    for frame in np.concatenate(videos):
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, "PNG")
        sizes.append(buffer.tell())
    return float(np.mean(sizes))


@dataclass
class Result:
    """One codec on one content: bytes per frame, write time, read times of every round."""

    bytes_per_frame: float
    write_ms_per_frame: float
    clip_ms: list[float] = field(default_factory=list)
    batch_ms: list[float] = field(default_factory=list)
    single_ms: list[float] = field(default_factory=list)


def write(path: Path, codec: Codec, videos: list[np.ndarray]) -> Result:
    """Write the videos with the codec; check they read back unchanged."""
    started = time.perf_counter()
    with CodecWriter(path, codec) as writer:
        for index, video in enumerate(videos):
            writer.add(f"video{index}", video)
    seconds = time.perf_counter() - started
    total = sum(len(video) for video in videos)
    with h5py.File(path, "r") as file:
        stored = file["frames"].id.get_storage_size()
        if not np.array_equal(file["frames"][:], np.concatenate(videos)):
            raise AssertionError(f"{codec.name}: frames differ after reading back")
    return Result(stored / total, 1000 * seconds / total)


def timed(read: Callable[[], object], count: int) -> float:
    """Milliseconds per call of `read`, over `count` calls."""
    started = time.perf_counter()
    for _ in range(count):
        read()
    return 1000 * (time.perf_counter() - started) / count


def read_round(arrays: VideoArrays, seed: int, clips: int, batches: int) -> list[float]:
    """Milliseconds per random clip (`clip`) and per random batch of frames, read with one
    `items` call and one frame at a time."""
    rng = np.random.default_rng(seed)
    videos = rng.integers(arrays.num_videos, size=clips)
    starts = [int(rng.integers(arrays.lengths[v] - CLIP_FRAMES + 1)) for v in videos]
    picks = iter(zip(videos.tolist(), starts, strict=True))
    clip_ms = timed(lambda: arrays.clip(*next(picks), CLIP_FRAMES), clips)
    draws = iter(rng.integers(arrays.num_items, size=(batches, BATCH_FRAMES)))
    batch_ms = timed(lambda: arrays.items(next(draws)), batches)
    draws = iter(rng.integers(arrays.num_items, size=(batches, BATCH_FRAMES)))
    single_ms = timed(lambda: [arrays.items([index]) for index in next(draws)], batches)
    return [clip_ms, batch_ms, single_ms]


def measure(content: list[np.ndarray], folder: Path, args: argparse.Namespace
            ) -> dict[str, Result]:
    """Write the content with every codec, then time reads in interleaved rounds."""
    found = {codec.name: codec for codec in codecs()}
    results = {name: write(folder / f"{index}.h5", codec, content)
               for index, (name, codec) in enumerate(found.items())}
    arrays = {name: VideoArrays(folder / f"{index}.h5") for index, name in enumerate(found)}
    for name in found:
        read_round(arrays[name], 0, 10, 2)
    for repeat in range(args.repeats):
        for name in found:
            times = read_round(arrays[name], repeat + 1, args.clips, args.batches)
            for series, value in zip((results[name].clip_ms, results[name].batch_ms,
                                      results[name].single_ms), times, strict=True):
                series.append(value)
    return results


def report(title: str, results: dict[str, Result], png: float) -> None:
    """Print one content's table, each codec against raw."""
    raw = results["raw"]
    raw_times = [statistics.median(series) for series in (raw.clip_ms, raw.batch_ms,
                                                           raw.single_ms)]
    print(f"\n{title}: PNG (Pillow) {png:,.0f} B/frame; raw {raw.bytes_per_frame:,.0f} B/frame")
    print(f"{'codec':34s} {'B/frame':>7s} {'size':>5s} {'write':>6s} {'clip ms':>8s} {'×raw':>5s} "
          f"{'batch ms':>8s} {'×raw':>5s} {'1 by 1':>7s} {'×raw':>5s} {'adopt':>5s}")
    for name, result in results.items():
        times = [statistics.median(series) for series in (result.clip_ms, result.batch_ms,
                                                           result.single_ms)]
        ratios = [time_ms / raw_ms for time_ms, raw_ms in zip(times, raw_times, strict=True)]
        size = result.bytes_per_frame / raw.bytes_per_frame
        meets = size <= 2 / 3 and ratios[0] <= 1.1 and ratios[1] <= 1.1
        columns = " ".join(f"{time_ms:8.3f} {ratio:5.2f}" for time_ms, ratio in
                           zip(times, ratios, strict=True))
        print(f"{name:34s} {result.bytes_per_frame:7,.0f} {size:5.2f} "
              f"{result.write_ms_per_frame:6.3f} {columns} {'yes' if meets else 'no':>5s}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=4, help="videos per content")
    parser.add_argument("--frames", type=int, default=300, help="frames per video (10 s)")
    parser.add_argument("--clips", type=int, default=100, help="random clips per round")
    parser.add_argument("--batches", type=int, default=5, help="random batches per round")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(machine())
    print(f"h5py {h5py.__version__} (HDF5 {h5py.version.hdf5_version}), hdf5plugin "
          f"{hdf5plugin.version if hdf5plugin else 'not installed: only h5py filters measured'}")
    sources = {
        "natural (synthetic scene, 240p H.264 -> 64x64)": partial(
            camera_videos, canvas=scene_canvas, view=1.0),
        "photo (grace_hopper.jpg, 240p H.264 -> 64x64)": partial(
            camera_videos, canvas=photo_canvas, view=0.7),
        "demo (bouncing shapes)": demo_videos,
    }
    with tempfile.TemporaryDirectory(prefix="lvt-storage-") as scratch:
        for index, (title, make) in enumerate(sources.items()):
            folder = Path(scratch) / str(index)
            folder.mkdir()
            content = make(folder, args.videos, args.frames, args.seed)
            results = measure(content, folder, args)
            report(f"{title}, {args.videos} videos x {args.frames} frames", results,
                   png_bytes(content))
    batch = np.zeros((BATCH_FRAMES, SIZE, SIZE, 3), np.uint8)
    convert_ms = timed(lambda: frames_to_images(batch, torch.device("cpu")), 50)
    print(f"\nsize: B/frame against raw (criterion: at most 0.67); write: ms per frame; clip: "
          f"one random {CLIP_FRAMES}-frame clip; batch: {BATCH_FRAMES} random frames in one "
          f"`items` call (the VQ-VAE's read); 1 by 1: the same read one frame per call; ×raw: "
          f"against raw (criterion: at most 1.10 for clip and batch); medians of {args.repeats} "
          f"interleaved rounds of {args.clips} clips and {args.batches} batches. For scale: "
          f"frames_to_images of a batch on the CPU takes {convert_ms:.3f} ms.")


if __name__ == "__main__":
    sys.exit(main())
