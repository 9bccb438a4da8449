"""Compendium: planning the catalog in one PDF (cover, contents, dossiers, alias index), its
page order, page numbers, bookmarks and links; the pages themselves come from `build`,
`matter` and `assemble`."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .assemble import MATTER, SPECIMEN, Assembler, OutlineEntry, destination, page_destination
from .build import Builder, DossierJob, Pending
from .config import Config
from .context import INTERNAL_SCHEME, single_link
from .contract import MATTER_TEMPLATES
from .fileio import atomic_writer
from .layouts import FONTS_DIR, Layout
from .matter import Matter, MatterPages, PagePlan, Part, Parts
from .problems import InvalidInput, Problem, at_files
from .records import Catalog, Entry
from .selection import Selection
from .slots import FOLIO, INDEX_PAGE, PAGE_OF, TOTAL, Values

# the compendium's own pages, linked as matter:<name>; specimens are specimen:<slug>
COVER, CONTENTS, INDEX = (destination(MATTER, name) for name in ("cover", "contents", "index"))


@dataclass(frozen=True)
class CompendiumReport:
    path: Path
    pages: int
    rendered: int
    left_out: tuple[str, ...] = ()  # record files not bound
    problems: list[Problem] = field(default_factory=list)  # of dossiers that did not render


def build_compendium(
    catalog: Catalog | list[Entry],
    config: Config,
    out: Path,
    builder: Builder,
    *,
    duplex: bool = False,
    left_out: tuple[str, ...] = (),
    keep_going: bool = False,
) -> CompendiumReport:
    """Render (or reuse) every dossier with its compendium page numbers and assemble one PDF.

    As in Pelican's generators, every page number is settled before any dossier is rendered:
    dossiers are numbered from 1, so only the index's length must be known first (for the
    totals in the footers); each dossier is then laid out once, with its final numbers.

    `left_out` names record files that are not bound; the contents page lists them. A dossier
    that cannot be rendered stops the binding (RecordsFailed, nothing written); with
    `keep_going`, it is left out as well and the others are bound again.
    """
    Layout.find(config.layout).require(MATTER_TEMPLATES, "the compendium")
    entries, left_out, problems, rendered = list(catalog), tuple(left_out), [], 0
    with builder.session() as session:
        while True:
            pages, run = _bind(session, builder, entries, config, out, duplex, left_out)
            rendered += run.rendered
            if pages is not None:
                return CompendiumReport(out, pages, rendered, left_out, problems)
            failed = [e for e in entries if e.slug in {p.path for p in run.problems}]
            problems += at_files(run.problems, {e.slug: str(e.path) for e in entries})
            if not keep_going or not failed or len(failed) == len(entries):
                raise RecordsFailed(problems)
            left_out += tuple(entry.path.name for entry in failed)
            entries = [entry for entry in entries if entry not in failed]


class RecordsFailed(InvalidInput):
    """Dossiers of the catalog could not be rendered (their problems, at their files); any
    other InvalidInput (the layout, the scheduler) is not a record's and stops the command."""


class _RenderFailed(Exception):
    """A dossier could not be rendered: the file is abandoned, the problems are reported."""


def _bind(session, builder, entries: list[Entry], config, out, duplex, left_out):
    """One attempt: (page count, run) once written; (None, run) when a dossier failed, the
    file abandoned and every render finished, so that all the failures are known."""
    matter = Matter.of(entries, config, left_out)
    slugs = [slug for slug, _, _ in matter.specimens]
    inputs = builder.fingerprint(config)
    # the compendium's own pages first, as they are needed first; the file is assembled while
    # the missing dossiers render
    matter_pages = MatterPages(matter, slugs, duplex, session.workers, builder.cache, inputs)
    pending = session.start([DossierJob(entry.record, config) for entry in entries])
    try:
        plan, parts = matter_pages.pages()
        with atomic_writer(out) as stream:
            pages = _assemble(stream, plan, slugs, pending, parts, matter, duplex)
    except _RenderFailed:
        pages = None
    return pages, pending.finish()


@dataclass(frozen=True)
class Binding:
    """What became of the compendium of a batch: its report when written, else the one line
    saying why not; and the problems of every record left out."""

    report: CompendiumReport | None
    problems: list[Problem]
    refusal: str | None = None


def bind_selection(
    selection: Selection,
    config: Config,
    out: Path,
    builder: Builder,
    *,
    duplex: bool = False,
    keep_going: bool = False,
) -> Binding:
    """The compendium of a batch's records: not written when a record failed, unless
    `keep_going`; then without the records that failed (the old file stays as it was)."""
    failures = selection.failures
    if not selection.entries:
        return Binding(None, failures, f"{out}: not written: no record to bind")
    if failures and not keep_going:
        return Binding(None, failures, _refusal(out, failures))
    left_out = tuple(path.name for path in selection.left_out)
    try:
        report = build_compendium(selection.entries, config, out, builder, duplex=duplex,
                                  left_out=left_out, keep_going=keep_going)  # fmt: skip
    except RecordsFailed as error:
        problems = sorted([*failures, *error.problems], key=Problem.sort_key)
        return Binding(None, problems, _refusal(out, problems, keep_going))
    return Binding(report, sorted([*failures, *report.problems], key=Problem.sort_key))


def _refusal(out: Path, failures: list[Problem], keep_going: bool = False) -> str:
    count = len({problem.path for problem in failures})
    if keep_going:
        return f"{out}: not written: no record could be bound"
    return f"{out}: not written: {count} record(s) with problems; --keep-going binds the others"


def slot_values(plan: PagePlan, slug: str | None = None) -> Callable[[str], Values]:
    """What the slots of a bound page print: the page of a specimen that is bound, the index's
    page, the page count, and on dossier `slug`, its running number and the total."""

    def values(slot: str) -> Values:
        page = None
        if slot == FOLIO and slug is not None:
            page = plan.dossiers[slug]
        elif slot == INDEX_PAGE:
            page = plan.index
        elif slot == TOTAL:
            page = plan.total
        elif slot.startswith(PAGE_OF):
            page = plan.dossiers.get(slot.removeprefix(PAGE_OF))
        return {"page": page, "total": plan.total} if page is not None else None

    return values


def _assemble(stream, plan, slugs, pending: Pending, parts: Parts, matter, duplex) -> int:
    """Stream every page into the file: front matter, dossiers (and blanks), index."""
    blanks = iter(_single_pages(parts.blanks.typeset.pdf) if parts.blanks else ())
    front_pad = 1 if duplex and parts.front % 2 else 0  # page 1 on a right-hand page
    front = parts.front + front_pad
    total = front + plan.total
    layout = Layout.find(matter.config.layout)

    def web(uri: str) -> str | None:  # a related specimen that is not bound: its web address
        return single_link(uri, matter.config) if uri.startswith(INTERNAL_SCHEME) else None

    assembler = Assembler(stream, total, [FONTS_DIR, layout.folder], pending.cache, web)
    destinations = {destination(SPECIMEN, s): front + page for s, page in plan.dossiers.items()}
    destinations |= {COVER: 1, CONTENTS: 2, INDEX: front + plan.index}  # a one-page cover
    matter_values = slot_values(plan)

    def add_matter(part: Part) -> None:
        prepared = assembler.preparer.prepared(part.key, lambda: part.typeset)
        assembler.add_prepared(prepared, destinations, matter_values)

    for part in [parts.cover, *parts.contents]:
        add_matter(part)
    if front_pad:
        assembler.add(next(blanks), destinations)
    for slug, key in zip(slugs, pending.keys, strict=True):
        if plan.dossiers[slug] - 1 in plan.blanks:
            assembler.add(next(blanks), destinations)
        prepared = assembler.preparer.prepared(key, lambda key=key: pending.typeset(key))
        if prepared is None:
            raise _RenderFailed(slug)
        assembler.add_prepared(prepared, destinations, slot_values(plan, slug))
    for part in parts.index:
        add_matter(part)
    titles = {slug: title for slug, title, _ in matter.specimens}
    specimens = [OutlineEntry(titles[slug], destination(SPECIMEN, slug)) for slug in slugs]
    outline = [
        OutlineEntry("Cover", COVER),
        OutlineEntry("Contents", CONTENTS),
        OutlineEntry("Specimens", page_destination(front + 1), specimens),
        OutlineEntry("Index of aliases", INDEX),
    ]
    info = {
        "Title": "Specimen Compendium",
        **({"Author": matter.config.author} if matter.config.author else {}),
        "Subject": f"{len(slugs)} specimens, compiled {matter.date}",
        "Creator": "dossier",
    }
    labels = [(0, "/r", 1), (front, "/D", 1)]
    assembler.finish(outline, info, page_labels=labels, destinations=destinations)
    return total


def _single_pages(pdf: bytes) -> list[bytes]:
    """Each page of a PDF as a PDF of its own (the blank versos are laid out together)."""
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
