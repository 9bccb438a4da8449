"""Reading input files: regular files only, never more than a size limit, others refused unread.

Records, texts to import, the config, layout settings and password files all come through here,
so each is refused the same way: a FIFO or a device is never opened for reading, a large file
costs no more than the limit, and text that is not UTF-8 or TOML that does not parse is named at
its line.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from pathlib import Path

from .fileio import KINDS, os_problem
from .problems import InvalidInput, Problem

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
        raise InvalidInput([os_problem(error, "read", path)]) from None
    try:
        status = os.fstat(handle)
        _refuse_special(path, status, what)
        if status.st_size > limit:
            _refuse_large(path, _size(status.st_size), limit, what)
        data = _read_at_most(handle, limit + 1)
    except OSError as error:
        raise InvalidInput([os_problem(error, "read", path)]) from None
    finally:
        os.close(handle)
    if len(data) > limit:  # larger than its size said: it grew, or it is a /proc file
        _refuse_large(path, f"over {_size(limit, 'g')}", limit, what)
    return data


def read_text(path: Path, limit: int, what: str, shown: str | None = None) -> str:
    """A bounded file (see read_bounded) as UTF-8 text; `shown` names it in messages."""
    return utf8_text(read_bounded(path, limit, what), shown or str(path))


def utf8_text(raw: bytes, shown: str) -> str:
    """UTF-8 text, a byte-order mark accepted; other encodings are refused at their line."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidInput([utf8_problem(raw, error, shown)]) from None


def utf8_problem(raw: bytes, error: UnicodeDecodeError, shown: str) -> Problem:
    line = raw.count(b"\n", 0, error.start) + 1
    message = f"not UTF-8 text (byte 0x{raw[error.start]:02x}); save the file as UTF-8"
    return Problem(shown, line, "", message)


def parse_toml(text: str, shown: str) -> dict:
    """TOML text as data; its errors are problems at their line."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InvalidInput([_toml_problem(shown, error)]) from None
    except RecursionError:
        message = "not valid TOML: values nested too deeply"
        raise InvalidInput([Problem(shown, None, "", message)]) from None


def _toml_problem(shown: str, error: tomllib.TOMLDecodeError) -> Problem:
    """TOML's complaint at its line: "Invalid value (at line 2, column 9)"."""
    found = re.search(r" \(at line (\d+), column (\d+)\)$", str(error))
    if found is None:
        return Problem(shown, None, "", f"not valid TOML: {_lower_first(str(error))}")
    what = _lower_first(str(error)[: found.start()])
    return Problem(shown, int(found[1]), "", f"not valid TOML: {what} (column {found[2]})")


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _refuse_special(path: Path, status: os.stat_result, what: str) -> None:
    if stat.S_ISREG(status.st_mode):
        return
    kind = KINDS.get(stat.S_IFMT(status.st_mode), "a special file")
    if path.is_symlink():
        kind = f"a link to {kind}"
    message = f"not a regular file ({kind}); {what} must be regular files"
    raise InvalidInput([Problem(str(path), None, "", message)])


def _refuse_large(path: Path, size: str, limit: int, what: str) -> None:
    message = f"file is {size}; {what} are at most {_size(limit, 'g')}"
    raise InvalidInput([Problem(str(path), None, "", message)])


def _size(count: int, digits: str = ".1f") -> str:
    return f"{count / 1e6:{digits}} MB" if count >= 100_000 else f"{count:,} bytes"


def _read_at_most(handle: int, count: int) -> bytes:
    chunks, left = [], count
    while left > 0:
        chunk = os.read(handle, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
