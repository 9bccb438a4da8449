"""Compendium: the catalog in one PDF: cover, contents, dossiers, alias index, bookmarks, links."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .assemble import Assembler, OutlineEntry
from .build import Builder, DossierJob, Session
from .cache import job_key
from .config import Config
from .context import PAPER_SIZES, Links
from .fileio import atomic_writer
from .layouts import FONTS_DIR, Layout
from .problems import InvalidInput
from .records import Catalog

INDEX_TARGET = "index"
MATTER_PARTS = ("front", "back", "blanks")


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


@dataclass(frozen=True)
class Matter:
    """What the compendium's own pages print: picklable, so a worker can lay them out."""

    config: Config
    date: str
    specimens: tuple[tuple[str, str, str], ...]  # slug, title, case number
    aliases: tuple[tuple[str, str, str], ...]  # alias, title, slug

    @classmethod
    def of(cls, catalog: Catalog, config: Config) -> Matter:
        specimens = tuple((e.slug, e.record.title, e.record.case_number) for e in catalog)
        aliases = sorted(
            (
                (alias, e.record.title, e.slug)
                for e in catalog
                for alias in e.record.org_chart.aliases
            ),
            key=lambda row: (row[0].casefold(), row[1]),
        )
        return cls(config, _build_date(catalog, config), specimens, tuple(aliases))

    def context(self, plan: PagePlan, **extra) -> dict:
        return {
            "title": "Specimen Compendium",
            "paper": PAPER_SIZES[self.config.paper],
            "organisation": self.config.organisation,
            "classification": self.config.classification,
            "date": self.date,
            "total_pages": plan.total,
            "index_page": plan.index,
            "specimens": [
                {"slug": slug, "title": title, "case_number": case, "page": plan.dossiers[slug]}
                for slug, title, case in self.specimens
            ],
            "aliases": [
                {"alias": alias, "title": title, "slug": slug, "page": plan.dossiers[slug]}
                for alias, title, slug in self.aliases
            ],
            **extra,
        }


def lay_out_matter(matter: Matter, plan: PagePlan) -> tuple[int, int, dict[str, bytes]]:
    """Runs in a worker: page counts of the front and back matter, and every part's PDF."""
    from .render import engine_for

    engine = engine_for(Layout.find(matter.config.layout))

    def lay_out(template: str, **extra):
        return engine.layout_html(
            engine.layout.render_html(matter.context(plan, **extra), template)
        )

    front = lay_out("compendium.html.j2", part="front", first_page=1)
    back = lay_out("compendium.html.j2", part="back", first_page=plan.index)
    parts = {"front": front.write_pdf(), "back": back.write_pdf()}
    if plan.blanks:
        parts["blanks"] = lay_out("blank.html.j2", pages=plan.blanks).write_pdf()
    return len(front.pages), len(back.pages), parts


def _build_date(catalog: Catalog, config: Config) -> str:
    if config.date:
        return config.date.isoformat()
    dates = [e.record.case.opened for e in catalog if e.record.case.opened]
    return max(dates).isoformat() if dates else "UNDATED"


def build_compendium(
    catalog: Catalog, config: Config, out: Path, builder: Builder, *, duplex: bool = False
) -> CompendiumReport:
    """Render (or reuse) every dossier with its compendium page numbers and assemble one PDF.

    As in Pelican's generators, every page number is settled before anything is rendered, so
    each dossier is laid out once, with its final running number and cross-references.
    """
    matter = Matter.of(catalog, config)
    slugs = [slug for slug, _, _ in matter.specimens]
    with builder.session() as session:
        plan, parts = _matter_pages(session, builder, matter, slugs, duplex)
        jobs = [
            DossierJob(
                entry.record, config, Links(plan.dossiers, plan.dossiers[entry.slug], plan.total)
            )
            for entry in catalog
        ]
        run = session.run(jobs)
    if run.problems:
        raise InvalidInput(run.problems)
    with atomic_writer(out) as stream:
        _assemble(stream, plan, slugs, builder, run.keys, parts, matter)
    return CompendiumReport(out, plan.total, run.rendered)


def _matter_pages(session: Session, builder: Builder, matter: Matter, slugs, duplex: bool):
    """The page plan and the compendium's own pages, from the cache or laid out for it.

    Their page counts decide where the dossiers go, so they are laid out for a guessed plan, and
    again only when the guess was wrong. They depend on titles, case numbers and aliases, not on
    the dossiers' text, so editing a record's text does not lay them out again.
    """
    key = job_key(kind="matter", inputs=builder.fingerprint(matter.config), matter=asdict(matter),
                  duplex=duplex)  # fmt: skip
    cached = _cached_matter(builder, key)
    if cached is not None:
        return cached
    front, index_pages = 2, 1
    for _ in range(4):
        plan = plan_pages(slugs, front, index_pages, duplex)
        counted_front, counted_index, parts = session.call(lay_out_matter, matter, plan)
        if (counted_front, counted_index) == (front, index_pages):
            _store_matter(builder, key, plan, parts)
            return plan, parts
        front, index_pages = counted_front, counted_index
    raise RuntimeError("the compendium's page count does not settle")


def _cached_matter(builder: Builder, key: str):
    raw = builder.cache.get(key)
    if raw is None:
        return None
    stored = json.loads(raw)
    parts = {name: builder.cache.get(part_key) for name, part_key in stored["parts"].items()}
    if any(data is None for data in parts.values()):
        return None
    return PagePlan(**stored["plan"]), parts


def _store_matter(builder: Builder, key: str, plan: PagePlan, parts: dict[str, bytes]) -> None:
    keys = {name: hashlib.sha256(data).hexdigest() for name, data in parts.items()}
    for name, part_key in keys.items():
        builder.cache.put(part_key, parts[name])
    builder.cache.put(key, json.dumps({"plan": asdict(plan), "parts": keys}).encode())


def _assemble(stream, plan: PagePlan, slugs, builder, keys, parts, matter: Matter) -> None:
    """Stream every page into the file in order: front matter, dossiers (and blanks), index."""
    layout = Layout.find(matter.config.layout)
    assembler = Assembler(stream, plan.total, [FONTS_DIR, layout.folder])
    targets = {**plan.dossiers, INDEX_TARGET: plan.index}
    assembler.add(parts["front"], targets)
    blanks = iter(_single_pages(parts["blanks"]) if plan.blanks else ())
    for slug, key in zip(slugs, keys, strict=True):
        if plan.dossiers[slug] - 1 in plan.blanks:
            assembler.add(next(blanks), targets)
        assembler.add(builder.cache.get(key), targets)
    assembler.add(parts["back"], targets)
    titles = {slug: title for slug, title, _ in matter.specimens}
    outline = [
        OutlineEntry("Cover", 1),
        OutlineEntry("Contents", 2),
        OutlineEntry("Specimens", plan.front + 1,
                     [OutlineEntry(titles[slug], plan.dossiers[slug]) for slug in slugs]),
        OutlineEntry("Index of aliases", plan.index),
    ]  # fmt: skip
    info = {
        "Title": "Specimen Compendium",
        "Author": matter.config.author,
        "Subject": f"{len(slugs)} specimens, compiled {matter.date}",
        "Creator": "dossier",
    }
    assembler.finish(outline, info)


def _single_pages(pdf: bytes) -> list[bytes]:
    """Each page of a PDF as a PDF of its own (blank versos, rendered together)."""
    import io

    import pikepdf

    pages = []
    with pikepdf.open(io.BytesIO(pdf)) as source:
        for page in source.pages:
            single = pikepdf.new()
            single.pages.append(page)
            buffer = io.BytesIO()
            single.save(buffer, deterministic_id=True)
            pages.append(buffer.getvalue())
    return pages
