"""Build: dossier jobs, rendered once through the cache on workers, and written as files."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from .cache import RenderCache, cache_key, inputs_fingerprint
from .config import Config
from .fileio import replaceable, write_atomic
from .layouts import Layout
from .model import Record
from .problems import InvalidInput, Problem, at_files
from .records import Entry
from .slots import Typeset
from .workers import Workers

if TYPE_CHECKING:
    from .outbox import FileCopies

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class DossierJob:
    """Everything one dossier's page depends on; picklable, so it can go to any worker. Its
    page numbers are not: they are stamped in later (`slots.py`)."""

    record: Record
    config: Config
    variant: str | None = None
    source: Path | None = None

    def key(self, fingerprint: str) -> str:
        attached = None
        if self.variant == "pdf/a-3b" and self.source is not None:
            attached = hashlib.sha256(self.source.read_bytes()).hexdigest()
        return cache_key(
            "dossier",
            inputs=fingerprint,
            record=self.record.model_dump(mode="json"),
            config=self.config.rendering(),
            variant=self.variant,
            attached=attached,
        )


def warm_up() -> None:
    """Runs on a worker started before there is work for it: loads what rendering needs."""
    import pikepdf  # noqa: F401

    from . import engine  # noqa: F401  (and WeasyPrint with it)


def render_job(job: DossierJob) -> tuple[bytes | None, list[Problem]]:
    """Runs in a worker: the typeset dossier (`Typeset.dumps`), or the problems that stopped it."""
    from .render import render_dossier_report

    try:
        report = render_dossier_report(
            job.record, job.config, variant=job.variant, source=job.source
        )
        return report.typeset.dumps(), []
    except InvalidInput as error:
        return None, error.problems
    except Exception as error:  # a fault of this record's render must not stop the others
        message = f"cannot be rendered: {type(error).__name__}: {error}"
        return None, [Problem(job.record.slug, None, "", message)]


@dataclass(frozen=True)
class Run:
    """The cache key of every job, in order; the problems of jobs that failed; renders done."""

    keys: list[str]
    problems: list[Problem]
    rendered: int


@dataclass
class Builder:
    """Renders the dossiers that the cache does not hold yet, then serves each from the cache."""

    cache_dir: Path
    workers: int | None = None
    scheduler: str | None = None
    progress: Progress | None = None
    _session: Session | None = field(default=None, init=False, repr=False)

    @cached_property
    def cache(self) -> RenderCache:
        return RenderCache(self.cache_dir)

    def fingerprint(self, config: Config) -> str:
        return inputs_fingerprint(Layout.find(config.layout))

    def typeset(self, key: str) -> Typeset | None:
        """A dossier rendered before: its page with open slots, and its copy printed alone."""
        data = self.cache.get(key)
        return Typeset.loads(data) if data is not None else None

    @contextmanager
    def session(self):
        """Workers (started only when something must be rendered) shared by the steps inside."""
        if self._session is not None:  # nested: the outer block owns the workers
            yield self._session
            return
        self._session = Session(self, Workers(self.workers, self.scheduler))
        self._session.workers.warm(warm_up)
        try:
            yield self._session
        except BaseException:  # an error or a signal: queued jobs are dropped, workers ended
            self._session.workers.abort()
            raise
        else:
            self._session.workers.close()
        finally:
            self._session = None


@dataclass
class Session:
    """One command's dossier jobs, on its workers."""

    builder: Builder
    workers: Workers

    def start(self, jobs: list[DossierJob]) -> Pending:
        """Send the jobs the cache does not hold to the workers, and return at once (an entry
        is only looked for here; one that cannot be read is rendered when it is asked for)."""
        builder, fingerprints, keys = self.builder, {}, []
        for job in jobs:
            layout = job.config.layout
            if layout not in fingerprints:
                fingerprints[layout] = builder.fingerprint(job.config)
            keys.append(job.key(fingerprints[layout]))
        jobs_by_key = dict(zip(keys, jobs, strict=True))
        futures = {
            key: self.workers.submit(render_job, job)
            for key, job in jobs_by_key.items()
            if not builder.cache.has(key)
        }
        return Pending(self, keys, futures, jobs_by_key)

    def report(self, done: int, total: int) -> None:
        if self.builder.progress is not None:
            self.builder.progress(done, total)


class Pending:
    """Jobs under way: each result is taken from the cache, or from its worker once done.

    A compendium is assembled while its missing dossiers render: `typeset(key)` waits only for
    the one job it needs. `finish()` waits for the rest and reports what failed.
    """

    def __init__(self, session: Session, keys: list[str], futures: dict[str, object], jobs):
        self.session, self.keys, self.futures, self.jobs = session, keys, futures, jobs
        self.rendered, self.problems = len(futures), []
        self._done = len(keys) - len(futures)
        session.report(self._done, len(keys))

    @property
    def cache(self) -> RenderCache:
        return self.session.builder.cache

    def typeset(self, key: str) -> Typeset | None:
        """The job's dossier; None when it failed (its problems are kept for `finish`)."""
        future = self.futures.pop(key, None)
        if future is None:
            typeset = self.session.builder.typeset(key)
            if typeset is not None:
                return typeset
            # damaged, or removed since start(): rendered again now
            future = self.session.workers.submit(render_job, self.jobs[key])
            self.rendered += 1
            self._done -= 1  # counted as done when it was found
        data = self._store(key, *self._outcome(key, future))
        return Typeset.loads(data) if data is not None else None

    def finish(self) -> Run:
        owners = {future: key for key, future in self.futures.items()}
        self.futures.clear()
        for future in self.session.workers.completed(list(owners)):
            # popped, so that each result is freed once cached: memory stays flat however many
            key = owners.pop(future)
            self._store(key, *self._outcome(key, future))
        return Run(self.keys, self.problems, self.rendered)

    def _outcome(self, key: str, future) -> tuple[bytes | None, list[Problem]]:
        """The job's result; a worker that died (out of memory, killed) fails only its jobs."""
        try:
            return future.result()
        except Exception:
            message = "not rendered: its worker process stopped unexpectedly"
            return None, [Problem(self.jobs[key].record.slug, None, "", message)]

    def _store(self, key: str, data: bytes | None, problems: list[Problem]) -> bytes | None:
        self.problems += problems
        if data is not None:
            self.cache.put(key, data)
        self._done += 1
        self.session.report(self._done, len(self.keys))
        return data


def render_dossiers(
    entries: list[Entry],
    config: Config,
    out: Path,
    builder: Builder,
    *,
    variant: str | None = None,
    echo: Callable[..., None] = print,
    png_dpi: int | None = None,
    copies: FileCopies | None = None,
) -> list[Problem]:
    """Render each entry to <out>/<slug>.pdf (and .png at `png_dpi`), echoing each path written;
    returns the problems of those that failed, located at their files (or at the output that
    could not be written: an output that is no regular file is refused before rendering).
    With `copies`, each file is a traced copy for one recipient, <out>/<slug>--<name>.pdf."""
    ready, problems = [], []
    stem = "{slug}" if copies is None else f"{{slug}}--{copies.name}"
    for entry in entries:
        try:
            for path in _outputs(out, stem.format(slug=entry.slug), png_dpi):
                replaceable(path)
        except InvalidInput as error:
            problems += error.problems
        else:
            ready.append(entry)
    jobs = [DossierJob(e.record, config, variant=variant, source=e.path) for e in ready]
    with builder.session() as session:
        pending = session.start(jobs)
        for entry, key in zip(ready, pending.keys, strict=True):
            typeset = pending.typeset(key)  # written as soon as it is there
            if typeset is None:  # failed: its problems are in the run's report
                continue
            outputs = _outputs(out, stem.format(slug=entry.slug), png_dpi)
            try:
                pdf = typeset.single
                if copies is not None:
                    pdf = copies.make(entry.slug, pdf, outputs[0])
                _write_outputs(pdf, outputs, png_dpi, echo)
            except InvalidInput as error:  # this output cannot be written; the others still can
                problems += error.problems
        run = pending.finish()
    problems += at_files(run.problems, {entry.slug: str(entry.path) for entry in ready})
    return problems


def _outputs(out: Path, stem: str, png_dpi: int | None) -> list[Path]:
    pdf = out / f"{stem}.pdf"
    return [pdf] if png_dpi is None else [pdf, pdf.with_suffix(".png")]


def _write_outputs(pdf: bytes, paths: list[Path], png_dpi: int | None, echo) -> None:
    write_atomic(paths[0], pdf)
    echo(str(paths[0]))
    if png_dpi is not None:
        from .raster import png_pages

        (image,) = png_pages(pdf, png_dpi)
        write_atomic(paths[1], image)
        echo(str(paths[1]))
