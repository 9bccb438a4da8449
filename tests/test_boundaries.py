"""Every situation of the corpus (tests/corpus/*/cases.toml) gets its exact answer, in time."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner

from renderer.cli import main
from tests.boundary import CORPUS, Case, fill, run_case, situation_cases
from tests.conftest import SEED_SLUG, small_catalog

CASES = situation_cases()


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_the_case_gets_its_answer(case: Case, tmp_path):
    if case.spec.get("root") and os.geteuid() != 0:
        pytest.skip("needs root (mounts)")
    outcome = run_case(case, tmp_path)
    output = outcome.stdout + outcome.stderr
    assert outcome.code is not None, f"still running after {case.timeout} s:\n{output}"
    assert "Traceback" not in output, output
    assert outcome.code == case.spec["exit"], output
    for stream in ("stdout", "stderr"):
        text = getattr(outcome, stream)
        if stream in case.spec:
            expected = fill(case.spec[stream], outcome.places).splitlines()
            assert text.splitlines()[: len(expected)] == expected, output
        if f"{stream}_has" in case.spec:
            assert fill(case.spec[f"{stream}_has"], outcome.places) in text, output
    assert not outcome.changed, f"changed: {outcome.changed}"
    assert outcome.answers == [request["status"] for request in case.spec.get("requests", [])]
    assert not outcome.left, f"processes left behind: {outcome.left}"


def test_every_category_has_cases():
    categories = {case.category for case in CASES}
    assert len(CASES) >= len(categories) > 0


# -- every command over every file of the corpus -----------------------------------------------
RUN_LIMIT = 60  # seconds one command may take on one corpus file


class _OverTime(BaseException):  # not an Exception: no handler of the command may swallow it
    pass


def corpus_files() -> list[Path]:
    """The corpus's inputs: record files, text records and layout folders."""
    files = sorted(CORPUS.glob("records/*.y*ml")) + sorted(CORPUS.glob("text/*.txt"))
    return files + sorted(path for path in CORPUS.glob("layouts/*") if path.is_dir())


def commands_for(path: Path, folder: Path) -> list[list[str]]:
    """Every command that can meet this input, each with its own output folder."""
    out, records = folder / "out", folder / "records"
    common = ["--jobs", "1", "--quiet"]
    if path.is_dir():  # a layout
        return [
            ["render", SEED_SLUG, "--layout", str(path), "--records", str(records), "--out",
             str(out / "d"), "--cache", str(out / "c"), *common],
            ["compendium", "--layout", str(path), "--records", str(records), "--out",
             str(out / "c.pdf"), "--cache", str(out / "c"), *common],
            ["mail", SEED_SLUG, "--to", "a@example.org", "--layout", str(path), "--records",
             str(records), "--eml-dir", str(out / "m"), "--cache", str(out / "c"), "--ledger",
             str(out / "ledger.jsonl"), *common],
        ]  # fmt: skip
    lone = folder / "lone"
    lone.mkdir()
    copy = lone / (path.stem + ".yaml")
    shutil.copyfile(path, copy)
    return [
        ["check", "--records", str(lone)],
        ["check", "--strict", "--records", str(lone)],
        ["render", str(copy), "--out", str(out / "d"), "--cache", str(out / "c"), *common],
        ["render", "--all", "--records", str(lone), "--out", str(out / "d"), "--cache",
         str(out / "c"), *common],
        ["compendium", "--records", str(lone), "--out", str(out / "c.pdf"), "--cache",
         str(out / "c"), *common],
        ["build", "--records", str(lone), "--out", str(out / "b"), *common],
        ["mail", str(copy), "--to", "a@example.org", "--eml-dir", str(out / "m"), "--cache",
         str(out / "c"), "--ledger", str(out / "ledger.jsonl"), *common],
        ["import", str(path), "--records", str(folder / "imported")],
    ]  # fmt: skip


@pytest.mark.slow
def test_every_command_over_every_corpus_file(tmp_path):
    """No traceback, no internal error and no run over its time limit, whatever the input."""
    failures = []

    def over_time(signum, frame):
        raise _OverTime

    previous = signal.signal(signal.SIGALRM, over_time)
    try:
        for number, path in enumerate(corpus_files()):
            folder = tmp_path / str(number)
            small_catalog(folder)
            for args in commands_for(path, folder):
                failure = _run_within_limit(args, over_time)
                if failure:
                    failures.append(f"{path.relative_to(CORPUS)}: dossier {args[0]}: {failure}")
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert not failures, "\n".join(failures)


def _run_within_limit(args: list[str], over_time) -> str | None:
    signal.alarm(RUN_LIMIT)
    try:
        result = CliRunner().invoke(main, args)
    except _OverTime:
        return f"still running after {RUN_LIMIT} s"
    finally:
        signal.alarm(0)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return f"traceback: {result.exception!r}"
    if "internal error" in result.output or "Traceback" in result.output:
        return result.output.strip().splitlines()[-1]
    if result.exit_code not in (0, 1, 2):
        return f"exit code {result.exit_code}"
    return None
