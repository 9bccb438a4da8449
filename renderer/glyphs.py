"""Glyph coverage: the characters of a record that the bundled fonts cannot print."""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterator


@functools.cache
def covered() -> frozenset[str]:
    """Every character some bundled font has a glyph for, and whitespace."""
    from fontTools.ttLib import TTFont

    from .layouts import FONTS_DIR

    characters = {" ", "\n", "\t", "\u200b", "\u200c", "\u200d", "\u00a0"}
    for path in sorted(FONTS_DIR.rglob("*")):
        if path.suffix.lower() in (".ttf", ".otf"):
            with TTFont(path, lazy=True) as font:
                characters.update(chr(code) for code in font.getBestCmap())
    return frozenset(characters)


def missing_glyphs(data: object, location: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """(field location, its characters without a bundled glyph) for every text in `data`."""
    if isinstance(data, str):
        lacking = sorted(set(data) - covered(), key=data.index)
        if lacking:
            yield location, "".join(lacking)
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from missing_glyphs(value, (*location, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from missing_glyphs(value, (*location, index))


def describe(characters: str) -> str:
    shown = ", ".join(f"{c!r} U+{ord(c):04X}" for c in characters[:6])
    more = f" and {len(characters) - 6} more" if len(characters) > 6 else ""
    names = unicodedata.name(characters[0], "")
    hint = f" ({names.lower()})" if names else ""
    return (
        f"the bundled fonts have no glyph for {shown}{more}{hint}; they print with a system font"
        " that has them, or as empty boxes"
    )
