"""Sampled videos for people to look at: PNG frames, GIFs with the priming frames marked."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from lvt.atomic import atomic_path
from lvt.data.frames import read_frames
from lvt.errors import InputError

PRIME_MARK = np.array([230, 60, 40], dtype=np.uint8)
"""Border colour of priming frames (given, not generated)."""


def mark_priming(video: np.ndarray, n_prime: int, border: int = 2) -> np.ndarray:
    """Copy of uint8 `video` (T, H, W, 3) with a coloured border around its first n_prime frames."""
    marked = video.copy()
    for frame in marked[:n_prime]:
        frame[:border], frame[-border:] = PRIME_MARK, PRIME_MARK
        frame[:, :border], frame[:, -border:] = PRIME_MARK, PRIME_MARK
    return marked


def write_png_frames(video: np.ndarray, folder: Path) -> None:
    """Frames as folder/0.png, 1.png, ... (the reference's layout)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(video):
        with atomic_path(folder / f"{index}.png") as tmp:
            Image.fromarray(frame).save(tmp, format="PNG")


UNKNOWN_RATE_FPS = 10.0
"""The rate a GIF plays at when its video's frame rate is unknown (recorded as 0)."""
MIN_GIF_DELAY = 2
"""The shortest frame delay in GIF's hundredths of a second that browsers honour; they play
shorter ones at 10, so rates above 50 fps play at 50."""


def gif_delays(frames: int, fps: float) -> list[int]:
    """Per-frame delays in ms for a GIF of `frames` frames at `fps` (0: unknown).

    GIF counts delays in hundredths of a second, so each is a multiple of 10 ms chosen so that
    frame k starts at k / fps rounded to that unit: 30 fps plays as 30, 40, 30 ms, ... and
    keeps its pace instead of drifting to 33 fps.
    """
    rate = fps if fps > 0 else UNKNOWN_RATE_FPS
    starts = [round(100 * k / rate) for k in range(frames + 1)]
    return [10 * max(end - start, MIN_GIF_DELAY) for start, end in itertools.pairwise(starts)]


def write_gif(video: np.ndarray, path: Path, fps: float, scale: int = 2) -> None:
    """An endlessly looping GIF at the video's frame rate (see `gif_delays`), enlarged `scale`
    times with nearest-neighbour pixels."""
    frames = [
        Image.fromarray(frame).resize(
            (frame.shape[1] * scale, frame.shape[0] * scale), Image.Resampling.NEAREST
        )
        for frame in video
    ]
    with atomic_path(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                       duration=gif_delays(len(frames), fps), loop=0)


def side_by_side(*videos: np.ndarray, gap: int = 2) -> np.ndarray:
    """Videos of equal shape (T, H, W, 3) next to each other, separated by white columns."""
    frames, height = videos[0].shape[:2]
    spacer = np.full((frames, height, gap, 3), 255, dtype=np.uint8)
    parts: list[np.ndarray] = []
    for video in videos:
        parts += [video, spacer]
    return np.concatenate(parts[:-1], axis=2)


def _frame_number(path: Path) -> tuple[int, str]:
    digits = re.findall(r"\d+", path.stem)
    return (int(digits[-1]) if digits else -1, path.name)


def load_priming_frames(source: Path, count: int, size: int) -> np.ndarray:
    """The first `count` frames (count, size, size, 3) uint8 of a PNG folder or a video file.

    PNGs are taken in the order of the number in their names and must already be size×size
    (as the reference's generate_videos.py required); a video is resized and center-cropped.
    """
    if source.is_dir():
        paths = sorted(source.glob("*.png"), key=_frame_number)[:count]
        frames = []
        for path in paths:
            try:
                with Image.open(path) as image:
                    frame = np.asarray(image.convert("RGB"))
            except (OSError, UnidentifiedImageError) as error:
                raise InputError(f"{path}: not a readable image ({error})") from error
            if frame.shape[:2] != (size, size):
                raise InputError(f"{path}: frame is {frame.shape[1]}x{frame.shape[0]}, "
                                 f"the models take {size}x{size}")
            frames.append(frame)
        found = np.stack(frames) if frames else np.zeros((0, size, size, 3), np.uint8)
    elif source.is_file():
        found = read_frames(source, None, size)[0][:count]
    else:
        raise InputError(f"{source}: no such file or folder")
    if len(found) < count:
        raise InputError(f"{source}: {len(found)} priming frame(s), {count} needed")
    return found
