"""Workers: run picklable calls in worker processes or on a Dask cluster; they know no dossier.

Worker processes are spawned (WeasyPrint is imported in each, never inherited through a fork),
die with the process that started them, even when it is killed, and leave Ctrl-C to it. SIGINT
and SIGTERM become `Stopped` in the main process (`stop_on_signals`), so that a command unwinds
with its temporary files removed and its workers ended.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager

from .fileio import os_reason
from .problems import InvalidInput, Problem

STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SCHEDULER_TIMEOUT = 10  # seconds to reach a Dask scheduler
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies


class Workers:
    """One command's executor: none (calls run here, when asked for their result), a pool of
    spawned processes, or a Dask client. It is started only when there is work for it."""

    def __init__(self, count: int | None = None, scheduler: str | None = None):
        self.count = count or os.cpu_count() or 1
        self.scheduler = scheduler
        self._executor = None
        self._others = set(multiprocessing.active_children())  # processes that are not its own
        self._used = False  # whether a call other than warm()'s was made

    def call(self, function, *args):
        """Run a picklable function on a worker (or here when there are none) and wait."""
        return self.submit(function, *args).result()

    def map(self, function, argument_lists: list[tuple]) -> list:
        """Run a picklable function over several argument lists in parallel; results in order."""
        futures = [self.submit(function, *arguments) for arguments in argument_lists]
        return [future.result() for future in futures]

    def warm(self, function) -> None:
        """Start a local worker now, running `function` (imports, say), so that the first
        call does not wait for a worker to start; without a local pool, nothing. If no call
        follows, `close` ends that worker at once."""
        if self.scheduler is None and self.count > 1:
            self._submit(function)

    def submit(self, function, *args):
        """A future of the call; without workers (one core), a deferred call made when its
        result is asked for. When a worker died (out of memory, killed),
        the pool is broken for good: the calls it held fail, and later ones go to a new pool."""
        self._used = True
        return self._submit(function, *args)

    def _submit(self, function, *args):
        executor = self._executor_for()
        if executor is None:
            return _Deferred(function, *args)
        with _signals_held():
            try:
                return executor.submit(function, *args)
            except BrokenProcessPool:
                executor.shutdown(wait=False)
                self._executor = _worker_pool(self.count)
                return self._executor.submit(function, *args)

    def completed(self, futures: Iterable) -> Iterator:
        """The futures as they complete (deferred calls in order)."""
        if self._executor is None:  # deferred calls, made one by one
            return iter(futures)
        if self.scheduler:
            from dask.distributed import as_completed as dask_completed

            return dask_completed(futures)
        return as_completed(futures)

    def _executor_for(self):
        if self._executor is None:
            if self.scheduler:
                self._executor = _dask_client(self.scheduler)
            elif self.count > 1:
                self._executor = _worker_pool(self.count)
        return self._executor

    def close(self) -> None:
        """Once every result is in: the workers finish and exit (a worker only warmed is
        ended without waiting)."""
        if not self._used:
            self.abort()
        elif self._executor is not None:
            if self.scheduler:
                self._executor.close()
            else:
                self._executor.shutdown()

    def abort(self) -> None:
        """After an error or a signal: queued calls are dropped and the workers end now,
        without finishing the calls under way."""
        if self._executor is None:
            return
        if self.scheduler:
            self._executor.close()  # the cluster cancels this client's jobs
            return
        workers = [p for p in multiprocessing.active_children() if p not in self._others]
        for worker in workers:
            worker.kill()
        for worker in workers:
            worker.join()
        # With its workers gone the pool's own thread ends; waiting for it keeps it from closing
        # its wake-up pipe while the interpreter's exit writes to it (Python 3.11 then prints a
        # traceback, "Bad file descriptor")
        self._executor.shutdown(wait=True, cancel_futures=True)


class _Deferred:
    """A call made when its result is first asked for: a future for the no-worker case."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def result(self):
        return self.function(*self.args)


def _worker_pool(workers: int) -> ProcessPoolExecutor:
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
