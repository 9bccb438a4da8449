import multiprocessing
import time

from renderer.workers import Workers


def slow_start() -> None:
    time.sleep(30)


def square(number: int) -> int:
    return number * number


def test_a_worker_only_warmed_is_ended_at_once_when_no_call_came():
    before = set(multiprocessing.active_children())
    workers = Workers(count=2)
    workers.warm(slow_start)
    assert len(set(multiprocessing.active_children()) - before) == 1
    started = time.monotonic()
    workers.close()
    assert time.monotonic() - started < 5  # not the 30 s the warm-up would take
    assert set(multiprocessing.active_children()) - before == set()


def test_calls_after_a_warm_up_run_and_the_workers_end():
    before = set(multiprocessing.active_children())
    workers = Workers(count=2)
    workers.warm(int)
    assert workers.map(square, [(2,), (3,)]) == [4, 9]
    workers.close()
    assert set(multiprocessing.active_children()) - before == set()


def test_without_a_pool_warming_starts_nothing():
    before = set(multiprocessing.active_children())
    workers = Workers(count=1)
    workers.warm(slow_start)
    assert set(multiprocessing.active_children()) == before
    assert workers.call(square, 4) == 16
    workers.close()
