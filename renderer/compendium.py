"""Compendium: the catalog in one PDF: cover, contents, dossiers, alias index, bookmarks, links."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import pikepdf

from .build import Builder, DossierJob
from .config import Config
from .context import INTERNAL_SCHEME, PAPER_SIZES, Links
from .fileio import write_atomic
from .fontmerge import unify_fonts
from .layouts import FONTS_DIR, Layout
from .problems import InvalidInput
from .records import Catalog

INDEX_TARGET = "index"


@dataclass(frozen=True)
class PagePlan:
    """Where everything goes; page numbers count from 1."""

    front: int
    dossiers: dict[str, int]
    blanks: list[int] = field(default_factory=list)
    index: int = 0
    index_pages: int = 1

    @property
    def total(self) -> int:
        return self.index + self.index_pages - 1


def plan_pages(slugs: list[str], front: int, index_pages: int, duplex: bool) -> PagePlan:
    """Dossiers follow the front matter, each on a right-hand (odd) page when duplex."""
    page, dossiers, blanks = front + 1, {}, []
    for slug in slugs:
        if duplex and page % 2 == 0:
            blanks.append(page)
            page += 1
        dossiers[slug] = page
        page += 1
    return PagePlan(front, dossiers, blanks, page, index_pages)


@dataclass(frozen=True)
class CompendiumReport:
    path: Path
    pages: int
    rendered: int


class Matter:
    """The compendium's own pages (cover, contents, index, blank versos), from the layout."""

    def __init__(self, catalog: Catalog, config: Config):
        from .render import engine_for

        self.catalog, self.config = catalog, config
        self.engine = engine_for(Layout.find(config.layout))
        self.date = _build_date(catalog, config)

    def render(self, template: str, plan: PagePlan, **extra):
        """One layout pass of a compendium template (a weasyprint.Document)."""
        context = {
            "title": "Specimen Compendium",
            "paper": PAPER_SIZES[self.config.paper],
            "organisation": self.config.organisation,
            "classification": self.config.classification,
            "date": self.date,
            "total_pages": plan.total,
            "index_page": plan.index,
            "specimens": [
                {
                    "slug": entry.slug,
                    "title": entry.record.title,
                    "case_number": entry.record.case_number,
                    "page": plan.dossiers.get(entry.slug, 0),
                }
                for entry in self.catalog
            ],
            "aliases": self._aliases(plan),
            **extra,
        }
        return self.engine.layout_html(self.engine.layout.render_html(context, template))

    def _aliases(self, plan: PagePlan) -> list[dict]:
        rows = [
            {
                "alias": alias,
                "title": e.record.title,
                "slug": e.slug,
                "page": plan.dossiers.get(e.slug, 0),
            }
            for e in self.catalog
            for alias in e.record.org_chart.aliases
        ]
        return sorted(rows, key=lambda row: (row["alias"].casefold(), row["title"]))


def _build_date(catalog: Catalog, config: Config) -> str:
    if config.date:
        return config.date.isoformat()
    dates = [e.record.case.opened for e in catalog if e.record.case.opened]
    return max(dates).isoformat() if dates else "UNDATED"


def build_compendium(
    catalog: Catalog, config: Config, out: Path, builder: Builder, *, duplex: bool = False
) -> CompendiumReport:
    """Render (or reuse) every dossier with its compendium page numbers and assemble one PDF."""
    matter = Matter(catalog, config)
    slugs = list(catalog.entries)
    plan = _settle_plan(matter, slugs, duplex)
    jobs = [
        DossierJob(
            entry.record,
            config,
            Links(plan.dossiers, plan.dossiers[entry.slug], plan.total),
        )
        for entry in catalog
    ]
    run = builder.run(jobs)
    if run.problems:
        raise InvalidInput(run.problems)
    front = matter.render("compendium.html.j2", plan, part="front", first_page=1)
    back = matter.render("compendium.html.j2", plan, part="back", first_page=plan.index)
    blanks = matter.render("blank.html.j2", plan, pages=plan.blanks) if plan.blanks else None
    pdf = _assemble(plan, slugs, builder, run.keys, front, back, blanks, matter)
    write_atomic(out, pdf)
    return CompendiumReport(out, plan.total, run.rendered)


def _settle_plan(matter: Matter, slugs: list[str], duplex: bool) -> PagePlan:
    """Page counts of the front and back matter, found by laying them out with a trial plan."""
    front, index_pages = 2, 1
    for _ in range(4):
        plan = plan_pages(slugs, front, index_pages, duplex)
        counted_front = len(
            matter.render("compendium.html.j2", plan, part="front", first_page=1).pages
        )
        counted_index = len(
            matter.render("compendium.html.j2", plan, part="back", first_page=plan.index).pages
        )
        if (counted_front, counted_index) == (front, index_pages):
            return plan
        front, index_pages = counted_front, counted_index
    return plan_pages(slugs, front, index_pages, duplex)


def _assemble(plan, slugs, builder, keys, front, back, blanks, matter) -> bytes:
    out = pikepdf.new()
    keep_open = []

    def append(data: bytes) -> None:
        source = pikepdf.open(io.BytesIO(data))
        keep_open.append(source)
        out.pages.extend(source.pages)

    append(front.write_pdf())
    blank_pages = iter(pikepdf.open(io.BytesIO(blanks.write_pdf())).pages) if blanks else iter(())
    for slug, key in zip(slugs, keys, strict=True):
        if plan.dossiers[slug] - 1 in plan.blanks:
            out.pages.append(next(blank_pages))
        append(builder.cache.get(key))
    append(back.write_pdf())
    _link_specimens(out, plan)
    _outline(out, plan, matter)
    unify_fonts(out, [FONTS_DIR, matter.engine.layout.folder])
    _metadata(out, matter)
    buffer = io.BytesIO()
    out.save(
        buffer,
        deterministic_id=True,
        compress_streams=True,
        object_stream_mode=pikepdf.ObjectStreamMode.generate,
    )
    for source in keep_open:
        source.close()
    return buffer.getvalue()


def _link_specimens(pdf: pikepdf.Pdf, plan: PagePlan) -> None:
    """`specimen:<slug>` links, written by the layout, become links to that specimen's page."""
    targets = {**plan.dossiers, INDEX_TARGET: plan.index}
    for page in pdf.pages:
        for annotation in page.obj.get("/Annots", []):
            action = annotation.get("/A")
            uri = str(action.get("/URI", "")) if action is not None else ""
            if not uri.startswith(INTERNAL_SCHEME):
                continue
            number = targets.get(uri.removeprefix(INTERNAL_SCHEME))
            if number is None:
                del annotation["/A"]
                continue
            destination = pdf.pages[number - 1].obj
            annotation.A = pikepdf.Dictionary(
                S=pikepdf.Name.GoTo, D=pikepdf.Array([destination, pikepdf.Name.Fit])
            )


def _outline(pdf: pikepdf.Pdf, plan: PagePlan, matter: Matter) -> None:
    with pdf.open_outline() as outline:
        outline.root.append(pikepdf.OutlineItem("Cover", 0))
        outline.root.append(pikepdf.OutlineItem("Contents", 1))
        specimens = pikepdf.OutlineItem("Specimens", plan.front)
        for entry in matter.catalog:
            specimens.children.append(
                pikepdf.OutlineItem(entry.record.title, plan.dossiers[entry.slug] - 1)
            )
        outline.root.append(specimens)
        outline.root.append(pikepdf.OutlineItem("Index of aliases", plan.index - 1))


def _metadata(pdf: pikepdf.Pdf, matter: Matter) -> None:
    pdf.docinfo["/Title"] = "Specimen Compendium"
    pdf.docinfo["/Author"] = matter.config.author
    pdf.docinfo["/Subject"] = f"{len(matter.catalog)} specimens, compiled {matter.date}"
    pdf.docinfo["/Creator"] = "dossier"
