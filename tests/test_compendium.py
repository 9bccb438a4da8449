from __future__ import annotations

import io
import re
import shutil

import pikepdf
import pypdfium2
import pytest

from renderer.build import Builder
from renderer.compendium import build_compendium
from renderer.config import Config
from renderer.matter import plan_pages
from renderer.records import load_catalog
from tests import pdfs
from tests.conftest import RECORDS, SEED_SLUG, no_weasyprint_warnings, small_catalog

CONFIG = Config()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The committed catalog's compendium, rendered in this process (so warnings are caught)."""
    folder = tmp_path_factory.mktemp("compendium")
    catalog = load_catalog(RECORDS)
    builder = Builder(folder / "cache", workers=1)
    with no_weasyprint_warnings():
        report = build_compendium(catalog, CONFIG, folder / "compendium.pdf", builder)
    return catalog, builder, report, (folder / "compendium.pdf").read_bytes()


def page_texts(pdf: bytes) -> list[str]:
    from pypdf import PdfReader

    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


def dossier_page_of(texts: list[str]) -> dict[str, int]:
    """Slug -> 1-based page, read from each dossier's file tab."""
    found = {}
    for number, text in enumerate(texts, 1):
        match = re.search(r"FILE RECORD · ([A-Z0-9-]+)", text)
        if match:
            found[match.group(1).lower()] = number
    return found


def test_cover_contents_dossiers_index(built):
    catalog, _, report, pdf = built
    texts = page_texts(pdf)
    pages = dossier_page_of(texts)
    assert len(texts) == report.pages
    assert set(pages) == set(catalog.entries)
    assert "SPECIMEN\nCOMPENDIUM" in texts[0] and "16 specimens on file" in texts[0]
    assert texts[1].startswith("Contents")
    assert sorted(pages.values()) == list(range(3, 3 + len(catalog)))
    assert texts[3 + len(catalog) - 1].startswith("Index of aliases")
    assert len(texts) == 2 + len(catalog) + 2  # the index of 16 specimens takes two pages
    assert set(pdfs.page_sizes(pdf)) == {(595.3, 841.9)}


FRONT = 2  # cover and one page of contents, numbered apart (i, ii)


def test_running_page_numbers_in_every_dossier_footer(built):
    catalog, _, report, pdf = built
    texts = page_texts(pdf)
    for slug, page in dossier_page_of(texts).items():
        assert (
            f"{page - FRONT} / {report.pages - FRONT} · Case {catalog[slug].record.case_number}"
            in texts[page - 1]
        )
    assert "Compendium · Contents" in texts[1] and "Compendium · Index of aliases" in texts[-1]


def test_page_labels_match_the_printed_numbers(built):
    *_, pdf = built
    with pikepdf.open(io.BytesIO(pdf)) as document:
        labels = list(document.Root.PageLabels.Nums)
    assert labels[0] == 0 and labels[1].S == "/r"
    assert labels[2] == FRONT and labels[3].S == "/D" and labels[3].St == 1


def test_contents_and_index_print_the_real_pages(built):
    catalog, _, _, pdf = built
    texts = page_texts(pdf)
    pages = dossier_page_of(texts)
    contents = re.findall(r"(OT-[0-9A-F]{4}-\d{3})(.+?)[ .]*\s(\d+)\n", texts[1])
    by_case = {e.record.case_number: e.slug for e in catalog}
    assert {by_case[case]: int(page) + FRONT for case, _, page in contents} == pages
    index_text = "\n".join(t for t in texts if t.startswith("Index of aliases") or "→" in t[:0])
    for entry in catalog:
        for alias in entry.record.org_chart.aliases:
            match = re.search(
                re.escape(alias) + r"[ .]*\s(\d+)\n→ " + re.escape(entry.record.title),
                "\n".join(texts[-2:]),
            )
            assert match and int(match.group(1)) + FRONT == pages[entry.slug], alias
    assert index_text


def test_outline_points_at_every_part(built):
    catalog, _, _, pdf = built
    pages = dossier_page_of(page_texts(pdf))
    with pikepdf.open(io.BytesIO(pdf)) as document:
        destinations = pdfs.named_destinations(document)
        with document.open_outline() as outline:
            top = {item.title: item for item in outline.root}
            assert list(top) == ["Cover", "Contents", "Specimens", "Index of aliases"]
            assert destinations[str(top["Cover"].destination)] == 1
            assert destinations[str(top["Contents"].destination)] == 2
            titles = {e.record.title: e.slug for e in catalog}
            assert len(top["Specimens"].children) == len(catalog)
            for item in top["Specimens"].children:
                assert destinations[str(item.destination)] == pages[titles[item.title]]
            index = destinations[str(top["Index of aliases"].destination)]
            assert index == len(document.pages) - 1
            assert page_texts(pdf)[index - 1].startswith("Index of aliases")


def test_related_specimens_link_to_their_pages(built):
    catalog, _, _, pdf = built
    pages = dossier_page_of(page_texts(pdf))
    with pikepdf.open(io.BytesIO(pdf)) as document:
        destinations = pdfs.named_destinations(document)
        for entry in catalog:
            page = document.pages[pages[entry.slug] - 1]
            targets = {
                destinations[str(annotation.A.D)]
                for annotation in page.get("/Annots", [])
                if annotation.A.S == "/GoTo"
            }
            assert targets == {pages[r.target] for r in entry.record.related}, entry.slug
            uris = [str(a.A.URI) for a in page.get("/Annots", []) if a.A.S == "/URI"]
            assert uris == []  # every related specimen is in the catalog


def test_printed_cross_references_match(built):
    catalog, _, _, pdf = built
    texts = page_texts(pdf)
    pages = dossier_page_of(texts)
    for entry in catalog:
        printed = [int(n) for n in re.findall(r"→ p\. (\d+)", texts[pages[entry.slug] - 1])]
        assert printed == [pages[r.target] - FRONT for r in entry.record.related]


def test_contents_and_index_entries_link_to_their_pages(built):
    *_, pdf = built
    pages = dossier_page_of(page_texts(pdf))
    with pikepdf.open(io.BytesIO(pdf)) as document:
        destinations = pdfs.named_destinations(document)
        contents = {
            destinations[str(a.A.D)] for a in document.pages[1].get("/Annots", []) if "/A" in a
        }
        assert contents == {*pages.values(), len(document.pages) - 1}
        index_targets = {
            destinations[str(a.A.D)]
            for page in document.pages[-2:]
            for a in page.get("/Annots", [])
            if "/A" in a
        }
        assert index_targets == set(pages.values())


def test_the_file_is_sound(built):
    *_, pdf = built
    with pikepdf.open(io.BytesIO(pdf)) as document:
        assert document.check_pdf_syntax() == []
        assert "/Outlines" in document.Root


def test_each_font_face_is_embedded_once(built):
    *_, pdf = built
    with pikepdf.open(io.BytesIO(pdf)) as document:
        programs = {
            font.DescendantFonts[0].FontDescriptor.FontFile2.objgen
            for page in document.pages
            for font in page.Resources.Font.values()
        }
        faces = {
            str(font.BaseFont) for page in document.pages for font in page.Resources.Font.values()
        }
    assert len(programs) == len(faces)
    assert all(name.split("+")[1].startswith(pdfs.BUNDLED_FONT_PREFIXES) for name in faces)


def test_a_cached_rebuild_is_byte_identical_and_renders_nothing(built, tmp_path):
    catalog, builder, _, pdf = built
    report = build_compendium(catalog, CONFIG, tmp_path / "again.pdf", builder)
    assert report.rendered == 0
    assert (tmp_path / "again.pdf").read_bytes() == pdf


def test_a_damaged_cache_entry_is_rebuilt_not_used(built, tmp_path):
    catalog, builder, _, pdf = built
    for entry in builder.cache_dir.rglob("*.cache"):  # truncated, as by a full disk
        entry.write_bytes(entry.read_bytes()[:-100])
    report = build_compendium(catalog, CONFIG, tmp_path / "again.pdf", builder)
    assert report.rendered == len(catalog)
    assert (tmp_path / "again.pdf").read_bytes() == pdf


def test_editing_one_record_rerenders_only_it(built, tmp_path):
    _, builder, _, _ = built
    records = tmp_path / "records"
    shutil.copytree(RECORDS, records)
    seed = records / f"{SEED_SLUG}.yaml"
    seed.write_text(seed.read_text().replace("percent: 85", "percent: 86"), encoding="utf-8")
    report = build_compendium(load_catalog(records), CONFIG, tmp_path / "c.pdf", builder)
    assert report.rendered == 1


def test_plan_pages_for_duplex():
    plan = plan_pages(["a", "b", "c"], duplex=True, index_pages=2)
    assert plan.dossiers == {"a": 1, "b": 3, "c": 5}
    assert plan.blanks == [2, 4]
    assert (plan.index, plan.total) == (6, 7)


def test_duplex_puts_every_dossier_on_a_right_hand_page(tmp_path):
    catalog = load_catalog(small_catalog(tmp_path))
    builder = Builder(tmp_path / "cache", workers=1)
    build_compendium(catalog, CONFIG, tmp_path / "duplex.pdf", builder, duplex=True)
    texts = page_texts((tmp_path / "duplex.pdf").read_bytes())
    pages = dossier_page_of(texts)
    assert all(number % 2 == 1 for number in pages.values())
    blanks = [n for n, text in enumerate(texts, 1) if "intentionally left blank" in text.lower()]
    assert blanks == [4, 6, 8]


@pytest.mark.slow
def test_worker_processes_and_dask_give_the_same_file(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    records = small_catalog(tmp_path)
    catalog = load_catalog(records)
    reference = tmp_path / "one.pdf"
    build_compendium(catalog, CONFIG, reference, Builder(tmp_path / "c1", workers=1))
    build_compendium(catalog, CONFIG, tmp_path / "two.pdf", Builder(tmp_path / "c2", workers=2))
    assert (tmp_path / "two.pdf").read_bytes() == reference.read_bytes()
    with distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        local_directory=str(tmp_path / "dask"),
    ) as cluster:
        builder = Builder(tmp_path / "c3", scheduler=cluster.scheduler_address)
        report = build_compendium(catalog, CONFIG, tmp_path / "dask.pdf", builder)
    assert report.rendered == len(catalog)
    assert (tmp_path / "dask.pdf").read_bytes() == reference.read_bytes()


@pytest.mark.parametrize("layout", ["classified", "memo"])
def test_a_bound_page_is_the_page_printed_alone_to_the_pixel_outside_its_slots(tmp_path, layout):
    """One layout serves both: only the stamped slots differ. The memo layout also sets its
    variable fonts (Oswald, Archivo Narrow) at several weights, shared between pages like any
    face."""
    from PIL import ImageChops, ImageDraw

    from renderer.render import render_dossier_report

    config = Config(layout=layout)
    catalog = load_catalog(small_catalog(tmp_path))
    build_compendium(catalog, config, tmp_path / "c.pdf", Builder(tmp_path / "cache", workers=1))
    seed = catalog[SEED_SLUG].record
    bound = (tmp_path / "c.pdf").read_bytes()
    footer = re.compile(rf"· (Case|File) {re.escape(seed.case_number)}")
    (number,) = [n for n, text in enumerate(page_texts(bound)) if footer.search(text)]
    rendered = render_dossier_report(seed, config)
    scale = 100 / 72

    def page_image(pdf: bytes, index: int):
        image = pypdfium2.PdfDocument(pdf)[index].render(scale=scale, grayscale=True).to_pil()
        draw = ImageDraw.Draw(image)
        for slot in rendered.typeset.slots:  # masked: what differs is only there
            draw.rectangle([value * scale for value in slot.box], fill=0)
        return image

    alone, bound_page = page_image(rendered.pdf, 0), page_image(bound, number)
    assert ImageChops.difference(bound_page, alone).getbbox() is None
    unmasked = pypdfium2.PdfDocument(bound)[number].render(scale=scale, grayscale=True).to_pil()
    assert ImageChops.difference(unmasked, bound_page).getbbox() is not None  # stamps differ
    with pikepdf.open(io.BytesIO(bound)) as document:  # and each instance is embedded once
        fonts = [font for page in document.pages for font in page.Resources.Font.values()]
        programs = {font.DescendantFonts[0].FontDescriptor.FontFile2.objgen for font in fonts}
        assert len(programs) == len({str(font.BaseFont) for font in fonts})


# the names the compendium's own pages and parts go by: a specimen may be called any of them
BUILT_IN_NAMES = ("Index", "Contents", "Cover", "Blank", "Matter", "Page 000001")


def test_specimens_named_like_the_compendiums_own_pages_keep_their_own_page(tmp_path):
    import yaml

    from renderer.model import slugify

    records = tmp_path / "records"
    records.mkdir()
    slugs = [slugify(title) for title in BUILT_IN_NAMES]
    for number, title in enumerate(BUILT_IN_NAMES):
        data = yaml.safe_load((RECORDS / f"{SEED_SLUG}.yaml").read_text(encoding="utf-8"))
        data["title"] = title
        others = [name for name in BUILT_IN_NAMES if name != title]
        data["related"] = [
            {"title": other, "match": 90, "summary": f"Next to {other}."}
            for other in others[number % 2 :: 2]
        ]
        (records / f"{slugs[number]}.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    catalog = load_catalog(records)
    builder = Builder(tmp_path / "cache", workers=1)
    build_compendium(catalog, CONFIG, tmp_path / "c.pdf", builder)
    pdf = (tmp_path / "c.pdf").read_bytes()
    texts = page_texts(pdf)
    pages = dossier_page_of(texts)
    assert set(pages) == set(slugs)
    index_page = len(texts)  # one page of aliases, last
    assert texts[index_page - 1].startswith("Index of aliases")
    with pikepdf.open(io.BytesIO(pdf)) as document:
        destinations = pdfs.named_destinations(document)
        with document.open_outline() as outline:
            top = {item.title: item for item in outline.root}
            bookmarks = {item.title: destinations[str(item.destination)]
                         for item in top["Specimens"].children}  # fmt: skip
            assert destinations[str(top["Index of aliases"].destination)] == index_page
            assert destinations[str(top["Cover"].destination)] == 1
        assert bookmarks == {title: pages[slugify(title)] for title in BUILT_IN_NAMES}
        links = [destinations[str(a.A.D)] for a in document.pages[1].Annots if "/A" in a]
        contents = list(dict.fromkeys(links))  # a link is a box per piece of its text
        assert contents == [pages[slug] for slug in catalog.entries] + [index_page]
        for entry in catalog:
            page = document.pages[pages[entry.slug] - 1]
            related = [destinations[str(a.A.D)] for a in page.Annots if a.A.S == "/GoTo"]
            assert set(related) == {pages[r.target] for r in entry.record.related}, entry.slug


@pytest.mark.parametrize("layout", ["classified", "memo"])
def test_the_contents_name_the_records_left_out(layout):
    from renderer.matter import Matter, lay_out_run

    entries = list(load_catalog(RECORDS))[:3]
    matter = Matter.of(entries, Config(layout=layout), left_out=("broken.yaml", "a-b.yml"))
    [run] = matter.contents_runs()
    _, typeset = lay_out_run(matter.config, run)
    pdf = typeset.pdf
    assert "Not bound: 2 record(s) with problems: a-b.yml, broken.yaml" in pdfs.text(pdf)
    with pikepdf.open(io.BytesIO(pdf)) as document:
        uris = {str(a.A.URI) for a in document.pages[0].Annots if "/A" in a}
    assert uris == {f"specimen:{entry.slug}" for entry in entries} | {"matter:index"}


def _footers(pdf: bytes) -> dict[str, str]:
    """Slug -> the stamped "N / total" of its footer, as extracted text."""
    texts = page_texts(pdf)
    return {
        slug: re.search(r"(\d+ / \d+) · Case", texts[page - 1])[1]
        for slug, page in dossier_page_of(texts).items()
    }


def _expected_footers(pdf: bytes) -> dict[str, str]:
    texts = page_texts(pdf)
    pages = dossier_page_of(texts)
    front, total = min(pages.values()) - 1, len(texts) - min(pages.values()) + 1
    return {slug: f"{page - front} / {total}" for slug, page in pages.items()}


def _retitled(path, title: str, slug: str | None = None) -> str:
    text = path.read_text(encoding="utf-8")
    old = re.search(r"^title: (.*)$", text, re.MULTILINE)[1]
    text = text.replace(f"title: {old}", f"title: {title}", 1)
    return f"slug: {slug}\n{text}" if slug else text


CHANGES = {  # a change to the catalog, and how many dossiers it must render
    "add a record first in order": (
        lambda records: (records / "aardvark-alignment-architect.yaml").write_text(
            _retitled(records / "sdet.yaml", "Aardvark Alignment Architect"), encoding="utf-8"
        ),
        1,
    ),
    "rename a record": (
        lambda records: (
            (records / "renamed-specimen.yaml").write_text(
                _retitled(records / "enterprise-architect.yaml", "Renamed Specimen"), "utf-8"
            ),
            (records / "enterprise-architect.yaml").unlink(),
        ),
        1,
    ),
    "remove a record": (lambda records: (records / "sdet.yaml").unlink(), 0),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_catalog_change_renders_only_new_or_changed_dossiers_and_restamps_every_page(
    tmp_path, change
):
    """Page numbers are stamped at binding: a change that moves every page renders only the
    dossiers whose own content is new, and every footer and cross-reference is right again."""
    records = small_catalog(tmp_path)
    shutil.copy(RECORDS / "sdet.yaml", records)
    builder = Builder(tmp_path / "cache", workers=1)
    first = build_compendium(load_catalog(records), CONFIG, tmp_path / "a.pdf", builder)
    assert first.rendered == len(list(records.glob("*.yaml")))
    apply, renders = CHANGES[change]
    apply(records)
    catalog = list(load_catalog(records))
    again = build_compendium(catalog, CONFIG, tmp_path / "b.pdf", builder)
    assert again.rendered == renders
    _assert_numbered_right((tmp_path / "b.pdf").read_bytes(), catalog)


def test_binding_the_same_records_in_another_order_renders_nothing(tmp_path):
    records = small_catalog(tmp_path)
    shutil.copy(RECORDS / "sdet.yaml", records)
    builder = Builder(tmp_path / "cache", workers=1)
    catalog = list(load_catalog(records))
    build_compendium(catalog, CONFIG, tmp_path / "a.pdf", builder)
    reordered = catalog[::-1]
    again = build_compendium(reordered, CONFIG, tmp_path / "b.pdf", builder)
    assert again.rendered == 0
    pdf = (tmp_path / "b.pdf").read_bytes()
    pages = dossier_page_of(page_texts(pdf))
    assert sorted(pages, key=pages.get) == [entry.slug for entry in reordered]
    _assert_numbered_right(pdf, reordered)


def _assert_numbered_right(pdf: bytes, catalog) -> None:
    """Every footer, cross-reference and contents entry names the page it is on now."""
    assert _footers(pdf) == _expected_footers(pdf)
    texts = page_texts(pdf)
    pages = dossier_page_of(texts)
    assert {entry.slug for entry in catalog} == set(pages)
    front = min(pages.values()) - 1
    for entry in catalog:  # each cross-reference names the page its target is on now
        text = texts[pages[entry.slug] - 1]
        shown = sorted(int(page) for page in re.findall(r"→ p\. (\d+)", text))
        bound = [r.target for r in entry.record.related if r.target in pages]
        assert shown == sorted(pages[target] - front for target in bound), entry.slug
    contents = texts[1]
    for entry in catalog:
        listed = re.search(re.escape(entry.record.title) + r"[ .]*(\d+)\n", contents)
        assert int(listed[1]) == pages[entry.slug] - front, entry.slug
