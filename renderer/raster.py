"""Raster: PDF pages as PNG images (pypdfium2), for e-mail bodies, chat and READMEs."""

from __future__ import annotations

import io

from .problems import InvalidInput, Problem


def png_pages(pdf: bytes, dpi: int = 110) -> list[bytes]:
    """Each page of `pdf` as a PNG at `dpi`."""
    images = []
    for image in _page_images(pdf, "--png", lambda width: dpi / 72):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
        images.append(buffer.getvalue())
    return images


def _page_images(pdf: bytes, option: str, scale_for_width) -> list:
    """Each page as a PIL image, at the scale `scale_for_width(page width in points)`."""
    try:
        import pypdfium2
    except ImportError:
        message = "this needs pypdfium2: pip install 'dossier[png]'"
        raise InvalidInput([Problem(option, None, "", message)]) from None
    document = pypdfium2.PdfDocument(pdf)
    try:
        images = []
        for page in document:
            bitmap = page.render(scale=scale_for_width(page.get_width()))
            images.append(bitmap.to_pil().convert("RGB"))
            page.close()
        return images
    finally:
        document.close()


def contact_sheet(pdf: bytes, thumbnail_width: int = 160, columns: int = 8) -> bytes:
    """Every page of `pdf` as a thumbnail, in rows on one PNG, each with its page number."""
    from PIL import Image, ImageDraw

    thumbnails = _page_images(pdf, "--contact-sheet", lambda width: thumbnail_width / width)
    gap, label = 12, 16
    cell_height = max(image.height for image in thumbnails) + label
    rows = -(-len(thumbnails) // columns)
    sheet = Image.new(
        "RGB",
        (gap + columns * (thumbnail_width + gap), gap + rows * (cell_height + gap)),
        "white",
    )
    draw = ImageDraw.Draw(sheet)
    for index, image in enumerate(thumbnails):
        x = gap + (index % columns) * (thumbnail_width + gap)
        y = gap + (index // columns) * (cell_height + gap)
        sheet.paste(image, (x, y))
        draw.rectangle((x, y, x + image.width - 1, y + image.height - 1), outline="#888888")
        draw.text((x, y + image.height + 3), f"{index + 1}", fill="#333333")
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
