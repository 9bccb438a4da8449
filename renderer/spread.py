"""Spreading a laid-out page: the room left under its columns shared out between their blocks.

A page laid out once is filled without a second layout pass by opening up the gaps in its
columns, as a typesetter feathers a page (vertical justification). Each column of the sheet's
multi-column block gets its share of the free room between its sections (GAP_BETWEEN units a
gap) and between the blocks inside a section (GAP_WITHIN units), never after a heading, so
that both columns end at the bottom of the page. Boxes are moved on WeasyPrint's box tree; the
backgrounds (laid out with absolute positions) and the page's links are made again after.
`fitting.py` decides how far a page may be spread.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from weasyprint.document import Page
from weasyprint.formatting_structure import boxes
from weasyprint.layout.background import layout_box_backgrounds

GAP_BETWEEN = 2  # units a gap between two sections opens up by
GAP_WITHIN = 1  # units a gap between two blocks of one section opens up by
HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}  # a heading stays with what follows it


@dataclass
class Section:
    """A block of a column: the gap units above it, and its items (its list items, pairs,
    entries or cards: two or more blocks of one kind side by side) with the units above each,
    and the boxes from the section down to the items' parent, which grow with them."""

    box: object
    above: int
    path: list
    items: list  # (item box, gap units above it inside the section)
    inner_units: int


@dataclass
class Column:
    box: object
    bottom: float  # where its content ends
    sections: list[Section]
    units: int  # in all


@dataclass
class Plan:
    """How a one-page document would be spread: the room under the sheet, and its columns."""

    sheet: object
    container: object  # the multi-column block
    room: float  # CSS px between the sheet's bottom and the page's
    columns: list[Column]

    def largest_gap(self, room: float | None = None) -> float:
        """How far the widest gap opens up (CSS px) when `room` (all of it) is shared out."""
        room = self.room if room is None else room
        return max(self._unit(column, room) for column in self.columns) * GAP_BETWEEN

    def room_for(self, gap: float) -> float:
        """The room that opens the widest gap by `gap` (CSS px)."""
        bottom = self._container_bottom()
        return max(
            0.0,
            min(gap / GAP_BETWEEN * c.units - (bottom - c.bottom) for c in self.columns),
        )

    def _unit(self, column: Column, room: float) -> float:
        if column.units == 0:
            return 0.0
        return (room + self._container_bottom() - column.bottom) / column.units

    def _container_bottom(self) -> float:
        return self.container.content_box_y() + self.container.height


def plan(document, sheets) -> Plan | None:
    """How the one page of `document` could be spread, its sheet found by `sheets` (the
    engine's `sheet_boxes`); None when it cannot (no columns, more than one page, or a column
    with nothing to open up)."""
    if len(document.pages) != 1:
        return None
    page_box = document.pages[0]._page_box
    found = list(sheets(page_box))
    if len(found) != 1:
        return None
    sheet = found[0]
    container, columns = _columns_in(sheet)
    if container is None:
        return None
    room = page_box.content_box_y() + page_box.height - (sheet.position_y + sheet.margin_height())
    planned = [_column(box) for box in columns]
    if room < 0 or any(column.units == 0 for column in planned):
        return None
    return Plan(sheet, container, room, planned)


def apply(document, planned: Plan, room: float) -> None:
    """Share `room` (at most the plan's) out between the gaps, and make the page again."""
    page_box = document.pages[0]._page_box
    _lower_what_follows(planned.sheet, planned.container, room)
    container_bottom = planned.container.content_box_y() + planned.container.height
    for column in planned.columns:
        unit = (container_bottom - column.bottom) / column.units
        for section in column.sections:
            section.box.translate(0, unit * section.above)
            for item, above in section.items:
                item.translate(0, unit * above)
            if section.items:
                _grow(section.path, unit * section.inner_units)
        column.box.height += room
    _lay_backgrounds_again(page_box, planned.sheet)
    document.pages[0] = Page(page_box)  # its links and anchors, where they are now


def _columns_in(box):
    """The first block under `box` laid out in columns (its column boxes share its element,
    side by side), and those column boxes."""
    children = [child for child in getattr(box, "children", ()) if hasattr(child, "children")]
    element = getattr(box, "element", None)
    columns = [child for child in children if element is not None and child.element is element]
    if len(columns) >= 2 and len({round(column.position_x) for column in columns}) == len(columns):
        return box, columns
    for child in children:
        container, found = _columns_in(child)
        if container is not None:
            return container, found
    return None, []


def _column(box) -> Column:
    """A column's blocks, each with the gap units above it, and the gaps between their items."""
    sections, units, previous = [], 0, None
    for block in _blocks(box):
        if previous is not None and not _is_heading(previous):
            units += GAP_BETWEEN
        path, items = _items(block)
        placed = [(item, GAP_WITHIN * number) for number, item in enumerate(items)]
        inner_units = GAP_WITHIN * max(len(items) - 1, 0)
        sections.append(Section(block, units, path, placed, inner_units))
        units += inner_units
        previous = block
    bottom = max((_bottom(section.box) for section in sections), default=box.content_box_y())
    return Column(box, bottom, sections, units)


def _items(box, depth: int = 0) -> tuple[list, list]:
    """The first run of two or more blocks of one kind (tag and class) in `box` or, at most two
    levels down, in its blocks; and the boxes from `box` down to their parent."""
    children = _blocks(box)
    kinds = [_kind(child) for child in children]
    items = [child for child, kind in zip(children, kinds, strict=True) if kinds.count(kind) > 1]
    if len(items) > 1:
        return [box], items
    if depth < 2:
        for child in children:
            path, found = _items(child, depth + 1)
            if found:
                return [box, *path], found
    return [], []


def _kind(box) -> tuple:
    element = getattr(box, "element", None)
    return (None, None) if element is None else (element.tag, element.get("class"))


def _blocks(box) -> list:
    """The in-flow block-level boxes directly in `box` (not lines, floats or placed boxes)."""
    return [
        child
        for child in getattr(box, "children", ())
        if isinstance(child, boxes.BlockLevelBox) and child.is_in_normal_flow()
    ]


def _is_heading(box) -> bool:
    element = getattr(box, "element", None)
    return element is not None and str(element.tag).lower() in HEADINGS


def _bottom(box) -> float:
    return box.position_y + box.margin_height()


def _lower_what_follows(sheet, container, room: float) -> None:
    """Everything after the multi-column block, up to the sheet, goes down by `room`, and the
    boxes around it grow by as much."""
    _grow(_path(sheet, container), room)


def _grow(path: list, amount: float) -> None:
    """The last box of `path` (a chain of boxes, each in the one before) grew by `amount`: the
    boxes after it, and after each box it is in, go down, and those it is in grow."""
    for parent, child in itertools.pairwise(path):
        after = False
        for sibling in parent.children:
            if after:
                sibling.translate(0, amount)
            after = after or sibling is child
        parent.height += amount
    path[-1].height += amount


def _path(top, target) -> list:
    if top is target:
        return [top]
    for child in getattr(top, "children", ()):
        found = _path(child, target)
        if found:
            return [top, *found]
    return []


def _lay_backgrounds_again(page_box, sheet) -> None:
    """Backgrounds are laid out with absolute positions: lay those of the sheet out again, with
    the images they already have."""
    images: dict = {}
    _images_in(sheet, images)
    layout_box_backgrounds(page_box, sheet, lambda url, orientation=None: images[url])


def _images_in(box, images: dict) -> None:
    background = getattr(box, "background", None)
    if background is not None:
        layers = zip(box.style["background_image"], background.layers, strict=False)
        for (kind, value), layer in layers:
            if kind == "url":
                images[value] = layer.image
    for child in box.all_children():
        _images_in(child, images)
