"""Decode a clip into square RGB frames: window, optional frame-rate resampling, crop, resize;
and a shard of trimmed clips into a frame shard.

As the reference did (https://github.com/rakhimovv/lvt/blob/0899c21/scripts/convert_kinetics.py),
each frame's central square (side = its short side) is cut out first, at full resolution, and
then resized with Lanczos. One FFmpeg filter graph does both and the conversion to RGB: its
crop only moves the planes' pointers, so swscale reads the square alone.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import logging
import math
import os
import platform
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import av
import av.filter
import numpy as np
from av.video.stream import VideoStream

from lvt.atomic import require_free_space
from lvt.data.dataset import FrameShardWriter
from lvt.data.sources import SourceRow
from lvt.data.video_io import TIME_TOLERANCE, av_error_message, open_video
from lvt.errors import InputError, problem_with

log = logging.getLogger(__name__)

SCALE_FLAGS = "lanczos+full_chroma_int"
"""swscale filter for resizing; its kernel widens when shrinking, so it also antialiases. Full
chroma interpolation gives the RGB output its own chroma resolution; without it swscale keeps
chroma at half the output width, which blurs colour edges of frames this small."""
CHROMA_LOCATION = "left"
"""Where the chroma samples of 4:2:0 frames sit: H.264's and MPEG-2's default, level with the left
luma sample of each pair. The scale filter takes an unspecified location as centred; with this
one its frames are those of swscale's own default (tested)."""
SCALED_FORMAT = "gbrp"
"""Planar RGB, the format swscale resizes into: its planar output path is the fast one. Measured on
240x240 squares of H.264 frames, a Lanczos resize to 64x64 took 0.074 ms into gbrp and 0.155 ms
into packed rgb24."""
RGB_FORMAT = "rgb24"
"""Packed RGB, as (H, W, 3) arrays; swscale's unscaled converter repacks the resized gbrp frame
into it (same bytes)."""
SCALE_THREADS = 1
"""swscale threads: frames this small scale faster on one thread, and jobs run in parallel."""
AV_CPU_FLAG_SLOW_GATHER = 0x2000000
"""libavutil's x86 CPU flag (cpu.h) that steers FFmpeg's SIMD dispatch away from AVX2 gathers."""


def expected_frames(path: str | os.PathLike[str], seconds: float, fps: float | None) -> int:
    """About how many frames `seconds` of a video give at `fps` (None: the video's own rate), read
    from its headers; 0 if it cannot be opened, which decoding it will report."""
    try:
        with open_video(path) as (_, stream):
            rate = fps or _stream_rate(stream) or 0.0
    except (av.FFmpegError, OSError, InputError):
        return 0
    return math.ceil(seconds * rate)


def write_frame_shard(
    out: str | os.PathLike[str],
    clips: Sequence[tuple[SourceRow, Path]],
    fps: float | None,
    size: int,
) -> list[SourceRow]:
    """Decode each ok row's clip (`clips` pairs a clips manifest's rows with their clip files)
    into the frame shard `out`, written atomically (lvt.data.dataset.FrameShardWriter); return
    the rows it records.

    Only the frames of each row's window [start, end) are kept (a clip also holds frames around
    it, see lvt.data.clips), as `read_frames` makes them at `fps` and `size`, with their frame
    rate and the size of the clip's frames. A clip that cannot be decoded is recorded as
    `failed` with the reason and does not stop the others; rows that are not ok are recorded
    as they are. Raises DiskSpaceError before decoding if the frames would not fit.
    """
    expected = sum(expected_frames(clip, row.end - row.start, fps)
                   for row, clip in clips if row.status == "ok")
    require_free_space(out, expected * size * size * 3,
                       f"about {expected} frames of {size}x{size}")
    recorded = []
    with FrameShardWriter(out, size) as shard:
        for row, clip in clips:
            if row.status != "ok":
                shard.add(row)
                recorded.append(row)
                continue
            try:
                frames, frame_rate = read_frames(clip, fps, size, window=(row.start, row.end))
                source_size = frame_size(clip)
            except InputError as error:
                log.warning("%s", error)
                reason = problem_with(error, clip)
                failed = row.with_status("failed", f"frames: {reason}")
                shard.add(failed)
                recorded.append(failed)
                continue
            shard.add(row, frames, frame_rate, source_size)
            recorded.append(row)
    return recorded


def frame_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """The (width, height) of a video's frames as its stream stores them, read from its headers.

    Raises InputError naming the file if it cannot be opened.
    """
    try:
        with open_video(path) as (_, stream):
            return stream.codec_context.width, stream.codec_context.height
    except (av.FFmpegError, OSError) as error:
        raise InputError(f"{path}: cannot open the video ({av_error_message(error)})") from error


def read_frames(
    path: str | os.PathLike[str],
    fps: float | None,
    size: int,
    window: tuple[float, float] | None = None,
) -> tuple[np.ndarray, float]:
    """Decode a video into (T, size, size, 3) uint8 RGB frames, and their frame rate.

    Each frame is its central square (see the module doc) resized to size x size. With `window` =
    (start, end), only frames whose timestamps lie in [start, end) s are kept (a clip cut by
    `lvt.data.clips.trim`), and decoding stops at the first frame past it. With `fps`, output frame
    k shows the last kept frame whose timestamp is at or before k / fps (times counted from the
    first kept frame), for every k / fps before the end of the last one; so 30 -> 10 fps keeps
    every third frame, and 10 -> 30 fps repeats each frame three times. Without `fps`, every kept
    frame is output. The rate returned is `fps`, else the video's native rate (0 if unknown).
    Raises InputError naming the file if it cannot be decoded or holds no frame to keep.
    """
    _prefer_scalers_without_gathers()
    try:
        with open_video(path) as (container, stream):
            native_rate = _stream_rate(stream)
            decoded: Iterator[av.VideoFrame] = container.decode(stream)
            if window is not None:
                decoded = _window(decoded, *window, stream.time_base, str(path))
            if fps is not None:
                decoded = _resample(decoded, fps, native_rate, str(path))
            square = _CenterSquare(size)
            frames = [square(frame) for frame in decoded]
    except (av.FFmpegError, OSError) as error:
        raise InputError(f"{path}: cannot decode the video ({av_error_message(error)})") from error
    if not frames:
        raise InputError(f"{path}: no decodable video frame")
    return np.stack(frames), fps or native_rate or 0.0


def _stream_rate(stream: VideoStream) -> float | None:
    """A stream's average frame rate, or the one FFmpeg guesses, or None."""
    rate = stream.average_rate or stream.guessed_rate
    return float(rate) if rate else None


def _window(
    frames: Iterator[av.VideoFrame],
    start: float,
    end: float,
    time_base: Fraction | None,
    path: str,
) -> Iterator[av.VideoFrame]:
    """The frames whose timestamps lie in [start, end); stops at the first one past it.

    The bounds are compared in the stream's time base, which spares converting each frame's
    timestamp to seconds.
    """
    if not time_base:
        raise InputError(f"{path}: the video stream has no time base, cannot cut the window")
    first, stop = window_bounds(start, end, time_base)
    for frame in frames:
        if frame.pts is None:
            raise InputError(f"{path}: a frame has no timestamp, cannot cut the window")
        if frame.pts >= stop:
            return
        if frame.pts >= first:
            yield frame


def window_bounds(start: float, end: float, time_base: Fraction) -> tuple[float, float]:
    """[start, end) s as timestamps in `time_base`, widened by TIME_TOLERANCE at both ends."""
    return (start - TIME_TOLERANCE) / time_base, (end - TIME_TOLERANCE) / time_base


def _resample(
    frames: Iterator[av.VideoFrame], fps: float, native_rate: float | None, path: str
) -> Iterator[av.VideoFrame]:
    """Yield, for each timestamp k / fps, the last frame at or before it (see `read_frames`)."""
    previous = None
    first_time = last_time = 0.0
    index = 0
    for frame in frames:
        if frame.time is None:
            raise InputError(f"{path}: a frame has no timestamp, cannot resample the frame rate")
        if previous is None:
            first_time = frame.time
        last_time = frame.time - first_time
        while previous is not None and index / fps < last_time - TIME_TOLERANCE:
            yield previous
            index += 1
        previous = frame
    if previous is None:
        return
    end = last_time + (1 / native_rate if native_rate else 1 / fps)
    while index / fps < end - TIME_TOLERANCE:
        yield previous
        index += 1


class _CenterSquare:
    """Crop a frame to its central square and resize that to size x size RGB.

    The filter graph is rebuilt only when the frames' geometry changes: its swscale contexts'
    set-up (filter coefficients) costs more than scaling a frame.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._geometry: tuple[int, int, str] | None = None
        self._graph: av.filter.Graph | None = None

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        geometry = (frame.width, frame.height, frame.format.name)
        if geometry != self._geometry:
            self._graph, self._geometry = square_graph(*geometry, self.size), geometry
        self._graph.push(frame)
        return self._graph.pull().to_ndarray()


def square_graph(width: int, height: int, pixel_format: str, size: int) -> av.filter.Graph:
    """A filter graph that turns width x height frames into their central square, size x size RGB.

    The crop offsets are those of the reference's Pillow crop, (width - side) // 2 and
    (height - side) // 2; `exact` keeps odd offsets instead of rounding them to the chroma grid.
    """
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    graph = av.filter.Graph()
    resize = f"w={size}:h={size}:flags={SCALE_FLAGS}:in_chroma_loc={CHROMA_LOCATION}"
    chain = [
        graph.add_buffer(width=width, height=height, format=pixel_format, time_base=Fraction(1, 1)),
        graph.add("crop", f"w={side}:h={side}:x={left}:y={top}:exact=1"),
        graph.add("scale", f"{resize}:threads={SCALE_THREADS}"),
        graph.add("format", SCALED_FORMAT),
        graph.add("scale", f"threads={SCALE_THREADS}"),
        graph.add("format", RGB_FORMAT),
        graph.add("buffersink"),
    ]
    for upstream, downstream in itertools.pairwise(chain):
        upstream.link_to(downstream)
    graph.configure()
    return graph


@functools.cache
def _prefer_scalers_without_gathers() -> None:
    """Have swscale resize with its SSSE3 horizontal scaler rather than the AVX2 one (x86 only).

    FFmpeg takes the AVX2 scaler, built on gather loads, on every x86 CPU it does not mark as
    gathering slowly: it marks AMD's up to Zen 4 (family 19h) and Intel's up to Ice Lake (for the
    microcode against Gather Data Sampling), so the change is for newer ones. On the project's
    2-core AMD EPYC (Zen 5) VM the SSSE3 scaler resized 240x240 squares to 64x64 in 0.088 instead
    of 0.109 ms, 360x360 in 0.087 instead of 0.160 and 720x720 in 0.233 instead of 0.351, with the
    same bytes (FFmpeg tests its SIMD scalers for bit-exactness), and a 240p clip took 3% less CPU
    time from decoding to RGB arrays; on Intel's newer CPUs it is unmeasured. The flag is set once
    per process, in the libavutil PyAV loaded; where that library is not found, FFmpeg keeps its
    own choice.
    """
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return
    libavutil = _loaded_libavutil()
    if libavutil is not None:
        libavutil.av_force_cpu_flags(libavutil.av_get_cpu_flags() | AV_CPU_FLAG_SLOW_GATHER)


def _loaded_libavutil() -> ctypes.CDLL | None:
    """The libavutil this process has loaded (PyAV's own copy or the system's), on Linux."""
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return None
    for line in maps:
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and Path(fields[5]).name.startswith(("libavutil.so", "libavutil-")):
            libavutil = ctypes.CDLL(fields[5])
            libavutil.av_get_cpu_flags.restype = ctypes.c_int
            libavutil.av_force_cpu_flags.argtypes = [ctypes.c_int]
            return libavutil
    return None
