"""Compendium: the catalog in one PDF: cover, contents, dossiers, alias index, bookmarks, links."""

from __future__ import annotations

import functools
import hashlib
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .assemble import (
    MATTER,
    SPECIMEN,
    Assembler,
    OutlineEntry,
    Prepared,
    Preparer,
    destination,
    page_destination,
)
from .build import Builder, DossierJob, Pending, Selection, Session
from .cache import job_key
from .config import Config
from .context import Links
from .fileio import atomic_writer
from .layouts import FONTS_DIR, Layout
from .matter import MATTER_TEMPLATES, Matter, PagePlan, lay_out_run, plan_pages
from .problems import InvalidInput, Problem, at_files
from .records import Catalog, Entry

# the compendium's own pages, linked as matter:<name>; specimens are specimen:<slug>
COVER, CONTENTS, INDEX = (destination(MATTER, name) for name in ("cover", "contents", "index"))


@dataclass(frozen=True)
class CompendiumReport:
    path: Path
    pages: int
    rendered: int
    left_out: tuple[str, ...] = ()  # record files not bound
    problems: list[Problem] = field(default_factory=list)  # of dossiers that did not render


@dataclass
class Parts:
    """The compendium's own pages, laid out: runs in order, blank versos, and their page counts."""

    cover: list[bytes]
    contents: list[bytes]
    index: list[bytes]
    blanks: bytes | None
    counts: dict[str, int]


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
    plan, parts = _matter_pages(session, builder, matter, slugs, duplex)
    jobs = [DossierJob(e.record, config, dossier_links(e.record, plan)) for e in entries]
    pending = session.start(jobs)  # the file is assembled while the missing ones render
    try:
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


def dossier_links(record, plan: PagePlan) -> Links:
    """Only the pages this dossier prints: its own and its related specimens' (keeps jobs small)."""
    pages = {r.target: plan.dossiers[r.target] for r in record.related if r.target in plan.dossiers}
    return Links(pages, plan.dossiers[record.slug], plan.total)


def _matter_pages(session: Session, builder: Builder, matter: Matter, slugs, duplex: bool):
    """The page plan and the compendium's own pages, from the cache or laid out in parallel.

    They depend on titles, case numbers and aliases, not on the dossiers' text, so editing a
    record's text does not lay them out again. The cover prints the total page count, so it is
    laid out last, once the index's length is known.
    """
    printed = {**asdict(matter), "config": matter.config.rendering()}
    key = job_key(
        kind="matter", inputs=builder.fingerprint(matter.config), matter=printed, duplex=duplex
    )
    cached = _cached_matter(builder, key)
    if cached is not None:
        return cached
    runs = matter.runs()
    plan = plan_pages(slugs, duplex)
    laid_out = session.map(lay_out_run, [(matter, plan, run) for run in runs])
    pdfs = {"contents.html.j2": [], "index.html.j2": []}
    counts = {"contents.html.j2": 0, "index.html.j2": 0}
    for (template, _, _), (count, pdf) in zip(runs, laid_out, strict=True):
        pdfs[template].append(pdf)
        counts[template] += count
    plan = plan_pages(slugs, duplex, counts["index.html.j2"])
    cover_pages, cover = session.call(lay_out_run, matter, plan, ("cover.html.j2", 0, 0))
    blanks = None
    if duplex:  # one more than the versos, in case the front matter needs evening out
        run = ("blank.html.j2", 0, 1 + len(plan.blanks))
        blanks = session.call(lay_out_run, matter, plan, run)[1]
    front = cover_pages + counts["contents.html.j2"]
    parts = Parts(
        [cover], pdfs["contents.html.j2"], pdfs["index.html.j2"], blanks, {"front": front}
    )
    _store_matter(builder, key, plan, parts)
    return plan, parts


def _cached_matter(builder: Builder, key: str):
    raw = builder.cache.get(key)
    if raw is None:
        return None
    stored = json.loads(raw)
    loaded = {}
    for name, keys in stored["parts"].items():
        loaded[name] = [builder.cache.get(part_key) for part_key in keys]
        if any(data is None for data in loaded[name]):
            return None
    blanks = loaded["blanks"][0] if loaded["blanks"] else None
    parts = Parts(loaded["cover"], loaded["contents"], loaded["index"], blanks, stored["counts"])
    return PagePlan(**stored["plan"]), parts


def _store_matter(builder: Builder, key: str, plan: PagePlan, parts: Parts) -> None:
    stored = {"cover": parts.cover, "contents": parts.contents, "index": parts.index,
              "blanks": [parts.blanks] if parts.blanks else []}  # fmt: skip
    keys = {}
    for name, pdfs in stored.items():
        keys[name] = [hashlib.sha256(pdf).hexdigest() for pdf in pdfs]
        for part_key, pdf in zip(keys[name], pdfs, strict=True):
            builder.cache.put(part_key, pdf)
    document = {"plan": asdict(plan), "parts": keys, "counts": parts.counts}
    builder.cache.put(key, json.dumps(document).encode())


def _assemble(stream, plan, slugs, pending: Pending, parts: Parts, matter, duplex) -> int:
    """Stream every page into the file: front matter, dossiers (and blanks), index."""
    blanks = iter(_single_pages(parts.blanks) if parts.blanks else ())
    front_pad = 1 if duplex and parts.counts["front"] % 2 else 0  # page 1 on a right-hand page
    front = parts.counts["front"] + front_pad
    total = front + plan.total
    layout = Layout.find(matter.config.layout)
    assembler = Assembler(stream, total, [FONTS_DIR, layout.folder], pending.cache)
    destinations = {destination(SPECIMEN, s): front + page for s, page in plan.dossiers.items()}
    destinations |= {COVER: 1, CONTENTS: 2, INDEX: front + plan.index}  # a one-page cover
    for pdf in [*parts.cover, *parts.contents]:
        assembler.add(pdf, destinations)
    if front_pad:
        assembler.add(next(blanks), destinations)
    for slug, key in zip(slugs, pending.keys, strict=True):
        if plan.dossiers[slug] - 1 in plan.blanks:
            assembler.add(next(blanks), destinations)
        prepared = _prepared(pending, key, assembler.preparer, slug)
        assembler.add_prepared(prepared, destinations)
    for pdf in parts.index:
        assembler.add(pdf, destinations)
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
        "Author": matter.config.author,
        "Subject": f"{len(slugs)} specimens, compiled {matter.date}",
        "Creator": "dossier",
    }
    labels = [(0, "/r", 1), (front, "/D", 1)]
    assembler.finish(outline, info, page_labels=labels, destinations=destinations)
    return total


def _prepared(pending: Pending, key: str, preparer: Preparer, slug: str) -> Prepared:
    """A dossier read for assembly, from the cache when it was read before (reading the PDF is
    most of the work of a rebuild)."""
    prepared_key = job_key(kind="prepared", dossier=key, code=_assembly_code())
    kept = pending.cache.get(prepared_key)
    prepared = Prepared.loads(kept) if kept is not None else None
    if prepared is None:
        pdf = pending.pdf(key)
        if pdf is None:
            raise _RenderFailed(slug)
        prepared = preparer.prepare(pdf)
        pending.cache.put(prepared_key, prepared.dumps())
    return prepared


@functools.cache
def _assembly_code() -> str:
    folder = Path(__file__).parent
    code = b"".join((folder / name).read_bytes() for name in ("assemble.py", "fontmerge.py"))
    return hashlib.sha256(code).hexdigest()


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
