"""BAIR robot pushing: download the tarball, unpack its TFRecords, read them without TensorFlow.

The tarball holds `softmotion30_44k/{train,test}/*.tfrecords`. Each record is a serialized
`tf.train.Example` of one 30-step trajectory: `{i}/image_aux1/encoded` (raw 64×64×3 RGB bytes, not
JPEG), `{i}/image_main/encoded`, `{i}/action` (4 floats) and `{i}/endeffector_pos` (3 floats).
As in the reference (https://github.com/rakhimovv/lvt/blob/0899c21/scripts/convert_bair.py),
only the aux1 camera is kept; actions and end-effector positions are kept when present. A video's
id is `<tfrecord stem>/<k>` with k the 1-based position of its record in the file, the folder
layout of the reference's converted PNGs (`{stem}/{k}/{i}.png`).

The TFRecord framing is read here directly: per record a little-endian uint64 length, the masked
CRC32C of those 8 bytes, the data and the masked CRC32C of the data. CRC32C comes from
`google-crc32c` (a C extension, about 13 GB/s here; pure Python managed 10 MB/s, minutes per file).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import shutil
import struct
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path, PurePosixPath
from typing import Any

import google_crc32c
import h5py
import numpy as np
from tqdm import tqdm

from lvt.atomic import atomic_path
from lvt.data.dataset import OFFSETS, VIDEO_IDS, VideoArrays, VideoArraysWriter
from lvt.data.sources import SourceRow, Split, write_manifest
from lvt.errors import InputError

log = logging.getLogger(__name__)

FRAME_SHAPE = (64, 64, 3)
FPS = 10.0
"""BAIR stores no frame rate; 10 fps is the rate commonly given for its camera (and the FVD
protocol's clips), used for the dataset's fps attribute and the time windows in its report."""
TFRECORD_MEMBER = re.compile(r"softmotion30_44k/(train|test)/\w[\w.-]*\.tfrecords", re.ASCII)
"""The tar members unpacked. Their file names are strict (ASCII letters, digits and `_.-`, no
leading `.` or `-`) because they become job wildcards, file names and command-line arguments."""
_ANY_TFRECORD = re.compile(r"softmotion30_44k/(train|test)/[^/]+\.tfrecords")
EXTRAS = {"actions": ("action", 4), "endeffector_pos": ("endeffector_pos", 3)}
"""Per-frame arrays kept besides the frames: name in the dataset -> (feature suffix, width)."""

_CHUNK = 1 << 20
_MASK_DELTA = 0xA282EAD8


# --- download ------------------------------------------------------------------------------------


def download(
    url: str,
    target: str | os.PathLike[str],
    expected_size: int | None,
    progress: bool = True,
    attempts: int = 3,
    retry_wait: float = 10.0,
    timeout: float = 60.0,
) -> Path:
    """Fetch `url` to `target`, resuming `target.part` with an HTTP Range request.

    A broken connection is retried `attempts` times (waiting `retry_wait`, doubled each time), each
    retry resuming where the last stopped; the partial file also survives the process, so a later
    call resumes it too. A server that ignores the Range header (200 instead of 206) restarts the
    transfer. `target` appears only once complete and, unless `expected_size` is None, of that
    size. Raises InputError for a wrong URL or size, RuntimeError when the transfer keeps failing.
    """
    target = Path(target)
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, attempts + 1):
        try:
            _transfer(url, part, expected_size, progress, timeout)
            break
        except _TransferError as error:
            if attempt == attempts:
                raise RuntimeError(
                    f"{url}: download to {part} failed {attempts} times, last: {error}; "
                    "the partial file is kept and a rerun resumes it"
                ) from error
            wait = retry_wait * 2 ** (attempt - 1)
            log.warning("%s: %s; resuming in %.0f s (attempt %d of %d)",
                        url, error, wait, attempt + 1, attempts)
            time.sleep(wait)
    size = part.stat().st_size
    if expected_size is not None and size != expected_size:
        part.unlink()
        raise InputError(f"{url}: downloaded {size} bytes to {part}, expected {expected_size} "
                         "(source.bair.size); the partial file was removed")
    os.replace(part, target)
    return target


class _TransferError(Exception):
    """A transfer broke off or the server failed in a way worth retrying."""


def _transfer(
    url: str, part: Path, expected_size: int | None, progress: bool, timeout: float
) -> None:
    """One request: append to `part` from its size to the end of the resource."""
    offset = part.stat().st_size if part.exists() else 0
    if expected_size is not None and offset >= expected_size:
        if offset > expected_size:
            part.unlink()
            raise _TransferError(f"{part} is longer than {expected_size} bytes, restarting")
        return
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            return  # nothing left to fetch: the size check decides
        if 400 <= error.code < 500:
            raise InputError(f"{url}: HTTP {error.code} {error.reason} (source.bair.url, "
                             f"downloading to {part})") from error
        raise _TransferError(f"HTTP {error.code} {error.reason}") from error
    except (urllib.error.URLError, OSError, HTTPException) as error:
        raise _TransferError(str(getattr(error, "reason", error))) from error
    with response:
        if response.status == 206:
            first, total = _content_range(response.headers.get("Content-Range", ""))
            if first != offset:
                raise _TransferError(f"server resumed at byte {first}, not {offset}")
        else:
            if offset:
                log.warning("%s: server ignored the Range request, restarting from 0", url)
            offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None else None
        if expected_size is not None and total is not None and total != expected_size:
            raise InputError(f"{url}: the server offers {total} bytes, expected {expected_size} "
                             "(source.bair.size)")
        bar = tqdm(total=total or expected_size, initial=offset, unit="B", unit_scale=True,
                   unit_divisor=1024, desc=part.name, disable=not progress,
                   mininterval=0.5 if sys.stderr.isatty() else 30.0)
        with bar, part.open("ab" if offset else "wb") as out:
            try:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    bar.update(len(chunk))
            except (OSError, HTTPException) as error:
                raise _TransferError(
                    f"connection broke after {out.tell()} bytes ({error!r})") from error
            if total is not None and out.tell() < total:
                raise _TransferError(f"connection closed after {out.tell()} of {total} bytes")


def _content_range(header: str) -> tuple[int, int | None]:
    """First byte and total size from `bytes first-last/total` (total may be `*`)."""
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", header.strip())
    if not match:
        raise _TransferError(f"unusable Content-Range {header!r}")
    return int(match[1]), None if match[2] == "*" else int(match[2])


# --- unpack --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unpacked:
    """What `extract_tfrecords` did: the files written (sorted) and every other member with the
    reason it was skipped, in tar order."""

    files: list[Path]
    skipped: list[tuple[str, str]]


def extract_tfrecords(
    tar_path: str | os.PathLike[str], out_dir: str | os.PathLike[str]
) -> Unpacked:
    """Unpack only the TFRECORD_MEMBER members to `out_dir/{split}/`.

    The tar is read as a stream (one pass over 32 GB). Every other member (other files, folders,
    links, unsafe paths, TFRecord names with other characters) is skipped and listed with the
    reason. Each file appears atomically.
    """
    out = Path(out_dir)
    written: list[Path] = []
    skipped: list[tuple[str, str]] = []
    try:
        with tarfile.open(tar_path, "r|*") as tar, tqdm(
            total=os.path.getsize(tar_path), unit="B", unit_scale=True, unit_divisor=1024,
            desc="unpacking", mininterval=0.5 if sys.stderr.isatty() else 30.0,
        ) as bar:
            for member in tar:
                bar.update(member.size)
                name, reason = _tfrecord_name(member)
                if name is None:
                    skipped.append((member.name, reason))
                    continue
                split, file_name = PurePosixPath(name).parts[1:]
                source = tar.extractfile(member)
                assert source is not None  # a regular file member
                with atomic_path(out / split / file_name) as tmp, tmp.open("wb") as sink:
                    shutil.copyfileobj(source, sink, _CHUNK)
                written.append(out / split / file_name)
    except (tarfile.TarError, EOFError) as error:
        raise InputError(f"{tar_path}: not a readable tar file ({error})") from error
    if not written:
        raise InputError(f"{tar_path}: no member matches {TFRECORD_MEMBER.pattern}")
    return Unpacked(sorted(written), skipped)


def tfrecord_stems(folder: str | os.PathLike[str], split: str) -> list[str]:
    """Sorted names (without .tfrecords) of the unpacked TFRecord files of a split."""
    return sorted(
        path.name.removesuffix(".tfrecords") for path in Path(folder, split).glob("*.tfrecords")
    )


def _tfrecord_name(member: tarfile.TarInfo) -> tuple[str | None, str]:
    """(the member's normalised name, "") if it is to be unpacked, else (None, why not)."""
    parts = PurePosixPath(member.name).parts
    if member.name.startswith("/") or ".." in parts:
        return None, "unsafe path (absolute or with '..')"
    if not member.isfile():
        return None, "not a regular file"
    name = "/".join(part for part in parts if part != ".")
    if TFRECORD_MEMBER.fullmatch(name):
        return name, ""
    if _ANY_TFRECORD.fullmatch(name):
        return None, ("file name has characters other than ASCII letters, digits and '_.-', "
                      "or starts with '.' or '-'")
    return None, "not a softmotion30_44k/{train,test}/*.tfrecords file"


# --- TFRecord framing ----------------------------------------------------------------------------


def masked_crc32c(data: bytes | memoryview) -> int:
    """TFRecord's masked CRC32C: the CRC rotated right by 15 bits plus a constant."""
    crc = google_crc32c.value(bytes(data))
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def read_tfrecord(path: str | os.PathLike[str]) -> Iterator[tuple[int, bytes]]:
    """Yield (byte offset, data) of each record, checking both CRCs.

    A bad CRC or a truncated record raises InputError naming the file and the record's offset.
    """
    with open(path, "rb") as file:
        offset = 0
        while header := file.read(12):
            if len(header) < 12:
                raise InputError(f"{path}: record at byte {offset}: truncated header")
            length, length_crc = struct.unpack("<QI", header)
            if masked_crc32c(header[:8]) != length_crc:
                raise InputError(f"{path}: record at byte {offset}: length CRC mismatch")
            data = file.read(length)
            footer = file.read(4)
            if len(data) < length or len(footer) < 4:
                raise InputError(f"{path}: record at byte {offset}: truncated, "
                                 f"{len(data)} of {length} data bytes")
            if masked_crc32c(data) != struct.unpack("<I", footer)[0]:
                raise InputError(f"{path}: record at byte {offset}: data CRC mismatch")
            yield offset, data
            offset += 16 + length


# --- tf.train.Example ----------------------------------------------------------------------------

Feature = list[bytes] | np.ndarray
"""A feature's values: byte strings, or a float32 / int64 array."""


def parse_example(data: bytes | memoryview) -> dict[str, Feature]:
    """Decode a serialized tf.train.Example into {key: values}.

    Example{Features features = 1}; Features{map<string, Feature> feature = 1}, each map entry
    {key = 1, value = 2}; Feature is one of bytes_list = 1, float_list = 2, int64_list = 3, each
    `repeated value = 1` (numbers packed or not). Raises ValueError on malformed input.
    """
    features: dict[str, Feature] = {}
    for features_message in _messages(memoryview(data), 1):
        for entry in _messages(features_message, 1):
            key = b"".join(bytes(part) for part in _messages(entry, 1)).decode()
            feature = b"".join(bytes(part) for part in _messages(entry, 2))
            features[key] = _parse_feature(memoryview(feature))
    return features


def _parse_feature(message: memoryview) -> Feature:
    """The values of a Feature message (an empty list if it holds no list)."""
    values: Feature = []
    for number, wire, value in _fields(message):
        if wire != 2 or number not in (1, 2, 3):
            continue
        if number == 1:
            values = [bytes(item) for item in _messages(value, 1)]
        else:
            values = _numbers(value, np.float32 if number == 2 else np.int64)
    return values


def _numbers(message: memoryview, dtype: type[np.float32 | np.int64]) -> np.ndarray:
    """The `repeated value = 1` of a FloatList (fixed32) or Int64List (varint), packed or not."""
    parts = []
    for number, wire, value in _fields(message):
        if number != 1:
            continue
        if dtype is np.float32 and wire in (2, 5):
            parts.append(np.frombuffer(value, "<f4"))
        elif dtype is np.int64 and wire == 2:
            parts.append(np.array(list(_varints(value)), np.uint64).view(np.int64))
        elif dtype is np.int64 and wire == 0:
            parts.append(np.array([value], np.uint64).view(np.int64))
        else:
            raise ValueError(f"malformed Example: a {dtype.__name__} value of wire type {wire}")
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)


def _messages(buffer: memoryview, wanted: int) -> Iterator[memoryview]:
    """The values of length-delimited field `wanted` (sub-messages, strings)."""
    for number, wire, value in _fields(buffer):
        if number != wanted:
            continue
        if wire != 2:
            raise ValueError(f"malformed Example: field {number} of wire type {wire}")
        yield value


def _fields(buffer: memoryview) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of each field: an int for a varint (0), a memoryview for
    fixed64 (1), length-delimited (2) and fixed32 (5) fields."""
    position = 0
    while position < len(buffer):
        tag, position = _varint(buffer, position)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, position = _varint(buffer, position)
        elif wire in (1, 2, 5):
            if wire == 2:
                size, position = _varint(buffer, position)
            else:
                size = 8 if wire == 1 else 4
            if position + size > len(buffer):
                raise ValueError("malformed Example: field runs past the end")
            value, position = buffer[position : position + size], position + size
        else:
            raise ValueError(f"malformed Example: wire type {wire}")
        yield number, wire, value


def _varint(buffer: memoryview, position: int) -> tuple[int, int]:
    """The varint at `position` and the position after it."""
    result = shift = 0
    while True:
        if position >= len(buffer) or shift > 63:
            raise ValueError("malformed Example: truncated varint")
        byte = buffer[position]
        result |= (byte & 0x7F) << shift
        position += 1
        if not byte & 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, position
        shift += 7


def _varints(buffer: memoryview) -> Iterator[int]:
    position = 0
    while position < len(buffer):
        value, position = _varint(buffer, position)
        yield value


# --- BAIR examples -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BairExample:
    """One trajectory: frames (T, 64, 64, 3) uint8 and the per-frame extras it holds."""

    video_id: str
    offset: int
    frames: np.ndarray
    extras: dict[str, np.ndarray]


def read_bair_examples(path: str | os.PathLike[str]) -> Iterator[BairExample]:
    """The trajectories of one BAIR TFRecord file, in file order (ids `<stem>/<k>`, k from 1).

    Raises InputError naming the file and the record's offset for a corrupt record or one that is
    not a BAIR example (no `0/image_aux1/encoded`, a frame that is not 64×64×3 bytes, an extra
    present for only some steps).
    """
    stem = Path(path).name.removesuffix(".tfrecords")
    for index, (offset, data) in enumerate(read_tfrecord(path), start=1):
        try:
            frames, extras = _bair_arrays(parse_example(data))
        except (ValueError, UnicodeDecodeError) as error:
            raise InputError(f"{path}: record at byte {offset}: {error}") from error
        yield BairExample(f"{stem}/{index}", offset, frames, extras)


def _bair_arrays(features: dict[str, Feature]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Frames and extras of one parsed example."""
    steps = 0
    while f"{steps}/image_aux1/encoded" in features:
        steps += 1
    if not steps:
        raise ValueError("no 0/image_aux1/encoded feature: not a BAIR example")
    frame_bytes = int(np.prod(FRAME_SHAPE))
    frames = []
    for step in range(steps):
        values = features[f"{step}/image_aux1/encoded"]
        if not isinstance(values, list) or len(values) != 1 or len(values[0]) != frame_bytes:
            raise ValueError(f"{step}/image_aux1/encoded is not one string of {frame_bytes} bytes")
        frames.append(np.frombuffer(values[0], np.uint8).reshape(FRAME_SHAPE))
    extras = {}
    for name, (suffix, width) in EXTRAS.items():
        keys = [f"{step}/{suffix}" for step in range(steps)]
        present = [key in features for key in keys]
        if not any(present):
            continue
        if not all(present):
            raise ValueError(f"{suffix} is present for only {sum(present)} of {steps} steps")
        rows = [np.asarray(features[key], np.float32) for key in keys]
        if any(row.shape != (width,) for row in rows):
            raise ValueError(f"{suffix} does not hold {width} numbers per step")
        extras[name] = np.stack(rows)
    return np.stack(frames), extras


# --- shards and packed splits --------------------------------------------------------------------


def convert_tfrecord(path: str | os.PathLike[str], out: str | os.PathLike[str]) -> int:
    """Pack one TFRecord file into a shard: a video array file (lvt.data.dataset) with extras.

    The shard's `tfrecord` attribute names its source. Returns the number of videos.
    """
    examples = read_bair_examples(path)
    first = next(examples, None)
    extras = _extras_layout(first.extras if first else [])
    attrs = {"source": "bair", "tfrecord": str(path)}
    count = 0
    with VideoArraysWriter(out, "frames", np.uint8, attrs, FRAME_SHAPE, extras) as writer:
        for example in itertools.chain([first] if first else [], examples):
            if set(example.extras) != set(extras):
                raise InputError(f"{path}: record at byte {example.offset}: extras "
                                 f"{sorted(example.extras)}, the file's first record has "
                                 f"{sorted(extras)}")
            writer.add(example.video_id, example.frames, example.extras)
            count += 1
    return count


def pack_split(
    shards: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    report: str | os.PathLike[str],
    split: Split,
) -> list[SourceRow]:
    """Merge a split's shards into its dataset `out` and list every video in `report` (TSV).

    Videos are ordered by TFRecord file name, then by position in the file, whatever order the
    shards come in. Extras are kept when every non-empty shard has them. Attributes: fps (FPS),
    size 64, source "bair", split. Raises InputError naming the shards if none holds a video.
    """
    indexes = sorted((VideoArrays(path) for path in shards),
                     key=lambda index: Path(index.attrs["tfrecord"]).name)
    filled = [index for index in indexes if index.num_videos]
    if not filled:
        raise InputError(f"{', '.join(map(str, shards))}: no BAIR video in the {split} shards")
    kept = set.intersection(*(set(EXTRAS) & _extra_names(index.path) for index in filled))
    for name in sorted(set(EXTRAS) - kept):
        log.warning("%s: not every TFRecord file has %s; the dataset leaves them out", split, name)
    attrs = {"fps": FPS, "size": FRAME_SHAPE[0], "source": "bair", "split": split}
    extras = _extras_layout(sorted(kept))
    rows = []
    with VideoArraysWriter(out, "frames", np.uint8, attrs, FRAME_SHAPE, extras) as writer:
        for index in filled:
            extra_arrays = {name: VideoArrays(index.path, name) for name in extras}
            for video, video_id in enumerate(index.video_ids):
                frames = index.video(video)
                writer.add(video_id, frames,
                           {name: array.video(video) for name, array in extra_arrays.items()})
                rows.append(SourceRow(video_id, index.attrs["tfrecord"], split, 0.0,
                                      len(frames) / FPS))
            for array in (index, *extra_arrays.values()):
                array.close()
    write_manifest(report, rows)
    return rows


def _extras_layout(names: Iterable[str]) -> dict[str, tuple[type[np.float32], tuple[int]]]:
    """The VideoArraysWriter `extras` argument for the named extras."""
    return {name: (np.float32, (EXTRAS[name][1],)) for name in names}


def _extra_names(path: Path) -> set[str]:
    """The datasets of a shard besides its frames and index."""
    with h5py.File(path, "r") as file:
        return set(file) - {"frames", OFFSETS, VIDEO_IDS}
