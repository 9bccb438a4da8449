"""The built-in layouts, each through the same model, QR codes and fitting; layout settings."""

from __future__ import annotations

import shutil

import pytest

from renderer.config import Config
from renderer.layouts import LAYOUTS_DIR, Layout
from renderer.problems import InvalidInput
from renderer.records import load_catalog, load_record
from renderer.render import render_dossier_report
from tests import pdfs
from tests.conftest import RECORDS, ROOT, SEED_YAML, small_catalog
from tests.lines import broken_too_early

BUILT_IN = sorted(p.name for p in LAYOUTS_DIR.iterdir() if (p / "dossier.html.j2").is_file())


@pytest.fixture(scope="module")
def seed():
    return load_record(SEED_YAML).record


@pytest.fixture(scope="module", params=BUILT_IN)
def rendered(request, seed):
    config = Config(layout=request.param)
    return request.param, config, render_dossier_report(seed, config)


def test_there_are_two_clearly_different_built_in_layouts():
    assert BUILT_IN == ["classified", "memo"]
    descriptions = {name: Layout.find(name).settings["description"] for name in BUILT_IN}
    assert descriptions["memo"].startswith("Redacted memo")


def test_one_page_with_every_text_of_the_record(rendered, seed):
    _, _, report = rendered
    assert len(pdfs.page_sizes(report.pdf)) == 1
    page_text = pdfs.page_words(report.pdf)
    assert [t for t in pdfs.record_texts(seed) if pdfs.normal(t) not in page_text] == []


def test_qr_codes_scan_to_the_related_urls_and_are_links(rendered, seed):
    _, config, report = rendered
    expected = sorted(config.specimen_url(r.target) for r in seed.related)
    assert sorted(pdfs.qr_codes(report.pdf)) == expected
    assert sorted(set(pdfs.link_uris(report.pdf))) == expected


def test_fonts_come_from_fonts_or_the_layout_folder(rendered):
    name, _, report = rendered
    allowed = pdfs.BUNDLED_FONT_PREFIXES + pdfs.LAYOUT_FONT_PREFIXES.get(name, ())
    fonts = pdfs.font_names(report.pdf)
    assert fonts and all(font.startswith(allowed) for font in fonts), fonts


@pytest.mark.slow
def test_every_committed_record_fits_one_page_in_the_memo_layout():
    config = Config(layout="memo")
    passes = []
    for entry in load_catalog(RECORDS):
        report = render_dossier_report(entry.record, config)
        assert len(pdfs.page_sizes(report.pdf)) == 1, entry.slug
        assert len(report.pdf) < 60_000, entry.slug
        passes.append(report.passes)
    assert sum(passes) / len(passes) <= 1.2  # page_text in layout.toml is calibrated


def test_layout_settings_are_checked(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "dossier.html.j2").write_text('<main id="sheet">{{ title }}</main>')
    (folder / "layout.toml").write_text('page_txt = 5000\npage_text = "many"\n')
    with pytest.raises(InvalidInput) as caught:
        Layout.find(str(folder))
    assert [str(p) for p in caught.value.problems] == [
        f"{folder}/layout.toml: page_text: must be a whole number ≥ 100",
        f"{folder}/layout.toml: page_txt: unknown setting (known: description, page_text)",
    ]
    (folder / "layout.toml").write_text("page_text = 5000\n")
    assert Layout.find(str(folder)).page_text == 5000


@pytest.mark.parametrize("layout", BUILT_IN)
def test_the_readme_walkthrough_record_is_valid_and_fits(layout):
    entry = load_record(ROOT / "docs" / "walkthrough" / "chief-vibes-officer.yaml")
    report = render_dossier_report(entry.record, Config(layout=layout))
    assert len(pdfs.page_sizes(report.pdf)) == 1


def test_template_errors_are_located_not_raised(tmp_path):
    from click.testing import CliRunner

    from renderer.cli import main

    folder = tmp_path / "mine"
    shutil.copytree(LAYOUTS_DIR / "memo", folder)
    template = folder / "dossier.html.j2"
    lines = template.read_text().splitlines()
    line = next(n for n, text in enumerate(lines, 1) if "{{ title }}" in text and "<strong" in text)
    lines[line - 1] = lines[line - 1].replace("{{ title }}", "{{ title.nickname }}")
    template.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    args = ["render", str(SEED_YAML), "--layout", str(folder), "--out", str(out), "--jobs", "1"]
    result = CliRunner().invoke(main, [*args, "--cache", str(tmp_path / "cache")])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{template}:{line}: template error: ")
    assert "nickname" in result.stderr and "Traceback" not in result.stderr

    template.write_text("{% if %}\n")
    with pytest.raises(InvalidInput) as caught:
        Layout.find(str(folder)).render_html({})
    assert str(caught.value).startswith(f"{template}:1: template error: ")


def test_a_compendium_layout_needs_its_own_pages(tmp_path):
    from renderer.build import Builder
    from renderer.compendium import build_compendium

    folder = tmp_path / "only-dossiers"
    folder.mkdir()
    for name in ("dossier.html.j2", "memo.css", "fonts"):
        source = LAYOUTS_DIR / "memo" / name
        copy = shutil.copytree if source.is_dir() else shutil.copy
        copy(source, folder / name)
    catalog = load_catalog(small_catalog(tmp_path))
    with pytest.raises(InvalidInput) as caught:
        build_compendium(catalog, Config(layout=str(folder)), tmp_path / "c.pdf",
                         Builder(tmp_path / "cache", workers=1))  # fmt: skip
    assert str(caught.value) == (
        f"{folder}: layout: the compendium needs matter.html.j2, cover.html.j2, contents.html.j2,"
        " index.html.j2, blank.html.j2, compendium.css in the layout (see layouts/README.md)"
    )
    assert not (tmp_path / "c.pdf").exists()


def test_a_line_cut_after_its_first_word_is_found():
    """The pattern the layouts avoid: text ending in a space before an element, at a width where
    the text fills its last line exactly (the memo's first draft, at type scale 0.87)."""
    from renderer.render import engine_for

    engine = engine_for(Layout.find("memo"))
    html = """<html style="--scale: 0.87"><head><link rel="stylesheet" href="memo.css"></head>
    <body><main id="sheet"><div class="body" style="columns: auto; width: 89.1mm"><section>
    <h2>1. The org-chart architecture</h2><p>The organizational hierarchy defining the pressure
    flow and extraction cycle for this role. <em>Also known as</em> Software Development
    Engineer in Test; Quality Engineering Lead.</p></section></div></main></body></html>"""
    found = broken_too_early(engine.layout_html(html))
    assert [(end, start.split()[0]) for end, start in found] == [("The", "organizational")]
    fixed = html.replace(" <em>", "</p><p><em>")
    assert broken_too_early(engine.layout_html(fixed)) == []


@pytest.mark.slow
@pytest.mark.parametrize("layout", BUILT_IN)
def test_no_line_is_broken_too_early_in_any_committed_record(layout):
    from renderer.render import dossier_html, engine_for

    config = Config(layout=layout)
    engine = engine_for(Layout.find(layout))
    for entry in load_catalog(RECORDS):
        fitted = render_dossier_report(entry.record, config).scale
        for scale in (fitted - 0.01, fitted, fitted + 0.01):  # and near it, for the next edit
            html = dossier_html(entry.record, config, scale=round(scale, 2), layout=engine.layout)
            assert broken_too_early(engine.layout_html(html)) == [], (entry.slug, scale)
