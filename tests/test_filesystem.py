"""The commands meet real file systems: read-only and full mounts, FIFOs, devices, sockets,
links, other programs' files, killed runs and neighbours; one line each, nothing lost."""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from renderer.cli import main
from renderer.fileio import LOCK_NAME, TEMPORARY_PREFIX, atomic_writer
from renderer.problems import InvalidInput
from tests.conftest import ROOT, SEED_SLUG, small_catalog

AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mounts)")
QUIET = ("--jobs", "1", "--quiet")


def dossier(folder: Path, *args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """The CLI in its own process, run in `folder` as a user would."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DOSSIER_")}
    return subprocess.run(
        [*prefix, sys.executable, "-m", "renderer", *args], cwd=folder, capture_output=True,
        text=True, env={**environment, "PYTHONPATH": str(ROOT)}, timeout=120,
    )  # fmt: skip


def refused(done: subprocess.CompletedProcess, *lines: str) -> None:
    assert "Traceback" not in done.stderr, done.stderr
    assert (done.returncode, done.stderr.splitlines()[: len(lines)]) == (1, list(lines))


def state(path: Path) -> tuple:
    info = path.lstat()
    return info.st_mode, info.st_size, info.st_mtime_ns, path.read_bytes()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    small_catalog(tmp_path)
    return tmp_path


@pytest.fixture
def mount(folder: Path):
    """mount(name, size, read_only=False, fill=False): a tmpfs at folder/name, unmounted after.

    `prepare(path)` runs on it while still writable (a read-only one is remounted read-only).
    """
    points: list[Path] = []

    def make(name: str, size: str = "1m", *, read_only=False, fill=False, prepare=None) -> Path:
        point = folder / name
        point.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                       check=True)  # fmt: skip
        points.append(point)
        if prepare:
            prepare(point)
        if fill:
            with (
                (point / "filler").open("wb", buffering=0) as filler,
                pytest.raises(OSError) as full,
            ):
                while True:
                    filler.write(b"\0" * 4096)
            assert full.value.errno == 28
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)
        return point

    yield make
    for point in reversed(points):
        subprocess.run(["umount", "-l", str(point)], check=False)


# -- every command's failures end in one line ---------------------------------------------------
def test_every_command_reports_its_failures_in_one_line():
    unwrapped = [name for name, command in main.commands.items()
                 if not getattr(command.callback, "reports_failures", False)]  # fmt: skip
    assert unwrapped == []


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(monkeypatch):
    def broken():
        raise ZeroDivisionError("boom\nsecond line")

    monkeypatch.setattr("renderer.model.json_schema", broken)
    result = CliRunner().invoke(main, ["schema"])
    assert (result.exit_code, result.stderr) == (1, (
        "dossier: internal error: ZeroDivisionError: boom second line (please report this; "
        "set DOSSIER_DEBUG=1 for the traceback)\n"))  # fmt: skip
    result = CliRunner().invoke(main, ["schema"], env={"DOSSIER_DEBUG": "1"})
    assert isinstance(result.exception, ZeroDivisionError)


def test_an_os_error_nobody_expected_is_one_line_naming_its_path(monkeypatch):
    def denied():
        raise PermissionError(13, "Permission denied", "schema/record.schema.json")

    monkeypatch.setattr("renderer.model.json_schema", denied)
    result = CliRunner().invoke(main, ["schema"])
    assert (result.exit_code, result.stderr) == (
        1, "schema/record.schema.json: cannot access: permission denied\n")  # fmt: skip


def test_a_reader_that_has_gone_is_one_line(folder):
    with subprocess.Popen(
        [sys.executable, "-m", "renderer", "check"], cwd=folder, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    ) as process:  # fmt: skip
        process.stdout.close()  # as `dossier check | head -0` does
        stderr = process.stderr.read()
    assert process.returncode == 1
    assert stderr.splitlines()[-1] == "dossier: cannot continue: broken pipe"
    assert "Traceback" not in stderr and "Exception ignored" not in stderr


# -- only regular files are replaced -----------------------------------------------------------
def test_special_files_as_out_are_refused_before_anything_renders(folder):
    out = folder / "out"
    out.mkdir()
    os.mkfifo(out / "compendium.pdf")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(out / "socket.pdf"))
        cases = {
            "out/compendium.pdf": "a FIFO",
            "out/socket.pdf": "a socket",
            "/dev/null": "a character device",
            "out": "a folder",
        }
        for path, kind in cases.items():
            done = dossier(folder, "compendium", "--out", path, "--cache", "cache", *QUIET)
            refused(done, f"{path}: not a regular file ({kind}); refusing to replace it")
        done = dossier(folder, "build", "--out", "out", *QUIET)
        refused(done, "out/compendium.pdf: not a regular file (a FIFO); refusing to replace it")
        done = dossier(folder, "schema", "--output", "/dev/null")
        refused(done, "/dev/null: not a regular file (a character device); refusing to replace it")
        assert stat.S_ISSOCK((out / "socket.pdf").stat().st_mode)
    assert stat.S_ISFIFO((out / "compendium.pdf").stat().st_mode)
    assert stat.S_ISCHR(Path("/dev/null").stat().st_mode)
    assert not (folder / "cache").exists() and not (out / "dossiers").exists()  # nothing rendered


def test_a_link_as_out_has_its_target_written_and_other_files_are_left_alone(folder):
    """One render: through a link, beside another program's files and a killed run's."""
    out, kept = folder / "out", folder / "kept"
    (out / ".git").mkdir(parents=True)
    kept.mkdir()
    (kept / "real.pdf").write_bytes(b"an older dossier")
    link = out / f"{SEED_SLUG}.pdf"
    link.symlink_to("../kept/real.pdf")
    theirs = [out / ".thesis.docx.ab12cd34.tmp", out / ".git" / ".x.tmp",
              out / ".git" / f"{TEMPORARY_PREFIX}999999999.0123abcd.x.pdf.tmp"]  # fmt: skip
    for path in theirs:
        path.write_bytes(b"not ours")
    before = [state(path) for path in theirs]
    # a killed run's, writing through the link (its pid is above any pid_max: dead)
    stale = kept / f"{TEMPORARY_PREFIX}999999999.0123abcd.real.pdf.tmp"
    stale.write_bytes(b"half a dossier")
    done = dossier(folder, "render", SEED_SLUG, "--out", "out", "--cache", "out/.cache", *QUIET)
    assert (done.returncode, done.stdout) == (0, f"out/{SEED_SLUG}.pdf\n"), done.stderr
    assert link.is_symlink() and str(link.readlink()) == "../kept/real.pdf"
    assert (kept / "real.pdf").read_bytes().startswith(b"%PDF-")
    assert [state(path) for path in theirs] == before
    assert not stale.exists()
    assert sorted(p.name for p in kept.iterdir()) == ["real.pdf"]


def test_an_output_ending_in_a_slash_is_a_folder(folder):
    done = dossier(folder, "compendium", "--out", "bound/", "--cache", "cache", *QUIET)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("bound/compendium.pdf (")
    done = dossier(folder, "schema", "--output", "bound/")
    assert (done.returncode, done.stdout) == (0, "bound/record.schema.json\n"), done.stderr
    assert sorted(p.name for p in (folder / "bound").iterdir()) == [
        "compendium.pdf", "record.schema.json"
    ]  # fmt: skip
    refused(dossier(folder, "schema", "--output", "bound"),
            "bound: not a regular file (a folder); refusing to replace it")  # fmt: skip


def test_two_commands_sharing_an_out_folder_both_succeed(folder):
    commands = [
        [sys.executable, "-m", "renderer", "render", "--all", "--out", "out", "--cache", cache,
         *QUIET]
        for cache in ("cache-a", "cache-b")
    ]  # fmt: skip
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=environment) for command in commands]  # fmt: skip
    errors = [run.communicate(timeout=120)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], errors
    assert all("Traceback" not in stderr for stderr in errors)
    assert len(list((folder / "out").glob("*.pdf"))) == 4
    assert not list((folder / "out").glob(f"{TEMPORARY_PREFIX}*"))


# -- OS errors: one line, exit 1, nothing half-written -----------------------------------------
def test_paths_below_a_file_and_names_too_long(folder):
    (folder / "notes.txt").write_text("mine")
    long = "x" * 300
    refused(dossier(folder, "schema", "--output", "notes.txt/schema.json"),
            "notes.txt/schema.json: cannot write: not a directory")  # fmt: skip
    refused(dossier(folder, "schema", "--output", f"{long}.json"),
            f"{long}.json: cannot write: file name too long")  # fmt: skip
    refused(dossier(folder, "new", "Zed", "--records", "notes.txt/records"),
            "notes.txt/records/zed.yaml: cannot write: not a directory")  # fmt: skip
    refused(dossier(folder, "render", SEED_SLUG, "--cache", "notes.txt/cache", *QUIET),
            "notes.txt/cache: cannot create folder: not a directory")  # fmt: skip
    assert (folder / "notes.txt").read_text() == "mine"


def test_a_lock_or_cache_entry_that_is_a_folder(folder):
    (folder / "cache" / LOCK_NAME).mkdir(parents=True)
    refused(
        dossier(folder, "render", SEED_SLUG, "--cache", "cache", *QUIET),
        f"cache/{LOCK_NAME}: not a regular file (a folder); refusing to use it as the lock",
    )
    (folder / "cache" / LOCK_NAME).rmdir()
    assert dossier(folder, "render", SEED_SLUG, "--cache", "cache", *QUIET).returncode == 0
    entries = sorted((folder / "cache").glob("*/*.cache"))
    for entry in entries:  # parsed record and dossier alike
        entry.unlink()
        entry.mkdir()
    done = dossier(folder, "render", SEED_SLUG, "--cache", "cache", *QUIET)
    assert done.returncode == 1 and len(done.stderr.splitlines()) == 1, done.stderr
    assert re.fullmatch(r"cache/[0-9a-f]{2}/[0-9a-f]{64}\.cache: not a regular file \(a folder\); "
                        r"refusing to replace it\n", done.stderr)  # fmt: skip
    assert all(entry.is_dir() for entry in entries)


@AS_ROOT
def test_a_read_only_file_system(folder, mount):
    def with_a_dossier(point: Path) -> None:
        (point / f"{SEED_SLUG}.pdf").write_bytes(b"an older dossier")

    read_only = mount("ro", read_only=True, prepare=with_a_dossier)
    before = state(read_only / f"{SEED_SLUG}.pdf")
    refused(dossier(folder, "schema", "--output", "ro/schema.json"),
            "ro/schema.json: cannot write: read-only file system")  # fmt: skip
    refused(dossier(folder, "new", "Zed", "--records", "ro"),
            "ro/zed.yaml: cannot write: read-only file system")  # fmt: skip
    text = str(ROOT / "tests" / "fixtures" / "text" / "seed.txt")
    refused(dossier(folder, "import", text, "--records", "ro"),
            f"ro/{SEED_SLUG}.yaml: cannot write: read-only file system")  # fmt: skip
    refused(dossier(folder, "render", SEED_SLUG, "--cache", "ro/cache", *QUIET),
            "ro/cache: cannot create folder: read-only file system")  # fmt: skip
    refused(dossier(folder, "render", SEED_SLUG, "--out", "ro", "--cache", "cache", *QUIET),
            f"ro/{SEED_SLUG}.pdf: cannot write: read-only file system")  # fmt: skip
    assert state(read_only / f"{SEED_SLUG}.pdf") == before
    assert sorted(p.name for p in read_only.iterdir()) == [f"{SEED_SLUG}.pdf"]


@AS_ROOT
def test_a_full_disk(folder, mount):
    def with_earlier_files(point: Path) -> None:
        (point / "schema.json").write_text("an earlier schema")
        (point / f"{SEED_SLUG}.pdf").write_bytes(b"an older dossier")

    full = mount("full", "64k", fill=True, prepare=with_earlier_files)
    kept = {name: state(full / name) for name in ("schema.json", f"{SEED_SLUG}.pdf")}
    refused(dossier(folder, "schema", "--output", "full/schema.json"),
            "full/schema.json: cannot write: no space left on device")  # fmt: skip
    refused(dossier(folder, "render", SEED_SLUG, "--out", "full", "--cache", "cache", *QUIET),
            f"full/{SEED_SLUG}.pdf: cannot write: no space left on device")  # fmt: skip
    done = dossier(folder, "render", SEED_SLUG, "--cache", "full/cache", *QUIET)
    refused(done)
    assert done.stderr.startswith("full/cache/") and done.stderr.endswith(
        ".cache: cannot write: no space left on device\n")  # fmt: skip
    with pytest.raises(InvalidInput) as raised, atomic_writer(full / "schema.json") as stream:
        for _ in range(64):  # streamed, as the compendium is written
            stream.write(b"x" * 16384)
    assert [str(p) for p in raised.value.problems] == [
        f"{full}/schema.json: cannot write: no space left on device"
    ]
    assert {name: state(full / name) for name in kept} == kept
    leftovers = [p for p in full.rglob("*") if p.name.startswith(TEMPORARY_PREFIX)]
    assert leftovers == []


@AS_ROOT
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv")
def test_permission_denied(folder):
    """Root without the capability to override file permissions meets them as a user would."""
    (folder / "locked").mkdir(mode=0o555)
    (folder / "locked" / "schema.json").write_text("an earlier schema")
    (folder / "locked").chmod(0o555)
    as_owner = ("setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search")
    refused(dossier(folder, "schema", "--output", "locked/schema.json", prefix=as_owner),
            "locked/schema.json: cannot write: permission denied")  # fmt: skip
    refused(dossier(folder, "render", SEED_SLUG, "--cache", "locked/cache", *QUIET,
                    prefix=as_owner),
            "locked/cache: cannot create folder: permission denied")  # fmt: skip
    assert (folder / "locked" / "schema.json").read_text() == "an earlier schema"
    assert sorted(p.name for p in (folder / "locked").iterdir()) == ["schema.json"]
