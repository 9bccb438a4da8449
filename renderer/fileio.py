"""Writing files so that readers only ever see a complete file, and one writer at a time."""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

LOCK_NAME = ".dossier.lock"
TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")  # what atomic_writer names its files


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename."""
    with atomic_writer(path) as stream:
        stream.write(data)


@contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """A binary stream that becomes `path` when the block ends, and nothing if it fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        Path(temporary).chmod(0o666 & ~_umask())  # mkstemp makes 0600; a plain file gets 0644
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def exclusive(
    folder: Path, leftovers_in: Iterable[Path] = (), say: Callable[[str], None] = print
) -> Iterator[None]:
    """One command at a time in `folder` (the build cache): a second one waits, saying for whom.

    Once the lock is held, temporary files that a killed command left in `folder` (and in the
    other `leftovers_in` folders, not below them) are removed: nobody else is writing them.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / LOCK_NAME).open("a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another dossier command"
            say(f"{folder}: waiting for {holder} to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        _note_holder(handle, f"process {os.getpid()}")
        _remove_leftovers(folder.rglob(".*.tmp"))
        for other in leftovers_in:
            _remove_leftovers(other.glob(".*.tmp"))
        try:
            yield
        finally:
            _note_holder(handle, "")


def _note_holder(handle, text: str) -> None:
    handle.seek(0)
    handle.truncate()
    handle.write(text)
    handle.flush()


def _remove_leftovers(paths: Iterable[Path]) -> None:
    for path in paths:
        if TEMPORARY.fullmatch(path.name) and path.is_file():
            path.unlink(missing_ok=True)
