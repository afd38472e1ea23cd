"""Decode a clip into an RGB array: optional frame-rate resampling, resize, center crop."""

from __future__ import annotations

import os
from collections.abc import Iterator

import av
import numpy as np

from lvt.data.sources import av_error_message
from lvt.errors import InputError

INTERPOLATION = "LANCZOS"
"""swscale filter for resizing; its kernel widens when shrinking, so it also antialiases."""
TIME_TOLERANCE = 1e-6
"""Seconds by which a frame may miss an output timestamp and still count as at or before it."""


def read_frames(path: str | os.PathLike[str], fps: float | None, short_side: int) -> np.ndarray:
    """Decode a video into a (T, H, W, 3) uint8 RGB array whose short side is `short_side`.

    The long side is scaled by the same factor and rounded. With `fps`, output frame k shows the
    last decoded frame whose timestamp is at or before k / fps (times counted from the first
    frame), for every k / fps before the end of the last frame; so 30 -> 10 fps keeps every third
    frame, and 10 -> 30 fps repeats each frame three times. Without `fps`, every frame is kept.
    Raises InputError naming the file if it cannot be decoded or holds no frame.
    """
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            decoded = container.decode(stream)
            if fps is not None:
                rate = stream.average_rate or stream.guessed_rate
                decoded = _resample(decoded, fps, rate, str(path))
            frames = [_resize_rgb(frame, short_side) for frame in decoded]
    except (av.FFmpegError, OSError) as error:
        raise InputError(f"{path}: cannot decode the video ({av_error_message(error)})") from error
    if not frames:
        raise InputError(f"{path}: no decodable video frame")
    return np.stack(frames)


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
    end = last_time + (1 / float(native_rate) if native_rate else 1 / fps)
    while index / fps < end - TIME_TOLERANCE:
        yield previous
        index += 1


def _resize_rgb(frame: av.VideoFrame, short_side: int) -> np.ndarray:
    """Convert a frame to RGB, scaled so that its short side is `short_side`."""
    scale = short_side / min(frame.width, frame.height)
    width = short_side if frame.width <= frame.height else round(frame.width * scale)
    height = short_side if frame.height < frame.width else round(frame.height * scale)
    rgb = frame.reformat(width, height, format="rgb24", interpolation=INTERPOLATION)
    return rgb.to_ndarray()


def center_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """The central size x size window of (T, H, W, C) frames (T, size, size, C)."""
    height, width = frames.shape[1:3]
    if height < size or width < size:
        raise ValueError(f"cannot crop {size}x{size} out of {width}x{height} frames")
    top, left = (height - size) // 2, (width - size) // 2
    return frames[:, top : top + size, left : left + size]
