"""Raster: PDF pages as PNG images (pypdfium2), for e-mail bodies, chat and READMEs."""

from __future__ import annotations

import io

from .problems import InvalidInput, Problem


def png_pages(pdf: bytes, dpi: int = 110) -> list[bytes]:
    """Each page of `pdf` as a PNG at `dpi`."""
    try:
        import pypdfium2
    except ImportError:
        message = "PNG output needs pypdfium2: pip install 'dossier[png]'"
        raise InvalidInput([Problem("--png", None, "", message)]) from None
    document = pypdfium2.PdfDocument(pdf)
    try:
        images = []
        for page in document:
            bitmap = page.render(scale=dpi / 72)
            buffer = io.BytesIO()
            bitmap.to_pil().save(buffer, format="PNG", optimize=True)
            images.append(buffer.getvalue())
            page.close()
        return images
    finally:
        document.close()
