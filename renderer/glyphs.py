"""Glyph coverage: the characters of a record that no font of its layout can print."""

from __future__ import annotations

import contextlib
import functools
import unicodedata
from collections.abc import Iterator
from pathlib import Path

FONT_SUFFIXES = (".ttf", ".otf")
ALWAYS_COVERED = frozenset(" \n\t\u200b\u200c\u200d\u00a0")  # spaces and joiners: no glyph needed
NEVER_DRAWN = ("Cc", "Cf", "Zl", "Zp")  # Unicode categories that no font draws
SHOWN_PER_FIELD = 6  # characters named one by one in a field; the rest are counted


def covered(layout_name: str) -> frozenset[str]:
    """Every character that a bundled font, or a font in the layout's own folder, has a glyph
    for (fontconfig sees no other font: `fonts/fonts.conf`)."""
    from .layouts import FONTS_DIR, Layout
    from .problems import InvalidInput

    folders = [FONTS_DIR]
    with contextlib.suppress(InvalidInput):  # an unknown layout is reported as such elsewhere
        folders.append(Layout.find(layout_name).folder)
    return _characters_in(tuple(folders))


@functools.cache
def _characters_in(folders: tuple[Path, ...]) -> frozenset[str]:
    from fontTools.ttLib import TTFont

    characters = set(ALWAYS_COVERED)
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in FONT_SUFFIXES:
                try:
                    with path.open("rb") as stream, TTFont(stream, lazy=True) as font:
                        characters.update(chr(code) for code in font.getBestCmap())
                except Exception:  # damaged (fontTools raises many kinds): named when rendering
                    continue
    # a font may map controls, format characters and line separators, but they never print
    # with it (WeasyPrint draws an empty box for U+2028)
    unprintable = {c for c in characters if unicodedata.category(c) in NEVER_DRAWN}
    return frozenset(characters - (unprintable - ALWAYS_COVERED))


def forget_fonts() -> None:
    """A font file changed (the preview watches them): read the fonts again."""
    _characters_in.cache_clear()


def missing_glyphs(
    data: object, known: frozenset[str], location: tuple = ()
) -> Iterator[tuple[tuple, str]]:
    """(field location, its characters outside `known`, in order) for every text in `data`."""
    if isinstance(data, str):
        lacking = sorted(set(data) - known, key=data.index)
        if lacking:
            yield location, "".join(lacking)
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from missing_glyphs(value, known, (*location, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from missing_glyphs(value, known, (*location, index))


def describe(characters: str, layout_name: str) -> str:
    """`U+XXXX 'x' has no glyph in layout NAME`, for the first few characters of a field in the
    order they appear, and a count of the others."""
    shown = ", ".join(f"U+{ord(c):04X} {c!r}" for c in characters[:SHOWN_PER_FIELD])
    more = len(characters) - SHOWN_PER_FIELD
    if more > 0:
        shown += f" and {more} more"
    verb = "has" if len(characters) == 1 else "have"
    return f"{shown} {verb} no glyph in layout {layout_name}"
