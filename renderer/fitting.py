"""Fitting a dossier to one page: which type scale to lay out next, and when to stop. Pure.

A layout sizes everything that grows with the text in rem, and the engine sets the root size to
body size x scale. How full the page gets at a scale is estimated by the layout's `PageModel`
before the first pass; each pass then measures the real fill, and the next scale is the one the
model, corrected by that measurement, says fills AIM of the page. Aiming a little under a full
page leaves room for what the model cannot know (where lines and columns break).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

BODY_PT = 9  # the body size at scale 1 in the built-in layouts (see their CSS)
MIN_SCALE = math.ceil(6.5 / BODY_PT * 1e4) / 1e4  # body text 6.5 pt: the smallest legible size
MAX_SCALE = 1.25  # larger type looks like a poster, not a case file
FULL = 0.96  # a page filled to 96% of its height is full: larger type would not fit
AIM = 0.98  # the fill each estimate aims at: above FULL, with room for the estimate's error
# the first estimate aims lower: a page that fits is filled by spreading (SPREAD_LINES), and
# one that overflows takes another pass
FIRST_AIM = 0.95
MAX_PASSES = 5
# A page that fits is filled by opening up the gaps in its columns (spread.py), as far as the
# widest gap opening by SPREAD_LINES lines of body text: no further layout pass is needed then.
SPREAD_LINES = 1.5
LINE = BODY_PT * 4 / 3 * 1.15  # CSS px of a line of body text at scale 1
# Without a layout's own page model: its labels take about as much room as FIXED_TEXT characters.
FIXED_TEXT = 1400


@dataclass(frozen=True)
class TextSize:
    """What of a record the page must hold: characters of text, the pieces they come in
    (paragraphs, items, names: each ends in a part-filled line and has margins), and related
    specimens (each with a QR code of fixed size)."""

    chars: int
    parts: int = 0
    related: int = 0


@dataclass(frozen=True)
class Measure:
    """How much of the page a layout pass took: the sheet's height over all its pages, and the
    height it has on the first page (in any unit, the same for both)."""

    pages: int
    used: float
    available: float
    spread: float | None = None  # how far the widest gap opens up to fill the page; None: never

    @property
    def fits(self) -> bool:
        return self.pages == 1 and self.used <= self.available + 0.01

    @property
    def fill(self) -> float:
        return self.used / self.available if self.available > 0 else math.inf


@dataclass(frozen=True)
class PageModel:
    """How full a layout's page is at type scale s, as a share of its height:

        fill(s) = s² (per_char chars + squared) + s (per_part parts + linear)
                  + per_related related + fixed

    Text takes room with the square of the scale; the last line and the margins of each part
    grow with the scale alone (they are as wide as the column at any scale); QR codes and rules
    do not grow. `bench/dossiers.py --calibrate` measures the coefficients of a layout, which
    its layout.toml keeps under [fit]; without them, the page holds `page_text` characters.
    """

    per_char: float
    per_part: float = 0.0
    per_related: float = 0.0
    squared: float = 0.0
    linear: float = 0.0
    fixed: float = 0.0

    @classmethod
    def from_page_text(cls, page_text: int) -> PageModel:
        return cls(per_char=1 / page_text, squared=FIXED_TEXT / page_text)

    def fill(self, scale: float, size: TextSize) -> float:
        a, b, c = self._terms(size)
        return a * scale**2 + b * scale + c

    def scale_for(self, fill: float, size: TextSize) -> float:
        """The scale at which the page would be `fill` full (not clamped)."""
        a, b, c = self._terms(size)
        if a <= 0:
            return MAX_SCALE if b <= 0 else (fill - c) / b
        discriminant = b * b - 4 * a * (c - fill)
        if discriminant < 0:
            return 0.0
        return (-b + math.sqrt(discriminant)) / (2 * a)

    def _terms(self, size: TextSize) -> tuple[float, float, float]:
        return (
            self.per_char * size.chars + self.squared,
            self.per_part * size.parts + self.linear,
            self.per_related * size.related + self.fixed,
        )


def clamp(scale: float) -> float:
    # Whole hundredths: every new type size costs WeasyPrint (Pango) memory for good in a
    # process. The floor is the one size that is not.
    return max(MIN_SCALE, round(min(MAX_SCALE, scale), 2))


def first_scale(size: TextSize, model: PageModel) -> float:
    """The scale the model says fills FIRST_AIM of the page. A fixed guess, not one learned
    from earlier renders, keeps a PDF a function of its input alone."""
    return clamp(model.scale_for(FIRST_AIM, size))


def next_scale(scale: float, measure: Measure, size: TextSize, model: PageModel) -> float:
    """The scale that should fill AIM of the page, from what one pass measured: the model,
    corrected by how far off it was at this scale."""
    if measure.used <= 0:  # an empty sheet: any type scale fits
        return MAX_SCALE
    error = measure.fill / max(model.fill(scale, size), 1e-9)
    return clamp(model.scale_for(AIM / error, size))


def widest_gap(scale: float) -> float:
    """How far a gap may open up to fill a page at this scale (CSS px)."""
    return SPREAD_LINES * LINE * scale


def is_full(scale: float, measure: Measure) -> bool:
    """One page that needs no larger type: full enough, at the largest type already, or one
    that spreading fills."""
    spreads = measure.spread is not None and measure.spread <= widest_gap(scale)
    return measure.fits and (measure.fill >= FULL or scale >= MAX_SCALE or spreads)


@dataclass
class Search:
    """The search for the largest scale that fits one page, pass by pass.

    `scale` is the next one to lay out; `record(measure)` takes what that pass measured and
    says whether to stop. Between passes, the next scale stays between the largest known to
    fit and the smallest known to overflow, so the search cannot go round in circles.
    """

    size: TextSize
    model: PageModel
    scale: float = 0.0  # 0: the model's first guess
    passes: int = 0
    best: float | None = None  # the largest scale known to fit
    best_fill: float = 0.0
    too_big: float = math.inf  # the smallest scale known to overflow
    too_big_fill: float = math.inf
    last: Measure | None = None

    def __post_init__(self):
        self.scale = self.scale or first_scale(self.size, self.model)

    def record(self, measure: Measure) -> bool:
        """True when the search is over: `best` is the answer, or None if nothing fits."""
        self.passes += 1
        self.last = measure
        if measure.fits:
            self.best, self.best_fill = self.scale, measure.fill
            if is_full(self.scale, measure):
                return True
        else:
            self.too_big, self.too_big_fill = self.scale, measure.fill
            if self.scale <= MIN_SCALE:
                return True
        if self.passes >= MAX_PASSES:
            return True
        estimate = next_scale(self.scale, measure, self.size, self.model)
        if self.best is not None and self.too_big < math.inf:
            estimate = self._between()
        following = round(max(MIN_SCALE, min(estimate, self.too_big - 0.01)), 4)
        if following >= self.too_big or following <= (self.best or 0) + 0.005:
            return True  # nothing untried lies between what fits and what does not
        self.scale = following
        return False

    def _between(self) -> float:
        """With a scale that fits and one that does not: where the line through their fills
        (against the square of the scale) reaches AIM, kept inside the bracket."""
        low, high = self.best**2, self.too_big**2
        slope = (self.too_big_fill - self.best_fill) / (high - low)
        if slope <= 0:  # the page jumped: halve the bracket
            return (self.best + self.too_big) / 2
        square = low + (AIM - self.best_fill) / slope
        return round(math.sqrt(min(max(square, low), high)), 2)

    @property
    def overflow(self) -> int:
        """How much too long the record is at the smallest type, in percent."""
        return round(100 * (self.last.fill - 1)) if self.last else 0
