"""Raster: PDF pages as PNG images (pypdfium2), for e-mail bodies, chat and READMEs."""

from __future__ import annotations

import io

from .problems import InvalidInput, Problem


def png_pages(pdf: bytes, dpi: int = 110) -> list[bytes]:
    """Each page of `pdf` as a PNG at `dpi`."""
    images = []
    for image, _ in page_images(pdf, "--png", lambda width: dpi / 72):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
        images.append(buffer.getvalue())
    return images


def page_images(pdf: bytes, option: str, scale_for_width) -> list[tuple]:
    """Each page as (PIL image at the scale `scale_for_width(page width in points)`, the page's
    label: the number printed on it, as the PDF's page labels say, else its position)."""
    try:
        import pypdfium2
    except ImportError:
        message = "this needs pypdfium2: pip install 'dossier[png]'"
        raise InvalidInput([Problem(option, None, "", message)]) from None
    document = pypdfium2.PdfDocument(pdf)
    try:
        pages = []
        for index, page in enumerate(document):
            bitmap = page.render(scale=scale_for_width(page.get_width()))
            label = document.get_page_label(index) or str(index + 1)
            pages.append((bitmap.to_pil().convert("RGB"), label))
            page.close()
        return pages
    finally:
        document.close()


def contact_sheet(pdf: bytes, thumbnail_width: int = 160, columns: int = 8) -> bytes:
    """Every page of `pdf` as a thumbnail, in rows on one PNG, each under its page label."""
    from PIL import Image, ImageDraw

    pages = page_images(pdf, "--contact-sheet", lambda width: thumbnail_width / width)
    gap, label_height = 12, 16
    cell_height = max(image.height for image, _ in pages) + label_height
    rows = -(-len(pages) // columns)
    sheet = Image.new(
        "RGB",
        (gap + columns * (thumbnail_width + gap), gap + rows * (cell_height + gap)),
        "white",
    )
    draw = ImageDraw.Draw(sheet)
    for index, (image, label) in enumerate(pages):
        x = gap + (index % columns) * (thumbnail_width + gap)
        y = gap + (index // columns) * (cell_height + gap)
        sheet.paste(image, (x, y))
        draw.rectangle((x, y, x + image.width - 1, y + image.height - 1), outline="#888888")
        draw.text((x, y + image.height + 3), label, fill="#333333")
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
