"""Decode a clip into square RGB frames: window, optional frame-rate resampling, crop, resize.

As the reference did (lvt-method.md 1.3), each frame's central square (side = its short side) is
cut out first, at full resolution, and then resized with Lanczos. The crop goes through FFmpeg's
crop filter, which only moves the planes' pointers; so swscale reads the square alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction

import av
import av.filter
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter
from av.video.stream import VideoStream

from lvt.data.sources import av_error_message
from lvt.errors import InputError

INTERPOLATION = Interpolation.LANCZOS | Interpolation.FULL_CHR_H_INT
"""swscale filter for resizing; its kernel widens when shrinking, so it also antialiases. Full
chroma interpolation gives the RGB output its own chroma resolution; without it swscale keeps
chroma at half the output width, which blurs colour edges of frames this small."""
SCALED_FORMAT = "gbrp"
"""Planar RGB, the format swscale resizes into: its planar output path is the fast one. Measured on
240x240 squares of H.264 frames, a Lanczos resize to 64x64 took 0.074 ms into gbrp and 0.155 ms
into packed rgb24."""
RGB_FORMAT = "rgb24"
"""Packed RGB, as (H, W, 3) arrays. The resized gbrp frame is repacked by swscale's unscaled
converter (same bytes), which with the array took 0.007 ms per 64x64 frame; interleaving the three
planes with numpy took 0.016 ms."""
DECODE_THREADS = 1
"""Decoder threads. Jobs run in parallel, one core each (the rules declare one thread), and
measured on 2 cores, frame threading cost up to a third more CPU time per frame."""
SCALE_THREADS = 1
"""swscale threads: frames this small scale faster on one thread, and jobs run in parallel."""
TIME_TOLERANCE = 1e-6
"""Seconds by which a timestamp may miss a boundary (an output time, a window's end) and still
count as on it."""


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
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.codec_context.thread_count = DECODE_THREADS
            native_rate = _stream_rate(stream)
            decoded: Iterator[av.VideoFrame] = container.decode(stream)
            if window is not None:
                decoded = _window(decoded, *window, str(path))
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
    frames: Iterator[av.VideoFrame], start: float, end: float, path: str
) -> Iterator[av.VideoFrame]:
    """The frames whose timestamps lie in [start, end); stops at the first one past it."""
    for frame in frames:
        if frame.time is None:
            raise InputError(f"{path}: a frame has no timestamp, cannot cut the window")
        if frame.time >= end - TIME_TOLERANCE:
            return
        if frame.time >= start - TIME_TOLERANCE:
            yield frame


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

    The crop graph is rebuilt only when the frames' geometry changes, and one reformatter per step
    (resize, repack) serves all frames: each keeps its swscale context, whose set-up (filter
    coefficients) costs more than scaling a frame.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._resizer = VideoReformatter()
        self._packer = VideoReformatter()
        self._geometry: tuple[int, int, str] | None = None
        self._graph: av.filter.Graph | None = None

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        geometry = (frame.width, frame.height, frame.format.name)
        if geometry != self._geometry:
            self._graph, self._geometry = _crop_graph(*geometry), geometry
        self._graph.push(frame)
        square = self._graph.pull()
        resized = self._resizer.reformat(
            square,
            self.size,
            self.size,
            format=SCALED_FORMAT,
            interpolation=INTERPOLATION,
            threads=SCALE_THREADS,
        )
        return self._packer.reformat(resized, format=RGB_FORMAT, threads=SCALE_THREADS).to_ndarray()


def _crop_graph(width: int, height: int, pixel_format: str) -> av.filter.Graph:
    """A filter graph that cuts the central square out of width x height frames.

    The offsets are those of the reference's Pillow crop, (width - side) // 2 and
    (height - side) // 2; `exact` keeps odd offsets instead of rounding them to the chroma grid.
    """
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    graph = av.filter.Graph()
    source = graph.add_buffer(
        width=width, height=height, format=pixel_format, time_base=Fraction(1, 1)
    )
    crop = graph.add("crop", f"w={side}:h={side}:x={left}:y={top}:exact=1")
    sink = graph.add("buffersink")
    source.link_to(crop)
    crop.link_to(sink)
    graph.configure()
    return graph
