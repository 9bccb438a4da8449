"""Reading rendered PDFs back: pages, text, fonts, links, QR codes."""

from __future__ import annotations

import io
import re

import pikepdf
import pypdfium2
import zxingcpp
from pypdf import PdfReader

BUNDLED_FONT_PREFIXES = ("Courier-Prime", "Black-Ops-One", "IBM-Plex-Mono", "Oswald")


def page_sizes(pdf: bytes) -> list[tuple[float, float]]:
    with pikepdf.open(io.BytesIO(pdf)) as document:
        return [tuple(round(float(v), 1) for v in page.mediabox[2:]) for page in document.pages]


def text(pdf: bytes) -> str:
    """All text, whitespace collapsed, so wrapped lines compare equal to record text."""
    raw = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    return re.sub(r"\s+", " ", raw)


def font_names(pdf: bytes) -> set[str]:
    names = set()
    with pikepdf.open(io.BytesIO(pdf)) as document:
        for page in document.pages:
            for font in page.Resources.get("/Font", {}).values():
                names.add(str(font.BaseFont).lstrip("/").split("+", 1)[-1])
    return names


def link_uris(pdf: bytes) -> list[str]:
    with pikepdf.open(io.BytesIO(pdf)) as document:
        return [
            str(annotation.A.URI)
            for page in document.pages
            for annotation in page.get("/Annots", [])
            if "/A" in annotation and "/URI" in annotation.A
        ]


def qr_codes(pdf: bytes, dpi: int = 150) -> list[str]:
    document = pypdfium2.PdfDocument(pdf)
    found = []
    for page in document:
        image = page.render(scale=dpi / 72, grayscale=True).to_pil()
        found += [result.text for result in zxingcpp.read_barcodes(image)]
    return found


def named_destinations(document: pikepdf.Pdf) -> dict[str, int]:
    """Named destination -> 1-based page number."""
    page_numbers = {page.objgen: number for number, page in enumerate(document.pages, 1)}
    names = list(document.Root.Names.Dests.Names)
    return {str(names[i]): page_numbers[names[i + 1][0].objgen] for i in range(0, len(names), 2)}
