"""Build: render jobs through the cache, in worker processes or on a Dask cluster."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from .cache import RenderCache, inputs_fingerprint, job_key
from .config import Config
from .context import Links
from .fileio import os_reason, replaceable, write_atomic
from .layouts import Layout
from .model import Record
from .problems import InvalidInput, Problem, at_files, errors_in
from .records import Entry, check_catalog, read_record, record_paths

Progress = Callable[[int, int], None]
STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SCHEDULER_TIMEOUT = 10  # seconds to reach a Dask scheduler
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies


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
        except BaseException:  # an error or a signal: queued jobs are dropped, workers ended
            self._session.abort()
            raise
        else:
            self._session.close()
        finally:
            self._session = None

    def run(self, jobs: list[DossierJob]) -> Run:
        with self.session() as session:
            return session.run(jobs)


class Session:
    """One build's executor: in this process, a pool of spawned processes, or a Dask client."""

    def __init__(self, builder: Builder):
        self.builder = builder
        self._executor = None
        self._others = set(multiprocessing.active_children())  # processes that are not its own

    def call(self, function, *args):
        """Run a picklable function on a worker (or here when there are none) and wait."""
        if self._executor_for(1) is None:
            return function(*args)
        return self._send(function, *args).result()

    def map(self, function, argument_lists: list[tuple]) -> list:
        """Run a picklable function over several argument lists in parallel; results in order."""
        if self._executor_for(len(argument_lists)) is None:
            return [function(*arguments) for arguments in argument_lists]
        futures = [self._send(function, *arguments) for arguments in argument_lists]
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
        slugs = {key: job.record.slug for key, job in missing.items()}
        return Pending(self, keys, self._submit(missing), slugs)

    def _report(self, done: int, total: int) -> None:
        if self.builder.progress is not None:
            self.builder.progress(done, total)

    def _submit(self, jobs: dict[str, DossierJob]) -> dict[str, object]:
        """A future (or, without workers, a deferred call) per job, by key."""
        if self._executor_for(len(jobs)) is None:
            return {key: _Deferred(render_job, job) for key, job in jobs.items()}
        return {key: self._send(render_job, job) for key, job in jobs.items()}

    def _send(self, function, *args):
        """Submit to the workers; when one of them died (out of memory, killed), the pool is
        broken for good: the jobs it held fail, and later ones go to a new pool."""
        with _signals_held():
            try:
                return self._executor.submit(function, *args)
            except BrokenProcessPool:
                self._executor.shutdown(wait=False)
                self._executor = _worker_pool(self.builder.workers or os.cpu_count())
                return self._executor.submit(function, *args)

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
                self._executor = _worker_pool(self.builder.workers or os.cpu_count())
        return self._executor

    def close(self) -> None:
        """Once every result is in: the workers finish and exit."""
        if self._executor is not None:
            if self.builder.scheduler:
                self._executor.close()
            else:
                self._executor.shutdown()

    def abort(self) -> None:
        """After an error or a signal: queued jobs are dropped and the workers end now, without
        finishing the renders under way."""
        if self._executor is None:
            return
        if self.builder.scheduler:
            self._executor.close()  # the cluster cancels this client's jobs
            return
        self._executor.shutdown(wait=False, cancel_futures=True)
        workers = [p for p in multiprocessing.active_children() if p not in self._others]
        for worker in workers:
            worker.kill()
        for worker in workers:
            worker.join()


def _worker_pool(workers: int) -> ProcessPoolExecutor:
    # spawn: WeasyPrint is imported in each worker, never inherited through a fork
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(os.getpid(),),
    )


@contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block ends. submit() may start a worker, and a signal
    that stopped it half-way through sending the worker its start-up data would leave the
    worker to die of the missing data, printing a traceback."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _start_worker(parent: int) -> None:
    """Runs first in each worker: it dies with the process that started it, however that ends
    (even by SIGKILL), and leaves Ctrl-C, which the terminal sends to every process of the
    group, to that process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPPING_SIGNALS)  # held while it was started
    if sys.platform == "linux":
        import ctypes

        # The kernel sends it when the thread that started the worker ends: workers are
        # started by submit(), from the thread that runs the build
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent was gone before the line above took effect
        os._exit(1)


class Stopped(BaseException):
    """SIGINT or SIGTERM arrived: the command unwinds (temporary files are removed, workers
    ended) and exits with 128 + the signal's number."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.exit_code = 128 + signum


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise Stopped in the main thread; while it unwinds, further ones are
    ignored, so that the clean-up is not cut short."""

    if threading.current_thread() is not threading.main_thread():  # signals go to the main one
        yield
        return
    stopping = []

    def stop(signum, _frame):
        for number in STOPPING_SIGNALS:
            signal.signal(number, signal.SIG_IGN)
        stopping.append(signum)
        raise Stopped(signum)

    previous = {number: signal.signal(number, stop) for number in STOPPING_SIGNALS}
    try:
        yield
    finally:
        if not stopping:  # once stopping, the process is on its way out: they stay ignored
            for number, handler in previous.items():
                signal.signal(number, handler)


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

    def __init__(self, session: Session, keys: list[str], futures: dict[str, object], slugs):
        self.session, self.keys, self.futures, self.slugs = session, keys, futures, slugs
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
        return self._store(key, *self._outcome(key, future))

    def finish(self) -> Run:
        owners = {future: key for key, future in self.futures.items()}
        self.futures.clear()
        for future in self.session._completed(list(owners)):
            # popped, so that each PDF is freed once cached: memory stays flat however many
            key = owners.pop(future)
            self._store(key, *self._outcome(key, future))
        return Run(self.keys, self.problems, self.rendered)

    def _outcome(self, key: str, future) -> tuple[bytes | None, list[Problem]]:
        """The job's result; a worker that died (out of memory, killed) fails only its jobs."""
        try:
            return future.result()
        except Exception:
            message = "not rendered: its worker process stopped unexpectedly"
            return None, [Problem(self.slugs[key], None, "", message)]

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
    try:
        return Client(address, timeout=SCHEDULER_TIMEOUT)
    except (OSError, ValueError) as error:  # unreachable, timed out, or not an address
        message = f"cannot use the Dask scheduler at {address}: {os_reason(error)}"
        raise InvalidInput([Problem("--scheduler", None, "", message)]) from None


@dataclass(frozen=True)
class Selection:
    """The records a batch command renders, and the record files it leaves out with their
    problems: one bad record does not stop the others."""

    entries: list[Entry]
    failures: list[Problem] = field(default_factory=list)  # why files (or targets) are left out
    warnings: list[Problem] = field(default_factory=list)
    left_out: list[Path] = field(default_factory=list)  # record files not rendered

    def without(self, problems: list[Problem]) -> Selection:
        """The records whose files these problems name are left out as well."""
        failing = {problem.path for problem in errors_in(problems)}
        dropped = [entry.path for entry in self.entries if str(entry.path) in failing]
        return replace(
            self,
            entries=[entry for entry in self.entries if entry.path not in dropped],
            failures=sorted([*self.failures, *problems], key=Problem.sort_key),
            left_out=sorted([*self.left_out, *dropped]),
        )


def select_catalog(records_dir: Path, *, strict: bool = False, store=None) -> Selection:
    """Every record of the folder that can be rendered; the others are left out, with their
    problems (with `strict`, warnings leave a record out too)."""
    entries, problems = check_catalog(records_dir, store)
    failures = problems if strict else errors_in(problems)
    failing = {problem.path for problem in failures}
    kept = [entry for entry in entries if str(entry.path) not in failing]
    rendered = {entry.path for entry in kept}
    files = record_paths(records_dir) if records_dir.is_dir() else []
    left_out = [path for path in files if path not in rendered]
    warnings = [problem for problem in problems if problem not in failures]
    return Selection(kept, failures, warnings, left_out)


def select_records(records_dir: Path, targets: tuple[str, ...], store=None) -> Selection:
    """Records named by slug (in the catalog) or by path; every record when none are named."""
    paths = [Path(target) for target in targets if target.endswith((".yaml", ".yml"))]
    slugs = [target for target in targets if not target.endswith((".yaml", ".yml"))]
    chosen = Selection([]) if targets else select_catalog(records_dir, store=store)
    for path in paths:
        entry, problems = read_record(path)
        if entry is None:
            chosen = replace(chosen, failures=chosen.failures + problems,
                             left_out=[*chosen.left_out, path])  # fmt: skip
        else:
            chosen = replace(chosen, entries=[*chosen.entries, entry])
    if slugs:
        chosen = _by_slug(chosen, select_catalog(records_dir, store=store), slugs, records_dir)
    return replace(chosen, failures=sorted(chosen.failures, key=Problem.sort_key))


def _by_slug(chosen: Selection, catalog: Selection, slugs: list[str], records_dir: Path):
    """The catalog's records of these slugs; for a slug whose file was left out, its problems."""
    by_slug = {entry.slug: entry for entry in catalog.entries}
    folder = [problem for problem in catalog.failures if problem.path == str(records_dir)]
    failures, left_out, entries = list(folder), [], []
    for slug in slugs:
        files = [path for path in catalog.left_out if path.stem == slug]
        if slug in by_slug:
            entries.append(by_slug[slug])
        elif files:
            failures += [p for p in catalog.failures if p.path in {str(f) for f in files}]
            left_out += files
        elif not folder:
            failures.append(Problem(str(records_dir), None, "", f"no record {slug!r}"))
    return replace(
        chosen,
        entries=chosen.entries + entries,
        failures=chosen.failures + failures,
        left_out=chosen.left_out + left_out,
    )


def select_entries(records_dir: Path, targets: tuple[str, ...], store=None) -> list[Entry]:
    """Like select_records, for commands that need every record named: raises InvalidInput
    listing the problems of those that cannot be rendered."""
    selection = select_records(records_dir, targets, store)
    if selection.failures:
        raise InvalidInput(selection.failures)
    return selection.entries


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
    """Render each entry to <out>/<slug>.pdf (and .png at `png_dpi`), echoing each path written;
    returns the problems of those that failed, located at their files (or at the output that
    could not be written: an output that is no regular file is refused before rendering)."""
    ready, problems = [], []
    for entry in entries:
        try:
            for path in _outputs(out, entry.slug, png_dpi):
                replaceable(path)
        except InvalidInput as error:
            problems += error.problems
        else:
            ready.append(entry)
    jobs = [DossierJob(e.record, config, variant=variant, source=e.path) for e in ready]
    run = builder.run(jobs)
    for entry, key in zip(ready, run.keys, strict=True):
        pdf = builder.cache.get(key)
        if pdf is None:
            continue
        try:
            _write_outputs(pdf, _outputs(out, entry.slug, png_dpi), png_dpi, echo)
        except InvalidInput as error:  # this output cannot be written; the others still can
            problems += error.problems
    problems += at_files(run.problems, {entry.slug: str(entry.path) for entry in ready})
    return problems


def _outputs(out: Path, slug: str, png_dpi: int | None) -> list[Path]:
    pdf = out / f"{slug}.pdf"
    return [pdf] if png_dpi is None else [pdf, pdf.with_suffix(".png")]


def _write_outputs(pdf: bytes, paths: list[Path], png_dpi: int | None, echo) -> None:
    write_atomic(paths[0], pdf)
    echo(str(paths[0]))
    if png_dpi is not None:
        from .raster import png_pages

        (image,) = png_pages(pdf, png_dpi)
        write_atomic(paths[1], image)
        echo(str(paths[1]))
