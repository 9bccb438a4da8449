"""Assembly: pages of many PDFs streamed into one file, stamped, with shared fonts, page links
and an outline.

Memory stays flat however many documents are merged: each source is opened, its page's objects
are renumbered and written out, and it is closed; only object offsets and the fonts' glyph
tables stay in memory. Small objects are packed into compressed object streams, as WeasyPrint's
own output is. Links written by a layout as `<scheme>:<name>`, for the schemes of
`LINK_SCHEMES`, become go-to actions to the named destination `<scheme>/<name>`: a specimen
and one of the compendium's own pages never share a name, whatever the specimen is called.
"""

from __future__ import annotations

import hashlib
import io
import marshal
import re
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import astuple, dataclass, field
from pathlib import Path
from typing import BinaryIO

import pikepdf

from .cache import cache_key
from .context import INTERNAL_SCHEME
from .fontmerge import FaceMerger, FaceReader, FaceUse
from .slots import Slot, Typeset, Values

OBJECTS_PER_STREAM = 200
PREPARED_FORMAT = 5
ASSEMBLY_MODULES = ("assemble", "fontmerge", "slots")  # the code a prepared source depends on
# specimen:<slug> (written by the dossiers' context) and matter:<page>, the compendium's own pages
LINK_SCHEMES = SPECIMEN, MATTER = (INTERNAL_SCHEME.removesuffix(":"), "matter")
INTERNAL_URIS = tuple(b"(" + scheme.encode() + b":" for scheme in LINK_SCHEMES)
# A link's action as qpdf writes it (keys sorted, one space apart), when it points inside
INTERNAL_ACTION = re.compile(
    rb"/A << /S /URI /Type /Action /URI \(("
    + b"|".join(re.escape(scheme.encode()) for scheme in LINK_SCHEMES)
    + rb"):([^()\\]*)\) >>"
)
GO_TO_ACTION = re.compile(rb"/A << /D \(([^()\\]*)\) /S /GoTo >>")  # as written from them
# In qpdf's unparse output: literal strings, hex strings (both kept), and references `N G R`.
TOKENS = re.compile(rb"\((?:[^\\()]|\\.)*\)|<[0-9A-Fa-f\s]*>|(-?\d+) (\d+) R", re.DOTALL)


@dataclass
class OutlineEntry:
    title: str
    destination: str  # a named destination: destination(...) or page_destination(...)
    children: list[OutlineEntry] = field(default_factory=list)


def page_destination(number: int) -> str:
    return f"page-{number:06d}"


def destination(scheme: str, name: str) -> str:
    """The named destination that a `<scheme>:<name>` link goes to."""
    return f"{scheme}/{name}"


@dataclass
class Prepared:
    """One source PDF's objects with local numbers, ready to be appended to any output.

    An object's body is a template: each reference is `%d 0 R`, filled in with the output's
    number for the local number in `references` (any other `%` is doubled), so that appending
    it is one bytes formatting, not a parse. Local numbers 0..pages-1 are its pages, in order;
    the others follow. A shared font face is the negative number -(1 + its index in `faces`).
    The streams of its slots are not among the objects: they are written, stamped, when the
    source is added. Its internal links are already go-to actions to the named destinations
    in `targets`.
    Preparing (reading the PDF with qpdf) is most of the work of assembly, so prepared sources
    are cached.
    """

    pages: int
    objects: list[tuple[int, bytes, tuple[int, ...], bytes | None]]  # local number, template,
    # references, stream data
    faces: list[tuple[str, FaceUse]]
    stamps: list[tuple[int, tuple]] = field(default_factory=list)  # local number, Slot fields
    targets: list[str] = field(default_factory=list)

    def dumps(self) -> bytes:
        fields = (self.pages, self.objects, self.faces, self.stamps, self.targets)
        return marshal.dumps((PREPARED_FORMAT, *fields))

    @classmethod
    def loads(cls, data: bytes) -> Prepared | None:
        try:
            version, *fields = marshal.loads(data)
        except (EOFError, ValueError, TypeError):
            return None
        return cls(*fields) if version == PREPARED_FORMAT else None


class Preparer:
    """Reads source PDFs into `Prepared` form, keeping them in `store` (the build cache) when
    given; remembers what it learnt of each font face."""

    def __init__(self, font_folders: list[Path], store=None):
        self.fonts = FaceReader(font_folders)
        self.store = store

    def prepared(self, key: str, typeset: Callable[[], Typeset | None]) -> Prepared | None:
        """The pages of cache key `key` (a dossier, or a run of the compendium's own pages),
        prepared: from the store when they were prepared before, else from `typeset()` (None
        when that failed)."""
        prepared_key = cache_key("prepared", code=ASSEMBLY_MODULES, source=key)
        kept = self.store.get(prepared_key) if self.store is not None else None
        prepared = Prepared.loads(kept) if kept is not None else None
        if prepared is None:
            source = typeset()
            if source is None:
                return None
            prepared = self.prepare(source.pdf, source.slots)
            if self.store is not None:
                self.store.put(prepared_key, prepared.dumps())
        return prepared

    def prepare(self, pdf: bytes, slots: tuple[Slot, ...] = ()) -> Prepared:
        """The PDF's objects renumbered locally; the streams of its `slots` are left to be
        stamped."""
        with pikepdf.open(io.BytesIO(pdf)) as source:
            numbers: dict[tuple[int, int], int] = {}
            queue: deque[pikepdf.Object] = deque()
            for page in source.pages:
                numbers[page.obj.objgen] = len(numbers)
                queue.append(page.obj)
            stamps = []
            for slot in slots:
                stream = source.pages[slot.page].Contents[slot.index]
                numbers[stream.objgen] = len(numbers)
                stamps.append((len(numbers) - 1, astuple(slot)))
            pages, faces, objects, targets = len(numbers) - len(stamps), {}, [], set()
            while queue:
                obj = queue.popleft()
                data = None
                if isinstance(obj, pikepdf.Stream):
                    data = obj.read_raw_bytes()
                    del obj.stream_dict["/Length"]  # written anew with the data
                template, references = self._template(obj, source, numbers, queue, faces)
                if data is None and any(uri in template for uri in INTERNAL_URIS):
                    template = _go_to_actions(template, targets)
                objects.append((numbers[obj.objgen], template, references, data))
        return Prepared(pages, objects, list(faces.items()), stamps, sorted(targets))

    def _template(self, obj, source, numbers, queue, faces) -> tuple[bytes, tuple[int, ...]]:
        """The object as qpdf writes it, as a template (`Prepared`) and its local references.

        qpdf's own unparse does the walk in C++; only the references are rewritten here. The
        source is discarded afterwards, so its objects may be changed on the way.
        """
        dictionary = obj.stream_dict if isinstance(obj, pikepdf.Stream) else obj
        is_page = isinstance(obj, pikepdf.Dictionary) and obj.get("/Type") == "/Page"
        if is_page:
            del obj["/Parent"]  # every page hangs from the output's one page tree

        references = []

        def renumber(match: re.Match) -> bytes:
            if match[1] is None:  # a string: kept as it is
                return match[0]
            target = source.get_object(int(match[1]), int(match[2]))
            references.append(self._local(target, numbers, queue, faces))
            return b"%d 0 R"

        escaped = dictionary.unparse(resolved=True).replace(b"%", b"%%")
        template = TOKENS.sub(renumber, escaped)
        if is_page:  # the output's page tree, a number that is not relocated
            template = template[:-2] + b"/Parent 2 0 R>>"
        return template, tuple(references)

    def _local(self, obj, numbers, queue, faces) -> int:
        use = self.fonts.use(obj)
        if use is not None:
            name = use[0]
            if name not in faces:
                faces[name] = use[1]
            return -1 - list(faces).index(name)
        if obj.objgen not in numbers:
            numbers[obj.objgen] = len(numbers)
            queue.append(obj)
        return numbers[obj.objgen]


class Assembler:
    """Writes a PDF of `page_count` pages, fed one source at a time, in page order."""

    def __init__(
        self,
        stream: BinaryIO,
        page_count: int,
        font_folders: list[Path],
        store=None,
        elsewhere: Callable[[str], str | None] = lambda uri: None,
    ):
        """`elsewhere(uri)`: where an internal link to no page of this file goes instead (a web
        address), or None to drop it."""
        self.stream, self.page_count = stream, page_count
        self.elsewhere = elsewhere
        self.digest = hashlib.sha256()
        self.offsets: dict[int, tuple[int, int, int]] = {}  # number -> xref entry
        self.next_number = 3 + page_count  # 1 catalog, 2 page tree, then the pages
        self.pages_written = 0
        self.pending: list[tuple[int, bytes]] = []
        self.fonts = FaceMerger(font_folders, store)
        self.preparer = Preparer(font_folders, store)
        self._write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")

    # -- feeding ---------------------------------------------------------------------------
    def add(self, pdf: bytes, destinations: dict[str, int]) -> None:
        """Append every page of `pdf`; a `<scheme>:<name>` link goes to the named destination
        `<scheme>/<name>` when `destinations` (name -> page) has it, else where `elsewhere`
        says, or nowhere."""
        self.add_prepared(self.preparer.prepare(pdf), destinations)

    def add_prepared(
        self,
        source: Prepared,
        destinations: dict[str, int],
        values: Callable[[str], Values] = lambda slot: None,
    ) -> None:
        """Append a prepared source: its local numbers become the output's; each slot is stamped
        with `values(slot name)`."""
        first_page = 3 + self.pages_written
        self.pages_written += source.pages
        faces = [self.fonts.share(name, use, self._allocate) for name, use in source.faces]
        numbers: dict[int, int] = {}

        def number_of(local: int) -> int:
            if local < 0:
                return faces[-1 - local]
            if local < source.pages:
                return first_page + local
            if local not in numbers:
                numbers[local] = self._allocate()
            return numbers[local]

        for local, fields in source.stamps:
            slot = Slot(*fields)
            self._write_stream(number_of(local), b"<<>>", slot.stamp(values(slot.name)))
        unbound = {name for name in source.targets if name not in destinations}
        for local, template, references, data in source.objects:
            body = template % tuple(map(number_of, references))
            if data is not None:
                self._write_stream(number_of(local), body, data)
                continue
            if unbound and b"/GoTo" in body:
                body = _unbound_links(body, unbound, self.elsewhere)
            self._queue_object(number_of(local), body)

    def _allocate(self) -> int:
        self.next_number += 1
        return self.next_number - 1

    # -- writing ---------------------------------------------------------------------------
    def _write(self, data: bytes) -> int:
        offset = self.stream.tell()
        self.stream.write(data)
        self.digest.update(data)
        return offset

    def _write_stream(self, number: int, dictionary: bytes, data: bytes) -> None:
        head = dictionary[:-2] + b" /Length %d>>" % len(data)
        offset = self._write(
            b"%d 0 obj\n%s\nstream\n" % (number, head) + data + b"\nendstream\nendobj\n"
        )
        self.offsets[number] = (1, offset, 0)

    def _queue_object(self, number: int, body: bytes) -> None:
        self.pending.append((number, body))
        if len(self.pending) >= OBJECTS_PER_STREAM:
            self._flush_objects()

    def _flush_objects(self) -> None:
        if not self.pending:
            return
        number = self._allocate()
        header, bodies, position = [], [], 0
        for index, (member, body) in enumerate(self.pending):
            header.append(b"%d %d" % (member, position))
            bodies.append(body)
            position += len(body) + 1
            self.offsets[member] = (2, number, index)
        head = b" ".join(header) + b"\n"
        data = zlib.compress(head + b"\n".join(bodies) + b"\n", 6)
        dictionary = b"<</Type /ObjStm /N %d /First %d /Filter /FlateDecode>>" % (
            len(self.pending),
            len(head),
        )
        self._write_stream(number, dictionary, data)
        self.pending = []

    def finish(
        self,
        outline: list[OutlineEntry],
        info: dict[str, str],
        page_labels=(),
        destinations: dict[str, int] | None = None,
    ) -> None:
        """Shared fonts, page tree, destinations, outline, metadata, cross-reference stream.

        `page_labels`: (first page index, style such as /r or /D, first number) for viewers.
        `destinations`: named destinations (name -> 1-based page), besides one per page.
        """
        if self.pages_written != self.page_count:
            raise RuntimeError(f"{self.pages_written} pages written, {self.page_count} planned")
        for number, body, data in self.fonts.objects(self._allocate):
            if data is None:
                self._queue_object(number, body)
            else:
                self._write_stream(number, body, data)
        kids = b" ".join(b"%d 0 R" % (3 + i) for i in range(self.page_count))
        self._queue_object(2, b"<</Type /Pages /Count %d /Kids [%s]>>" % (self.page_count, kids))
        outline_number = self._write_outline(outline)
        named = {page_destination(i + 1): i + 1 for i in range(self.page_count)}
        named |= destinations or {}
        names = b" ".join(  # a name tree's keys are in byte order
            b"%s [%d 0 R /Fit]" % (pikepdf.String(name).unparse(), 2 + named[name])
            for name in sorted(named, key=str.encode)
        )
        labels = b" ".join(
            b"%d <</S %s /St %d>>" % (index, style.encode(), start)
            for index, style, start in page_labels
        )
        self._queue_object(
            1,
            b"<</Type /Catalog /Pages 2 0 R /Outlines %d 0 R /PageMode /UseOutlines"
            b" /PageLabels <</Nums [%s]>> /Names <</Dests <</Names [%s]>>>>>>"
            % (outline_number, labels, names),
        )
        info_number = self._allocate()
        entries = b" ".join(
            pikepdf.Name("/" + key).unparse() + b" " + pikepdf.String(value).unparse()
            for key, value in sorted(info.items())
        )
        self._queue_object(info_number, b"<<" + entries + b">>")
        self._flush_objects()
        self._write_xref(info_number)

    def _write_outline(self, entries: list[OutlineEntry]) -> int:
        root = self._allocate()
        first, last, count = self._outline_level(entries, root)
        self._queue_object(
            root, b"<</Type /Outlines /First %d 0 R /Last %d 0 R /Count %d>>" % (first, last, count)
        )
        return root

    def _outline_level(self, entries: list[OutlineEntry], parent: int) -> tuple[int, int, int]:
        numbers = [self._allocate() for _ in entries]
        total = len(entries)
        for index, (entry, number) in enumerate(zip(entries, numbers, strict=True)):
            parts = [
                b"/Title " + pikepdf.String(entry.title).unparse(),
                b"/Parent %d 0 R" % parent,
                b"/Dest " + pikepdf.String(entry.destination).unparse(),
            ]
            if index > 0:
                parts.append(b"/Prev %d 0 R" % numbers[index - 1])
            if index < len(entries) - 1:
                parts.append(b"/Next %d 0 R" % numbers[index + 1])
            if entry.children:
                first, last, count = self._outline_level(entry.children, number)
                parts.append(b"/First %d 0 R /Last %d 0 R /Count %d" % (first, last, count))
                total += count
            self._queue_object(number, b"<<" + b" ".join(parts) + b">>")
        return numbers[0], numbers[-1], total

    def _write_xref(self, info_number: int) -> None:
        number = self._allocate()
        size = number + 1
        identifier = self.digest.hexdigest()[:32].encode()
        rows = [b"\x00\x00\x00\x00\x00\xff\xff"]
        for member in range(1, size):
            kind, first, second = self.offsets.get(member, (1, 0, 0))
            rows.append(bytes([kind]) + first.to_bytes(4, "big") + second.to_bytes(2, "big"))
        offset = self.stream.tell()
        self.offsets[number] = (1, offset, 0)
        rows[number] = b"\x01" + offset.to_bytes(4, "big") + b"\x00\x00"
        data = zlib.compress(b"".join(rows), 6)
        self._write(
            b"%d 0 obj\n<</Type /XRef /Size %d /W [1 4 2] /Root 1 0 R /Info %d 0 R"
            b" /ID [<%s> <%s>] /Filter /FlateDecode /Length %d>>\nstream\n"
            % (number, size, info_number, identifier, identifier, len(data))
            + data
            + b"\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % offset
        )


def _go_to_actions(body: bytes, targets: set[str]) -> bytes:
    """Internal links (`<scheme>:<name>` URIs) become go-to actions to their named destination
    `<scheme>/<name>`, which is added to `targets`."""

    def go_to(match: re.Match) -> bytes:
        name = destination(match[1].decode(), match[2].decode())
        targets.add(name)
        return b"/A << /D %s /S /GoTo >>" % pikepdf.String(name).unparse().replace(b"%", b"%%")

    retargeted = INTERNAL_ACTION.sub(go_to, body)
    if any(uri in retargeted for uri in INTERNAL_URIS):  # written in a way unknown here
        raise RuntimeError(f"unrecognised internal link: {body[:200]!r}")
    return retargeted


def _unbound_links(
    body: bytes, unbound: set[str], elsewhere: Callable[[str], str | None] = lambda uri: None
) -> bytes:
    """Go-to actions to a destination that is not in the document link to `elsewhere(uri)`
    instead (the link's `<scheme>:<name>`), or become plain boxes."""

    def retarget(match: re.Match) -> bytes:
        name = match[1].decode()
        if name not in unbound:
            return match[0]
        target = elsewhere(name.replace("/", ":", 1))
        if target is None:
            return b""
        return b"/A << /S /URI /URI %s >>" % pikepdf.String(target).unparse()

    return GO_TO_ACTION.sub(retarget, body)
