"""The built-in demo dataset: coloured shapes bouncing around a dark frame, as real H.264 files.

The motion is deterministic (constant velocity, reflection at the walls, fixed depth order for
occlusion) and moderate, so a small model can learn to predict it, and every pixel depends only on
the seed, the split and the video's index. The files are lossless H.264: where nothing moves, the
pixels stay the same from frame to frame, so the codes of a still background do not flicker with
codec noise that no model could predict.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from lvt.atomic import atomic_path
from lvt.data.sources import SPLITS, SourceRow

PALETTE = np.array(
    [
        (230, 40, 40),  # red
        (40, 200, 60),  # green
        (50, 90, 240),  # blue
        (240, 220, 40),  # yellow
        (220, 50, 220),  # magenta
        (40, 220, 230),  # cyan
        (250, 140, 20),  # orange
        (235, 235, 235),  # white
    ],
    dtype=np.float32,
)
CRF = 0
"""Lossless: decoding gives back exactly the frames as converted to yuv420p. At CRF 18 about a
quarter of the pixels where nothing moved changed by a few levels from frame to frame, noise that
the transformer had to spend bits on (0.90 against 0.80 held-out bits per code, same training)."""
X264_OPTIONS = {"x264-params": "mbtree=0"}
"""Macroblock-tree rate control made libx264 (in PyAV 18's FFmpeg) give different bitstreams for
identical frames from run to run; without it the output is reproducible."""


@dataclass(frozen=True)
class Shape:
    """One moving shape; positions and velocities in pixels and pixels per second."""

    square: bool
    colour: np.ndarray
    half_size: float
    x: float
    y: float
    vx: float
    vy: float


@dataclass(frozen=True)
class SyntheticVideos:
    """What the demo videos show and how they are encoded: the `source.synthetic` settings
    (the schema holds their defaults and descriptions), and the keyframe interval.

    `shape_size` is the range of a shape's half-extent as a fraction of the frame height and
    `speed` that of its speed in frame heights per second; each shape draws both uniformly.
    `gop` is the keyframe interval in frames (None: one second), so that trimming has to cut
    inside a group of pictures.
    """

    train_videos: int
    test_videos: int
    seconds: float
    window_start: float
    window_seconds: float
    fps: float
    width: int
    height: int
    shapes: int
    seed: int
    shape_size: tuple[float, float]
    speed: tuple[float, float]
    gop: int | None = None

    def __post_init__(self) -> None:
        for name in ("shape_size", "speed"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def frame_count(self) -> int:
        """Frames of each video."""
        return round(self.seconds * self.fps)


def write_synthetic_videos(
    out_dir: str | os.PathLike[str], videos: SyntheticVideos
) -> list[SourceRow]:
    """Write `<out_dir>/synthetic-<split>-<index>.mp4` files and return their manifest rows.

    Each row's window is [window_start, window_start + window_seconds) clamped to the video's
    length. Width and height must be even (yuv420p).
    """
    width, height, fps = videos.width, videos.height, videos.fps
    if width % 2 or height % 2:
        raise ValueError(f"synthetic videos need an even width and height, got {width}x{height}")
    length = videos.frame_count / fps
    window_end = videos.window_start + videos.window_seconds
    start, end = min(videos.window_start, length), min(window_end, length)
    if videos.frame_count < 1 or start >= end:
        raise ValueError(
            f"the window [{videos.window_start}, {window_end}) s lies outside "
            f"videos of {videos.seconds} s"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for split, count in zip(SPLITS, (videos.train_videos, videos.test_videos), strict=True):
        for index in range(count):
            video_id = f"synthetic-{split}-{index:04d}"
            path = out / f"{video_id}.mp4"
            frames = render_video(videos, split, index)
            _encode(path, frames, fps, width, height, videos.gop or round(fps))
            rows.append(SourceRow(video_id, str(path), split, start, end))
    return rows


def render_video(videos: SyntheticVideos, split: str, index: int) -> Iterator[np.ndarray]:
    """The RGB frames (height, width, 3) uint8 of video `index` of `split`, before encoding."""
    rng = np.random.default_rng([videos.seed % 2**63, SPLITS.index(split), index])
    return _render(_random_scene(rng, videos), videos.frame_count, videos.fps, videos.width,
                   videos.height)


def _random_scene(
    rng: np.random.Generator, videos: SyntheticVideos
) -> tuple[np.ndarray, list[Shape]]:
    """A dark, vertically graded background and `videos.shapes` shapes with distinct colours."""
    width, height = videos.width, videos.height
    top = rng.uniform(10, 40, size=3)
    bottom = top + rng.uniform(5, 25, size=3)
    background = np.linspace(top, bottom, height, dtype=np.float32)[:, None, :]
    background = np.broadcast_to(background, (height, width, 3)).copy()
    colours = rng.permutation(len(PALETTE))
    shapes = []
    for i in range(videos.shapes):
        half_size = rng.uniform(*videos.shape_size) * height
        speed = rng.uniform(*videos.speed) * height
        angle = rng.uniform(0, 2 * np.pi)
        shapes.append(
            Shape(
                square=bool(rng.integers(2)),
                colour=PALETTE[colours[i % len(PALETTE)]],
                half_size=half_size,
                x=rng.uniform(half_size, max(width - half_size, half_size)),
                y=rng.uniform(half_size, max(height - half_size, half_size)),
                vx=speed * np.cos(angle),
                vy=speed * np.sin(angle),
            )
        )
    return background, shapes


def _bounce(start: float, velocity: float, time: float, low: float, high: float) -> float:
    """Position at `time` of a point moving at constant speed between two reflecting walls."""
    span = high - low
    if span <= 0:
        return (low + high) / 2
    travelled = (start - low + velocity * time) % (2 * span)
    return low + (travelled if travelled <= span else 2 * span - travelled)


def _render(
    scene: tuple[np.ndarray, list[Shape]], frames: int, fps: float, width: int, height: int
) -> Iterator[np.ndarray]:
    """Yield the RGB frames of a scene; edges are anti-aliased by pixel coverage."""
    background, shapes = scene
    for index in range(frames):
        time = index / fps
        image = background.copy()
        for shape in shapes:
            r = shape.half_size
            x = _bounce(shape.x, shape.vx, time, r, width - r)
            y = _bounce(shape.y, shape.vy, time, r, height - r)
            left, right = max(int(x - r) - 1, 0), min(int(x + r) + 2, width)
            top, bottom = max(int(y - r) - 1, 0), min(int(y + r) + 2, height)
            dx = np.arange(left, right, dtype=np.float32)[None, :] + 0.5 - x
            dy = np.arange(top, bottom, dtype=np.float32)[:, None] + 0.5 - y
            if shape.square:
                alpha = np.clip(r + 0.5 - np.abs(dx), 0, 1) * np.clip(r + 0.5 - np.abs(dy), 0, 1)
            else:
                alpha = np.clip(r + 0.5 - np.sqrt(dx * dx + dy * dy), 0, 1)
            alpha = alpha[..., None]
            patch = image[top:bottom, left:right]
            patch[:] = patch * (1 - alpha) + shape.colour * alpha
        yield np.round(image).astype(np.uint8)


def _encode(
    path: Path, frames: Iterable[np.ndarray], fps: float, width: int, height: int, gop: int
) -> None:
    """Encode RGB frames as lossless H.264 (yuv420p, fast start) into `path`, atomically."""
    rate = Fraction(str(fps)).limit_denominator(1001 * 1000)
    with atomic_path(path) as tmp, av.open(str(tmp), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.options = {
            "crf": str(CRF),
            "preset": "veryfast",
            "sc_threshold": "0",
            **X264_OPTIONS,
        }
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
