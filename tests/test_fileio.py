import os
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from renderer import fileio
from renderer.fileio import (
    LOCK_NAME,
    TEMPORARY_PREFIX,
    AlreadyExists,
    atomic_writer,
    exclusive,
    os_problem,
    write_atomic,
)
from renderer.problems import InvalidInput


def messages(error: InvalidInput) -> list[str]:
    return [str(problem) for problem in error.problems]


def dead_pid() -> int:
    """The process id of a process that has run and is gone."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(done.stdout)


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


def test_the_temporary_has_a_name_only_this_tool_makes_even_for_a_long_name(tmp_path):
    target = tmp_path / ("é" * 120 + ".pdf")  # 244 bytes: a temporary with the whole name won't do
    with atomic_writer(target) as stream:
        (temporary,) = tmp_path.iterdir()
        stream.write(b"data")
    name = temporary.name
    assert name.startswith(f"{TEMPORARY_PREFIX}{os.getpid()}.")
    assert fileio.TEMPORARY.fullmatch(name)
    assert len(os.fsencode(name)) <= 255
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    assert target.read_bytes() == b"data"


def test_a_replaced_file_keeps_its_mode_and_a_new_one_follows_the_umask(tmp_path):
    kept, new = tmp_path / "kept.pdf", tmp_path / "new.pdf"
    kept.write_bytes(b"old")
    kept.chmod(0o600)
    write_atomic(kept, b"x")
    write_atomic(new, b"x")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~mask


def test_only_temporaries_of_dead_dossier_processes_are_removed_and_never_below(tmp_path):
    out = tmp_path / "out"
    (out / ".git").mkdir(parents=True)
    (out / "sub").mkdir()
    gone, alive = dead_pid(), os.getppid()
    stale = out / f"{TEMPORARY_PREFIX}{gone}.0123abcd.sdet.pdf.tmp"
    kept = [
        out / ".thesis.docx.ab12cd34.tmp",  # another program's
        out / ".git" / ".x.tmp",
        out / ".git" / f"{TEMPORARY_PREFIX}{gone}.0123abcd.x.tmp",  # below: never looked at
        out / "sub" / f"{TEMPORARY_PREFIX}{gone}.0123abcd.y.pdf.tmp",
        out / f"{TEMPORARY_PREFIX}{alive}.0123abcd.sdet.pdf.tmp",  # a running process is writing it
        out / f"{TEMPORARY_PREFIX}{gone}.nothex00.sdet.pdf.tmp",  # not a name we make
        out / "keep.pdf",
    ]
    for path in [stale, *kept]:
        path.write_bytes(b"x")
    write_atomic(out / "sdet.pdf", b"new")
    assert not stale.exists()
    assert [path.read_bytes() for path in kept] == [b"x"] * len(kept)


def test_a_stale_folder_or_link_with_our_name_is_left_alone(tmp_path):
    gone = dead_pid()
    folder = tmp_path / f"{TEMPORARY_PREFIX}{gone}.0123abcd.d.tmp"
    link = tmp_path / f"{TEMPORARY_PREFIX}{gone}.0123abcd.l.tmp"
    folder.mkdir()
    link.symlink_to("elsewhere")
    write_atomic(tmp_path / "a.pdf", b"x")
    assert folder.is_dir() and link.is_symlink()


def test_writers_sharing_a_folder_never_touch_each_others_temporaries(tmp_path):
    """Many threads of this process and another process write into one folder at once."""
    script = (
        "import sys; from pathlib import Path; from renderer.fileio import write_atomic\n"
        "for i in range(200): write_atomic(Path(sys.argv[1]) / f'p{i % 5}.pdf', b'x' * 50000)\n"
    )
    other = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)])
    errors = []

    def write(n: int) -> None:
        try:
            for i in range(100):
                write_atomic(tmp_path / f"t{n}-{i % 5}.pdf", b"y" * 50000)
        except Exception as error:  # collected for the assertion
            errors.append(error)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert other.wait() == 0
    assert errors == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"p{i}.pdf" for i in range(5)] + [f"t{n}-{i}.pdf" for n in range(4) for i in range(5)]
    )


def test_a_symbolic_link_has_its_target_written_and_stays_a_link(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "a.pdf"
    target.write_bytes(b"old")
    link = tmp_path / "a.pdf"
    link.symlink_to("real/a.pdf")
    write_atomic(link, b"new")
    assert link.is_symlink() and str(link.readlink()) == "real/a.pdf"
    assert target.read_bytes() == b"new"
    dangling = tmp_path / "b.pdf"
    dangling.symlink_to("real/b.pdf")
    write_atomic(dangling, b"made")
    assert dangling.is_symlink() and (tmp_path / "real" / "b.pdf").read_bytes() == b"made"


def test_only_regular_files_are_replaced(tmp_path):
    fifo, folder, link = tmp_path / "fifo.pdf", tmp_path / "folder.pdf", tmp_path / "link.pdf"
    os.mkfifo(fifo)
    folder.mkdir()
    link.symlink_to(fifo)
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(tmp_path / "socket.pdf"))
        for path, kind in [(fifo, "a FIFO"), (folder, "a folder"), (link, "a FIFO"),
                           (tmp_path / "socket.pdf", "a socket"),
                           (Path("/dev/null"), "a character device")]:  # fmt: skip
            with pytest.raises(InvalidInput) as raised:
                write_atomic(path, b"x")
            assert messages(raised.value) == [
                f"{path}: not a regular file ({kind}); refusing to replace it"
            ]
        assert stat.S_ISSOCK((tmp_path / "socket.pdf").stat().st_mode)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and folder.is_dir() and link.is_symlink()
    assert stat.S_ISCHR(Path("/dev/null").stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "fifo.pdf", "folder.pdf", "link.pdf", "socket.pdf"
    ]  # fmt: skip


def test_os_errors_become_one_line_naming_the_path(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    cases = [
        (tmp_path / "notes.txt" / "a.pdf",
         f"{tmp_path}/notes.txt/a.pdf: cannot write: not a directory"),
        (tmp_path / "notes.txt" / "sub" / "a.pdf",
         f"{tmp_path}/notes.txt/sub/a.pdf: cannot write: not a directory"),
        (tmp_path / ("x" * 300), f"{tmp_path}/{'x' * 300}: cannot write: file name too long"),
        (tmp_path / ("y" * 300) / "a.pdf",
         f"{tmp_path}/{'y' * 300}/a.pdf: cannot write: file name too long"),
    ]  # fmt: skip
    for path, expected in cases:
        with pytest.raises(InvalidInput) as raised:
            write_atomic(path, b"x")
        assert messages(raised.value) == [expected]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_file_in_place_of_a_folder_is_named(tmp_path):
    (tmp_path / "out").write_text("mine")
    with pytest.raises(InvalidInput) as raised:
        fileio.make_folder(tmp_path / "out")
    assert messages(raised.value) == [f"{tmp_path}/out: cannot create folder: not a directory"]


def test_os_problem_uses_the_systems_words():
    error = OSError(28, "No space left on device", "out/a.pdf")
    assert str(os_problem(error, "write")) == "out/a.pdf: cannot write: no space left on device"
    assert (
        str(os_problem(error, "write", "b.pdf")) == "b.pdf: cannot write: no space left on device"
    )


def test_a_file_that_must_not_be_overwritten_is_not(tmp_path):
    target = tmp_path / "a.yaml"
    write_atomic(target, b"first", overwrite=False)
    with pytest.raises(AlreadyExists) as raised:
        write_atomic(target, b"second", overwrite=False)
    assert messages(raised.value) == [f"{target}: already exists; not overwritten"]
    assert target.read_bytes() == b"first"
    with pytest.raises(AlreadyExists), atomic_writer(tmp_path / "b.yaml", overwrite=False) as out:
        out.write(b"mine")
        (tmp_path / "b.yaml").write_bytes(b"theirs, made meanwhile")
    assert (tmp_path / "b.yaml").read_bytes() == b"theirs, made meanwhile"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.yaml", "b.yaml"]


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


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (os.mkdir, "a folder"),
        (os.mkfifo, "a FIFO"),
        (lambda p: p.symlink_to("x"), "a symbolic link"),
    ],
)
def test_a_lock_that_is_not_a_plain_file_is_refused(tmp_path, make, kind):
    lock = tmp_path / LOCK_NAME
    make(lock)
    with pytest.raises(InvalidInput) as raised, exclusive(tmp_path, say=print):
        pass
    assert messages(raised.value) == [
        f"{lock}: not a regular file ({kind}); refusing to use it as the lock"
    ]
