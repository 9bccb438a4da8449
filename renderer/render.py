"""Dossiers: one record through context, layout and engine, typeset once into a one-page PDF."""

from __future__ import annotations

import atexit
import functools
from dataclasses import dataclass
from pathlib import Path

from .config import Config
from .context import dossier_context, single_link
from .contract import DOSSIER_TEMPLATE
from .fitting import TextSize
from .layouts import Layout
from .model import Record
from .slots import FOLIO, Typeset, cut_slots, open_slots, stamped


@dataclass(frozen=True)
class RenderedDossier:
    typeset: Typeset
    scale: float
    passes: int
    fill: float  # of the page's height, measured on the laid-out boxes
    opened: float = 0.0  # CSS px the widest gap was opened up by to fill the page

    @property
    def pdf(self) -> bytes:
        """The dossier printed alone."""
        return self.typeset.single


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
) -> bytes:
    """One record as a one-page PDF; raises InvalidInput when it cannot fit one page."""
    return render_dossier_report(record, config, variant=variant, source=source).pdf


def render_dossier_report(
    record: Record,
    config: Config | None = None,
    *,
    variant: str | None = None,
    source: Path | None = None,
) -> RenderedDossier:
    """The dossier typeset once (its page with open slots, and its copy printed alone), the
    type scale and the number of layout passes."""
    from .engine import attachment

    config = config or Config()
    engine = engine_for(Layout.find(config.layout))

    def html_at(scale: float) -> str:
        return dossier_html(record, config, scale=scale, layout=engine.layout)

    fitted = engine.fit(html_at, name=record.slug, size=text_size(record), variant=variant)
    attachments = []
    if variant == "pdf/a-3b" and source is not None:
        when = record.case.opened or config.date
        attachments.append(
            attachment(source.name, source.read_bytes(), when, "The source record (YAML)")
        )
    written = engine.write(fitted, variant=variant, attachments=attachments)
    where = engine.layout.shown_path(DOSSIER_TEMPLATE)
    pdf, slots = cut_slots(written, open_slots(fitted.document), where)
    single = stamped(pdf, slots, printed_alone, links=lambda uri: single_link(uri, config))
    typeset = Typeset(pdf, slots, single)
    return RenderedDossier(typeset, fitted.scale, fitted.passes, fitted.fill, fitted.opened)


def printed_alone(slot: str) -> dict[str, int] | None:
    """A dossier printed alone is page 1 of 1, and no other specimen has a page."""
    return {"page": 1, "total": 1} if slot == FOLIO else None


def dossier_html(
    record: Record,
    config: Config,
    *,
    scale: float = 1.0,
    layout: Layout | None = None,
) -> str:
    """The dossier's HTML at one type scale, before WeasyPrint lays it out."""
    context = dossier_context(record, config, scale=scale)
    return (layout or Layout.find(config.layout)).render_html(context)


def text_size(record: Record) -> TextSize:
    """What of the record the page must hold, as the fitting counts it."""
    return TextSize(record.text_length(), record.text_parts(), len(record.related))
