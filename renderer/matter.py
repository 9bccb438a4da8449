"""Matter: the compendium's own pages (cover, contents, index): what they print, their page
numbers, and laying them out on workers, through their own cache."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from .cache import RenderCache, cache_key
from .config import Config
from .context import PAPER_SIZES
from .layouts import Layout

if TYPE_CHECKING:
    from .records import Entry

# the compendium's own pages: each layout that binds a compendium has these
MATTER_TEMPLATES = (
    "matter.html.j2", "cover.html.j2", "contents.html.j2", "index.html.j2", "blank.html.j2",
    "compendium.css",
)  # fmt: skip
ENTRIES_PER_RUN = 120  # contents or index entries laid out together, in parallel with other runs


@dataclass(frozen=True)
class PagePlan:
    """Printed page numbers: dossiers count from 1; the front matter is numbered apart (i, ii)."""

    dossiers: dict[str, int]
    blanks: list[int] = field(default_factory=list)  # blank versos, when duplex
    index: int = 1  # first page of the index
    index_pages: int = 1

    @property
    def total(self) -> int:
        return self.index + self.index_pages - 1


def plan_pages(slugs: list[str], duplex: bool, index_pages: int = 1) -> PagePlan:
    """Dossiers from page 1; when duplex, each on a right-hand (odd) page."""
    page, dossiers, blanks = 1, {}, []
    for slug in slugs:
        if duplex and page % 2 == 0:
            blanks.append(page)
            page += 1
        dossiers[slug] = page
        page += 1
    return PagePlan(dossiers, blanks, page, index_pages)


@dataclass(frozen=True)
class Matter:
    """What the compendium's own pages print: picklable, so workers can lay them out."""

    config: Config
    date: str
    specimens: tuple[tuple[str, str, str], ...]  # slug, title, case number
    aliases: tuple[tuple[str, str, str], ...]  # alias, title, slug
    left_out: tuple[str, ...] = ()  # names of record files not bound, for the contents

    @classmethod
    def of(cls, catalog: Iterable[Entry], config: Config, left_out: Iterable[str] = ()) -> Matter:
        catalog = list(catalog)
        specimens = tuple((e.slug, e.record.title, e.record.case_number) for e in catalog)
        aliases = sorted(
            (
                (alias, e.record.title, e.slug)
                for e in catalog
                for alias in e.record.org_chart.aliases
            ),
            key=lambda row: (row[0].casefold(), row[1]),
        )
        date = _build_date(catalog, config)
        return cls(config, date, specimens, tuple(aliases), tuple(sorted(left_out)))

    def runs(self) -> list[tuple[str, int, int]]:
        """The layout jobs: (template, first entry, end) for the contents and the index."""
        runs = []
        for template, count in (("contents.html.j2", len(self.specimens)),
                                ("index.html.j2", len(self.aliases))):  # fmt: skip
            runs += [(template, start, min(start + ENTRIES_PER_RUN, count))
                     for start in range(0, count, ENTRIES_PER_RUN)]  # fmt: skip
        return runs

    def context(self, plan: PagePlan, template: str, start: int, stop: int) -> dict:
        entries = self.specimens if template == "contents.html.j2" else self.aliases
        return {
            "title": "Specimen Compendium",
            "paper": PAPER_SIZES[self.config.paper],
            "organisation": self.config.organisation,
            "classification": self.config.classification,
            "date": self.date,
            "specimen_count": len(self.specimens),
            "total_pages": plan.total,
            "index_page": plan.index,
            "first": start == 0,
            "last": stop == len(entries),
            "count": stop - start,  # blank pages, for the blank template
            "left_out": list(self.left_out),
            "specimens": [
                {"slug": slug, "title": title, "case_number": case, "page": plan.dossiers[slug]}
                for slug, title, case in self.specimens[start:stop]
            ],
            "aliases": [
                {"alias": alias, "title": title, "slug": slug, "page": plan.dossiers[slug]}
                for alias, title, slug in self.aliases[start:stop]
            ],
        }


def lay_out_run(matter: Matter, plan: PagePlan, run: tuple[str, int, int]) -> tuple[int, bytes]:
    """Runs in a worker: one run of the compendium's own pages, as (page count, PDF)."""
    from .render import engine_for

    engine = engine_for(Layout.find(matter.config.layout))
    html = engine.layout.render_html(matter.context(plan, *run), run[0])
    document = engine.layout_html(html)
    return len(document.pages), engine.write_document(document)


def _build_date(catalog: list[Entry], config: Config) -> str:
    if config.date:
        return config.date.isoformat()
    dates = [e.record.case.opened for e in catalog if e.record.case.opened]
    return max(dates).isoformat() if dates else "UNDATED"


@dataclass
class Parts:
    """The compendium's own pages, laid out: runs in order, blank versos, and their page counts."""

    cover: list[bytes]
    contents: list[bytes]
    index: list[bytes]
    blanks: bytes | None
    counts: dict[str, int]


def matter_pages(
    matter: Matter, slugs: list[str], duplex: bool, workers, cache: RenderCache, inputs: str
) -> tuple[PagePlan, Parts]:
    """The page plan and the compendium's own pages, from the cache or laid out in parallel.

    They depend on titles, case numbers and aliases, not on the dossiers' text, so editing a
    record's text does not lay them out again. The cover prints the total page count, so it is
    laid out last, once the index's length is known. `inputs` is the layout's fingerprint.
    """
    printed = {**asdict(matter), "config": matter.config.rendering()}
    key = cache_key("matter", inputs=inputs, matter=printed, duplex=duplex)
    cached = _cached(cache, key)
    if cached is not None:
        return cached
    runs = matter.runs()
    plan = plan_pages(slugs, duplex)
    laid_out = workers.map(lay_out_run, [(matter, plan, run) for run in runs])
    pdfs = {"contents.html.j2": [], "index.html.j2": []}
    counts = {"contents.html.j2": 0, "index.html.j2": 0}
    for (template, _, _), (count, pdf) in zip(runs, laid_out, strict=True):
        pdfs[template].append(pdf)
        counts[template] += count
    plan = plan_pages(slugs, duplex, counts["index.html.j2"])
    cover_pages, cover = workers.call(lay_out_run, matter, plan, ("cover.html.j2", 0, 0))
    blanks = None
    if duplex:  # one more than the versos, in case the front matter needs evening out
        run = ("blank.html.j2", 0, 1 + len(plan.blanks))
        blanks = workers.call(lay_out_run, matter, plan, run)[1]
    front = cover_pages + counts["contents.html.j2"]
    parts = Parts(
        [cover], pdfs["contents.html.j2"], pdfs["index.html.j2"], blanks, {"front": front}
    )
    _store(cache, key, plan, parts)
    return plan, parts


def _cached(cache: RenderCache, key: str) -> tuple[PagePlan, Parts] | None:
    raw = cache.get(key)
    if raw is None:
        return None
    stored = json.loads(raw)
    loaded = {}
    for name, keys in stored["parts"].items():
        loaded[name] = [cache.get(part_key) for part_key in keys]
        if any(data is None for data in loaded[name]):
            return None
    blanks = loaded["blanks"][0] if loaded["blanks"] else None
    parts = Parts(loaded["cover"], loaded["contents"], loaded["index"], blanks, stored["counts"])
    return PagePlan(**stored["plan"]), parts


def _store(cache: RenderCache, key: str, plan: PagePlan, parts: Parts) -> None:
    stored = {"cover": parts.cover, "contents": parts.contents, "index": parts.index,
              "blanks": [parts.blanks] if parts.blanks else []}  # fmt: skip
    keys = {}
    for name, pdfs in stored.items():
        keys[name] = [hashlib.sha256(pdf).hexdigest() for pdf in pdfs]
        for part_key, pdf in zip(keys[name], pdfs, strict=True):
            cache.put(part_key, pdf)
    document = {"plan": asdict(plan), "parts": keys, "counts": parts.counts}
    cache.put(key, json.dumps(document).encode())
