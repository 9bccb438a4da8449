import subprocess
import sys
import time

import pytest

from renderer.fileio import LOCK_NAME, atomic_writer, exclusive, write_atomic


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "a.pdf"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_writer(target) as stream:
        stream.write(b"half")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.pdf"]
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"


def test_a_second_writer_waits_for_the_first_and_says_for_whom(tmp_path):
    script = (
        "import sys, time; from pathlib import Path; from renderer.fileio import exclusive\n"
        "with exclusive(Path(sys.argv[1]), say=print):\n"
        "    print('held', flush=True); time.sleep(1.5)\n"
    )
    command = [sys.executable, "-c", script, str(tmp_path)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as holder:
        assert holder.stdout.readline() == "held\n"
        said, started = [], time.monotonic()
        with exclusive(tmp_path, say=said.append):
            waited = time.monotonic() - started
    assert said == [f"{tmp_path}: waiting for process {holder.pid} to finish"]
    assert waited > 0.5
    assert (tmp_path / LOCK_NAME).read_text() == ""


def test_leftovers_of_a_killed_writer_are_removed_under_the_lock(tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "out"
    (cache / "ab").mkdir(parents=True)
    out.mkdir()
    leftovers = [cache / "ab" / ".ab12.cache.k2j4_x9q.tmp", out / ".sdet.pdf.a1b2c3d4.tmp"]
    kept = [out / ".hidden.tmp", out / "sdet.pdf"]
    for path in leftovers + kept:
        path.write_bytes(b"x")
    with exclusive(cache, [out], say=print):
        pass
    assert [path.exists() for path in leftovers + kept] == [False, False, True, True]
