"""HDF5 outputs written batch by batch, so that a killed job resumes where it stopped.

A long stage (`fvd_sample`, `extract_codes`) lays out its output in full in a hidden sibling
`.partial-<name>`: every dataset at its final size, the batched ones allocated on disk at once, so
that writing a batch touches only that batch's bytes and never the file's structure. Beside the
data the file holds a record, the group `progress`:

    made_from      JSON of everything the output depends on (model hashes, settings, inputs)
    batches_done   (1,) int64, how many batches are complete

Each finished batch is written and flushed to disk, then its count; a kill between the two only
redoes that batch. A re-run resumes from the first incomplete batch; a progress file made from
anything else, or one that cannot be read, is discarded (the log says which and why) and the
output started afresh. Once every batch is in, the record is removed and the file renamed onto
the output, so the output appears complete or not at all.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self

import h5py
import numpy as np
import numpy.typing as npt

import lvt
from lvt.atomic import atomic_path, require_free_space

log = logging.getLogger(__name__)

RECORD = "progress"
MADE_FROM = f"{RECORD}/made_from"
BATCHES_DONE = f"{RECORD}/batches_done"


def progress_path(out: str | os.PathLike[str]) -> Path:
    """The hidden sibling that holds `out` while it is being written."""
    final = Path(out)
    return final.with_name(f".partial-{final.name}")


def file_stamp(path: str | os.PathLike[str]) -> dict[str, int]:
    """Size and modification time of an input file: every rewrite of it changes them.

    Cheaper than hashing a dataset of many gigabytes, which the stages rewrite rather than edit.
    """
    status = Path(path).stat()
    return {"bytes": status.st_size, "mtime_ns": status.st_mtime_ns}


def preallocate(
    file: h5py.File,
    name: str,
    shape: tuple[int, ...],
    dtype: npt.DTypeLike,
    chunk_rows: int,
) -> h5py.Dataset:
    """A dataset (rows, ...) of `chunk_rows` rows per chunk, resizable like an appended one, its
    space allocated now so that filling it in batches leaves the file's structure unchanged.
    DiskSpaceError first if the file system lacks that space."""
    needed = math.prod(shape) * np.dtype(dtype).itemsize
    require_free_space(file.filename, needed,
                       f"its {name} ({' x '.join(map(str, shape))} {np.dtype(dtype)})")
    plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    plist.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    return file.create_dataset(name, shape=shape, maxshape=(None, *shape[1:]), dtype=dtype,
                               chunks=(chunk_rows, *shape[1:]), dcpl=plist)


class BatchedOutput:
    """Write the HDF5 file `out` in `batches` batches, resuming a progress file of the same
    `made_from` (a JSON-able mapping of everything the output depends on).

    `lay_out(file)` creates every dataset and attribute of the output (batched ones with
    `preallocate`); `write` then fills one batch at a time, from batch `done` on. Leaving the
    block cleanly after the last batch renames the file onto `out`; an exception keeps the
    progress for the next run.
    """

    def __init__(
        self,
        out: str | os.PathLike[str],
        made_from: Mapping[str, Any],
        batches: int,
        lay_out: Callable[[h5py.File], None],
    ) -> None:
        self.out = Path(out)
        self.path = progress_path(out)
        self.batches = batches
        self.done = 0
        record = {**made_from, "batches": batches, "lvt_version": lvt.__version__}
        self._made_from = json.loads(json.dumps(record))  # as the file will hold it
        self._lay_out = lay_out
        self._file: h5py.File
        self._started = time.monotonic()

    def __enter__(self) -> Self:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            problem = self._problem()
            if problem:
                log.warning("discarding %s: %s; starting afresh", self.path, problem)
                self.path.unlink()
        if not self.path.exists():
            self._create()
        self._file = h5py.File(self.path, "r+")
        self.done = int(self._file[BATCHES_DONE][0])
        if self.done:
            log.info("resuming %s from batch %d of %d", self.out, self.done + 1, self.batches)
        else:
            log.info("writing %s in %d batches", self.out, self.batches)
        self._started = time.monotonic()
        return self

    def _problem(self) -> str | None:
        """Why the progress file cannot be resumed, or None if it can."""
        try:
            with h5py.File(self.path, "r") as file:
                found = json.loads(file[MADE_FROM].asstr()[()])
                done = int(file[BATCHES_DONE][0])
        except Exception as error:  # whatever the damage, the file is of no use
            return f"unreadable ({type(error).__name__}: {error})"
        if not isinstance(found, dict):
            return f"unreadable ({MADE_FROM} is not a mapping)"
        if found != self._made_from:
            keys = sorted(key for key in {*found, *self._made_from}
                          if found.get(key) != self._made_from.get(key))
            return f"made from other inputs or settings (differs in {', '.join(keys)})"
        if not 0 <= done <= self.batches:
            return f"unreadable ({done} of {self.batches} batches done)"
        return None

    def _create(self) -> None:
        """A new progress file with the output's layout and a record of no batch done."""
        with atomic_path(self.path) as tmp, h5py.File(tmp, "w") as file:
            self._lay_out(file)
            file.create_dataset(MADE_FROM, data=json.dumps(self._made_from, sort_keys=True))
            file.create_dataset(BATCHES_DONE, data=np.zeros(1, dtype=np.int64))

    def _sync(self) -> None:
        """Flush everything written so far to the disk itself."""
        self._file.flush()
        os.fsync(self._file.id.get_vfd_handle())

    def write(self, start: int, rows: Mapping[str, np.ndarray]) -> None:
        """Write the next batch: each named dataset's `rows` from row `start` on; then count it."""
        if self.done >= self.batches:
            raise ValueError(f"{self.out}: all {self.batches} batches are already written")
        for name, values in rows.items():
            self._file[name][start:start + len(values)] = values
        self._sync()
        self._file[BATCHES_DONE][0] = self.done + 1
        self._sync()
        self.done += 1
        elapsed = time.monotonic() - self._started
        self._started += elapsed
        log.info("batch %d of %d written to %s (%.1f s)", self.done, self.batches, self.out,
                 elapsed)

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: Any) -> None:
        if exc_type is not None:
            self._file.close()
            return
        if self.done < self.batches:
            self._file.close()
            raise RuntimeError(f"{self.out}: left with {self.done} of {self.batches} batches")
        del self._file[RECORD]
        self._file.close()
        os.replace(self.path, self.out)
