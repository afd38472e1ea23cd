"""HDF5 files of videos: the packed video arrays (frames, later VQ-VAE codes) and frame shards.

A video array file holds many videos of equally shaped items back to back:

    <name>     (F, *item_shape) items of all videos, CHUNK_ITEMS items per chunk, resizable
    offsets    (V + 1,) int64, video i is <name>[offsets[i]:offsets[i + 1]]
    video_ids  (V,) utf-8 strings, "<source id>@<start>-<end>s"
    fps        optional (V,) float64, each video's frame rate (0 if unknown), with
    source_size  (V, 2) int32, the width and height of each source video's frames before they
               were cropped and resized (0, 0 if unknown); both are written or neither
    extras     optional further per-item arrays (F, ...) indexed by the same offsets, e.g. BAIR's
               actions; read one with VideoArrays(path, name=<extra>)
    attributes given by the writer's caller, plus lvt_version

Small chunks mean reading a random clip touches little more than its own items. A frame shard is
the intermediate a `frames` job writes: videos of different sizes, one dataset each, plus the
rows of its manifest with their status.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Self

import h5py
import numpy as np
import numpy.typing as npt

import lvt
from lvt.atomic import atomic_path
from lvt.data.sources import SourceRow, format_manifest, format_seconds, parse_manifest
from lvt.errors import InputError

OFFSETS = "offsets"
VIDEO_IDS = "video_ids"
MANIFEST = "manifest"
VIDEOS = "videos"
FPS = "fps"
SOURCE_SIZE = "source_size"


def dataset_video_id(row: SourceRow) -> str:
    """The id a video gets in a dataset file: its source id and the window it was cut to."""
    return f"{row.video_id}@{format_seconds(row.start)}-{format_seconds(row.end)}s"


class _AtomicHDF5Writer:
    """An HDF5 file written under a temporary name and renamed into place when closed cleanly.

    Use as a context manager; if the block raises, nothing appears at `path`.
    """

    def __init__(self, path: str | os.PathLike[str], attrs: Mapping[str, Any] | None) -> None:
        self.path = Path(path)
        self._initial_attrs = {**(attrs or {}), "lvt_version": lvt.__version__}
        self._file: h5py.File
        self._stack = ExitStack()

    def __enter__(self) -> Self:
        with ExitStack() as stack:
            tmp = stack.enter_context(atomic_path(self.path))
            self._file = stack.enter_context(h5py.File(tmp, "w"))
            self._file.attrs.update(self._initial_attrs)
            self._start()
            self._stack = stack.pop_all()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: Any) -> None:
        if exc_type is not None:
            self._stack.__exit__(exc_type, *exc_info)
            return
        with self._stack:
            self._finish()

    @property
    def attrs(self) -> h5py.AttributeManager:
        """The file's attributes, for values only known once videos were written."""
        return self._file.attrs

    def _start(self) -> None:
        """Lay out the new file."""

    def _finish(self) -> None:
        """Write what is only known at the end."""


CHUNK_ITEMS = 16
"""Items (frames, code grids) per HDF5 chunk: a training clip spans one or two chunks. Measured on
64x64 frames against one frame per chunk: writing took 0.009 instead of 0.024 ms per frame, and
reading a random 16-frame clip 0.07 instead of 0.11 ms."""


class VideoArraysWriter(_AtomicHDF5Writer):
    """Append videos of equally shaped items to a video array file (see the module docstring).

    The item shape is `item_shape` or, if None, that of the first video added. `extras` maps the
    name of each further per-item array to its (dtype, item shape); every video then brings them.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        name: str = "frames",
        dtype: npt.DTypeLike = np.uint8,
        attrs: Mapping[str, Any] | None = None,
        item_shape: Sequence[int] | None = None,
        extras: Mapping[str, tuple[npt.DTypeLike, Sequence[int]]] | None = None,
    ) -> None:
        super().__init__(path, attrs)
        self.name = name
        self.dtype = np.dtype(dtype)
        self.item_shape = tuple(item_shape) if item_shape is not None else None
        self.extras = {key: (np.dtype(kind), tuple(shape)) for key, (kind, shape) in
                       (extras or {}).items()}
        self._items: h5py.Dataset | None = None
        self._extra_items: dict[str, h5py.Dataset] = {}
        self._offsets = [0]
        self._ids: list[str] = []
        self._seen: set[str] = set()
        self._fps: list[float] = []
        self._sizes: list[tuple[int, int]] = []

    def _create_items(self, item_shape: tuple[int, ...]) -> h5py.Dataset:
        return self._file.create_dataset(
            self.name,
            shape=(0, *item_shape),
            maxshape=(None, *item_shape),
            chunks=(CHUNK_ITEMS, *item_shape),
            dtype=self.dtype,
        )

    def _start(self) -> None:
        for key, (kind, shape) in self.extras.items():
            self._extra_items[key] = self._file.create_dataset(
                key, shape=(0, *shape), maxshape=(None, *shape), chunks=(1024, *shape), dtype=kind
            )

    def add(
        self,
        video_id: str,
        items: np.ndarray,
        extras: Mapping[str, np.ndarray] | None = None,
        fps: float | None = None,
        source_size: tuple[int, int] | None = None,
    ) -> None:
        """Append one video: (length > 0, *item_shape) items of the writer's dtype.

        `extras` holds the video's (length, *shape) array for every extra the writer was made with.
        `fps` and `source_size` (width, height) are its frame rate and source frame size: given
        for every video of a file or for none.
        """
        extras = extras or {}
        if (fps is None) != (source_size is None) or (
            self._ids and (fps is not None) != bool(self._fps)
        ):
            raise ValueError(f"video {video_id}: fps and source_size are needed for every video "
                             "or for none")
        if set(extras) != set(self.extras):
            raise ValueError(f"video {video_id}: extras {sorted(extras)}, expected "
                             f"{sorted(self.extras)}")
        for key, (_, shape) in self.extras.items():
            if extras[key].shape != (len(items), *shape):
                raise ValueError(f"video {video_id}: {key} of shape {extras[key].shape}, "
                                 f"expected {(len(items), *shape)}")
        if self._items is None:
            self._items = self._create_items(self.item_shape or tuple(items.shape[1:]))
        expected = self._items.shape[1:]
        if items.ndim != len(expected) + 1 or items.shape[1:] != expected or not len(items):
            raise ValueError(
                f"video {video_id}: items of shape {items.shape}, expected (n > 0, *{expected})"
            )
        if items.dtype != self.dtype:
            raise ValueError(f"video {video_id}: dtype {items.dtype}, expected {self.dtype}")
        if video_id in self._seen:
            raise ValueError(f"video {video_id}: already written")
        start = self._offsets[-1]
        self._items.resize(start + len(items), axis=0)
        self._items[start:] = items
        for key, data in self._extra_items.items():
            data.resize(start + len(items), axis=0)
            data[start:] = extras[key]
        self._offsets.append(start + len(items))
        self._ids.append(video_id)
        self._seen.add(video_id)
        if fps is not None and source_size is not None:
            self._fps.append(fps)
            self._sizes.append(source_size)

    def _finish(self) -> None:
        if self._items is None:
            if self.item_shape is None:
                raise ValueError(f"{self.path}: no video added and no item_shape given")
            self._create_items(self.item_shape)
        self._file.create_dataset(OFFSETS, data=np.asarray(self._offsets, dtype=np.int64))
        self._file.create_dataset(VIDEO_IDS, data=self._ids, dtype=h5py.string_dtype("utf-8"))
        if self._fps:
            write_video_metadata(self._file, self._fps, self._sizes)


def write_video_metadata(
    file: h5py.File, fps: npt.ArrayLike, source_size: npt.ArrayLike
) -> None:
    """Write the per-video `fps` (V,) and `source_size` (V, 2) arrays of a video array file."""
    rates = np.asarray(fps, dtype=np.float64)
    sizes = np.asarray(source_size, dtype=np.int32).reshape(-1, 2)
    if len(rates) != len(sizes) or not np.all(np.isfinite(rates) & (rates >= 0)) or np.any(
        sizes < 0
    ):
        raise ValueError(f"{file.filename}: {len(rates)} frame rates and {len(sizes)} sizes, "
                         "expected one non-negative (finite) value of each per video")
    file.create_dataset(FPS, data=rates)
    file.create_dataset(SOURCE_SIZE, data=sizes)


def copy_video_metadata(source: VideoArrays, file: h5py.File) -> None:
    """Write `source`'s per-video arrays into `file` (another file of its videos, e.g. codes).

    Nothing is written for a source without them, so no rate is claimed that was not recorded.
    """
    if source.per_video_metadata:
        write_video_metadata(file, source.fps, source.source_size)


def _read_video_metadata(
    file: h5py.File, path: Path, count: int
) -> tuple[np.ndarray, np.ndarray, bool]:
    """The per-video frame rates and source sizes of an open video array file, and whether the
    file records them. A file without them (written before they were, or by BAIR's packer, whose
    videos are all of one rate) gets its `fps` attribute for every video and sizes (0, 0)."""
    if (FPS in file) != (SOURCE_SIZE in file):
        raise InputError(f"{path}: has only one of the datasets {FPS!r} and {SOURCE_SIZE!r}")
    if FPS not in file:
        rate = float(file.attrs.get(FPS, 0.0))
        return np.full(count, rate), np.zeros((count, 2), np.int32), False
    rates, sizes = file[FPS][:], file[SOURCE_SIZE][:]
    if rates.shape != (count,) or sizes.shape != (count, 2):
        raise InputError(f"{path}: {FPS} of shape {rates.shape} and {SOURCE_SIZE} of shape "
                         f"{sizes.shape}, expected ({count},) and ({count}, 2)")
    return rates.astype(np.float64), sizes.astype(np.int32), True


def _open_hdf5(path: Path, required: Sequence[str]) -> h5py.File:
    """Open an HDF5 file for reading; InputError names it if it is missing or lacks `required`."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if not h5py.is_hdf5(path):
        raise InputError(f"{path}: not an HDF5 file")
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise InputError(f"{path}: cannot open the HDF5 file ({error})") from error
    missing = [name for name in required if name not in file]
    if missing:
        present = sorted(file.keys())
        file.close()
        raise InputError(f"{path}: missing dataset(s) {missing}, has {present}")
    return file


class VideoArrays:
    """Read a video array file; the data handle opens lazily, once per process.

    The index (ids, offsets, attributes, per-video `fps` and `source_size`; see
    `_read_video_metadata` for files without them) is read when the object is made, so errors
    show up early; item reads open the file on first use in each process, so an instance can be
    handed to DataLoader workers.
    """

    def __init__(self, path: str | os.PathLike[str], name: str = "frames") -> None:
        self.path = Path(path)
        self.name = name
        with _open_hdf5(self.path, [name, OFFSETS, VIDEO_IDS]) as file:
            items = file[name]
            self.item_shape: tuple[int, ...] = items.shape[1:]
            self.dtype = items.dtype
            self.offsets = file[OFFSETS][:]
            self.video_ids: list[str] = list(file[VIDEO_IDS].asstr()[:])
            self.attrs: dict[str, Any] = dict(file.attrs)
            self.fps, self.source_size, self.per_video_metadata = _read_video_metadata(
                file, self.path, len(self.video_ids)
            )
            count = items.shape[0]
        if (
            len(self.offsets) != len(self.video_ids) + 1
            or self.offsets[0] != 0
            or self.offsets[-1] != count
            or np.any(np.diff(self.offsets) < 0)
        ):
            raise InputError(f"{self.path}: {OFFSETS} do not index the {count} items of '{name}'")
        self._file: h5py.File | None = None
        self._pid: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_file": None, "_pid": None}

    @property
    def lengths(self) -> np.ndarray:
        """Items per video."""
        return np.diff(self.offsets)

    @property
    def num_videos(self) -> int:
        """Number of videos."""
        return len(self.video_ids)

    @property
    def num_items(self) -> int:
        """Items of all videos together."""
        return int(self.offsets[-1])

    def _items(self) -> h5py.Dataset:
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file[self.name]

    def video(self, index: int) -> np.ndarray:
        """All items of video `index`."""
        return self._items()[self.offsets[index] : self.offsets[index + 1]]

    def clip(self, index: int, start: int, length: int) -> np.ndarray:
        """Items start .. start + length - 1 of video `index`."""
        video_length = int(self.lengths[index])
        if start < 0 or length < 1 or start + length > video_length:
            raise IndexError(
                f"clip [{start}, {start + length}) outside video {index} of {video_length} items"
            )
        first = int(self.offsets[index]) + start
        return self._items()[first : first + length]

    def items(self, indices: npt.ArrayLike) -> np.ndarray:
        """Items at global `indices` (counted over all videos; any order, repeats allowed).

        Each run of consecutive indices is read as one slice: h5py's selection of scattered
        points costs far more than the reads (a VQ-VAE batch of 32 random frames: 85 ms that
        way, 1.7 ms as slices; benchmarks/README.md).
        """
        wanted = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(wanted) and (wanted.min() < 0 or wanted.max() >= self.num_items):
            raise IndexError(f"item indices outside 0 .. {self.num_items - 1}")
        unique, inverse = np.unique(wanted, return_inverse=True)
        items = self._items()
        if not len(unique):
            return items[:0]
        runs = np.split(unique, np.flatnonzero(np.diff(unique) != 1) + 1)
        return np.concatenate([items[run[0] : run[-1] + 1] for run in runs])[inverse]

    def close(self) -> None:
        """Close this process's handle (reopened on the next read)."""
        if self._file is not None:
            self._file.close()
            self._file = None


class FrameShardWriter(_AtomicHDF5Writer):
    """Write a frame shard: the rows of one frames job and the frames of its ok videos.

    `size` is the side of its square frames, kept in the file's attrs.
    """

    def __init__(self, path: str | os.PathLike[str], size: int) -> None:
        super().__init__(path, {"size": size})
        self.size = size
        self._rows: list[SourceRow] = []

    def _start(self) -> None:
        self._file.create_group(VIDEOS)

    def add(
        self,
        row: SourceRow,
        frames: np.ndarray | None = None,
        fps: float = 0.0,
        source_size: tuple[int, int] = (0, 0),
    ) -> None:
        """Record a row; an ok row comes with its (T, size, size, 3) frames, their frame rate
        and the (width, height) of the source's frames."""
        if (row.status == "ok") != (frames is not None):
            raise ValueError(f"video {row.video_id}: frames are needed exactly for ok rows")
        if frames is not None:
            if frames.shape[1:] != (self.size, self.size, 3):
                raise ValueError(f"video {row.video_id}: frames of shape {frames.shape}, "
                                 f"expected (T, {self.size}, {self.size}, 3)")
            data = self._file.create_dataset(f"{VIDEOS}/{row.video_id}", data=frames)
            data.attrs["fps"] = fps
            data.attrs[SOURCE_SIZE] = source_size
        self._rows.append(row)

    def _finish(self) -> None:
        self._file.create_dataset(
            MANIFEST, data=format_manifest(self._rows), dtype=h5py.string_dtype("utf-8")
        )


class FrameShard:
    """Read a frame shard: its manifest rows and the frames of its ok videos."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file = _open_hdf5(self.path, [MANIFEST, VIDEOS])
        try:
            self.rows = parse_manifest(self._file[MANIFEST].asstr()[()], f"{self.path}:{MANIFEST}")
            if "size" not in self._file.attrs:
                raise InputError(f"{self.path}: not a frame shard (no size attribute)")
            self.size = int(self._file.attrs["size"])
        except BaseException:
            self._file.close()
            raise

    def __enter__(self) -> FrameShard:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def _video(self, video_id: str) -> h5py.Dataset:
        key = f"{VIDEOS}/{video_id}"
        if key not in self._file:
            raise InputError(f"{self.path}: no frames for video {video_id}")
        return self._file[key]

    def frames(self, video_id: str) -> tuple[np.ndarray, float]:
        """The frames of an ok video and their frame rate."""
        data = self._video(video_id)
        return data[:], float(data.attrs["fps"])

    def frame_count(self, video_id: str) -> int:
        """How many frames an ok video has, without reading them."""
        return len(self._video(video_id))

    def source_size(self, video_id: str) -> tuple[int, int]:
        """The (width, height) of an ok video's source frames; (0, 0) if the shard lacks it."""
        width, height = self._file[f"{VIDEOS}/{video_id}"].attrs.get(SOURCE_SIZE, (0, 0))
        return int(width), int(height)
