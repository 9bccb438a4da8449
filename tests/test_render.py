from __future__ import annotations

import io
import itertools
import os
import re
import subprocess

import pikepdf
import pytest
import yaml

from renderer.config import Config
from renderer.model import SECTION_TITLES, Record
from renderer.problems import InvalidInput
from renderer.records import load_catalog, load_record
from renderer.render import render_dossier, render_dossier_report
from tests import pdfs
from tests.conftest import RECORDS, SEED_SLUG, SEED_YAML

CONFIG = Config(organisation="Office of Otiose Role Taxonomy", author="Bureau of Specimen Records")
A4 = (595.3, 841.9)
LETTER = (612.0, 792.0)


@pytest.fixture(scope="module")
def seed():
    return load_record(SEED_YAML).record


@pytest.fixture(scope="module")
def seed_pdf(seed):
    return render_dossier(seed, CONFIG)


def test_one_a4_page_with_every_text_of_the_record(seed, seed_pdf):
    assert pdfs.page_sizes(seed_pdf) == [A4]
    page_text = pdfs.page_words(seed_pdf)  # lines break after hyphens
    missing = [t for t in pdfs.record_texts(seed) if pdfs.normal(t) not in page_text]
    assert missing == []
    for number, title in SECTION_TITLES.items():
        assert pdfs.normal(f"[{number:02d}] {title}") in page_text


def test_every_embedded_font_comes_from_fonts_folder(seed_pdf):
    names = pdfs.font_names(seed_pdf)
    assert names
    assert all(name.startswith(pdfs.BUNDLED_FONT_PREFIXES) for name in names), names


def test_qr_codes_decode_to_the_related_urls_and_are_links(seed, seed_pdf):
    expected = sorted(f"https://specimens.example.org/{r.target}" for r in seed.related)
    assert sorted(pdfs.qr_codes(seed_pdf, dpi=150)) == expected
    assert sorted(set(pdfs.link_uris(seed_pdf))) == expected


def test_metadata(seed, seed_pdf):
    with pikepdf.open(io.BytesIO(seed_pdf)) as document:
        info = document.docinfo
        assert str(info.Title).startswith(seed.title)
        assert str(info.Author) == CONFIG.author
        assert str(info.Subject) == seed.question
        assert str(info.Keywords) == ", ".join(seed.org_chart.aliases)
        assert "/CreationDate" not in info


def test_without_organisation_and_author_the_pdf_names_none(seed):
    """A tool installed for other catalogs prints no organisation of ours by default."""
    pdf = render_dossier(seed, Config())
    with pikepdf.open(io.BytesIO(pdf)) as document:
        assert "/Author" not in document.docinfo
    assert pdfs.normal(CONFIG.organisation) not in pdfs.page_words(pdf)
    assert pdfs.normal(CONFIG.organisation) in pdfs.page_words(render_dossier(seed, CONFIG))


def test_byte_identical_across_runs(seed, seed_pdf):
    assert render_dossier(seed, CONFIG) == seed_pdf


def test_letter_paper_and_base_url(seed):
    config = Config(paper="letter", base_url="https://x.example/cases/")
    pdf = render_dossier(seed, config)
    assert pdfs.page_sizes(pdf) == [LETTER]
    assert sorted(set(pdfs.link_uris(pdf))) == sorted(
        f"https://x.example/cases/{r.target}" for r in seed.related
    )


def test_small_enough_to_attach(seed_pdf):
    assert len(seed_pdf) < 60_000


def test_pdf_a_embeds_the_source_and_stays_reproducible(seed):
    first = render_dossier(seed, CONFIG, variant="pdf/a-3b", source=SEED_YAML)
    assert first == render_dossier(seed, CONFIG, variant="pdf/a-3b", source=SEED_YAML)
    with pikepdf.open(io.BytesIO(first)) as document:
        attached = document.attachments[SEED_YAML.name].get_file().read_bytes()
        assert attached == SEED_YAML.read_bytes()
        assert b"pdfaid:part" in document.Root.Metadata.read_bytes()


def structure_elements(node) -> list:
    """Every structure element under `node`, depth first, in reading order."""
    if isinstance(node, pikepdf.Array):
        return [element for kid in node for element in structure_elements(kid)]
    if not isinstance(node, pikepdf.Dictionary) or "/S" not in node:
        return []  # a marked-content id or a reference to content
    return [node, *structure_elements(node.get("/K", pikepdf.Array()))]


@pytest.mark.parametrize("layout_name", ["classified", "memo"])
def test_pdf_ua_is_tagged_with_alt_text_nested_headings_and_a_language(seed, layout_name):
    pdf = render_dossier(seed, Config(layout=layout_name), variant="pdf/ua-1")
    with pikepdf.open(io.BytesIO(pdf)) as document:
        assert document.Root.MarkInfo.Marked
        assert str(document.Root.Lang) == "en"
        elements = structure_elements(document.Root.StructTreeRoot.K)
        figures = [str(e.get("/Alt")) for e in elements if e.S == "/Figure"]
        assert figures == [f"QR code: {CONFIG.specimen_url(item.target)}" for item in seed.related]
        levels = [int(str(e.S)[2:]) for e in elements if re.fullmatch(r"/H\d", str(e.S))]
        assert levels[0] == 1
        assert all(level <= before + 1 for before, level in itertools.pairwise(levels)), levels


def test_a_stamped_page_number_is_tagged_text_in_pdf_ua(seed):
    """The stamp replaces only the placeholder's text-showing operator, so it stays inside the
    marked content (and so the structure element) that WeasyPrint tagged the slot with."""
    rendered = render_dossier_report(seed, CONFIG, variant="pdf/ua-1")
    folio = next(slot for slot in rendered.typeset.slots if slot.name == "folio")
    with pikepdf.open(io.BytesIO(rendered.typeset.single)) as document:
        page = document.pages[0]
        content = page.Contents.read_bytes()
        at = content.find(folio.stamp({"page": 1, "total": 1}))
        assert at > 0
        opened = content.rfind(b"BDC\n", 0, at)
        assert content.rfind(b"EMC\n", 0, at) < opened  # inside the marked content
        mcid = int(re.findall(rb"/MCID (\d+)", content[:opened])[-1])
        nums = document.Root.StructTreeRoot.ParentTree.Nums
        marked = dict(zip(nums[::2], nums[1::2], strict=True))[page.StructParents]
        assert marked[mcid].S == "/Span"
    assert "1 / 1 · Case" in pdfs.text(rendered.typeset.single)


def test_markup_in_records_is_printed_as_text(seed):
    hostile = '<script>alert(1)</script><img src="file:///etc/passwd"> url(file:///x)'
    record = seed.model_copy(update={"question": hostile + "?"})
    pdf = render_dossier(record, CONFIG)
    assert pdfs.normal(hostile) in pdfs.normal(pdfs.text(pdf))
    with pikepdf.open(io.BytesIO(pdf)) as document:
        assert len(document.attachments) == 0
        assert "/JavaScript" not in str(document.Root.get("/Names", {}))


def test_a_record_too_long_for_one_page_fails_clearly(seed):
    data = yaml.safe_load(SEED_YAML.read_text(encoding="utf-8"))
    data["metrics"] = data["metrics"] * 8
    data["weaponry"] = data["weaponry"] * 8
    with pytest.raises(InvalidInput) as caught:
        render_dossier(Record.model_validate(data), CONFIG)
    message = str(caught.value)
    assert message.startswith(f"{SEED_SLUG}: does not fit on one page even at the smallest")
    assert re.search(r"about \d+% too long", message)


@pytest.mark.slow
def test_every_catalog_record_renders_to_one_page_in_few_passes():
    passes = []
    for entry in load_catalog(RECORDS):
        report = render_dossier_report(entry.record, CONFIG)
        assert pdfs.page_sizes(report.pdf) == [A4], entry.slug
        assert len(report.pdf) < 60_000, entry.slug
        page_text = pdfs.page_words(report.pdf)
        assert [t for t in pdfs.record_texts(entry.record) if pdfs.normal(t) not in page_text] == []
        assert sorted(pdfs.qr_codes(report.pdf)) == sorted(
            CONFIG.specimen_url(r.target) for r in entry.record.related
        ), entry.slug
        passes.append(report.passes)
    assert sum(passes) / len(passes) <= 1.3  # most pages fill by spreading, in one pass


def test_body_text_is_never_under_6_5_pt_and_the_page_has_no_raster_images(seed):
    import pdfplumber

    data = yaml.safe_load(SEED_YAML.read_text(encoding="utf-8"))
    data["metrics"] = data["metrics"] * 4  # long enough to be fitted down towards the floor
    data["weaponry"] = data["weaponry"] * 2
    report = render_dossier_report(Record.model_validate(data), CONFIG)
    assert report.scale <= 0.75
    with pdfplumber.open(io.BytesIO(report.pdf)) as document:
        page = document.pages[0]
        body = [c["size"] for c in page.chars if "Courier-Prime" in c["fontname"]]
        assert min(body) >= 6.49
        assert min(c["size"] for c in page.chars) >= 5.99  # labels stop at 6 pt
        assert page.images == []


OTHER_SCRIPTS = "مرحبا بالعالم שלום עולם Ελληνικά Кириллица"  # CJK is not bundled: see test_glyphs


def system_fonts(*pattern: str) -> str:
    """What fontconfig finds with the machine's own configuration."""
    environment = {key: value for key, value in os.environ.items() if key != "FONTCONFIG_FILE"}
    return subprocess.run(
        ["fc-list", *pattern], capture_output=True, text=True, check=True, env=environment
    ).stdout


def with_diagnosis(record: Record, prefix: str) -> Record:
    flight_risk = record.flight_risk.model_copy(
        update={"diagnosis": f"{prefix} {record.flight_risk.diagnosis}"}
    )
    return record.model_copy(update={"flight_risk": flight_risk})


@pytest.mark.parametrize("layout_name", ["classified", "memo"])
def test_other_scripts_print_in_bundled_faces_never_in_a_system_font(seed, layout_name):
    assert "DejaVu" in system_fonts(), "the machine needs fonts that must not be used (setup.sh)"
    pdf = render_dossier(with_diagnosis(seed, OTHER_SCRIPTS), Config(layout=layout_name))
    names = pdfs.font_names(pdf)
    allowed = pdfs.BUNDLED_FONT_PREFIXES + pdfs.LAYOUT_FONT_PREFIXES.get(layout_name, ())
    assert all(name.startswith(allowed) for name in names), names
    assert {"Noto-Sans", "Noto-Sans-Arabic", "Noto-Sans-Hebrew"} <= names
    assert "Ελληνικά Кириллица" in pdfs.text(pdf)


def test_a_character_no_bundled_face_has_is_a_box_never_a_system_font(seed, weasyprint_warnings):
    assert "DejaVu" in system_fonts(":charset=2603"), "the machine needs a font with U+2603"
    pdf = render_dossier(with_diagnosis(seed, "☃"), CONFIG)
    names = pdfs.font_names(pdf)
    assert all(name.startswith(pdfs.BUNDLED_FONT_PREFIXES) for name in names), names
    assert weasyprint_warnings == [
        '.notdef glyph rendered for Unicode string unsupported by fonts: "☃" (U+2603)'
    ]
