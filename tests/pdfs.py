"""Reading rendered PDFs back: pages, text, fonts, links, QR codes."""

from __future__ import annotations

import io
import re

import pikepdf
import pypdfium2
import zxingcpp
from pypdf import PdfReader

from renderer.model import Record, money

BUNDLED_FONT_PREFIXES = ("Courier-Prime", "Black-Ops-One", "IBM-Plex-Mono", "Oswald", "Noto-Sans")
LAYOUT_FONT_PREFIXES = {"memo": ("Archivo-Narrow",)}  # fonts a layout brings in its own folder


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


def page_words(pdf: bytes) -> str:
    """The page's text, normalised, with lines that broke after a hyphen joined again."""
    return re.sub(r"(?<=\w)- ", "-", normal(text(pdf)))


def record_texts(record: Record) -> list[str]:
    """Every text the record holds, as it should read on the page."""
    data = record.model_dump(exclude_none=True)
    data["salary"]["note"] = record.salary.filled_note()
    for key in ("average", "low", "high"):
        data["salary"][key] = money(data["salary"][key], record.salary.currency)
    texts = []

    def walk(value):
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str | int) and not isinstance(value, bool):
            texts.append(str(value))

    walk({k: v for k, v in data.items() if k != "case"})
    texts.remove(record.salary.currency)  # printed as its symbol, with the amounts
    return texts


def normal(value: str) -> str:
    """Whitespace collapsed and case folded: the layout may set text in capitals."""
    return re.sub(r"\s+", " ", value).strip().casefold()


def page_text(pdf: bytes, number: int) -> str:
    """The text of one page (0-based), as pypdf extracts it."""
    return PdfReader(io.BytesIO(pdf)).pages[number].extract_text()
