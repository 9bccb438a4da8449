"""Slots: numbers a laid-out page leaves open, stamped in later without laying the page out again.

A layout marks a slot with `{{ slot(name, format, align) }}` (see layouts/README.md): the
page's number and the total (`folio`), or the page of a related specimen (`page:<slug>`). The
slot is laid out holding a placeholder: the format's own characters and every digit, in the
slot's font. That reserves the slot's width, and puts every glyph a stamp can need into the
embedded font subset. Once the page is written, the placeholder's text-showing operator is cut
out of the content stream into a stream of its own; stamping replaces only that small stream,
with the same font, size and position, so the rest of the page stays byte for byte the same
whether it is printed alone ("1 / 1") or bound into a compendium ("12 / 240").
"""

from __future__ import annotations

import bisect
import io
import marshal
import re
from collections.abc import Callable
from dataclasses import astuple, dataclass
from html import unescape

from markupsafe import Markup, escape

from .problems import InvalidInput, Problem

SLOT_ATTRIBUTE = "data-slot"
FIELDS = re.compile(r"\{(page|total)\}")
DIGITS = "0123456789"
ALIGNS = ("left", "right", "center")
FOLIO = "folio"  # the page's own number and the total
PAGE_OF = "page:"  # + a slug: the page of a specimen
INDEX_PAGE = "index"  # the first page of the compendium's index
TOTAL = "total"  # the compendium's page count, on its cover
TYPESET_FORMAT = 2
PT_PER_PX = 0.75  # WeasyPrint draws in CSS px, scaled to points
POSITION_TOLERANCE = 0.01
STAMP_TOLERANCE = 0.5  # thousandths of the font size a stamp may exceed its slot by
MAX_DIGITS = 4  # of any number stamped: up to 9999 pages
# How WeasyPrint writes a text box: its text matrix, perhaps its font, then its glyphs (2 bytes
# each, in hex) with adjustments between them
TEXT_MATRIX = re.compile(rb"^\S+ \S+ \S+ \S+ (\S+) (\S+) Tm\n", re.MULTILINE)
SHOWN = re.compile(rb"(?:/\S+ \S+ Tf\n)?(\[[^\]]*\] TJ\n)")
FONT = re.compile(
    rb"^/(\S+) (\S+) Tf$", re.MULTILINE
)  # CSS px: the content stream writes positions with 6 decimals

Values = dict[str, int] | None  # {"page": 12, "total": 240}; None leaves the slot empty


def slot_markup(name: str, format: str = "{page}", align: str = "left") -> Markup:
    """The element a template writes for a slot (the `slot()` of every layout's templates)."""
    if align not in ALIGNS:
        raise ValueError(f"slot align must be one of {', '.join(ALIGNS)}, not {align!r}")
    if not FIELDS.search(format) or "{" in FIELDS.sub("", format):
        raise ValueError(f"slot format {format!r} must hold {{page}} or {{total}}, and no other {{")
    return Markup(
        '<span {}="{}" data-format="{}" data-align="{}" style="white-space: pre">{}</span>'
    ).format(SLOT_ATTRIBUTE, name, format, align, placeholder(format))


def slot_text(format: str, values: Values) -> str:
    """What a slot prints: its format filled in, or nothing."""
    if values is None:
        return ""
    return FIELDS.sub(lambda match: str(values[match[1]]), format)


def placeholder(format: str) -> str:
    """The format's own characters and every digit: as wide as any number up to 9999 (two
    fields of four digits), with every glyph a stamp needs."""
    return FIELDS.sub("", format) + DIGITS


SLOT_ELEMENT = re.compile(
    rf'(<span {SLOT_ATTRIBUTE}="([^"]*)" data-format="([^"]*)" data-align="[^"]*"'
    r' style="white-space: pre">)[^<]*(</span>)'
)


def filled_html(html: str, values: Callable[[str], Values]) -> str:
    """The layout's HTML with each slot holding its text instead of its placeholder: for
    showing a page as HTML (the preview), where no PDF is stamped."""

    def fill(match: re.Match) -> str:
        text = slot_text(unescape(match[3]), values(unescape(match[2])))
        return match[1] + str(escape(text)) + match[4]

    return SLOT_ELEMENT.sub(fill, html)


@dataclass(frozen=True)
class OpenSlot:
    """A slot where the layout put it: its text starts at (x, y) and is `width` wide, in CSS px
    on page `page` (counted from 0)."""

    name: str
    format: str
    align: str
    page: int
    x: float
    y: float
    width: float


def open_slots(document) -> list[OpenSlot]:
    """The slots of a laid-out WeasyPrint document, page by page, from its box tree."""
    found, seen = [], set()

    def walk(box, page):
        element = getattr(box, "element", None)
        if (
            type(box).__name__ == "TextBox"
            and element is not None
            and element.get(SLOT_ATTRIBUTE)
            and id(element) not in seen
        ):
            seen.add(id(element))
            found.append(
                OpenSlot(
                    element.get(SLOT_ATTRIBUTE),
                    element.get("data-format", "{page}"),
                    element.get("data-align", "left"),
                    page,
                    box.position_x,
                    box.position_y + box.baseline,
                    box.width,
                )
            )
        for child in getattr(box, "children", ()):
            walk(child, page)

    for number, page in enumerate(document.pages):
        walk(page._page_box, number)
    return found


@dataclass(frozen=True)
class Slot:
    """A slot cut out of a written page: the page (from 0), the index of its stream in that
    page's /Contents, the
    placeholder's advance (thousandths of the font size), the glyph and width of each
    character a stamp may print, and the box it prints in (points from the page's top left:
    left, top, right, bottom; from the font size, so a little larger than the glyphs)."""

    name: str
    format: str
    align: str
    page: int
    index: int
    advance: float
    glyphs: dict[str, tuple[int, float]]
    box: tuple[float, float, float, float]

    def widest(self) -> float:
        """The advance of the widest text it may print: its format with four of the widest
        digit for each number."""
        digit = max(self.glyphs[d][1] for d in DIGITS)
        literal = FIELDS.sub("", self.format)
        fields = len(FIELDS.findall(self.format))
        return sum(self.glyphs[c][1] for c in literal) + fields * MAX_DIGITS * digit

    def stamp(self, values: Values) -> bytes:
        """The text-showing operator that prints the slot's text, taking the placeholder's
        advance (so nothing after it moves)."""
        text = slot_text(self.format, values)
        glyphs = [self.glyphs[character] for character in text]
        pad = self.advance - sum(width for _, width in glyphs)
        if pad < -STAMP_TOLERANCE:
            raise ValueError(f"{text!r} is wider than the slot {self.name!r}")
        before = {"left": 0.0, "right": pad, "center": pad / 2}[self.align]
        shown = b"".join(b"%04x" % gid for gid, _ in glyphs)
        return b"[%s <%s> %s] TJ\n" % (_number(-before), shown, _number(before - pad))


def _number(value: float) -> bytes:
    return (f"{value:.3f}".rstrip("0").rstrip(".") or "0").encode()


@dataclass(frozen=True)
class Typeset:
    """Pages laid out once: their PDF with the slots cut out (showing their placeholders),
    the slots, and, for a dossier, the copy printed alone."""

    pdf: bytes
    slots: tuple[Slot, ...]
    single: bytes = b""

    def dumps(self) -> bytes:
        slots = [astuple(slot) for slot in self.slots]
        return marshal.dumps((TYPESET_FORMAT, self.pdf, slots, self.single))

    @classmethod
    def loads(cls, data: bytes) -> Typeset | None:
        try:
            version, pdf, slots, single = marshal.loads(data)
        except (EOFError, ValueError, TypeError):
            return None
        if version != TYPESET_FORMAT:
            return None
        return cls(pdf, tuple(Slot(*slot) for slot in slots), single)


def cut_slots(pdf: bytes, opened: list[OpenSlot], where: str) -> tuple[bytes, tuple[Slot, ...]]:
    """Each page's content split around its slots' placeholders: (the PDF, its slots).

    `where` names the layout in the problem raised when a slot is not printed as one run of
    text in one font (it would otherwise print its placeholder).
    """
    import pikepdf  # only workers that render need it

    if not opened:
        return pdf, ()
    slots = []
    with pikepdf.open(io.BytesIO(pdf)) as document:
        for number, page in enumerate(document.pages):
            on_page = [slot for slot in opened if slot.page == number]
            if on_page:
                slots += _cut_page(document, page, on_page, where)
        return _saved(document), tuple(slots)


def _cut_page(document, page, opened: list[OpenSlot], where: str) -> list[Slot]:
    import pikepdf

    content = page.Contents.read_bytes()
    cuts = _find_placeholders(content, opened)
    found = {id(slot) for slot, _, _ in cuts}
    missing = [slot.name for slot in opened if id(slot) not in found]
    if missing:
        raise _not_one_run(missing[0], where)
    streams, slots, start = [], [], 0
    for opened_slot, (begin, end), font in cuts:
        streams.append(content[start:begin])
        shown = content[begin:end]
        slot = _slot(opened_slot, len(streams), page.Resources.Font, *font)
        if not set(placeholder(slot.format)) <= set(slot.glyphs):  # partly in another font
            raise _not_one_run(slot.name, where)
        if slot.widest() > slot.advance + STAMP_TOLERANCE:
            message = f"slot {slot.name!r} is too narrow for its widest number (9999)"
            raise InvalidInput(
                [Problem(where, None, "layout", f"{message}; see layouts/README.md")]
            )
        slots.append(slot)
        streams.append(shown)
        start = end
    streams.append(content[start:])
    page.Contents = pikepdf.Array([document.make_stream(data) for data in streams])
    return slots


def _not_one_run(name: str, where: str) -> InvalidInput:
    """A slot whose placeholder is not one run of text in one font cannot be stamped (its
    placeholder would print): a fault of the layout."""
    message = f"slot {name!r} is not printed as one run of text in one font"
    return InvalidInput([Problem(where, None, "layout", f"{message} (see layouts/README.md)")])


def _find_placeholders(
    content: bytes, opened: list[OpenSlot]
) -> list[tuple[OpenSlot, tuple, tuple]]:
    """(slot, (start, end) of its text-showing operation, (font resource name, size)), in
    content order: the text shown right after a text matrix that puts it where the slot's text
    starts. The content is read as WeasyPrint writes it (one operation a line); a slot not
    found this way is reported as not printed as one run."""
    fonts = [(match.end(), match[1].decode(), float(match[2])) for match in FONT.finditer(content)]
    ends = [end for end, _, _ in fonts]
    cuts = []
    for matrix in TEXT_MATRIX.finditer(content):
        x, y = float(matrix[1]), float(matrix[2])
        slot = next((s for s in opened if abs(s.x - x) < POSITION_TOLERANCE
                     and abs(s.y - y) < POSITION_TOLERANCE), None)  # fmt: skip
        shown = SHOWN.match(content, matrix.end()) if slot is not None else None
        if shown is None:
            continue
        at = bisect.bisect_right(ends, shown.start(1))  # the last font set before it
        if at:
            cuts.append((slot, shown.span(1), fonts[at - 1][1:]))
    return cuts


def _slot(opened: OpenSlot, index: int, fonts, font_name: str, size: float) -> Slot:
    """The slot's glyphs (from the font's ToUnicode map, which holds every placeholder
    character) and its advance."""
    import pikepdf

    from .fontmerge import read_to_unicode, read_widths

    font = fonts["/" + font_name]
    widths = read_widths(font.DescendantFonts[0].get("/W", pikepdf.Array()))
    texts = read_to_unicode(font.ToUnicode.read_bytes()) or {}
    by_character = {}
    for gid, hex_text in texts.items():
        character = bytes.fromhex(hex_text.decode()).decode("utf-16-be", "replace")
        if len(character) == 1 and gid in widths:
            by_character.setdefault(character, (gid, widths[gid]))
    needed = set(FIELDS.sub("", opened.format) + DIGITS)
    glyphs = {c: by_character[c] for c in sorted(needed) if c in by_character}
    # the box's width, not the glyphs' advance: the layout may narrow a slot (letter-spacing)
    advance = opened.width / size * 1000
    right = opened.x + opened.width
    box = tuple(
        round(value * PT_PER_PX, 2)
        for value in (opened.x, opened.y - size, right, opened.y + 0.3 * size)
    )
    return Slot(opened.name, opened.format, opened.align, opened.page, index, advance, glyphs, box)


def stamped(
    pdf: bytes,
    slots: tuple[Slot, ...],
    values: Callable[[str], Values],
    links: Callable[[str], str] | None = None,
) -> bytes:
    """The pages with every slot stamped, each in one content stream again; `links` (URI ->
    URI) rewrites the pages' link targets."""
    import pikepdf

    with pikepdf.open(io.BytesIO(pdf)) as document:
        for number, page in enumerate(document.pages):
            on_page = [slot for slot in slots if slot.page == number]
            if on_page:  # a page without slots keeps its one content stream
                parts = [stream.read_bytes() for stream in page.Contents]
                for slot in on_page:
                    parts[slot.index] = slot.stamp(values(slot.name))
                page.Contents = document.make_stream(b"\n".join(parts))
            if links is not None:
                _rewrite_links(page, links)
        return _saved(document)


def _rewrite_links(page, links: Callable[[str], str]) -> None:
    import pikepdf

    for annotation in page.get("/Annots", pikepdf.Array()):
        action = annotation.get("/A")
        if action is not None and action.get("/S") == "/URI":
            action.URI = pikepdf.String(links(str(action.URI)))


def _saved(document) -> bytes:
    import pikepdf

    buffer = io.BytesIO()
    document.save(
        buffer,
        deterministic_id=True,
        object_stream_mode=pikepdf.ObjectStreamMode.generate,
        compress_streams=True,
    )
    return buffer.getvalue()
