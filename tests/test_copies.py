"""Distribution copies: the stamp over every page, the copy id, nothing laid out again."""

from __future__ import annotations

import datetime as dt
import io

import pikepdf
import pytest

from renderer.config import Config
from renderer.copies import Copy, copy_id_of, stamp_for, stamped
from renderer.problems import InvalidInput
from renderer.records import load_record
from renderer.render import render_dossier
from tests import pdfs
from tests.conftest import RECORDS

CONFIG = Config(organisation="Office of Otiose Role Taxonomy")
DAY = dt.date(2026, 11, 30)


@pytest.fixture(scope="module")
def dossier() -> bytes:
    return render_dossier(load_record(RECORDS / "sdet.yaml").record, CONFIG)


def copy_for(recipient: str, number: int = 3, config: Config = CONFIG) -> tuple[Copy, bytes]:
    copy = Copy.new(number, 12, recipient, DAY)
    return copy, stamp_for(copy, config)


def test_the_stamp_is_real_text_on_the_page(dossier):
    copy, stamp = copy_for("alice@example.org")
    text = pdfs.text(stamped(dossier, stamp, copy))
    assert "COPY 3 OF 12 · EYES ONLY · alice@example.org · 2026-11-30" in text
    assert pdfs.text(dossier) in text  # the page itself is unchanged


def test_two_recipients_get_different_bytes_and_ids(dossier):
    first, first_stamp = copy_for("alice@example.org")
    second, second_stamp = copy_for("bob@example.org", number=4)
    one, two = stamped(dossier, first_stamp, first), stamped(dossier, second_stamp, second)
    assert one != two
    assert copy_id_of(one, "one.pdf") == first.copy_id
    assert copy_id_of(two, "two.pdf") == second.copy_id
    with pikepdf.open(io.BytesIO(one)) as document:
        assert bytes(document.trailer.ID[0]).hex() == first.copy_id
        instance = document.open_metadata()["xmpMM:InstanceID"]
        assert instance == f"uuid:dossier-copy-{first.copy_id}"


def test_every_page_of_a_long_document_is_stamped_with_one_form(dossier):
    with pikepdf.open(io.BytesIO(dossier)) as document:
        for _ in range(9):
            document.pages.append(document.pages[0])
        out = io.BytesIO()
        document.save(out)
    copy, stamp = copy_for("carol@example.org")
    result = stamped(out.getvalue(), stamp, copy)
    with pikepdf.open(io.BytesIO(result)) as document:
        assert len(document.pages) == 10
        forms = {
            page.Resources.XObject[name].objgen
            for page in document.pages
            for name in page.Resources.XObject
            if name.startswith("/Stamp")
        }
        assert len(forms) == 1  # one form, drawn on every page
    for number in range(10):
        assert copy.text in pdfs.page_text(result, number)


def test_a_pdf_that_is_not_a_copy_has_no_copy_id(dossier):
    assert copy_id_of(dossier, "sdet.pdf") is None


def test_a_file_that_is_no_pdf_is_named(tmp_path):
    with pytest.raises(InvalidInput) as error:
        copy_id_of(b"hello", "notes.txt")
    assert str(error.value) == "notes.txt: not a PDF file"


def test_an_encrypted_copy_keeps_its_id_readable_without_the_password(dossier):
    copy, stamp = copy_for("dave@example.org")
    with pikepdf.open(io.BytesIO(stamped(dossier, stamp, copy))) as document:
        out = io.BytesIO()
        document.save(out, encryption=pikepdf.Encryption(owner="o", user="u", R=6))
    assert copy_id_of(out.getvalue(), "locked.pdf") == copy.copy_id


def test_a_layout_without_a_stamp_template_is_refused(tmp_path):
    import shutil

    from renderer.layouts import LAYOUTS_DIR

    shutil.copytree(LAYOUTS_DIR / "memo", tmp_path / "plain")
    (tmp_path / "plain" / "stamp.html.j2").unlink()
    config = Config(layout=str(tmp_path / "plain"))
    with pytest.raises(InvalidInput) as error:
        stamp_for(Copy.new(1, 1, "a@example.org", DAY), config)
    assert str(error.value) == (
        f"{tmp_path / 'plain'}: layout: a stamped copy needs stamp.html.j2 in the layout"
        " (see layouts/README.md)"
    )


@pytest.mark.parametrize("layout", ["classified", "memo"])
def test_the_stamp_stays_clear_of_the_page_and_reads_in_grayscale(dossier, layout):
    """The stamp's zone (the left margin) holds nothing else on a dossier of either layout."""
    import pypdfium2

    record = load_record(RECORDS / "sdet.yaml").record
    config = Config(layout=layout)
    page = render_dossier(record, config)
    copy = Copy.new(12, 12, "a-rather-long.address+tag@subdomain.example.org", DAY)
    result = stamped(page, stamp_for(copy, config), copy)
    assert copy.text in pdfs.text(result)
    before, after = (
        pypdfium2.PdfDocument(pdf)[0].render(scale=100 / 72).to_pil().convert("L")
        for pdf in (page, result)
    )
    changed = [
        (x, y)
        for y in range(0, before.height, 2)
        for x in range(0, before.width, 2)
        if abs(before.getpixel((x, y)) - after.getpixel((x, y))) > 40
    ]
    assert changed, "the stamp is visible in grayscale"
    margin_px = 9 / 25.4 * 100  # the narrowest side margin of the two layouts, 9 mm
    assert max(x for x, _ in changed) < margin_px
