import pytest

from renderer.slots import FOLIO, Slot, filled_html, placeholder, slot_markup

DIGITS = {str(digit): (10 + digit, 600.0) for digit in range(10)}
GLYPHS = {**DIGITS, " ": (3, 600.0), "/": (4, 600.0)}


def folio(align: str) -> Slot:
    advance = 600.0 * len(placeholder("{page} / {total}"))
    return Slot(FOLIO, "{page} / {total}", align, 0, 1, advance, GLYPHS, (0, 0, 1, 1))


def test_a_stamp_keeps_the_placeholders_advance_and_aligns_within_it():
    # "12 / 240": 8 glyphs of 600 in a slot of 13 glyphs: 3000 to spare
    assert folio("right").stamp({"page": 12, "total": 240}) == (
        b"[-3000 <000b000c000300040003000c000e000a> 0] TJ\n"
    )
    assert folio("left").stamp({"page": 12, "total": 240}).endswith(b"> -3000] TJ\n")
    assert folio("center").stamp({"page": 12, "total": 240}).startswith(b"[-1500 <")
    assert folio("right").stamp(None) == b"[-7800 <> 0] TJ\n"  # nothing shown, same advance


def test_a_number_wider_than_its_slot_is_refused_not_overprinted():
    with pytest.raises(ValueError, match="wider than the slot"):
        folio("right").stamp({"page": 123456, "total": 1234567})


def test_slot_markup_reserves_the_format_and_every_digit_and_escapes():
    markup = slot_markup("page:a-b", "→ p. {page}")
    assert 'data-slot="page:a-b"' in markup and ">→ p. 0123456789</span>" in markup
    with pytest.raises(ValueError, match="must hold"):
        slot_markup(FOLIO, "{page.__class__}")
    with pytest.raises(ValueError, match="align"):
        slot_markup(FOLIO, "{page}", "justify")
    html = str(slot_markup(FOLIO, "{page} & {total}", "right"))
    assert "&amp;" in html
    filled = filled_html(html, lambda name: {"page": 1, "total": 1} if name == FOLIO else None)
    assert ">1 &amp; 1</span>" in filled


def test_a_slot_printed_partly_in_another_font_is_a_fault_of_the_layout(tmp_path):
    """Its placeholder could not be stamped over and would print: one located line, no render."""
    import shutil

    from renderer.config import Config
    from renderer.layouts import LAYOUTS_DIR
    from renderer.problems import InvalidInput
    from renderer.records import load_catalog
    from renderer.render import render_dossier_report
    from tests.conftest import RECORDS, SEED_SLUG

    layout = tmp_path / "stars"
    shutil.copytree(LAYOUTS_DIR / "classified", layout)
    template = layout / "dossier.html.j2"
    template.write_text(
        template.read_text(encoding="utf-8").replace('"→ p. {page}"', '"ש p. {page}"'),
        encoding="utf-8",
    )
    record = load_catalog(RECORDS)[SEED_SLUG].record
    with pytest.raises(InvalidInput) as raised:
        render_dossier_report(record, Config(layout=str(layout)))
    (problem,) = raised.value.problems
    assert str(problem).startswith(f"{template}: layout: slot 'page:")
    assert str(problem).endswith(
        "is not printed as one run of text in one font (see layouts/README.md)"
    )
