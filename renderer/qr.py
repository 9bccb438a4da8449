"""QR codes: a payload into a compact inline SVG, cached by payload."""

from __future__ import annotations

import functools

import qrcode
import qrcode.constants
from markupsafe import Markup, escape

QUIET_ZONE = 4  # modules, as the QR specification asks
ALT_PREFIX = "QR code: "


@functools.lru_cache(maxsize=8192)
def qr_svg(payload: str) -> Markup:
    """An SVG QR code (error correction M) drawn as one path of horizontal runs, titled
    "QR code: <payload>" (the figure's Alt text in a tagged PDF).

    The `qrcode` package computes the modules; drawing runs instead of one square per module
    makes the path several times shorter, which WeasyPrint writes faster and the PDF stores smaller.
    """
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=QUIET_ZONE)
    code.add_data(payload)
    code.make(fit=True)
    matrix = code.get_matrix()
    size = len(matrix)
    path = "".join(_runs(row, y) for y, row in enumerate(matrix))
    return Markup(
        f'<svg class="qr" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}"'
        f' shape-rendering="crispEdges"><title>{escape(ALT_PREFIX + payload)}</title>'
        f'<rect width="{size}" height="{size}" fill="#fff"/>'
        f'<path fill="#000" d="{path}"/></svg>'
    )


def _runs(row: list[bool], y: int) -> str:
    commands, x, width = [], 0, len(row)
    while x < width:
        if not row[x]:
            x += 1
            continue
        start = x
        while x < width and row[x]:
            x += 1
        commands.append(f"M{start} {y}h{x - start}v1h{start - x}z")
    return "".join(commands)
