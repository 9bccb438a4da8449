from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml

from renderer.problems import InvalidInput
from renderer.records import dump_record
from renderer.textimport import import_file, import_text, split_glued, to_text
from tests.conftest import ROOT, SEED_SLUG, SEED_TEXT, SEED_YAML

FIXTURES = ROOT / "tests" / "fixtures" / "text"
OWN_FIXTURES = ["head-of-synergy-enablement", "vp-of-platform-strategy"]


def test_importing_the_seed_reproduces_the_committed_record():
    assert dump_record(import_file(SEED_TEXT)) == SEED_YAML.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ["seed", *OWN_FIXTURES])
def test_import_is_lossless(name):
    text = (FIXTURES / f"{name}.txt").read_text(encoding="utf-8")
    assert to_text(import_text(text, name)) == text


@pytest.mark.parametrize("name", OWN_FIXTURES)
def test_unseen_records_import_as_intended(name):
    expected = yaml.safe_load((FIXTURES / f"{name}.expected.yaml").read_text(encoding="utf-8"))
    record = import_file(FIXTURES / f"{name}.txt")
    assert record.model_dump(mode="json", exclude_none=True, exclude={"case"}) == expected


@pytest.mark.parametrize(
    ("glued", "aliases"),
    [
        (
            "MLOps Governance SpecialistAI Reliability EvangelistData Science Process Lead",
            [
                "MLOps Governance Specialist",
                "AI Reliability Evangelist",
                "Data Science Process Lead",
            ],
        ),
        ("Head of AIData Czar", ["Head of AI", "Data Czar"]),
        ("Chief DevSecOps OfficerSaaS Whisperer", ["Chief DevSecOps Officer", "SaaS Whisperer"]),
        ("Tech LeadScrum Master", ["Tech Lead", "Scrum Master"]),
        ("Lone Alias", ["Lone Alias"]),
    ],
)
def test_split_glued_aliases(glued, aliases):
    assert split_glued(glued) == aliases


def seed_with(old: str, new: str) -> str:
    text = SEED_TEXT.read_text(encoding="utf-8")
    assert old in text
    return text.replace(old, new, 1)


def import_problems(text: str) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        import_text(text, "in.txt")
    return [str(problem) for problem in caught.value.problems]


def line_of(text: str, fragment: str) -> int:
    return text[: text.index(fragment)].count("\n") + 1


SEED = SEED_TEXT.read_text(encoding="utf-8")


CASES = {
    "truncated": (
        SEED[: SEED.index("[09] DAY")],
        None,
        "[09] DAY-IN-THE-LIFE LOG: file ends before section [09] DAY-IN-THE-LIFE LOG",
    ),
    "out-of-order": (
        seed_with("[04] THE FLIGHT RISK", "[05] THE FLIGHT RISK"),
        "[05] THE FLIGHT RISK",
        "[04] THE FLIGHT RISK: expected section [04] THE FLIGHT RISK, found '[05] THE FLIGHT RISK'",
    ),
    "missing": (
        seed_with("[02] THE HABITAT (NATURAL RANGE)\n", ""),
        "[03] SALARY DELUSION",
        "[02] THE HABITAT (NATURAL RANGE): expected section [02] THE HABITAT (NATURAL RANGE),"
        " found '[03] SALARY DELUSION'",
    ),
    "twice": (
        SEED + "\n[11] RELATED SPECIMENS\n",
        None,
        "end of record: unexpected section '[11] RELATED SPECIMENS'",
    ),
    "flight-risk": (
        seed_with("FLIGHT RISK:85%HIGH RISK", "FLIGHT RISK: high"),
        "FLIGHT RISK: high",
        "[04] THE FLIGHT RISK: expected 'FLIGHT RISK:<percent>%<LEVEL>', found 'FLIGHT RISK: high'",
    ),
    "no-range": (
        seed_with("between $194,000 and $237,000", "between a lot and more"),
        "* Salary ranges",
        "[03] SALARY DELUSION: expected the salary range (two amounts) in the note",
    ),
    "record-id": (
        seed_with("FILE RECORD: STAFF-AI", "FILE RECORD: CHIEF-AI"),
        "FILE RECORD",
        "header: record id CHIEF-AI-ML-OBSERVABILITY-ADVOCATE does not match the title"
        " 'Staff AI/ML Observability Advocate' (expected STAFF-AI-ML-OBSERVABILITY-ADVOCATE)",
    ),
    "odd-metrics": (
        seed_with("Measures the frequency of updates to internal policy documents, indicating"
                  " activity in bureaucratic refinement rather than practical application.\n", ""),
        "[06] SIGNATURE",
        "[05] THE BULLSHIT METRICS: section ends before the description of metric \"A subjective"
        " metric evaluating how 'effective' the advocate is perceived to be by other teams, often"
        " inflated by 'synergy' and 'collaboration' theater.\"",
    ),
    "percent-range": (
        seed_with("FLIGHT RISK:85%", "FLIGHT RISK:185%"),
        "FLIGHT RISK:185",
        "flight_risk.percent: input should be less than or equal to 100 (got 185)",
    ),
}  # fmt: skip


@pytest.mark.parametrize(("text", "at", "expected"), CASES.values(), ids=CASES.keys())
def test_broken_text_names_the_line_and_the_section(text, at, expected):
    line = len(text.splitlines()) if at is None else line_of(text, at)
    assert import_problems(text) == [f"in.txt:{line}: {expected}"]


def test_windows_line_endings_and_bom_are_accepted(tmp_path: Path):
    path = tmp_path / "seed.txt"
    path.write_bytes(b"\xef\xbb\xbf" + SEED.replace("\n", "\r\n").encode())
    assert import_file(path) == import_text(SEED, "seed")


def refused(path) -> str:
    with pytest.raises(InvalidInput) as caught:
        import_file(path)
    return str(caught.value)


def test_unreadable_file_is_a_clean_error(tmp_path: Path):
    missing = tmp_path / "missing.txt"
    assert refused(missing) == f"{missing}: cannot read: no such file or directory"


def test_devices_and_links_to_them_are_refused_unread(tmp_path: Path):
    link = tmp_path / "zero.txt"
    link.symlink_to("/dev/zero")
    started = time.monotonic()
    assert refused(Path("/dev/zero")) == (
        "/dev/zero: not a regular file (a character device); imported texts must be regular files"
    )
    assert refused(link) == (
        f"{link}: not a regular file (a link to a character device); imported texts must be"
        " regular files"
    )
    assert time.monotonic() - started < 5


def test_a_fifo_is_refused_unread(tmp_path: Path):
    fifo = tmp_path / "record.txt"
    os.mkfifo(fifo)
    assert refused(fifo) == (
        f"{fifo}: not a regular file (a FIFO); imported texts must be regular files"
    )


def test_a_text_over_1_mb_is_refused_unread(tmp_path: Path):
    path = tmp_path / "huge.txt"
    with path.open("wb") as stream:
        stream.truncate(50 * 10**6)
    assert refused(path) == f"{path}: file is 50.0 MB; imported texts are at most 1 MB"


def test_a_text_that_is_not_utf8_names_its_line(tmp_path: Path):
    path = tmp_path / "latin-1.txt"
    path.write_bytes(SEED.encode().replace(b"Staff AI", b"Sta\xeff AI", 1))
    assert refused(path) == f"{path}:3: not UTF-8 text (byte 0xef); save the file as UTF-8"


def test_a_title_without_a_slug_takes_the_record_id():
    text = SEED.replace("\nStaff AI/ML Observability Advocate\n", "\n首席观测布道师\n", 1)
    record = import_text(text, "in.txt")
    assert (record.title, record.slug) == ("首席观测布道师", SEED_SLUG)
    assert to_text(record) == text


def test_a_record_id_that_does_not_match_a_spellable_title_is_refused():
    text = SEED.replace("\nStaff AI/ML Observability Advocate\n", "\nZoë Ångström\n", 1)
    assert import_problems(text) == [
        f"in.txt:1: header: record id {SEED_SLUG.upper()} does not match the title"
        " 'Zoë Ångström' (expected ZOE-ANGSTROM)"
    ]
