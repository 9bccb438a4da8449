from __future__ import annotations

import pytest
from weasyprint.urls import FatalURLFetchingError

from renderer.engine import GuardedFetcher, Measure, next_scale
from renderer.layouts import FONTS_CSS, Layout


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


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        FONTS_CSS.as_uri().replace("fonts.css", "../pyproject.toml"),
        "http://127.0.0.1/",
        "https://example.org/font.ttf",
        "ftp://example.org/x",
    ],
)
def test_refuses_everything_else(fetcher, url):
    with pytest.raises(FatalURLFetchingError, match="refused to fetch"):
        fetcher.fetch(url)


def test_next_scale_aims_just_under_a_full_page():
    assert next_scale(1.0, Measure(pages=2, used=1500, available=1000)) == pytest.approx(
        0.8, abs=1e-9
    )
    assert next_scale(1.0, Measure(pages=3, used=3000, available=1000)) == 0.73  # the floor
    assert 1.0 < next_scale(1.0, Measure(pages=1, used=500, available=1000)) <= 1.25
