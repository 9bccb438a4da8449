"""Batches: one bad record does not stop the others, and a stopped build leaves no process."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pikepdf
import psutil
import pytest
import yaml
from click.testing import CliRunner

from renderer.cli import main
from tests.conftest import ROOT, SEED_SLUG, SEED_YAML, SMALL_CATALOG, small_catalog

BROKEN = "title: Broken\nsalary: [\n"  # YAML that does not parse
BROKEN_PROBLEM = "broken.yaml:3: while parsing a flow node, did not find expected node content"
TOO_LONG = "does not fit on one page even at the smallest legible type (6.5 pt)"
WORKER_DIED = ": not rendered: its worker process stopped unexpectedly"


def run(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def too_long_record(records: Path) -> Path:
    """A valid record with so much text that no type size fits it on one page."""
    data = yaml.safe_load(SEED_YAML.read_text(encoding="utf-8"))
    data["title"] = "Verbose Specimen"
    data["flight_risk"]["diagnosis"] = "A" * 5000
    path = records / "verbose-specimen.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def output_files(folder: Path) -> list[Path]:
    return sorted(
        path for path in folder.rglob("*") if path.is_file() and ".cache" not in path.parts
    )


def test_render_all_writes_every_good_dossier_and_lists_the_failures_at_the_end(tmp_path):
    records = small_catalog(tmp_path)
    (records / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    verbose = too_long_record(records)
    out = tmp_path / "dossiers"
    result = run("render", "--all", "--records", records, "--out", out, "--jobs", "1",
                 "--cache", tmp_path / "cache")  # fmt: skip
    assert result.exit_code == 1, result.output
    written = sorted(path.name for path in out.iterdir())
    assert written == sorted(f"{slug}.pdf" for slug in SMALL_CATALOG)
    assert result.stdout.splitlines() == [str(out / name) for name in written]
    failures = result.stderr.splitlines()
    assert failures[0] == f"{records}/{BROKEN_PROBLEM}"
    assert failures[1].startswith(f"{verbose}: {TOO_LONG}: about ")
    assert len(failures) == 2 and "Traceback" not in result.output


def test_render_by_slug_renders_the_good_ones_and_names_what_is_missing(tmp_path):
    records = small_catalog(tmp_path)
    (records / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    out = tmp_path / "dossiers"
    result = run("render", "sdet", "broken", "no-such-specimen", "--records", records,
                 "--out", out, "--jobs", "1", "--cache", tmp_path / "cache")  # fmt: skip
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [str(out / "sdet.pdf")]
    assert result.stderr.splitlines() == [
        f"{records}: no record 'no-such-specimen'",
        f"{records}/{BROKEN_PROBLEM}",
    ]


@pytest.fixture
def earlier(tmp_path) -> Path:
    """An output folder with a compendium from an earlier build."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "compendium.pdf").write_bytes(b"%PDF-1.7 an earlier compendium")
    return out


def test_a_failed_record_keeps_the_old_compendium_and_the_dossiers_are_written(tmp_path, earlier):
    records = small_catalog(tmp_path)
    (records / "broken.yaml").write_text(BROKEN, encoding="utf-8")
    before = (earlier / "compendium.pdf").stat()
    result = run("build", "--records", records, "--out", earlier, "--jobs", "1", "--quiet")
    assert result.exit_code == 1
    assert len(list((earlier / "dossiers").glob("*.pdf"))) == 4
    assert result.stderr.splitlines()[-2:] == [
        f"{records}/{BROKEN_PROBLEM}",
        f"{earlier}/compendium.pdf: not written: 1 record(s) with problems;"
        " --keep-going binds the others",
    ]
    after = (earlier / "compendium.pdf").stat()
    assert (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns, before.st_size)


def test_keep_going_binds_the_others_and_says_which_were_left_out(tmp_path, earlier):
    records = small_catalog(tmp_path)
    (records / "sdet.yaml").write_text(BROKEN, encoding="utf-8")  # the seed relates to it
    result = run("build", "--records", records, "--out", earlier, "--jobs", "1", "--keep-going")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"{records}/sdet.yaml:3: while parsing a flow node, did not find expected node content"
    )
    assert re.fullmatch(
        rf"{earlier}/compendium.pdf \(\d+ pages, \d+ dossier\(s\) rendered\)",
        result.stdout.splitlines()[-1],
    )
    pdf = (earlier / "compendium.pdf").read_bytes()
    texts = _texts(pdf)
    assert "Not bound: 1 record(s) with problems: sdet.yaml" in texts[1]
    assert not any("FILE RECORD · SDET" in text for text in texts)
    (seed_page,) = [
        n for n, text in enumerate(texts) if f"FILE RECORD · {SEED_SLUG.upper()}" in text
    ]
    with pikepdf.open(io.BytesIO(pdf)) as document:
        actions = [a.A for a in document.pages[seed_page].get("/Annots", []) if "/A" in a]
        uris = [str(action.URI) for action in actions if action.S == "/URI"]
        assert set(uris) == {"https://specimens.example.org/sdet"}  # left out: the web only
        targets = {str(action.D) for action in actions if action.S == "/GoTo"}
        assert targets == {"specimen/enterprise-architect",
                           "specimen/lead-backend-data-procurement-analyst"}  # fmt: skip


@pytest.mark.slow
def test_a_dossier_that_does_not_fit_the_compendium_is_left_out_with_keep_going(tmp_path):
    records = small_catalog(tmp_path)
    verbose = too_long_record(records)
    out = tmp_path / "compendium.pdf"
    arguments = ("compendium", "--records", records, "--out", out, "--jobs", "1",
                 "--cache", tmp_path / "cache")  # fmt: skip
    refused = run(*arguments)
    assert refused.exit_code == 1 and not out.exists()
    assert refused.stderr.splitlines()[-2].startswith(f"{verbose}: {TOO_LONG}: about ")
    assert refused.stderr.splitlines()[-1] == (
        f"{out}: not written: 1 record(s) with problems; --keep-going binds the others"
    )
    bound = run(*arguments, "--keep-going")
    assert bound.exit_code == 1
    assert bound.stderr.splitlines()[-1].startswith(f"{verbose}: {TOO_LONG}: about ")
    assert re.fullmatch(rf"{out} \(7 pages, \d+ dossier\(s\) rendered\)", bound.stdout.strip())
    assert (
        "Not bound: 1 record(s) with problems: verbose-specimen.yaml" in _texts(out.read_bytes())[1]
    )


def _texts(pdf: bytes) -> list[str]:
    from pypdf import PdfReader

    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


# -- stopping a build ---------------------------------------------------------------------------
def _session_processes(session: int) -> list[psutil.Process]:
    """Live processes of the session (zombies are dead: only their exit status is left)."""
    found = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == session and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except (psutil.NoSuchProcess, ProcessLookupError, PermissionError):
            continue
    return found


def _left_after_5_seconds(session: int) -> list[str]:
    """The command lines of the session's processes still alive 5 s from now (or fewer)."""
    deadline = time.monotonic() + 5
    while (left := _session_processes(session)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [" ".join(_cmdline(process)) for process in left]


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:  # gone since
        return [f"process {process.pid}"]


def _start(tmp_path: Path, command: str) -> tuple[subprocess.Popen, Path]:
    records, out = small_catalog(tmp_path), tmp_path / "out"
    target = ["--out", str(out)] if command == "build" else [
        "--out", str(out / "compendium.pdf"), "--cache", str(out / ".cache")]  # fmt: skip
    arguments = [sys.executable, "-m", "renderer", command, "--records", str(records),
                 *target, "--jobs", "2", "--quiet"]  # fmt: skip
    process = subprocess.Popen(
        arguments,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    return process, out


def _wait_for_busy_workers(process: subprocess.Popen) -> list[psutil.Process]:
    """The build's worker processes, once two of them have been working for a moment."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        children = psutil.Process(process.pid).children(recursive=True)
        workers = [child for child in children if _is_busy_worker(child)]
        if len(workers) >= 2:
            return children
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    raise AssertionError("the workers never started")


def _is_busy_worker(process: psutil.Process) -> bool:
    try:
        return "spawn_main" in " ".join(process.cmdline()) and process.cpu_times().user > 1.0
    except psutil.Error:  # gone, or a zombie
        return False


STOPS = {
    # signal, sent to the process group (as a terminal's Ctrl-C) or to the command only
    "SIGKILL": (signal.SIGKILL, False, -signal.SIGKILL),
    "SIGTERM": (signal.SIGTERM, False, 128 + signal.SIGTERM),
    "Ctrl-C": (signal.SIGINT, True, 128 + signal.SIGINT),
}


@pytest.mark.parametrize("command", ["build", "compendium"])
@pytest.mark.parametrize("stop", sorted(STOPS))
def test_a_stopped_build_leaves_no_process_and_no_half_written_file(tmp_path, command, stop):
    number, to_group, exit_code = STOPS[stop]
    process, out = _start(tmp_path, command)
    children = _wait_for_busy_workers(process)
    if to_group:
        os.killpg(process.pid, number)
    else:
        process.send_signal(number)
    assert _left_after_5_seconds(process.pid) == []
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    stdout, stderr = process.communicate(timeout=5)
    assert process.returncode == exit_code
    assert "Traceback" not in stderr
    if number != signal.SIGKILL:
        assert stderr.splitlines()[-1] == "interrupted", stderr
        assert "compendium.pdf" not in stdout
    for path in output_files(out):  # whatever was written is whole
        if path.suffix == ".pdf":
            with pikepdf.open(path):
                pass
        else:  # a killed process cannot remove its temporary files (the next run does)
            assert number == signal.SIGKILL, f"left behind: {path}"


def test_a_worker_that_dies_fails_only_its_records(tmp_path):
    process, out = _start(tmp_path, "build")
    children = _wait_for_busy_workers(process)
    victim = next(child for child in children if _is_busy_worker(child))
    victim.kill()  # as the out-of-memory killer would
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 1 and "Traceback" not in stderr
    lost = [line for line in stderr.splitlines() if line.endswith(WORKER_DIED)]
    assert lost and all(line.startswith(f"{tmp_path}/records/") for line in lost)
    assert stderr.splitlines()[-1].startswith(f"{out}/compendium.pdf: not written: ")
    assert len(stdout.splitlines()) == 4 - len(lost)  # the others were written
    for path in output_files(out):
        with pikepdf.open(path):
            pass
    assert _left_after_5_seconds(process.pid) == []


def test_after_a_worker_died_later_jobs_go_to_new_workers(tmp_path):
    from renderer.build import Builder

    builder = Builder(tmp_path / "cache", workers=2)
    with builder.session() as session:
        victim = session.workers.call(os.getpid)
        process = psutil.Process(victim)  # before the kill: the pool may reap it at once
        process.kill()
        process.wait(timeout=5)
        time.sleep(0.5)  # the pool learns of it and is broken from then on
        again = session.workers.call(os.getpid)
    assert again != victim and not psutil.pid_exists(again)


def test_an_entry_damaged_after_the_jobs_started_is_rendered_again_when_asked_for(tmp_path):
    from renderer.build import Builder, DossierJob
    from renderer.config import Config
    from renderer.records import load_record

    builder = Builder(tmp_path / "cache", workers=1)
    job = DossierJob(load_record(SEED_YAML).record, Config())
    with builder.session() as session:
        first = session.start([job])
        expected = first.typeset(first.keys[0]).single
        first.finish()
        again = session.start([job])  # the entry is there: nothing is sent to a worker
        assert again.rendered == 0
        entry = builder.cache.path(again.keys[0])
        entry.write_bytes(entry.read_bytes()[:-10])
        assert again.typeset(again.keys[0]).single == expected
        run = again.finish()
    assert (run.rendered, run.problems) == (1, [])
