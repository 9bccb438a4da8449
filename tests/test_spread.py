"""Spreading a laid-out page: the columns end at the bottom, nothing overlaps, links follow."""

from __future__ import annotations

import io
import itertools

import pikepdf
import pypdfium2
import pytest
import zxingcpp

from renderer import spread
from renderer.config import Config
from renderer.engine import measure_sheet, sheet_boxes
from renderer.fitting import LINE
from renderer.layouts import Layout
from renderer.records import load_record
from renderer.render import dossier_html, engine_for, render_dossier_report
from tests import pdfs
from tests.conftest import RECORDS
from tests.shapes import Shape, varied_record

SCALE = 0.85  # the seed at this scale leaves about a tenth of the page empty


def laid_out(layout_name: str, scale: float = SCALE):
    record = load_record(RECORDS / "sdet.yaml").record
    layout = Layout.find(layout_name)
    engine = engine_for(layout)
    return engine, engine.layout_html(dossier_html(record, Config(), scale=scale, layout=layout))


@pytest.mark.parametrize("layout", ["classified", "memo"])
def test_a_spread_page_ends_at_the_bottom_with_every_text_and_no_overlap(layout):
    engine, document = laid_out(layout)
    overlapping_before = overlapping_words(engine.write_document(document))  # upright text
    before = measure_sheet(document)
    planned = spread.plan(document, sheet_boxes)
    assert before.fits and before.fill < 0.95 and planned is not None
    spread.apply(document, planned, planned.room)
    after = measure_sheet(document)
    assert after.fill == pytest.approx(1.0, abs=1e-6)
    for column in planned.columns:  # each column's last block ends at the bottom
        last = column.sections[-1].box
        assert last.position_y + last.margin_height() == pytest.approx(
            planned.container.content_box_y() + planned.container.height, abs=0.5
        )
    pdf = engine.write_document(document)
    record = load_record(RECORDS / "sdet.yaml").record
    words = pdfs.page_words(pdf)
    assert [t for t in pdfs.record_texts(record) if pdfs.normal(t) not in words] == []
    assert overlapping_words(pdf) == overlapping_before == []


def overlapping_words(pdf: bytes) -> list:
    import pdfplumber

    def level(thing) -> bool:  # the flight-risk stamp is set askew, and its words with it
        return thing["object_type"] != "char" or abs(thing["matrix"][1]) < 1e-6

    with pdfplumber.open(io.BytesIO(pdf)) as document:
        words = document.pages[0].filter(level).extract_words()
    boxes = [(w["x0"], w["top"], w["x1"], w["bottom"], w["text"]) for w in words]
    return [
        (a[4], b[4])
        for i, a in enumerate(boxes)
        for b in boxes[i + 1 :]
        if a[0] < b[2] - 0.5 and b[0] < a[2] - 0.5 and a[1] < b[3] - 0.5 and b[1] < a[3] - 0.5
    ]


def test_a_heading_keeps_to_what_follows_it():
    _, document = laid_out("classified")
    planned = spread.plan(document, sheet_boxes)
    gaps_before = heading_gaps(document)
    spread.apply(document, planned, planned.room)
    assert heading_gaps(document) == pytest.approx(gaps_before, abs=0.01)


def heading_gaps(document) -> list[float]:
    """For each section heading, the distance from its bottom to the top of the next block."""
    gaps = []

    def walk(box):
        children = [c for c in getattr(box, "children", ()) if hasattr(c, "children")]
        for first, second in itertools.pairwise(children):
            if getattr(first, "element", None) is not None and first.element.tag == "h2":
                gaps.append(second.position_y - (first.position_y + first.margin_height()))
        for child in children:
            walk(child)

    walk(document.pages[0]._page_box)
    return gaps


def test_links_and_backgrounds_move_with_their_boxes():
    """The QR codes are links where they are drawn after spreading, and they still scan."""
    record = varied_record(14, Shape(items=4, related=4, words=650))
    report = render_dossier_report(record, Config())
    assert report.opened > 0
    pdf = report.pdf
    page = pypdfium2.PdfDocument(pdf)[0]
    dpi = 150
    image = page.render(scale=dpi / 72, grayscale=True).to_pil()
    found = zxingcpp.read_barcodes(image)
    assert len(found) == 4
    with pikepdf.open(io.BytesIO(pdf)) as document:
        height = float(document.pages[0].mediabox[3])
        links = [
            (str(a.A.URI), [float(v) for v in a.Rect])
            for a in document.pages[0].get("/Annots", [])
            if "/A" in a and "/URI" in a.A
        ]
    for code in found:
        corners = [code.position.top_left, code.position.bottom_right]
        x = sum(point.x for point in corners) / 2 * 72 / dpi
        y = height - sum(point.y for point in corners) / 2 * 72 / dpi
        assert any(
            uri == code.text
            and min(rect[0], rect[2]) <= x <= max(rect[0], rect[2])
            and min(rect[1], rect[3]) <= y <= max(rect[1], rect[3])
            for uri, rect in links
        ), code.text


def test_a_page_that_fits_opens_its_gaps_by_at_most_the_fitting_s_limit():
    from renderer.fitting import SPREAD_LINES

    record = varied_record(11, Shape(items=1, related=0, words=300))  # short: largest type
    report = render_dossier_report(record, Config())
    assert report.opened <= SPREAD_LINES * LINE * report.scale + 1e-6


def test_a_sheet_without_columns_is_not_spread(tmp_path):
    import shutil

    from renderer.layouts import LAYOUTS_DIR

    shutil.copytree(LAYOUTS_DIR / "memo", tmp_path / "plain")
    css = tmp_path / "plain" / "memo.css"
    css.write_text(css.read_text() + "\n.body { columns: 1; }\n")
    _, document = laid_out(str(tmp_path / "plain"))
    assert spread.plan(document, sheet_boxes) is None


def test_backgrounds_are_painted_where_their_boxes_now_are():
    """WeasyPrint places backgrounds when it lays a page out; spreading places them again."""
    _, document = laid_out("classified")
    planned = spread.plan(document, sheet_boxes)
    spread.apply(document, planned, planned.room)
    misplaced = []

    def walk(box):
        background = getattr(box, "background", None)
        if background is not None and box is not document.pages[0]._page_box:
            for layer in background.layers:
                _, y, _, _ = layer.painting_area
                top = box.position_y + box.margin_top
                if not (top - 0.5 <= y <= top + box.border_height() + 0.5):
                    misplaced.append((box.element_tag, y, top))
        for child in box.all_children():
            walk(child)

    walk(document.pages[0]._page_box)
    assert misplaced == []
