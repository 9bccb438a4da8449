"""PDF finishing: merged dossiers share one subset of each font face instead of one each.

WeasyPrint subsets every font while keeping glyph ids (retain-gids), and names a face the same
in every render. So after merging, all dictionaries of one face can be replaced by one whose
font program is the original font cut down to the union of the glyphs every page uses.
"""

from __future__ import annotations

import io
import logging
import re
from collections import defaultdict
from pathlib import Path

import pikepdf
from fontTools import subset
from fontTools.ttLib import TTFont

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


def unify_fonts(pdf: pikepdf.Pdf, font_folders: list[Path]) -> int:
    """Give each font face one shared, minimal font program; returns how many faces were merged."""
    groups = _faces(pdf)
    originals = _originals(font_folders)
    shared = {}
    for base_font, fonts in groups.items():
        if len(fonts) > 1 and (merged := _merge(pdf, fonts, originals)) is not None:
            shared[base_font] = merged
    for page in pdf.pages:
        resources = page.obj.get("/Resources")
        if resources is None or "/Font" not in resources:
            continue
        for name, font in list(resources.Font.items()):
            replacement = shared.get(str(font.get("/BaseFont")))
            if replacement is not None:
                resources.Font[name] = replacement
    return len(shared)


def _faces(pdf: pikepdf.Pdf) -> dict[str, list[pikepdf.Dictionary]]:
    groups: dict[str, dict] = defaultdict(dict)
    for page in pdf.pages:
        resources = page.obj.get("/Resources")
        for font in (resources.get("/Font", {}) if resources is not None else {}).values():
            if font.get("/Subtype") == "/Type0" and font.is_indirect:
                groups[str(font.BaseFont)][font.objgen] = font
    return {name: list(fonts.values()) for name, fonts in groups.items()}


def _identity(font: TTFont) -> tuple:
    """What survives subsetting and tells faces apart: names, version, creation date, units."""
    head = font["head"]
    return (
        font["name"].getDebugName(4),
        font["name"].getDebugName(1),
        head.created,
        round(head.fontRevision, 4),
        head.unitsPerEm,
    )


def _originals(folders: list[Path]) -> dict[tuple, Path]:
    found = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in (".ttf", ".otf"):
                with TTFont(path, lazy=True) as font:
                    found.setdefault(_identity(font), path)
    return found


def _merge(pdf: pikepdf.Pdf, fonts: list, originals: dict[tuple, Path]):
    descendant = fonts[0].DescendantFonts[0]
    program = descendant.FontDescriptor.get("/FontFile2")
    if program is None:  # CFF fonts (FontFile3) are left as they are
        return None
    original = originals.get(_identity(TTFont(io.BytesIO(program.read_bytes()), lazy=True)))
    if original is None:
        return None
    widths: dict[int, float] = {}
    to_unicode: dict[int, bytes] = {}
    for font in fonts:
        unicode_map = _read_to_unicode(font.ToUnicode.read_bytes())
        if unicode_map is None:
            return None
        to_unicode.update(unicode_map)
        widths.update(_read_widths(font.DescendantFonts[0].get("/W", pikepdf.Array())))
    data = _subset(original, sorted(set(widths) | set(to_unicode) | {0}))
    merged = pdf.copy_foreign(fonts[0]) if fonts[0].is_indirect is False else fonts[0]
    merged_descendant = merged.DescendantFonts[0]
    merged_descendant.W = _write_widths(widths)
    merged.ToUnicode = pdf.make_stream(_write_to_unicode(to_unicode))
    font_file = pdf.make_stream(data)
    font_file.Length1 = len(data)
    merged_descendant.FontDescriptor.FontFile2 = font_file
    if "/CIDSet" in merged_descendant.FontDescriptor:
        del merged_descendant.FontDescriptor["/CIDSet"]
    return merged


def _subset(path: Path, gids: list[int]) -> bytes:
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
        subsetter = subset.Subsetter(options)
        subsetter.populate(gids=gids)
        subsetter.subset(font)
        font.save(buffer)
    return buffer.getvalue()


def _read_widths(array) -> dict[int, float]:
    """A CID font's /W array: `start [w1 w2 ...]` or `first last w`."""
    items, widths, index = list(array), {}, 0
    while index < len(items):
        start = int(items[index])
        following = items[index + 1]
        if isinstance(following, pikepdf.Array):
            for offset, width in enumerate(following):
                widths[start + offset] = float(width)
            index += 2
        else:
            for gid in range(start, int(following) + 1):
                widths[gid] = float(items[index + 2])
            index += 3
    return widths


def _write_widths(widths: dict[int, float]) -> pikepdf.Array:
    array, run_start, run = [], None, []
    for gid in sorted(widths):
        if run_start is not None and gid == run_start + len(run):
            run.append(widths[gid])
            continue
        if run_start is not None:
            array += [run_start, pikepdf.Array(run)]
        run_start, run = gid, [widths[gid]]
    if run_start is not None:
        array += [run_start, pikepdf.Array(run)]
    return pikepdf.Array([_number(value) for value in array])


def _number(value):
    if isinstance(value, pikepdf.Array):
        return pikepdf.Array([int(v) if float(v).is_integer() else v for v in value])
    return value


BFCHAR = re.compile(rb"beginbfchar(.*?)endbfchar", re.S)
PAIR = re.compile(rb"<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]*)>")


def _read_to_unicode(cmap: bytes) -> dict[int, bytes] | None:
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
