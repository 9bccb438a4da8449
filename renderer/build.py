"""Build: render jobs through the cache, in worker processes or on a Dask cluster."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
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
from .problems import InvalidInput, Problem
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
            config=self.config.model_dump(mode="json"),
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

    @cached_property
    def cache(self) -> RenderCache:
        return RenderCache(self.cache_dir)

    def fingerprint(self, config: Config) -> str:
        return inputs_fingerprint(Layout.find(config.layout))

    def run(self, jobs: list[DossierJob]) -> Run:
        """Render the jobs the cache does not hold; every result is then in the cache."""
        fingerprints: dict[str, str] = {}
        keys = []
        for job in jobs:
            layout = job.config.layout
            if layout not in fingerprints:
                fingerprints[layout] = self.fingerprint(job.config)
            keys.append(job.key(fingerprints[layout]))
        missing = {
            key: job for key, job in zip(keys, jobs, strict=True) if self.cache.get(key) is None
        }
        problems: list[Problem] = []
        done = len(jobs) - len(missing)
        self._report(done, len(jobs))
        for key, (pdf, found) in self._execute(missing):
            problems += found
            if pdf is not None:
                self.cache.put(key, pdf)
            done += 1
            self._report(done, len(jobs))
        return Run(keys, problems, len(missing))

    def _report(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(done, total)

    def _execute(self, jobs: dict[str, DossierJob]) -> Iterable[tuple[str, tuple]]:
        if not jobs:
            return
        if self.scheduler:
            yield from _on_dask(self.scheduler, jobs)
            return
        workers = min(self.workers or os.cpu_count() or 1, len(jobs))
        if workers <= 1:
            for key, job in jobs.items():
                yield key, render_job(job)
            return
        # spawn: WeasyPrint is imported in each worker, never inherited through a fork
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(render_job, job): key for key, job in jobs.items()}
            for future in as_completed(futures):
                yield futures[future], future.result()


def _on_dask(address: str, jobs: dict[str, DossierJob]):
    try:
        from dask.distributed import Client
        from dask.distributed import as_completed as dask_completed
    except ImportError:
        message = "--scheduler needs Dask: pip install 'dossier[dask]'"
        raise InvalidInput([Problem(address, None, "scheduler", message)]) from None
    with Client(address) as client:
        futures = {client.submit(render_job, job, pure=False): key for key, job in jobs.items()}
        for future in dask_completed(futures):
            yield futures[future], future.result()


def select_entries(records_dir: Path, targets: tuple[str, ...]) -> list[Entry]:
    """Records named by slug (in the catalog) or by path; every record when none are named."""
    paths = [target for target in targets if target.endswith((".yaml", ".yml"))]
    slugs = [target for target in targets if target not in paths]
    entries = [load_record(path) for path in paths]
    if slugs or not targets:
        catalog = load_catalog(records_dir)
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
) -> list[Problem]:
    """Render each entry to <out>/<slug>.pdf; returns the problems of those that failed."""
    jobs = [DossierJob(e.record, config, variant=variant, source=e.path) for e in entries]
    run = builder.run(jobs)
    for entry, key in zip(entries, run.keys, strict=True):
        pdf = builder.cache.get(key)
        if pdf is None:
            continue
        target = out / f"{entry.slug}.pdf"
        write_atomic(target, pdf)
        echo(str(target))
    for problem in run.problems:
        echo(f"{_source_of(problem, entries)}: {problem.message}", err=True)
    return run.problems


def _source_of(problem: Problem, entries: list[Entry]) -> str:
    by_slug = {entry.slug: str(entry.path) for entry in entries}
    return by_slug.get(problem.path, problem.path)
