"""Cache: entries kept by a content hash of everything that makes them (one key helper),
checked on read."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import stat
from importlib import metadata
from pathlib import Path

from .fileio import remove_dead_temporaries, write_atomic
from .layouts import FONTS_DIR, Layout

FORMAT = b"dossier-cache 1"

# The package's modules whose code shapes a rendered page (a test checks that rendering loads no
# other). Records and config are parts of each job's key, so the modules that read them are not.
RENDERING_MODULES = (
    "__init__", "config", "context", "contract", "engine", "fileio", "fitting", "fontmerge",
    "inputfiles", "layouts",
    "model", "problems", "qr", "render", "slots", "spread", "cache",
)  # fmt: skip
PACKAGE_DIR = Path(__file__).parent


def cache_key(kind: str, *, code: tuple[str, ...] = (), **inputs: object) -> str:
    """The key of every cache entry: its kind, the code that makes it (modules of this package,
    by name) and its inputs (JSON-serialisable; bytes count by their sha256)."""
    parts = {
        name: hashlib.sha256(value).hexdigest() if isinstance(value, bytes) else value
        for name, value in inputs.items()
    }
    parts |= {"kind": kind, "code": code_digest(code) if code else None}
    text = json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@functools.cache
def code_digest(modules: tuple[str, ...]) -> str:
    """A hash of the source of these modules of the package."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update((PACKAGE_DIR / f"{module}.py").read_bytes())
    return digest.hexdigest()


def inputs_fingerprint(layout: Layout) -> str:
    """A hash of the layout's files, the bundled fonts and the versions of the code that renders."""
    digest = hashlib.sha256()
    for name in ("dossier", "weasyprint", "pydyf", "qrcode", "jinja2", "pikepdf"):
        digest.update(f"{name}={_version(name)};".encode())
    digest.update(code_digest(RENDERING_MODULES).encode())
    for folder in (layout.folder, FONTS_DIR):
        digest.update(_tree_hash(folder, "*").encode())
    return digest.hexdigest()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "none"


def _tree_hash(folder: Path, pattern: str) -> str:
    """The files a render may read below `folder`: links that lead out of it are never read by
    a render (the loader and the fetcher refuse them), so they are not read here either."""
    digest, root = hashlib.sha256(), folder.resolve()
    for path in sorted(folder.rglob(pattern)):
        real = path.resolve()
        if real.is_relative_to(root) and real.is_file():
            digest.update(str(path.relative_to(folder)).encode() + b"\0" + real.read_bytes())
    return digest.hexdigest()


class RenderCache:
    """PDFs by key in a folder; an entry carries the hash of its bytes, so damage is detected."""

    def __init__(self, folder: Path):
        self.folder = folder

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.cache"

    def get(self, key: str) -> bytes | None:
        """The cached bytes, or None when absent, unreadable, not a plain file, damaged or of
        another format (a damaged entry is removed; anything else there is left for `put` to
        report)."""
        path = self.path(key)
        raw = _read_plain_file(path)
        if raw is None:
            return None
        header, _, body = raw.partition(b"\n")
        if header != FORMAT + b" " + hashlib.sha256(body).hexdigest().encode():
            with contextlib.suppress(OSError):  # a read-only cache keeps it; it is never trusted
                path.unlink()
            return None
        return body

    def has(self, key: str) -> bool:
        """Whether there is an entry (a regular file) for the key; it is not read, so it may
        still turn out damaged when it is."""
        with contextlib.suppress(OSError):
            return stat.S_ISREG(self.path(key).stat().st_mode)
        return False

    def remove_dead_temporaries(self) -> None:
        """What killed commands left half-written in the entry folders (each is otherwise
        tidied only when something is next written into it); nothing else is looked at."""
        with contextlib.suppress(OSError):
            for folder in self.folder.glob("[0-9a-f][0-9a-f]"):
                if folder.is_dir() and not folder.is_symlink():
                    remove_dead_temporaries(folder)

    def put(self, key: str, pdf: bytes) -> None:
        header = FORMAT + b" " + hashlib.sha256(pdf).hexdigest().encode() + b"\n"
        write_atomic(self.path(key), header + pdf)


def _read_plain_file(path: Path) -> bytes | None:
    """The bytes of a regular file; None for anything else, without waiting on a FIFO."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            return None
        with os.fdopen(handle, "rb", closefd=False) as stream:
            return stream.read()
    except OSError:
        return None
    finally:
        os.close(handle)
