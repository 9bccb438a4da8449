"""Matter: the compendium's own pages (cover, contents, index): what they print, their page
numbers, and laying them out on workers, run by run, through their own cache."""

from __future__ import annotations

import hashlib
import marshal
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .cache import cache_key
from .config import Config
from .contract import BLANK, CONTENTS, COVER, PAPER_SIZES
from .contract import INDEX as INDEX_TEMPLATE
from .layouts import Layout
from .problems import InvalidInput, Problem
from .slots import INDEX_PAGE, PAGE_OF, TOTAL, Typeset

if TYPE_CHECKING:
    from .records import Entry

# the code a laid-out run depends on, besides the layout's
MATTER_MODULES = ("matter", "slots", "contract")
# Contents and index entries are laid out in runs, in parallel. A run ends after an entry whose
# key hashes to a multiple of RUN_SIZE (content-defined, as in rsync): adding or removing an
# entry changes only its own run, so only that run is laid out again. A run that reaches MAX_RUN
# without such an entry ends at its last entry whose hash is a multiple of BACKUP_SIZE (the
# "two divisors" of TTTD chunking), so that the cut stays content-defined and a change does not
# shift every cut after it.
RUN_SIZE, BACKUP_SIZE = 100, 25
MIN_RUN, MAX_RUN = RUN_SIZE // 4, 2 * RUN_SIZE


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
class Run:
    """One layout job of the compendium's own pages: a template and all that it prints (page
    numbers are slots, stamped at binding, so a run is laid out again only when its text
    changes)."""

    template: str
    context: dict

    def key(self, inputs: str) -> str:
        return cache_key("matter", code=MATTER_MODULES, inputs=inputs, run=self.context,
                         template=self.template)  # fmt: skip


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

    def contents_runs(self) -> list[Run]:
        runs = []
        for start, stop in content_defined_runs([slug for slug, _, _ in self.specimens]):
            first, last = start == 0, stop == len(self.specimens)
            specimens = [
                {"slug": slug, "title": title, "case_number": case}
                for slug, title, case in self.specimens[start:stop]
            ]
            context = {"first": first, "last": last, "specimens": specimens,
                       "left_out": list(self.left_out) if first else []}  # fmt: skip
            runs.append(Run(CONTENTS, self._page(context)))
        return runs

    def index_runs(self) -> list[Run]:
        runs = []
        for start, stop in content_defined_runs(["\0".join(row) for row in self.aliases]):
            aliases = [
                {"alias": alias, "title": title, "slug": slug}
                for alias, title, slug in self.aliases[start:stop]
            ]
            context = {"first": start == 0, "last": stop == len(self.aliases), "aliases": aliases}
            runs.append(Run(INDEX_TEMPLATE, self._page(context)))
        return runs

    def cover(self) -> Run:
        return Run(COVER, self._page({"date": self.date, "specimen_count": len(self.specimens)}))

    def blanks(self, count: int) -> Run:
        return Run(BLANK, self._page({"count": count}))

    def _page(self, context: dict) -> dict:
        """What every page of the compendium's own prints, besides its own part."""
        return {
            "title": "Specimen Compendium",
            "paper": PAPER_SIZES[self.config.paper],
            "organisation": self.config.organisation or "",
            "classification": self.config.classification,
            **context,
        }


def content_defined_runs(keys: list[str]) -> list[tuple[int, int]]:
    """(start, stop) of each run of entries, in order (one empty run when there are none)."""
    hashes = [int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") for key in keys]
    runs, start = [], 0
    while start < len(keys):
        stop = _run_end(hashes, start)
        runs.append((start, stop))
        start = stop
    return runs or [(0, 0)]


def _run_end(hashes: list[int], start: int) -> int:
    """A run ends after an entry whose hash is a multiple of RUN_SIZE, once it holds MIN_RUN
    entries; at MAX_RUN entries, after its last entry whose hash is a multiple of BACKUP_SIZE,
    or there; or with the last entry."""
    backup = None
    for position in range(start + MIN_RUN - 1, min(start + MAX_RUN, len(hashes))):
        if hashes[position] % RUN_SIZE == 0:
            return position + 1
        if hashes[position] % BACKUP_SIZE == 0:
            backup = position + 1
    if start + MAX_RUN >= len(hashes):
        return len(hashes)
    return backup or start + MAX_RUN


def lay_out_run(config: Config, run: Run) -> tuple[int, Typeset]:
    """Runs in a worker: one run of the compendium's own pages, as (page count, pages with their
    slots open)."""
    from .render import engine_for
    from .slots import cut_slots, open_slots

    layout = Layout.find(config.layout)
    engine = engine_for(layout)
    document = engine.layout_html(layout.render_html(run.context, run.template))
    opened = open_slots(document)
    where = str(layout.folder / run.template)
    for slot in opened:
        if slot.name not in (INDEX_PAGE, TOTAL) and not slot.name.startswith(PAGE_OF):
            message = f"slot {slot.name!r} has nothing to print on the compendium's own pages"
            raise InvalidInput([Problem(where, None, "layout", message)])
    pdf, slots = cut_slots(engine.write_document(document), opened, where)
    return len(document.pages), Typeset(pdf, slots)


def _build_date(catalog: list[Entry], config: Config) -> str:
    if config.date:
        return config.date.isoformat()
    dates = [e.record.case.opened for e in catalog if e.record.case.opened]
    return max(dates).isoformat() if dates else "UNDATED"


@dataclass
class Part:
    """A laid-out run: its cache key (the key of its prepared form too), pages and slots."""

    key: str
    pages: int
    typeset: Typeset


@dataclass
class Parts:
    """The compendium's own pages, laid out: runs in order, and the blank versos."""

    cover: Part
    contents: list[Part]
    index: list[Part]
    blanks: Part | None

    @property
    def front(self) -> int:
        """Pages before the first dossier (without the blank that may even them out)."""
        return self.cover.pages + sum(part.pages for part in self.contents)


class MatterPages:
    """Lays out the runs of the compendium's own pages that its cache does not hold.

    They depend on titles, case numbers, aliases and the count, never on the dossiers' text nor
    on page numbers (slots), so editing a record's text lays out none of them, and adding one
    lays out only the runs it is in, and the cover. Every run is sent to the workers when this
    is made, ahead of the dossiers; `pages()` waits for them.
    """

    def __init__(self, matter: Matter, slugs: list[str], duplex: bool, workers, cache, inputs):
        self.matter, self.workers, self.cache, self.inputs = matter, workers, cache, inputs
        self.slugs, self.duplex = slugs, duplex
        self.contents, self.index = matter.contents_runs(), matter.index_runs()
        self.cover = matter.cover()
        # one more blank than the versos, in case the front matter needs evening out
        versos = len(plan_pages(slugs, duplex).blanks)
        self.blanks = matter.blanks(1 + versos) if duplex else None
        runs = [*self.contents, *self.index, self.cover, *([self.blanks] if duplex else [])]
        keys = [run.key(inputs) for run in runs]
        self.futures = {  # an entry is only looked for here, as the dossiers' are
            key: workers.submit(lay_out_run, matter.config, run)
            for key, run in zip(keys, runs, strict=True)
            if not cache.has(key)
        }

    def pages(self) -> tuple[PagePlan, Parts]:
        contents = [self._part(run) for run in self.contents]
        index = [self._part(run) for run in self.index]
        plan = plan_pages(self.slugs, self.duplex, sum(part.pages for part in index))
        blanks = self._part(self.blanks) if self.blanks is not None else None
        return plan, Parts(self._part(self.cover), contents, index, blanks)

    def _part(self, run: Run) -> Part:
        """The run laid out: by its worker, from the cache, or (when the entry was unusable)
        laid out now."""
        key = run.key(self.inputs)
        future = self.futures.pop(key, None)
        laid = _loaded(self.cache.get(key)) if future is None else None
        if laid is None:
            laid = (
                future.result()
                if future
                else self.workers.call(lay_out_run, self.matter.config, run)
            )
            self.cache.put(key, marshal.dumps((laid[0], laid[1].dumps())))
        return Part(key, *laid)


def _loaded(data: bytes | None) -> tuple[int, Typeset] | None:
    try:
        pages, typeset = marshal.loads(data)
    except (EOFError, ValueError, TypeError):  # None too
        return None
    typeset = Typeset.loads(typeset)
    return (pages, typeset) if typeset is not None else None
