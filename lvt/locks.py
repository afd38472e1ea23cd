"""One writer per output: a stage holds an exclusive lock on every path it writes while it runs.

A job whose wrapper died can leave its Python stage running as an orphan; a re-run of the same
job must not write the same outputs beside it. The lock is a POSIX record lock (`lockf`, which
NFS supports through its lock manager) on a hidden sibling `.lock-<name>` that also says who holds
it. The lock file is removed on release; a process killed while holding it leaves the file, but
not the lock, so the next writer takes it over.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from lvt.atomic import is_disk_full
from lvt.errors import DiskSpaceError, InputError


class LockedError(InputError):
    """Another process is writing the same output."""


def lock_file(path: str | os.PathLike[str]) -> Path:
    """The hidden sibling that guards writes to `path`."""
    target = Path(path)
    return target.with_name(f".lock-{target.name}")


def _holder() -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    return f"pid {os.getpid()} on {socket.gethostname()} since {started} ({program})\n"


@contextmanager
def hold_lock(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the write lock of `path` for the block; LockedError naming the holder if taken."""
    guard = lock_file(path)
    guard.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(guard, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 4096).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise LockedError(f"{path}: is being written by {holder}; wait for it to finish or "
                              "stop it before running this stage again") from None
        # A releasing holder unlinks the file; a lock taken on the unlinked file guards nothing.
        if _same_file(fd, guard):
            break
        os.close(fd)
    try:
        try:
            os.ftruncate(fd, 0)
            os.write(fd, _holder().encode())
        except OSError as error:
            if is_disk_full(error):
                raise DiskSpaceError(f"{path}: no space left on the device, not even for the "
                                     f"few bytes of its lock file {guard}") from error
            raise
        yield guard
    finally:
        guard.unlink(missing_ok=True)
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


@contextmanager
def hold_locks(paths: Sequence[str | os.PathLike[str]]) -> Iterator[None]:
    """Hold the write locks of all `paths` for the block."""
    with ExitStack() as stack:
        for path in sorted({Path(p) for p in paths}):
            stack.enter_context(hold_lock(path))
        yield
