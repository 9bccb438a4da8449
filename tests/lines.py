"""Reading laid-out pages back: lines that WeasyPrint broke too early."""

from __future__ import annotations

import itertools

from weasyprint.formatting_structure import boxes

INLINE_ATOMS = (boxes.InlineBlockBox, boxes.InlineReplacedBox)


def broken_too_early(document) -> list[tuple[str, str]]:
    """(end of line, start of the next) for every line whose free space could have held the
    next line's first word twice over: WeasyPrint 70 cuts a line after its first word when the
    text before an element ends in a space that does not fit (see layouts/README.md)."""
    found = []
    for page in document.pages:
        for block in _blocks(page._page_box):
            lines = [child for child in block.children if isinstance(child, boxes.LineBox)]
            for line, following in itertools.pairwise(lines):
                word = _first_word_width(following)
                if word is not None and block.width - _used_width(line) > 2 * word + 12:
                    found.append((_text(line)[-40:], _text(following)[:40]))
    return found


def _blocks(box):
    if getattr(box, "children", None):
        yield box
        for child in box.children:
            yield from _blocks(child)


def _leaves(box):
    if isinstance(box, (boxes.TextBox, *INLINE_ATOMS)) or not getattr(box, "children", None):
        yield box
        return
    for child in box.children:
        yield from _leaves(child)


def _text(line) -> str:
    return "".join(leaf.text for leaf in _leaves(line) if isinstance(leaf, boxes.TextBox))


def _first_word_width(line) -> float | None:
    """About how wide the line's first word is (its share of its text box), or its first atom."""
    for leaf in _leaves(line):
        if isinstance(leaf, boxes.TextBox) and leaf.text.strip():
            if leaf.style["white_space"] in ("nowrap", "pre"):
                return leaf.width  # one unbreakable piece
            word = leaf.text.split()[0]
            return leaf.width * len(word) / len(leaf.text)
        if isinstance(leaf, INLINE_ATOMS):
            return leaf.margin_width()
    return None


def _used_width(line) -> float:
    right = line.content_box_x()
    for leaf in _leaves(line):
        if isinstance(leaf, boxes.TextBox) and leaf.text.strip():
            right = max(right, leaf.position_x + leaf.width)
        elif isinstance(leaf, INLINE_ATOMS):
            right = max(right, leaf.position_x + leaf.margin_width())
    return right - line.content_box_x()


def line_parts(document, css_class: str) -> list[list[str]]:
    """For every element of `css_class`, in order: its text on each line it is laid out on."""
    parts: dict[int, list[str]] = {}
    for page in document.pages:
        for block in _blocks(page._page_box):
            for line in block.children:
                if isinstance(line, boxes.LineBox):
                    on_this_line: dict[int, str] = {}
                    _texts_of_class(line, css_class, None, on_this_line)
                    for key, text in on_this_line.items():
                        parts.setdefault(key, []).append(text)
    return list(parts.values())


def _texts_of_class(box, css_class: str, owner, found: dict) -> None:
    """The text of `box` on its line, by the element of `css_class` it is in (atoms excluded:
    their own lines are read as blocks)."""
    element = getattr(box, "element", None)
    if element is not None and css_class in (element.get("class") or "").split():
        owner = id(element)
    if isinstance(box, boxes.TextBox):
        if owner is not None:
            found[owner] = found.get(owner, "") + box.text
        return
    if isinstance(box, INLINE_ATOMS):
        return
    for child in getattr(box, "children", ()):
        _texts_of_class(child, css_class, owner, found)
