import os
import stat
import time

import pytest

from renderer.cache import RENDERING_MODULES, RenderCache, inputs_fingerprint
from renderer.fileio import TEMPORARY_PREFIX
from renderer.layouts import Layout
from renderer.problems import InvalidInput
from tests.conftest import modules_after


def test_rendering_loads_only_the_fingerprinted_modules():
    loaded = modules_after("import renderer.render, renderer.engine")
    ours = {name.split(".", 1)[1] if "." in name else "__init__"
            for name in loaded if name.split(".")[0] == "renderer"}  # fmt: skip
    assert ours <= set(RENDERING_MODULES)


def test_the_fingerprint_follows_the_layout_files(tmp_path):
    layout = tmp_path / "layout"
    layout.mkdir()
    (layout / "dossier.html.j2").write_text("<p>one</p>")
    before = inputs_fingerprint(Layout.find(str(layout)))
    (layout / "dossier.css").write_text("p { color: black }")
    assert inputs_fingerprint(Layout.find(str(layout))) != before


def test_the_fingerprint_reads_nothing_outside_the_layout_folder(tmp_path):
    layout, outside = tmp_path / "layout", tmp_path / "outside.css"
    layout.mkdir()
    (layout / "dossier.html.j2").write_text("<p>one</p>")
    outside.write_text("p { color: black }")
    (layout / "linked.css").symlink_to(outside)
    (layout / "zero.bin").symlink_to("/dev/zero")
    os.mkfifo(layout / "pipe.css")
    before = inputs_fingerprint(Layout.find(str(layout)))
    outside.write_text("p { color: red }")
    assert inputs_fingerprint(Layout.find(str(layout))) == before


def test_a_damaged_entry_is_discarded(tmp_path):
    cache = RenderCache(tmp_path)
    cache.put("ab" * 32, b"%PDF-1.7 body")
    assert cache.get("ab" * 32) == b"%PDF-1.7 body"
    path = cache.path("ab" * 32)
    path.write_bytes(path.read_bytes()[:-3])
    assert cache.get("ab" * 32) is None
    assert not path.exists()


def test_an_entry_that_is_a_folder_is_a_miss_and_is_not_replaced(tmp_path):
    cache, key = RenderCache(tmp_path), "cd" * 32
    cache.path(key).mkdir(parents=True)
    assert cache.get(key) is None
    with pytest.raises(InvalidInput) as raised:
        cache.put(key, b"%PDF-1.7 body")
    assert [str(p) for p in raised.value.problems] == [
        f"{cache.path(key)}: not a regular file (a folder); refusing to replace it"
    ]
    assert cache.path(key).is_dir()


def test_an_entry_that_is_a_fifo_is_a_miss_at_once(tmp_path):
    cache, key = RenderCache(tmp_path), "ef" * 32
    cache.path(key).parent.mkdir()
    os.mkfifo(cache.path(key))
    started = time.monotonic()
    assert cache.get(key) is None
    assert time.monotonic() - started < 1
    assert stat.S_ISFIFO(cache.path(key).stat().st_mode)


def test_a_subfolder_that_is_a_file_is_reported_in_one_line(tmp_path):
    cache, key = RenderCache(tmp_path), "ab" * 32
    (tmp_path / "ab").write_bytes(b"someone's file")
    assert cache.get(key) is None
    with pytest.raises(InvalidInput) as raised:
        cache.put(key, b"%PDF-1.7 body")
    assert [str(p) for p in raised.value.problems] == [
        f"{cache.path(key)}: cannot write: not a directory"
    ]
    assert (tmp_path / "ab").read_bytes() == b"someone's file"


def test_only_dead_runs_temporaries_in_the_entry_folders_are_removed(tmp_path):
    stale = f"{TEMPORARY_PREFIX}999999999.0123abcd.x.cache.tmp"  # no pid is that high: dead
    for folder in ("ab", ".git", "notes", "ab/cd"):
        (tmp_path / folder).mkdir(parents=True)
    paths = [tmp_path / folder / stale for folder in ("ab", ".git", "notes", "ab/cd", ".")]
    paths.append(tmp_path / "ab" / ".x.cache.ab12cd34.tmp")
    for path in paths:
        path.write_bytes(b"x")
    RenderCache(tmp_path).remove_dead_temporaries()
    assert [path.exists() for path in paths] == [False, True, True, True, True, True]
