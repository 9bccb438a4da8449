"""Build: render jobs through the cache, in worker processes or on a Dask cluster."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from multiprocessing import get_context
from pathlib import Path

from .cache import RenderCache, inputs_fingerprint, job_key
from .config import Config
from .context import Links
from .fileio import write_atomic
from .layouts import Layout
from .model import Record
from .problems import InvalidInput, Problem, at_files
from .records import Entry, load_catalog, load_record

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class DossierJob:
    """Everything one dossier render depends on; picklable, so it can go to any worker."""

    record: Record
    config: Config
    links: Links = field(default_factory=Links)
    variant: str | None = None
    source: Path | None = None

    def key(self, fingerprint: str) -> str:
        attached = None
        if self.variant == "pdf/a-3b" and self.source is not None:
            attached = hashlib.sha256(self.source.read_bytes()).hexdigest()
        return job_key(
            kind="dossier",
            inputs=fingerprint,
            record=self.record.model_dump(mode="json"),
            config=self.config.rendering(),
            links=vars(self.links),
            variant=self.variant,
            attached=attached,
        )


def render_job(job: DossierJob) -> tuple[bytes | None, list[Problem]]:
    """Runs in a worker: the PDF, or the problems that stopped it."""
    from .render import render_dossier

    try:
        return render_dossier(
            job.record, job.config, variant=job.variant, source=job.source, links=job.links
        ), []
    except InvalidInput as error:
        return None, error.problems


@dataclass(frozen=True)
class Run:
    """The cache key of every job, in order; the problems of jobs that failed; renders done."""

    keys: list[str]
    problems: list[Problem]
    rendered: int


@dataclass
class Builder:
    """Renders jobs that the cache does not hold yet, then serves every result from the cache."""

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

    @contextmanager
    def session(self):
        """Workers (started only when something must be rendered) shared by the steps inside."""
        if self._session is not None:  # nested: the outer block owns the workers
            yield self._session
            return
        self._session = Session(self)
        try:
            yield self._session
        finally:
            self._session.close()
            self._session = None

    def run(self, jobs: list[DossierJob]) -> Run:
        with self.session() as session:
            return session.run(jobs)


class Session:
    """One build's executor: in this process, a pool of spawned processes, or a Dask client."""

    def __init__(self, builder: Builder):
        self.builder = builder
        self._executor = None

    def call(self, function, *args):
        """Run a picklable function on a worker (or here when there are none) and wait."""
        executor = self._executor_for(1)
        if executor is None:
            return function(*args)
        return executor.submit(function, *args).result()

    def map(self, function, argument_lists: list[tuple]) -> list:
        """Run a picklable function over several argument lists in parallel; results in order."""
        executor = self._executor_for(len(argument_lists))
        if executor is None:
            return [function(*arguments) for arguments in argument_lists]
        futures = [executor.submit(function, *arguments) for arguments in argument_lists]
        return [future.result() for future in futures]

    def run(self, jobs: list[DossierJob]) -> Run:
        """Render the jobs the cache does not hold; every result is then in the cache."""
        return self.start(jobs).finish()

    def start(self, jobs: list[DossierJob]) -> Pending:
        """Send the jobs the cache does not hold to the workers, and return at once."""
        builder, fingerprints, keys = self.builder, {}, []
        for job in jobs:
            layout = job.config.layout
            if layout not in fingerprints:
                fingerprints[layout] = builder.fingerprint(job.config)
            keys.append(job.key(fingerprints[layout]))
        missing = {
            key: job for key, job in zip(keys, jobs, strict=True) if builder.cache.get(key) is None
        }
        return Pending(self, keys, self._submit(missing))

    def _report(self, done: int, total: int) -> None:
        if self.builder.progress is not None:
            self.builder.progress(done, total)

    def _submit(self, jobs: dict[str, DossierJob]) -> dict[str, object]:
        """A future (or, without workers, a deferred call) per job, by key."""
        executor = self._executor_for(len(jobs))
        if executor is None:
            return {key: _Deferred(render_job, job) for key, job in jobs.items()}
        return {key: executor.submit(render_job, job) for key, job in jobs.items()}

    def _completed(self, futures):
        if self._executor is None:  # deferred calls, made one by one
            return iter(futures)
        if self.builder.scheduler:
            from dask.distributed import as_completed as dask_completed

            return dask_completed(futures)
        return as_completed(futures)

    def _executor_for(self, jobs: int):
        if jobs == 0:
            return None
        if self._executor is None:
            if self.builder.scheduler:
                self._executor = _dask_client(self.builder.scheduler)
            elif (self.builder.workers or os.cpu_count() or 1) > 1:
                # spawn: WeasyPrint is imported in each worker, never inherited through a fork
                workers = self.builder.workers or os.cpu_count()
                self._executor = ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
        return self._executor

    def close(self) -> None:
        if self._executor is not None:
            if self.builder.scheduler:
                self._executor.close()
            else:
                self._executor.shutdown()


class _Deferred:
    """A call made when its result is first asked for: a future for the no-worker case."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def result(self):
        return self.function(*self.args)


class Pending:
    """Jobs under way: each result is taken from the cache, or from its worker once done.

    A compendium is assembled while its missing dossiers render: `pdf(key)` waits only for the
    one job it needs. `finish()` waits for the rest and reports what failed.
    """

    def __init__(self, session: Session, keys: list[str], futures: dict[str, object]):
        self.session, self.keys, self.futures = session, keys, futures
        self.rendered, self.problems = len(futures), []
        self._done = len(keys) - len(futures)
        session._report(self._done, len(keys))

    @property
    def cache(self) -> RenderCache:
        return self.session.builder.cache

    def pdf(self, key: str) -> bytes | None:
        """The job's PDF; None when it failed (its problems are kept for `finish`)."""
        future = self.futures.pop(key, None)
        if future is None:
            return self.cache.get(key)
        return self._store(key, *future.result())

    def finish(self) -> Run:
        owners = {future: key for key, future in self.futures.items()}
        self.futures.clear()
        for future in self.session._completed(list(owners)):
            # popped, so that each PDF is freed once cached: memory stays flat however many
            self._store(owners.pop(future), *future.result())
        return Run(self.keys, self.problems, self.rendered)

    def _store(self, key: str, pdf: bytes | None, problems: list[Problem]) -> bytes | None:
        self.problems += problems
        if pdf is not None:
            self.cache.put(key, pdf)
        self._done += 1
        self.session._report(self._done, len(self.keys))
        return pdf


def _dask_client(address: str):
    try:
        from dask.distributed import Client
    except ImportError:
        message = "--scheduler needs Dask: pip install 'dossier[dask]'"
        raise InvalidInput([Problem(address, None, "scheduler", message)]) from None
    return Client(address)


def select_entries(records_dir: Path, targets: tuple[str, ...], store=None) -> list[Entry]:
    """Records named by slug (in the catalog) or by path; every record when none are named."""
    paths = [target for target in targets if target.endswith((".yaml", ".yml"))]
    slugs = [target for target in targets if target not in paths]
    entries = [load_record(path) for path in paths]
    if slugs or not targets:
        catalog = load_catalog(records_dir, store=store)
        missing = [slug for slug in slugs if slug not in catalog]
        if missing:
            problems = [Problem(str(records_dir), None, "", f"no record {s!r}") for s in missing]
            raise InvalidInput(problems)
        entries += [catalog[slug] for slug in slugs] if targets else list(catalog)
    return entries


def render_dossiers(
    entries: list[Entry],
    config: Config,
    out: Path,
    builder: Builder,
    *,
    variant: str | None = None,
    echo: Callable[..., None] = print,
    png_dpi: int | None = None,
) -> list[Problem]:
    """Render each entry to <out>/<slug>.pdf (and .png at `png_dpi`); returns the problems of
    those that failed."""
    jobs = [DossierJob(e.record, config, variant=variant, source=e.path) for e in entries]
    run = builder.run(jobs)
    for entry, key in zip(entries, run.keys, strict=True):
        pdf = builder.cache.get(key)
        if pdf is None:
            continue
        target = out / f"{entry.slug}.pdf"
        write_atomic(target, pdf)
        echo(str(target))
        if png_dpi is not None:
            from .raster import png_pages

            (image,) = png_pages(pdf, png_dpi)
            write_atomic(target.with_suffix(".png"), image)
            echo(str(target.with_suffix(".png")))
    for problem in at_files(run.problems, {entry.slug: str(entry.path) for entry in entries}):
        echo(str(problem), err=True)
    return run.problems
