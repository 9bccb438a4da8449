import hashlib
import shutil
from dataclasses import replace
from itertools import pairwise

import pytest

from renderer.cache import RenderCache
from renderer.config import Config
from renderer.layouts import Layout
from renderer.matter import (
    MAX_RUN,
    MIN_RUN,
    RUN_SIZE,
    Matter,
    MatterPages,
    content_defined_runs,
    lay_out_run,
)
from renderer.problems import InvalidInput
from renderer.slots import Typeset

KEYS = [f"specimen-{number:04d}" for number in range(2000)]


def hashed(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


# a catalog in which no entry ends a run of itself: every run is cut at its longest
UNCUT_KEYS = [key for key in (f"alias-{n:05d}" for n in range(3000)) if hashed(key) % RUN_SIZE]


def runs_of(keys: list[str]) -> set[tuple[str, ...]]:
    return {tuple(keys[start:stop]) for start, stop in content_defined_runs(keys)}


def test_runs_cover_every_entry_once_in_order_within_their_bounds():
    runs = content_defined_runs(KEYS)
    assert runs[0][0] == 0 and runs[-1][1] == len(KEYS)
    assert all(stop == start for (_, stop), (start, _) in pairwise(runs))
    assert all(MIN_RUN <= stop - start <= MAX_RUN for start, stop in runs[:-1])
    assert 10 <= len(runs) <= 40  # about a hundred entries each
    assert content_defined_runs([]) == [(0, 0)]


@pytest.mark.parametrize("position", [0, 1, 333, 1000, 1999, 2000])
def test_an_entry_added_or_removed_changes_only_the_runs_around_it(position):
    before = runs_of(KEYS)
    added = runs_of([*KEYS[:position], "aardvark-alignment-architect", *KEYS[position:]])
    assert len(added - before) <= 2 and len(before - added) <= 2
    removed = runs_of(KEYS[:position] + KEYS[position + 1 :])
    assert len(removed - before) <= 2 and len(before - removed) <= 2


@pytest.mark.parametrize("position", [0, 1, 500])
def test_runs_cut_at_their_longest_do_not_shift_every_cut_after_a_change(position):
    before = runs_of(UNCUT_KEYS)
    assert max(len(run) for run in before) <= MAX_RUN
    added = runs_of([*UNCUT_KEYS[:position], "aardvark", *UNCUT_KEYS[position:]])
    removed = runs_of(UNCUT_KEYS[:position] + UNCUT_KEYS[position + 1 :])
    assert len(added - before) <= 3 and len(removed - before) <= 3


class CountingWorkers:
    """Workers that lay out nothing: they count the runs they are given."""

    def __init__(self):
        self.laid_out = []

    def submit(self, function, config, run):
        self.laid_out.append(run.template)
        return self

    def call(self, function, config, run):
        return self.submit(function, config, run).result()

    def result(self):
        return 1, Typeset(b"%PDF-1.7", ())


def matter_of(count: int) -> Matter:
    specimens = tuple((f"s-{n:04d}", f"Specimen {n:04d}", f"OT-{n:04d}") for n in range(count))
    aliases = sorted(
        (f"Alias {n * 7 % count:04d}-{a}", title, slug)
        for n, (slug, title, _) in enumerate(specimens)
        for a in range(3)
    )
    return Matter(Config(), "2026-12-01", specimens, tuple(aliases))


def lay_out(matter: Matter, cache: RenderCache) -> list[str]:
    workers = CountingWorkers()
    slugs = [slug for slug, _, _ in matter.specimens]
    MatterPages(matter, slugs, False, workers, cache, inputs="layout").pages()
    return sorted(workers.laid_out)


def test_a_catalog_change_lays_out_only_the_runs_it_touches(tmp_path):
    cache, matter = RenderCache(tmp_path), matter_of(1000)
    first = lay_out(matter, cache)
    assert first.count("contents.html.j2") >= 5 and first.count("index.html.j2") >= 15
    assert lay_out(matter, cache) == []  # nothing changed: nothing is laid out

    new = ("aardvark", "Aardvark Alignment Architect", "OT-9999")
    aliases = [(f"Alias 9999-{a}", new[1], new[0]) for a in range(3)]
    added = replace(
        matter,
        specimens=(new, *matter.specimens),
        aliases=tuple(sorted([*matter.aliases, *aliases])),
    )
    laid_out = lay_out(added, cache)
    # its contents run, the index runs of its three aliases (here together), and the cover,
    # which prints the count; a run that splits in two counts twice
    assert laid_out.count("contents.html.j2") <= 2
    assert laid_out.count("index.html.j2") <= 2
    assert laid_out.count("cover.html.j2") == 1

    reordered = replace(matter, specimens=matter.specimens[::-1])
    assert "index.html.j2" not in lay_out(reordered, cache)  # the index does not follow order


def test_a_slot_the_compendium_pages_cannot_fill_is_the_layout_s_fault(tmp_path):
    layout = tmp_path / "layout"
    shutil.copytree(Layout.find("classified").folder, layout)
    contents = layout / "contents.html.j2"
    contents.write_text(
        contents.read_text().replace("<h2>Contents</h2>", '<h2>{{ slot("folio") }}</h2>')
    )
    matter = replace(matter_of(3), config=Config(layout=str(layout)))
    with pytest.raises(InvalidInput) as raised:
        lay_out_run(matter.config, matter.contents_runs()[0])
    [problem] = raised.value.problems
    assert str(problem) == (
        f"{contents}: layout: slot 'folio' has nothing to print on the compendium's own pages"
    )
