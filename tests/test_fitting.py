"""The fitting arithmetic alone: no WeasyPrint, a page simulated by a function of the scale."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from renderer.fitting import (
    AIM,
    BODY_PT,
    FIRST_AIM,
    FULL,
    MAX_PASSES,
    MAX_SCALE,
    MIN_SCALE,
    Measure,
    PageModel,
    Search,
    TextSize,
    clamp,
    first_scale,
    is_full,
    next_scale,
    widest_gap,
)


def test_the_smallest_scale_gives_body_text_of_6_5_pt_and_no_less():
    assert MIN_SCALE * BODY_PT >= 6.5
    assert (MIN_SCALE - 0.0001) * BODY_PT < 6.5


def test_scales_are_whole_hundredths_between_the_floor_and_the_ceiling():
    assert clamp(0.8349) == 0.83
    assert clamp(0.1) == MIN_SCALE
    assert clamp(7.0) == MAX_SCALE


MODEL = PageModel(per_char=1 / 9000, squared=1400 / 9000)  # a page of 9,000 characters


def test_the_model_grows_with_the_square_of_the_scale_for_text_and_not_for_qr_codes():
    model = PageModel(per_char=0.0001, per_part=0.002, per_related=0.02, linear=0.1, fixed=0.05)
    size = TextSize(chars=5000, parts=60, related=4)
    assert model.fill(1.0, size) == pytest.approx(0.5 + 0.12 + 0.1 + 0.08 + 0.05)
    assert model.fill(0.5, size) == pytest.approx(0.5 / 4 + (0.12 + 0.1) / 2 + 0.08 + 0.05)
    for fill in (0.4, 0.98, 1.5):
        assert model.fill(model.scale_for(fill, size), size) == pytest.approx(fill)


def test_a_layout_without_a_model_holds_page_text_characters():
    model = PageModel.from_page_text(4200)
    assert model.fill(1.0, TextSize(4200 - 1400)) == pytest.approx(1.0)


def test_the_first_guess_shrinks_as_the_text_grows():
    guesses = [first_scale(TextSize(text), MODEL) for text in (500, 2000, 4000, 8000)]
    assert guesses == sorted(guesses, reverse=True)
    assert first_scale(TextSize(10), MODEL) == MAX_SCALE
    assert first_scale(TextSize(10**6), MODEL) == MIN_SCALE
    assert MODEL.fill(first_scale(TextSize(6000), MODEL), TextSize(6000)) == pytest.approx(
        FIRST_AIM, abs=0.02
    )


def test_the_next_scale_aims_at_a_page_a_little_under_full():
    size = TextSize(chars=9000 - 1400)  # the model says: full at scale 1
    overflowing = Measure(pages=2, used=1500, available=1000)
    # the model said a full page at 1.0, the page says 1.5: the model is corrected by 1.5
    assert next_scale(1.0, overflowing, size, MODEL) == round(math.sqrt(AIM / 1.5), 2)
    assert next_scale(1.0, Measure(3, 30000, 1000), size, MODEL) == MIN_SCALE
    assert next_scale(1.0, Measure(1, 0, 1000), size, MODEL) == MAX_SCALE
    assert 1.0 < next_scale(1.0, Measure(1, 500, 1000), size, MODEL) <= MAX_SCALE


def test_a_page_is_full_from_96_percent_or_at_the_largest_type():
    assert is_full(1.0, Measure(1, FULL * 1000, 1000))
    assert not is_full(1.0, Measure(1, FULL * 1000 - 1, 1000))
    assert is_full(MAX_SCALE, Measure(1, 100, 1000))
    assert not is_full(1.0, Measure(2, 1200, 1000))


def search(page, scale: float | None = None) -> Search:
    """Run a search against `page`, a function from scale to the fill it gives."""
    state = Search(TextSize(5000), MODEL, scale or 0.0)
    while not state.record(Measure(1 if page(state.scale) <= 1 else 2, page(state.scale), 1)):
        pass
    return state


@pytest.mark.parametrize("text", [0.3, 0.5, 0.9, 1.3, 1.6, 1.7])  # area at scale 1, in pages
@pytest.mark.parametrize("guess", [MIN_SCALE, 0.8, 1.0, MAX_SCALE])
def test_the_search_finds_a_full_page_from_any_first_guess(text, guess):
    def page(scale):  # text that grows with the square of the scale, and a fixed part
        return 0.1 + text * scale**2

    state = search(page, guess)
    assert state.best is not None and page(state.best) <= 1
    assert page(state.best) >= FULL or state.best == MAX_SCALE
    assert state.passes <= MAX_PASSES


def test_a_record_too_long_at_the_smallest_type_is_refused_with_how_much_too_long():
    state = search(lambda scale: 3 * scale**2, 1.0)
    assert state.best is None
    assert state.overflow == round(100 * (3 * MIN_SCALE**2 - 1))


def test_a_page_that_jumps_between_too_empty_and_too_full_ends_without_going_round():
    def page(scale):  # a block that moves to the next page between 0.90 and 0.91
        return 0.9 if scale < 0.905 else 1.05

    state = search(page, 0.8)
    assert 0.89 <= state.best <= 0.9
    assert state.passes <= MAX_PASSES


def test_fitting_does_not_load_weasyprint():
    code = "import sys, renderer.fitting; print('weasyprint' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert loaded.stdout.strip() == "False", loaded.stderr


def test_a_page_that_spreading_fills_needs_no_other_pass():
    """A page 90% full whose gaps open up by less than SPREAD_LINES lines is full; one whose
    gaps would open up further, or that cannot be spread, is not."""
    limit = widest_gap(0.9)
    assert is_full(0.9, Measure(1, 900, 1000, spread=limit * 0.9))
    assert not is_full(0.9, Measure(1, 900, 1000, spread=limit * 1.1))
    assert not is_full(0.9, Measure(1, 900, 1000, spread=None))
    assert not is_full(0.9, Measure(2, 1100, 1000, spread=1.0))  # overflowing: no spreading
    assert widest_gap(1.2) > widest_gap(0.8)  # in lines of the body text, which grows


def test_the_first_guess_aims_under_a_full_page_and_spreading_makes_up_the_rest():
    assert FIRST_AIM < FULL < AIM
