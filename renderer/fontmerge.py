"""PDF finishing: merged documents share one subset of each font face instead of one each.

WeasyPrint subsets every font while keeping glyph ids (retain-gids), and names a face the same
in every render. So when documents are merged, all dictionaries of one face can be replaced by
one whose font program is the original font cut down to the union of the glyphs every page uses.
"""

from __future__ import annotations

import functools
import io
import logging
import re
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import fontTools
import pikepdf
from fontTools import subset
from fontTools.ttLib import TTFont
from fontTools.varLib import instancer

from .cache import cache_key
from .problems import InvalidInput, Problem

CMAP_HEADER = b"""/CIDInit /ProcSet findresource begin
12 dict begin
begincmap
/CIDSystemInfo
<< /Registry (Adobe)
/Ordering (UCS)
/Supplement 0
>> def
/CMapName /Adobe-Identity-UCS def
/CMapType 2 def
1 begincodespacerange
<0000> <ffff>
endcodespacerange
"""
CMAP_FOOTER = b"endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n"


@dataclass
class Face:
    """One font face seen in the merged documents, and everything its pages use."""

    number: int  # the shared Type0 font object
    original: Path
    location: tuple  # (axis, value) pairs of a variable font's instance; () for a static font
    descendant: bytes  # the CIDFont dictionary's own entries
    descriptor: bytes  # the FontDescriptor's entries, without the font program
    widths: dict[int, float] = field(default_factory=dict)
    to_unicode: dict[int, bytes] = field(default_factory=dict)


# How one source uses one face: the bundled font it comes from (its identity, and the instance's
# location when it is variable), the CIDFont's and the descriptor's own entries, the widths and
# text of the glyphs it uses. Plain data.
FaceUse = tuple[tuple, tuple, bytes, bytes, dict[int, float], dict[int, bytes]]


class FaceReader:
    """Reads how a source PDF uses each face; what a face is, is learnt once per name."""

    def __init__(self, font_folders: list[Path]):
        self.originals = _originals(tuple(font_folders))
        self.definitions: dict[str, tuple[tuple, bytes, bytes] | None] = {}

    def use(self, font) -> tuple[str, FaceUse] | None:
        """(face name, its use) when `font` can be shared; None to copy it as it is."""
        if not isinstance(font, pikepdf.Dictionary) or font.get("/Subtype") != "/Type0":
            return None
        name = str(font.get("/BaseFont"))
        if name not in self.definitions:
            self.definitions[name] = self._definition(font)
        definition = self.definitions[name]
        if definition is None:
            return None
        to_unicode = read_to_unicode(font.ToUnicode.read_bytes()) or {}
        widths = read_widths(font.DescendantFonts[0].get("/W", pikepdf.Array()))
        return name, (*definition, widths, to_unicode)

    def _definition(self, font) -> tuple[tuple, tuple, bytes, bytes] | None:
        descendant = font.DescendantFonts[0]
        descriptor = descendant.get("/FontDescriptor")
        program = descriptor.get("/FontFile2") if descriptor is not None else None
        if program is None or b"beginbfrange" in font.ToUnicode.read_bytes():
            return None
        with TTFont(io.BytesIO(program.read_bytes()), lazy=True) as subset_font:
            identity = _identity(subset_font)
            location = ()
            if identity not in self.originals:  # perhaps an instance of a variable font
                identity, location = _variable(identity), _location(subset_font)
        if identity not in self.originals or location is None:
            return None
        try:
            return (
                identity,
                location,
                _direct_entries(descendant, {"/W", "/FontDescriptor"}),
                _direct_entries(descriptor, {"/FontFile2", "/CIDSet"}),
            )
        except ValueError:  # an entry refers to another object: copy the face as it is
            return None


class FaceMerger:
    """Collects every use of each face while documents are merged; writes one font per face."""

    def __init__(self, font_folders: list[Path], store=None):
        self.originals = _originals(tuple(font_folders))
        self.store = store  # bytes by key (the build cache), for font subsets
        self.faces: dict[str, Face] = {}

    def share(self, name: str, use: FaceUse, allocate) -> int:
        """The object number of the shared font of face `name`, its glyph use merged in."""
        identity, location, descendant, descriptor, widths, to_unicode = use
        face = self.faces.get(name)
        if face is None:
            original = self.originals[tuple(identity)]
            face = Face(allocate(), original, tuple(location), descendant, descriptor)
            self.faces[name] = face
        face.widths.update(widths)
        face.to_unicode.update(to_unicode)
        return face.number

    def _font_program(self, face: Face, gids: list[int]) -> tuple[int, bytes]:
        """The subset's length and compressed bytes; kept in the store, as subsetting is slow."""
        key = cache_key(
            "font subset",
            code=("fontmerge",),
            fonttools=fontTools.version,
            location=face.location,
            gids=gids,
            font=face.original.read_bytes(),
        )
        kept = self.store.get(key) if self.store is not None else None
        if kept is not None:
            length, _, compressed = kept.partition(b"\n")
            return int(length), compressed
        data = _subset(face.original, gids, face.location)
        compressed = zlib.compress(data, 9)
        if self.store is not None:
            self.store.put(key, b"%d\n" % len(data) + compressed)
        return len(data), compressed

    def objects(self, allocate):
        """(number, dictionary, stream data or None) of every shared font object."""
        for face in self.faces.values():
            descendant, descriptor, program, cmap = (allocate() for _ in range(4))
            gids = sorted(set(face.widths) | set(face.to_unicode) | {0})
            length, compressed = self._font_program(face, gids)
            yield program, b"<</Filter /FlateDecode /Length1 %d>>" % length, compressed
            yield (
                cmap,
                b"<</Filter /FlateDecode>>",
                zlib.compress(_write_to_unicode(face.to_unicode), 9),
            )
            yield descriptor, b"<<%s /FontFile2 %d 0 R>>" % (face.descriptor, program), None
            yield (
                descendant,
                b"<<%s /FontDescriptor %d 0 R /W %s>>"
                % (face.descendant, descriptor, _write_widths(face.widths)),
                None,
            )
            base_font = face.descendant.split(b"/BaseFont ", 1)[1].split(b" ", 1)[0]
            yield (
                face.number,
                b"<</Type /Font /Subtype /Type0 /BaseFont %s /Encoding /Identity-H"
                b" /DescendantFonts [%d 0 R] /ToUnicode %d 0 R>>" % (base_font, descendant, cmap),
                None,
            )


def _direct_entries(dictionary, skip: set[str]) -> bytes:
    """` /Key value` pairs of a dictionary whose values hold no references."""
    return b"".join(
        b" " + pikepdf.Name(key).unparse() + b" " + _direct(dictionary.get(key))
        for key in sorted(dictionary.keys())
        if key not in skip
    )


def _direct(value) -> bytes:
    if isinstance(value, pikepdf.Object) and value.is_indirect:
        raise ValueError("indirect")
    if isinstance(value, pikepdf.Dictionary):
        return b"<<" + _direct_entries(value, set()) + b">>"
    if isinstance(value, pikepdf.Array):
        return b"[" + b" ".join(_direct(item) for item in value) + b"]"
    return scalar(value)


def _identity(font: TTFont) -> tuple:
    """What survives subsetting and tells faces apart: names, version, creation date, units,
    and whether the font is variable."""
    head = font["head"]
    return (
        font["name"].getDebugName(4),
        font["name"].getDebugName(1),
        head.created,
        round(head.fontRevision, 4),
        head.unitsPerEm,
        "fvar" in font,
    )


def _variable(identity: tuple) -> tuple:
    """The identity of the variable font that a static instance with `identity` was cut from.

    WeasyPrint embeds one static instance per weight of a variable font, named like the
    variable font itself. Shared, it must be cut from the original at the same weight again:
    a subset of the original as it is would print every weight in the default one.
    """
    return (*identity[:-1], True)


def _location(instance: TTFont) -> tuple | None:
    """The weight axis value an instance was made at (its weight class), or None for an
    instance whose other axes cannot be told."""
    weight = instance["OS/2"].usWeightClass if "OS/2" in instance else None
    return (("wght", weight),) if weight else None


@functools.cache
def _originals(folders: tuple[Path, ...]) -> dict[tuple, Path]:
    """Every bundled font file by identity; variable fonts only when weight is their one axis."""
    found = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in (".ttf", ".otf"):
                try:
                    with TTFont(path, lazy=True) as font:
                        axes = {a.axisTag for a in font["fvar"].axes} if "fvar" in font else set()
                        if axes <= {"wght"}:
                            found.setdefault(_identity(font), path)
                except Exception as error:  # fontTools raises many kinds on a damaged file
                    raise InvalidInput([_unreadable(path, error)]) from None
    return found


def _unreadable(path: Path, error: Exception) -> Problem:
    detail = " ".join(str(error).split())[:120] or type(error).__name__
    return Problem(str(path), None, "layout", f"not a font that can be read ({detail})")


def _subset(path: Path, gids: list[int], location: tuple = ()) -> bytes:
    logging.getLogger("fontTools.subset").setLevel(logging.ERROR)  # "meta NOT subset" notes
    options = subset.Options(
        retain_gids=True,
        notdef_outline=True,
        hinting=False,
        layout_features=[],
        ignore_missing_glyphs=True,
        drop_tables=[*subset.Options().drop_tables, "GSUB", "GPOS", "GDEF", "BASE", "JSTF"],
    )
    buffer = io.BytesIO()
    with TTFont(path, recalcTimestamp=False) as font:  # no wall clock in the file
        if location:
            instancer.instantiateVariableFont(font, dict(location), inplace=True)
        subsetter = subset.Subsetter(options)
        subsetter.populate(gids=gids)
        subsetter.subset(font)
        font.save(buffer)
    return buffer.getvalue()


def read_widths(array) -> dict[int, float]:
    """A CID font's /W array: `start [w1 w2 ...]` or `first last w`, read from its text."""
    tokens = WIDTH_TOKENS.findall(array.unparse())[1:-1]  # without the enclosing brackets
    widths, index = {}, 0
    while index < len(tokens):
        start = int(tokens[index])
        if tokens[index + 1] == b"[":
            end = tokens.index(b"]", index + 2)
            for offset, width in enumerate(tokens[index + 2 : end]):
                widths[start + offset] = float(width)
            index = end + 1
        else:
            for gid in range(start, int(tokens[index + 1]) + 1):
                widths[gid] = float(tokens[index + 2])
            index += 3
    return widths


def _write_widths(widths: dict[int, float]) -> bytes:
    """`start [w1 w2 ...]` runs of consecutive glyph ids."""
    runs: list[tuple[int, list[str]]] = []
    for gid in sorted(widths):
        width = widths[gid]
        text = str(int(width)) if float(width).is_integer() else f"{width:.3f}".rstrip("0")
        if runs and gid == runs[-1][0] + len(runs[-1][1]):
            runs[-1][1].append(text)
        else:
            runs.append((gid, [text]))
    return b"[" + b" ".join(b"%d [%s]" % (gid, " ".join(ws).encode()) for gid, ws in runs) + b"]"


WIDTH_TOKENS = re.compile(rb"\[|\]|[-+]?(?:\d+\.?\d*|\.\d+)")
BFCHAR = re.compile(rb"beginbfchar(.*?)endbfchar", re.S)
PAIR = re.compile(rb"<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]*)>")


def read_to_unicode(cmap: bytes) -> dict[int, bytes] | None:
    """The glyph-to-text map of a ToUnicode CMap as WeasyPrint writes it (bfchar only)."""
    if b"beginbfrange" in cmap:
        return None
    return {
        int(gid, 16): text.lower()
        for block in BFCHAR.findall(cmap)
        for gid, text in PAIR.findall(block)
    }


def _write_to_unicode(mapping: dict[int, bytes]) -> bytes:
    items = sorted(mapping.items())
    body = b""
    for start in range(0, len(items), 100):
        batch = items[start : start + 100]
        body += f"{len(batch)} beginbfchar\n".encode()
        body += b"".join(b"<%04x> <%s>\n" % (gid, text) for gid, text in batch)
        body += b"endbfchar\n"
    return CMAP_HEADER + body + CMAP_FOOTER


def scalar(value) -> bytes:
    """A PDF number, boolean, null, name or string, as it is written in a file."""
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if value is None:
        return b"null"
    if isinstance(value, int):
        return b"%d" % value
    if isinstance(value, Decimal):
        text = f"{value:f}"
        return (text.rstrip("0").rstrip(".") if "." in text else text).encode() or b"0"
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".").encode() or b"0"
    return value.unparse()
