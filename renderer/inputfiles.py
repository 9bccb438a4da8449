"""Reading input files: regular files only, never more than a size limit, others refused unread."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .problems import InvalidInput, Problem

KINDS = {
    stat.S_ISDIR: "a folder",
    stat.S_ISFIFO: "a FIFO",
    stat.S_ISCHR: "a character device",
    stat.S_ISBLK: "a block device",
    stat.S_ISSOCK: "a socket",
}
# O_NONBLOCK: should the file become a FIFO between the check and the open, opening it
# does not wait for a writer; the open file is checked again before anything is read.
OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def read_bounded(path: Path, limit: int, what: str) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; raises InvalidInput otherwise.

    `what` names the files in messages ("records"). A FIFO, a device, a socket or a folder,
    or a link to one, is refused without being opened for reading; a larger file is refused
    after reading at most `limit` + 1 bytes of it.
    """
    try:
        _refuse_special(path, path.stat(), what)
        handle = os.open(path, OPEN_FLAGS)
    except OSError as error:
        raise InvalidInput([_cannot_read(path, error)]) from None
    try:
        status = os.fstat(handle)
        _refuse_special(path, status, what)
        if status.st_size > limit:
            _refuse_large(path, f"{status.st_size / 1e6:.1f} MB", limit, what)
        data = _read_at_most(handle, limit + 1)
    except OSError as error:
        raise InvalidInput([_cannot_read(path, error)]) from None
    finally:
        os.close(handle)
    if len(data) > limit:  # larger than its size said: it grew, or it is a /proc file
        _refuse_large(path, f"over {limit / 1e6:g} MB", limit, what)
    return data


def _cannot_read(path: Path, error: OSError) -> Problem:
    reason = error.strerror or str(error)
    return Problem(str(path), None, "", f"cannot read: {reason[:1].lower()}{reason[1:]}")


def _refuse_special(path: Path, status: os.stat_result, what: str) -> None:
    if stat.S_ISREG(status.st_mode):
        return
    kind = next((name for test, name in KINDS.items() if test(status.st_mode)), "a special file")
    if path.is_symlink():
        kind = f"a link to {kind}"
    message = f"not a regular file ({kind}); {what} must be regular files"
    raise InvalidInput([Problem(str(path), None, "", message)])


def _refuse_large(path: Path, size: str, limit: int, what: str) -> None:
    message = f"file is {size}; {what} are at most {limit / 1e6:g} MB"
    raise InvalidInput([Problem(str(path), None, "", message)])


def _read_at_most(handle: int, count: int) -> bytes:
    chunks, left = [], count
    while left > 0:
        chunk = os.read(handle, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
