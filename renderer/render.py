"""Dossiers: one record through context, layout and engine into one-page PDF bytes."""

from __future__ import annotations

import atexit
import functools
from dataclasses import dataclass
from pathlib import Path

from .config import Config
from .context import Links, dossier_context
from .layouts import Layout
from .model import Record


@dataclass(frozen=True)
class RenderedDossier:
    pdf: bytes
    scale: float
    passes: int


@functools.cache
def engine_for(layout: Layout):
    from .engine import Engine  # WeasyPrint loads only when something is rendered

    return Engine(layout)


# Engines are dropped before the interpreter tears modules down: WeasyPrint's font
# configuration cleans its temporary folder when dropped, which fails once modules are gone.
atexit.register(engine_for.cache_clear)


def render_dossier(
    record: Record,
    config: Config | None = None,
    *,
    variant: str | None = None,
    source: Path | None = None,
    links: Links | None = None,
) -> bytes:
    """One record as a one-page PDF; raises InvalidInput when it cannot fit one page."""
    return render_dossier_report(record, config, variant=variant, source=source, links=links).pdf


def render_dossier_report(
    record: Record,
    config: Config | None = None,
    *,
    variant: str | None = None,
    source: Path | None = None,
    links: Links | None = None,
) -> RenderedDossier:
    """Like render_dossier, and tells the type scale and the number of layout passes."""
    from .engine import attachment

    config = config or Config()
    engine = engine_for(Layout.find(config.layout))

    def html_at(scale: float) -> str:
        return dossier_html(record, config, scale=scale, links=links, layout=engine.layout)

    fitted = engine.fit(html_at, name=record.slug, size=text_size(record), variant=variant)
    attachments = []
    if variant == "pdf/a-3b" and source is not None:
        when = record.case.opened or config.date
        attachments.append(
            attachment(source.name, source.read_bytes(), when, "The source record (YAML)")
        )
    pdf = engine.write(fitted, variant=variant, attachments=attachments)
    return RenderedDossier(pdf, fitted.scale, fitted.passes)


def dossier_html(
    record: Record,
    config: Config,
    *,
    scale: float = 1.0,
    links: Links | None = None,
    layout: Layout | None = None,
) -> str:
    """The dossier's HTML at one type scale, before WeasyPrint lays it out."""
    context = dossier_context(record, config, scale=scale, links=links)
    return (layout or Layout.find(config.layout)).render_html(context)


FIXED_TEXT = 1400  # about how much text the layout adds to every record, in characters


def text_size(record: Record) -> int:
    """Characters of record text, plus the layout's fixed part: what the fitting scales with."""
    return FIXED_TEXT + record.text_length()
