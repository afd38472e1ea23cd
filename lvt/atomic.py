"""Write outputs under a temporary name and rename them into place only once complete.

A job that fails half-way then leaves nothing a later stage could mistake for a good output. A
full disk is reported as a DiskSpaceError naming the output, and stages that write much check the
free space before they start (`require_free_space`).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lvt.errors import DiskSpaceError

TEMPORARY = re.compile(r"\.tmp-\d+-(?P<name>.+)")
"""The name `atomic_path` gives a temporary: `.tmp-<pid>-<final name>`."""

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(error: BaseException) -> bool:
    """Whether `error` says the file system (or the user's quota) is full."""
    return isinstance(error, OSError) and error.errno in NO_SPACE


def _size(path: Path) -> int:
    if path.is_dir() and not path.is_symlink():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def human_bytes(count: float) -> str:
    """`count` bytes in the largest binary unit that keeps it at least 1 (e.g. '1.5 GiB')."""
    if count < 1024:
        return f"{count:.0f} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        count /= 1024
        if count < 1024 or unit == "TiB":
            break
    return f"{count:.1f} {unit}"


def free_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes free to this user on the file system that holds (or would hold) `path`."""
    existing = Path(path).absolute()
    while not existing.exists():
        existing = existing.parent
    return shutil.disk_usage(existing).free


def require_free_space(path: str | os.PathLike[str], needed: int, what: str) -> None:
    """DiskSpaceError unless the file system of `path` has `needed` bytes free for `what`."""
    free = free_bytes(path)
    if free < needed:
        raise DiskSpaceError(f"{path}: needs about {human_bytes(needed)} for {what}, but only "
                             f"{human_bytes(free)} is free there; free space or move results/")


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling of `path` (same suffix); move it onto `path` if the block succeeds.

    The temporary may be a file or a directory. On any exception it is removed and nothing
    appears at `path`; a full disk becomes a DiskSpaceError naming `path`.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".tmp-{os.getpid()}-{final.name}")
    try:
        yield tmp
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException as error:
        written = _size(tmp)
        _remove(tmp)
        if is_disk_full(error):
            raise DiskSpaceError(
                f"{final}: no space left on the device after writing {human_bytes(written)} "
                f"({human_bytes(free_bytes(final))} free); the partial file was removed"
            ) from error
        raise


def remove_leftover_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Delete the temporaries that killed writers of `path` left: beside it under its name or
    that of a hidden companion (`.<kind>-<name>`, such as a progress file), and inside it if it
    is a folder that is written file by file; return what was deleted.

    Only safe while holding `path`'s write lock (lvt.locks), which no other live writer can hold.
    """
    final = Path(path)
    companion = re.compile(rf"(\.[a-z]+-)?{re.escape(final.name)}")
    beside = final.parent.iterdir() if final.parent.is_dir() else ()
    inside = final.iterdir() if final.is_dir() else ()
    leftovers = [
        *(entry for entry in beside
          if (match := TEMPORARY.fullmatch(entry.name)) and companion.fullmatch(match["name"])),
        *(entry for entry in inside if TEMPORARY.fullmatch(entry.name)),
    ]
    for entry in leftovers:
        _remove(entry)
    return leftovers


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Atomically write a binary file."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Atomically write a text file."""
    write_bytes(path, text.encode())


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Atomically write pretty-printed JSON."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
