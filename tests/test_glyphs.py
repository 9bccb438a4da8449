import shutil

from renderer.glyphs import covered, describe, forget_fonts, missing_glyphs
from renderer.layouts import FONTS_DIR


def test_the_bundled_faces_cover_latin_greek_cyrillic_arabic_and_hebrew_not_cjk():
    known = covered("classified")
    assert set("Aé€ΩЖمש→█") <= known
    assert "首" not in known
    assert "\u2028" not in known  # a font may map it; nothing draws it
    assert covered("no-such-layout") <= known  # the bundled fonts alone


def test_missing_glyphs_are_found_in_every_field_in_order():
    data = {"title": "Chief 首席", "list": ["ok", "工 and 首"]}
    found = list(missing_glyphs(data, covered("classified")))
    assert found == [(("title",), "首席"), (("list", 1), "工首")]


def test_a_field_names_its_first_characters_and_counts_the_rest():
    assert describe("首", "memo") == "U+9996 '首' has no glyph in layout memo"
    assert describe("一二三四五六七八", "classified") == (
        "U+4E00 '一', U+4E8C '二', U+4E09 '三', U+56DB '四', U+4E94 '五', U+516D '六'"
        " and 2 more have no glyph in layout classified"
    )


def test_a_damaged_font_file_is_passed_over(tmp_path, monkeypatch):
    fonts = tmp_path / "fonts"
    shutil.copytree(FONTS_DIR, fonts)
    (fonts / "broken.ttf").write_bytes(b"not a font")
    monkeypatch.setattr("renderer.layouts.FONTS_DIR", fonts)
    forget_fonts()
    try:
        assert "Ж" in covered("no-such-layout")
    finally:
        forget_fonts()
