"""Engine: WeasyPrint layout of a dossier, fitting it to one page, writing the PDF."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass

from .layouts import FONTS_CONF

# Before WeasyPrint loads fontconfig: the bundled fonts are the only ones it can find, so that a
# character none of them has prints as a box that `check` warned about, never in a font of this
# machine that the PDF would then depend on.
os.environ["FONTCONFIG_FILE"] = str(FONTS_CONF)

import weasyprint
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import FatalURLFetchingError, URLFetcher, URLFetcherResponse

from . import spread
from .contract import DOSSIER_TEMPLATE, SHEET_ID
from .fileio import os_reason
from .fitting import Measure, Search, TextSize, widest_gap
from .layouts import (
    FONTS_CSS,
    Layout,
    fetch_refusal,
    guess_type,
    is_allowed_file,
)
from .problems import InvalidInput, Problem

PDF_VARIANTS = ("pdf/a-3b", "pdf/ua-1")
EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


class GuardedFetcher(URLFetcher):
    """Serves `data:` URLs and files under the layout folder and fonts/; refuses the rest."""

    def __init__(self, roots):
        super().__init__(fail_on_errors=True, allowed_protocols=("file", "data"))
        self.roots = tuple(roots)

    def fetch(self, url, headers=None):
        # WeasyPrint turns any other exception into a vague "Error fetching": say what it was
        if url.startswith("data:"):
            try:
                return super().fetch(url, headers)
            except Exception as error:
                raise FatalURLFetchingError(f"cannot fetch {url[:80]}: {error}") from None
        path = is_allowed_file(url, self.roots)
        if path is None:
            reason = fetch_refusal(url, self.roots)
            raise FatalURLFetchingError(f"refused to fetch {url[:200]}: {reason}")
        try:
            data = path.read_bytes()
        except OSError as error:
            reason = os_reason(error)
            raise FatalURLFetchingError(f"cannot fetch {url[:200]}: {reason}") from None
        return URLFetcherResponse(url, data, {"Content-Type": guess_type(path)})


@dataclass(frozen=True)
class Fitted:
    """A one-page layout, its type scale, the layout passes it took and how full its page is."""

    document: weasyprint.Document
    scale: float
    passes: int
    fill: float
    opened: float = 0.0  # CSS px the widest gap was opened up by to fill the page (spread.py)


class Engine:
    """One layout's WeasyPrint state (fonts, stylesheets, caches), reused across renders."""

    def __init__(self, layout: Layout):
        self.layout = layout
        self.fetcher = GuardedFetcher(layout.allowed_roots)
        self.font_config = FontConfiguration()
        self.stylesheets = [
            weasyprint.CSS(
                filename=str(FONTS_CSS), url_fetcher=self.fetcher, font_config=self.font_config
            )
        ]
        self.cache: dict = {}

    def layout_html(self, html: str, variant: str | None = None) -> weasyprint.Document:
        """One WeasyPrint layout pass."""
        with self.layout_faults_as_problems():
            document = weasyprint.HTML(
                string=html, base_url=self.layout.base_url, url_fetcher=self.fetcher
            )
            return document.render(
                font_config=self.font_config,
                stylesheets=self.stylesheets,
                cache=self.cache,
                **variant_options(variant),
            )

    def write_document(self, document: weasyprint.Document, **options) -> bytes:
        """A laid-out document as PDF bytes (attachment links are fetched only now)."""
        with self.layout_faults_as_problems():
            return document.write_pdf(**options)

    @contextlib.contextmanager
    def layout_faults_as_problems(self):
        """What stops WeasyPrint because of the layout's HTML, as a problem of the layout: the
        guard's refusal (a BaseException), elements nested too deeply to lay out."""
        try:
            yield
        except FatalURLFetchingError as error:
            problem = Problem(self.layout.shown_path(), None, "layout", str(error))
            raise InvalidInput([problem]) from None
        except RecursionError:
            message = "its HTML nests elements too deeply to be laid out"
            raise InvalidInput(
                [Problem(self.layout.shown_path(), None, "layout", message)]
            ) from None

    def fit(
        self, html_at: Callable[[float], str], name: str, size: TextSize, variant=None
    ) -> Fitted:
        """Lay out at the largest type scale that fills one page, in as few passes as possible
        (`fitting.Search` chooses each scale from the layout's page model and `size`)."""
        search = Search(size, self.layout.page_model)
        fitted = None
        while True:
            document = self.layout_html(html_at(search.scale), variant)
            measure = measure_sheet(document)
            if measure is None:
                message = (
                    f'no element with id="{SHEET_ID}" (the part that must fit one page;'
                    " see layouts/README.md)"
                )
                path = self.layout.shown_path(DOSSIER_TEMPLATE)
                raise InvalidInput([Problem(path, None, "layout", message)])
            if measure.fits:
                fitted = Fitted(document, search.scale, 0, measure.fill)
            if search.record(measure):
                break
        if fitted is not None:
            opened = spread_page(fitted.document, fitted.scale)
            fill = measure_sheet(fitted.document).fill if opened else fitted.fill
            return Fitted(fitted.document, fitted.scale, search.passes, fill, opened)
        if measure.available <= 0 or measure.used <= measure.available + 0.01:
            raise InvalidInput([self.layout_problem(measure)])
        message = (
            "does not fit on one page even at the smallest legible type (6.5 pt):"
            f" about {search.overflow}% too long; shorten the longest sections"
        )
        raise InvalidInput([Problem(name, None, "", message)])

    def layout_problem(self, measure: Measure) -> Problem:
        """The page overflows, and not for the record's text: the layout is at fault."""
        if measure.available <= 0:
            message = f'the element id="{SHEET_ID}" starts below the first page'
        else:
            message = f'what lies outside the element id="{SHEET_ID}" takes more than one page'
        path = self.layout.shown_path(DOSSIER_TEMPLATE)
        return Problem(path, None, "layout", f"{message} (see layouts/README.md)")

    def write(self, fitted: Fitted, variant=None, attachments=()) -> bytes:
        return self.write_document(
            fitted.document, attachments=list(attachments) or None, **variant_options(variant)
        )


def variant_options(variant: str | None) -> dict:
    if variant is None:
        return {}
    if variant not in PDF_VARIANTS:
        raise ValueError(f"unknown PDF variant {variant!r}")
    return {"pdf_variant": variant}


def spread_page(document: weasyprint.Document, scale: float) -> float:
    """Fill the page by opening up the gaps in its columns, the widest by no more than fitting
    allows; how far it opened (CSS px), 0 when it could not."""
    planned = spread.plan(document, sheet_boxes)
    if planned is None:
        return 0.0
    room = min(planned.room, planned.room_for(widest_gap(scale)))
    if room <= 0:
        return 0.0
    opened = planned.largest_gap(room)
    spread.apply(document, planned, room)
    return opened


def measure_sheet(document: weasyprint.Document) -> Measure | None:
    """How much of the page the sheet takes, and how far spreading would open its gaps to
    fill it; None when the layout has no sheet."""
    fragments = [(page, box) for page in document.pages for box in sheet_boxes(page._page_box)]
    if not fragments:
        return None
    first_page, first = fragments[0]
    page_box = first_page._page_box
    available = page_box.content_box_y() + page_box.height - first.position_y
    # A sheet that goes on to a next page reaches the bottom of the first, but its content may
    # stop short of it (columns, blocks that do not break): what it needs is where content ends.
    if len(fragments) > 1:
        first_used = _content_bottom(first) - first.position_y
    else:
        first_used = first.margin_height()
    planned = spread.plan(document, sheet_boxes) if len(fragments) == 1 else None
    return Measure(
        pages=len(document.pages),
        used=first_used + sum(box.margin_height() for _, box in fragments[1:]),
        available=available,
        spread=planned.largest_gap() if planned is not None else None,
    )


def _content_bottom(box) -> float:
    """Where the box's content ends, going down: the bottom of its last line or leaf box, plus
    the padding and border that close the boxes around it."""
    children = getattr(box, "children", None)
    if not children:
        return box.position_y + box.margin_height()
    inner = max(_content_bottom(child) for child in children)
    return inner + box.padding_bottom + box.border_bottom_width + box.margin_bottom


def sheet_boxes(box):
    """The outermost boxes of the sheet element under `box` (its lines of text share its
    element)."""
    element = getattr(box, "element", None)
    if element is not None and element.get("id") == SHEET_ID:
        yield box
        return
    for child in getattr(box, "children", ()):
        yield from sheet_boxes(child)


def attachment(name: str, data: bytes, when: dt.date | None, description: str):
    """An embedded file with fixed dates, so that the PDF stays reproducible."""
    stamp = dt.datetime.combine(when, dt.time(), dt.UTC) if when else EPOCH
    return weasyprint.Attachment(
        string=data, name=name, description=description, created=stamp, modified=stamp
    )
