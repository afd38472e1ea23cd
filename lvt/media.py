"""Sampled videos for people to look at: PNG frames, GIFs and contact sheets (PNG) with the
priming frames marked."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

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


def write_sample(
    path: Path, video: np.ndarray, n_prime: int, fps: float, real: np.ndarray | None = None
) -> None:
    """A sampled video as PNG frames in folder `path` and a GIF `path`.gif at `fps`, its
    priming frames marked; the GIF shows the `real` clip beside the sample when given."""
    write_png_frames(video, path)
    shown = mark_priming(video, n_prime)
    if real is not None:
        shown = side_by_side(mark_priming(real, n_prime), shown)
    write_gif(shown, path.with_name(f"{path.name}.gif"), fps)


SHEET_GAP = 2
"""White pixels between the frames of a contact sheet."""
SHEET_LABEL_WIDTH = 72
"""Pixels left of each row of a contact sheet for its label."""
SHEET_TEXT_HEIGHT = 14
"""Pixels of a line of text on a contact sheet (frame numbers, a group's title)."""
SHEET_TEXT = (30, 41, 59)
"""Colour of the text on a contact sheet."""

SheetRow = tuple[str, np.ndarray]
"""A labelled row of a contact sheet: its label and a uint8 video (T, H, W, 3)."""


def contact_sheet(groups: Sequence[tuple[str, Sequence[SheetRow]]], n_prime: int) -> np.ndarray:
    """One uint8 image (H, W, 3) of videos as rows of frames, time running left to right.

    Each group (say, a test video) has a title line (none if empty) over its labelled rows (say,
    the real clip and each sample); the first `n_prime` frames of every row are framed as in the
    GIFs (`mark_priming`); frame numbers head the columns. A row shorter than the longest one
    leaves its last cells blank.
    """
    videos = [video for _, rows in groups for _, video in rows]
    if not videos or any(video.ndim != 4 or video.shape[1:] != videos[0].shape[1:]
                         for video in videos):
        raise ValueError("a contact sheet needs videos (T, H, W, 3) of one frame size, got "
                         f"{[video.shape for video in videos]}")
    height, width = videos[0].shape[1:3]
    columns = max(len(video) for video in videos)
    pitch_x, pitch_y = width + SHEET_GAP, height + SHEET_GAP
    titles = sum(1 for title, _ in groups if title)
    sheet = Image.new("RGB", (SHEET_LABEL_WIDTH + columns * pitch_x,
                              SHEET_TEXT_HEIGHT * (1 + titles) + len(videos) * pitch_y), "white")
    draw = ImageDraw.Draw(sheet)
    for column in range(columns):
        draw.text((SHEET_LABEL_WIDTH + column * pitch_x, 0), str(column), fill=SHEET_TEXT)
    y = SHEET_TEXT_HEIGHT
    for title, rows in groups:
        if title:
            draw.text((0, y), title, fill=SHEET_TEXT)
            y += SHEET_TEXT_HEIGHT
        for label, video in rows:
            draw.text((0, y + height // 2 - SHEET_TEXT_HEIGHT // 2), label, fill=SHEET_TEXT)
            for column, frame in enumerate(mark_priming(video, n_prime)):
                sheet.paste(Image.fromarray(frame), (SHEET_LABEL_WIDTH + column * pitch_x, y))
            y += pitch_y
    return np.asarray(sheet)


def write_contact_sheet(
    path: Path, groups: Sequence[tuple[str, Sequence[SheetRow]]], n_prime: int
) -> None:
    """`contact_sheet(groups, n_prime)` as a PNG file, written atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(contact_sheet(groups, n_prime)).save(tmp, format="PNG")


def _frame_number(path: Path) -> tuple[int, str]:
    digits = re.findall(r"\d+", path.stem)
    return (int(digits[-1]) if digits else -1, path.name)


def load_priming_frames(
    source: Path, count: int, size: int, at_most: int | None = None
) -> np.ndarray:
    """The first frames (N, size, size, 3) uint8 of a PNG folder or a video file: the `count`
    priming frames, and up to `at_most` in all where the source has more (the real continuation,
    to show beside the samples).

    PNGs are taken in the order of the number in their names and must already be size×size
    (as the reference's scripts/generate_videos.py required); a video is resized and center-cropped.
    """
    wanted = max(count, at_most or 0)
    if source.is_dir():
        paths = sorted(source.glob("*.png"), key=_frame_number)[:wanted]
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
        found = read_frames(source, None, size)[0][:wanted]
    else:
        raise InputError(f"{source}: no such file or folder")
    if len(found) < count:
        raise InputError(f"{source}: {len(found)} priming frame(s), {count} needed")
    return found
