"""Writing files so that readers only ever see a complete file, and one writer at a time.

Only regular files are replaced (a symbolic link's target is written in its own folder); a
temporary file has a name only this tool makes, `.dossier-tmp.<pid>.<random>.<name>.tmp`, and only
the process that made it removes it, or a later one once that process has died. Every OS error
becomes one located problem: `{path}: cannot {action}: {reason}`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .problems import InvalidInput, Problem

LOCK_NAME = ".dossier.lock"
TEMPORARY_PREFIX = ".dossier-tmp."
TEMPORARY = re.compile(r"\.dossier-tmp\.([1-9][0-9]{0,9})\.[0-9a-f]{8}\..*\.tmp", re.DOTALL)
NAME_MAX = 255  # bytes in one file name, on every common file system

KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFLNK: "a symbolic link",
}

_swept: set[Path] = set()  # folders already cleared of dead processes' temporary files


def os_problem(error: OSError, action: str, path: str | Path | None = None) -> Problem:
    """`{path}: cannot {action}: {reason}`, the reason being the OS's own words."""
    where = path if path is not None else error.filename
    shown = str(where) if where is not None else "dossier"
    return Problem(shown, None, "", f"cannot {action}: {os_reason(error)}")


def os_reason(error: BaseException) -> str:
    """The OS's words for an error, as the middle of a sentence: `no such file or directory`."""
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return text[:1].lower() + text[1:]


def refused(path: str | Path, kind: str, what: str = "replace it") -> InvalidInput:
    return InvalidInput(
        [Problem(str(path), None, "", f"not a regular file ({kind}); refusing to {what}")]
    )


class AlreadyExists(InvalidInput):
    """Raised instead of replacing a file that a write was told not to overwrite."""

    def __init__(self, path: str | Path):
        super().__init__([Problem(str(path), None, "", "already exists; not overwritten")])


def write_atomic(
    path: Path, data: bytes, *, overwrite: bool = True, mode: int | None = None
) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename; the
    file gets `mode`, else the mode of the file it replaces."""
    with atomic_writer(path, overwrite=overwrite, mode=mode) as stream:
        stream.write(data)


def replaceable(path: Path) -> Path:
    """The file that writing `path` replaces: `path` itself or, for a symbolic link, its target.

    Raises InvalidInput for a folder, device, FIFO or socket, which are never replaced.
    """
    try:
        mode = Path(path).stat().st_mode
    except FileNotFoundError:  # nothing there yet (or a dangling link: its target is made)
        return Path(os.path.realpath(path))
    except OSError as error:
        raise InvalidInput([os_problem(error, "write", path)]) from None
    if not stat.S_ISREG(mode):
        raise refused(path, KINDS.get(stat.S_IFMT(mode), "of an unknown kind"))
    return Path(os.path.realpath(path))


def make_folder(folder: Path) -> None:
    """Create `folder` and its parents, or raise InvalidInput saying why it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file (not a folder) has its name
        error = NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        raise InvalidInput([os_problem(error, "create folder", folder)]) from None
    except OSError as error:
        raise InvalidInput([os_problem(error, "create folder")]) from None


class _Temporary:
    """The stream atomic_writer yields: a failed write names the file being written."""

    def __init__(self, stream, path: Path):
        self._stream, self._path = stream, path

    def write(self, data: bytes) -> int:
        try:
            return self._stream.write(data)
        except OSError as error:
            raise InvalidInput([os_problem(error, "write", self._path)]) from None

    def tell(self) -> int:
        return self._stream.tell()


@contextmanager
def atomic_writer(
    path: Path, *, overwrite: bool = True, mode: int | None = None
) -> Iterator[_Temporary]:
    """A binary stream that becomes `path` when the block ends, and nothing if it fails.

    With `overwrite=False`, an existing `path` (even a dangling link) raises AlreadyExists.
    """
    target = replaceable(path)
    if not overwrite:
        _refuse_existing(path)
    make_folder(target.parent)
    remove_dead_temporaries(target.parent)
    try:
        handle, temporary = _create_temporary(target, mode)
    except OSError as error:
        raise InvalidInput([os_problem(error, "write", path)]) from None
    stream = os.fdopen(handle, "wb")
    try:
        yield _Temporary(stream, path)
        _finish(stream, temporary, target, path, overwrite)
    except BaseException:
        with contextlib.suppress(OSError):  # the data that could not be flushed is abandoned
            stream.close()
        temporary.unlink(missing_ok=True)
        raise


def _refuse_existing(path: Path) -> None:
    try:
        path.lstat()
    except FileNotFoundError:
        return
    except OSError as error:
        raise InvalidInput([os_problem(error, "write", path)]) from None
    raise AlreadyExists(path)


def _finish(stream, temporary: Path, target: Path, path: Path, overwrite: bool) -> None:
    try:
        stream.flush()
        os.fsync(stream.fileno())
        stream.close()
        if overwrite:
            temporary.replace(target)
        else:
            _put_in_place_of_nothing(temporary, target)
    except FileExistsError:
        raise AlreadyExists(path) from None
    except OSError as error:
        raise InvalidInput([os_problem(error, "write", path)]) from None


def _put_in_place_of_nothing(temporary: Path, target: Path) -> None:
    """Rename that never replaces: a link fails on an existing name, so no file made meanwhile
    is lost. File systems without links (FAT) get a check and a rename."""
    try:
        os.link(temporary, target)
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        _refuse_existing(target)
        temporary.replace(target)
    else:
        temporary.unlink()


def _create_temporary(target: Path, mode: int | None = None) -> tuple[int, Path]:
    """A new file beside `target`, created exclusively, with `mode`, else the mode `target` has
    or would get."""
    try:
        mode = stat.S_IMODE(target.stat().st_mode) if mode is None else mode
    except FileNotFoundError:
        mode = None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
    while True:
        stem = f"{TEMPORARY_PREFIX}{os.getpid()}.{secrets.token_hex(4)}."
        room = NAME_MAX - len(stem.encode()) - len(".tmp")
        name = os.fsdecode(os.fsencode(target.name)[:room])  # may be cut short: it only helps
        temporary = target.parent / f"{stem}{name}.tmp"  # no glob for *.pdf takes it for one
        try:
            handle = os.open(temporary, flags, 0o666)
        except FileExistsError:  # 2**32 names: only ever another of ours, so try the next
            continue
        if mode is not None:
            with contextlib.suppress(OSError):  # keeping the mode is a courtesy, not a must
                os.fchmod(handle, mode)
        return handle, temporary


def remove_dead_temporaries(folder: Path) -> None:
    """Temporary files in `folder` (not below it) whose dossier process is gone: a killed run's."""
    if folder in _swept:
        return
    _swept.add(folder)
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            match = TEMPORARY.fullmatch(entry.name)
            if match and not _running(int(match[1])) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    Path(entry.path).unlink()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # another user's process, or no such number: leave it
        return True
    return True


@contextmanager
def exclusive(folder: Path, say: Callable[[str], None] = print) -> Iterator[None]:
    """One command at a time in `folder` (the build cache): a second one waits, saying for whom."""
    make_folder(folder)
    handle = _open_lock(folder / LOCK_NAME)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 200, 0).decode(errors="replace").strip()
            say(f"{folder}: waiting for {holder or 'another dossier command'} to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        _note_holder(handle, f"process {os.getpid()}")
        try:
            yield
        finally:
            _note_holder(handle, "")
    finally:
        os.close(handle)


def _open_lock(path: Path) -> int:
    """The lock file, opened without following a link or waiting on a FIFO; only a plain file."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        with contextlib.suppress(FileNotFoundError):
            kind = stat.S_IFMT(path.lstat().st_mode)
            if kind != stat.S_IFREG:
                raise refused(path, KINDS.get(kind, "of an unknown kind"), "use it as the lock")
        return os.open(path, flags, 0o666)
    except OSError as error:
        raise InvalidInput([os_problem(error, "open the lock", path)]) from None


def _note_holder(handle: int, text: str) -> None:
    with contextlib.suppress(OSError):  # a courtesy to whoever waits; a full disk won't stop us
        os.ftruncate(handle, 0)
        os.pwrite(handle, text.encode(), 0)
