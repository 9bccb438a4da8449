from __future__ import annotations

import re

import pytest
from weasyprint.urls import FatalURLFetchingError

from renderer.engine import Engine, Fitted, GuardedFetcher
from renderer.fitting import MAX_SCALE, TextSize
from renderer.layouts import FONTS_CSS, Layout
from renderer.problems import InvalidInput


@pytest.fixture
def fetcher():
    return GuardedFetcher(Layout.find("classified").allowed_roots)


def test_serves_layout_and_font_files(fetcher):
    response = fetcher.fetch(FONTS_CSS.as_uri())
    assert b"@font-face" in response.read()
    css = Layout.find("classified").folder / "dossier.css"
    assert fetcher.fetch(css.as_uri()).read() == css.read_bytes()


def test_serves_data_urls(fetcher):
    assert fetcher.fetch("data:text/plain,hello").read() == b"hello"


OUTSIDE = "only files under the layout folder and fonts/"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", OUTSIDE),
        (FONTS_CSS.as_uri().replace("fonts.css", "../pyproject.toml"), OUTSIDE),
        ("http://127.0.0.1/", f"{OUTSIDE} (and data: URLs)"),
        ("https://example.org/font.ttf", f"{OUTSIDE} (and data: URLs)"),
        ("ftp://example.org/x", f"{OUTSIDE} (and data: URLs)"),
        ("file://example.org/etc/passwd", f"{OUTSIDE} (and data: URLs)"),
        (FONTS_CSS.as_uri().replace("fonts.css", "missing.ttf"), "no such file"),
        (FONTS_CSS.as_uri().replace("fonts.css", "a%00b.ttf"), "no such file"),
    ],
)
def test_refuses_everything_else(fetcher, url, reason):
    with pytest.raises(FatalURLFetchingError) as caught:
        fetcher.fetch(url)
    assert str(caught.value) == f"refused to fetch {url}: {reason}"


@pytest.fixture
def own_layout(tmp_path):
    folder = tmp_path / "lay"
    folder.mkdir()
    (folder / "dossier.html.j2").write_text(SHEET)
    return folder


SHEET = '<html><body><main id="sheet">{{ title }}</main></body></html>'


@pytest.mark.parametrize("target", ["/etc/passwd", "../secret.ttf"])
def test_links_in_the_layout_to_files_outside_are_refused(own_layout, target):
    (own_layout.parent / "secret.ttf").write_bytes(b"secret")
    (own_layout / "font.ttf").symlink_to(target)
    fetcher = GuardedFetcher(Layout.find(str(own_layout)).allowed_roots)
    url = (own_layout / "font.ttf").as_uri()
    with pytest.raises(FatalURLFetchingError) as caught:
        fetcher.fetch(url)
    reason = "it is a link to a file outside the layout folder and fonts/"
    assert str(caught.value) == f"refused to fetch {url}: {reason}"
    (own_layout / "inside.ttf").symlink_to(FONTS_CSS)  # into fonts/: allowed
    assert b"@font-face" in fetcher.fetch((own_layout / "inside.ttf").as_uri()).read()


@pytest.mark.parametrize(
    "markup",
    [
        '<img src="file:///etc/hostname" alt="">',
        '<link rel="stylesheet" href="http://example.org/x.css">',
        '<a rel="attachment" href="file:///etc/passwd">source</a>',  # fetched only when written
    ],
)
def test_a_refused_fetch_is_a_problem_of_the_layout(own_layout, markup):
    url = re.search(r'(?:src|href)="([^"]+)"', markup).group(1)
    engine = Engine(Layout.find(str(own_layout)))
    html = f'<html><body><main id="sheet">A title{markup}</main></body></html>'
    with pytest.raises(InvalidInput) as caught:
        engine.write_document(engine.layout_html(html))
    problem = str(caught.value)
    assert problem.startswith(f"{own_layout}: layout: refused to fetch {url}: only files under")


def fit(layout_folder, body: str) -> Fitted:
    engine = Engine(Layout.find(str(layout_folder)))
    html = f"<html><body>{body}</body></html>"
    return engine.fit(lambda scale: html, name="specimen", size=TextSize(2000))


def test_a_layout_without_a_sheet_is_told_what_it_lacks(own_layout):
    with pytest.raises(InvalidInput) as caught:
        fit(own_layout, "<main>A title</main>")
    assert str(caught.value) == (
        f'{own_layout}/dossier.html.j2: layout: no element with id="sheet"'
        " (the part that must fit one page; see layouts/README.md)"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('<main id="sheet" style="margin-top: 400mm">A title</main>',
         'the element id="sheet" starts below the first page'),
        ('<div style="height: 400mm"></div><main id="sheet">A title</main>',
         'what lies outside the element id="sheet" takes more than one page'),
    ],
)  # fmt: skip
def test_a_page_that_overflows_outside_the_sheet_is_the_layouts_fault(own_layout, body, message):
    with pytest.raises(InvalidInput) as caught:
        fit(own_layout, body)
    assert (
        str(caught.value)
        == f"{own_layout}/dossier.html.j2: layout: {message} (see layouts/README.md)"
    )


def test_an_empty_sheet_or_text_right_in_it_fits(own_layout):
    assert fit(own_layout, '<main id="sheet"></main>').scale == MAX_SCALE
    assert fit(own_layout, '<main id="sheet">A title</main>').scale == MAX_SCALE


def test_elements_nested_too_deeply_are_a_problem_of_the_layout(own_layout):
    engine = Engine(Layout.find(str(own_layout)))
    html = f'<html><body><main id="sheet">{"<div>" * 3000}A title</main></body></html>'
    with pytest.raises(InvalidInput) as caught:
        engine.layout_html(html)
    assert str(caught.value) == (
        f"{own_layout}: layout: its HTML nests elements too deeply to be laid out"
    )
