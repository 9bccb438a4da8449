"""Property-based: any input gives a valid record or a clean error, never an escaping exception."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from renderer.problems import InvalidInput
from renderer.records import read_record
from renderer.textimport import import_text
from tests.conftest import SEED_TEXT, SEED_YAML

SEED_LINES = SEED_TEXT.read_text(encoding="utf-8").splitlines()
YAML_LINES = SEED_YAML.read_text(encoding="utf-8").splitlines()
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def mutated(lines: list[str], data) -> str:
    """The lines with a few deleted, repeated, swapped or cut short."""
    lines = list(lines)
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(lines) - 1))
        action = data.draw(st.sampled_from(["delete", "repeat", "swap", "cut", "insert"]))
        if action == "delete" and len(lines) > 1:
            del lines[index]
        elif action == "repeat":
            lines.insert(index, lines[index])
        elif action == "swap":
            other = data.draw(st.integers(0, len(lines) - 1))
            lines[index], lines[other] = lines[other], lines[index]
        elif action == "cut":
            lines[index] = lines[index][: data.draw(st.integers(0, len(lines[index])))]
        elif action == "insert":
            lines.insert(index, data.draw(st.text(max_size=40)))
    return "\n".join(lines) + "\n"


@FUZZ
@given(st.binary(max_size=2000))
def test_any_bytes_give_a_record_or_located_problems(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("fuzz") / "record.yaml"
    path.write_bytes(raw)
    entry, problems = read_record(path)
    assert (entry is None) == bool(problems)
    assert all(problem.path == str(path) for problem in problems)


@FUZZ
@given(st.data())
def test_mangled_yaml_records_give_a_record_or_located_problems(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "record.yaml"
    path.write_text(mutated(YAML_LINES, data), encoding="utf-8")
    entry, problems = read_record(path)
    assert (entry is None) == any(problem.is_error for problem in problems)


@FUZZ
@given(st.data())
def test_mangled_text_records_import_or_fail_cleanly(data):
    text = mutated(SEED_LINES, data)
    try:
        import_text(text, "in.txt")
    except InvalidInput as error:
        assert error.problems and all(p.path == "in.txt" for p in error.problems)


@FUZZ
@given(st.text(max_size=3000))
def test_any_text_imports_or_fails_cleanly(text):
    try:
        import_text(text, "in.txt")
    except InvalidInput as error:
        assert error.problems


WORDS = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x17F, exclude_categories=["Cc"]),
    min_size=1,
    max_size=60,
).filter(str.strip)
PROSE = st.lists(WORDS, min_size=1, max_size=40).map(" ".join)


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_valid_record_renders_to_one_page_or_is_refused_as_too_long(data):
    import io

    import pikepdf
    import yaml

    from renderer.model import Record
    from renderer.render import render_dossier

    record = yaml.safe_load(SEED_YAML.read_text(encoding="utf-8"))
    record["flight_risk"]["diagnosis"] = data.draw(PROSE)
    record["habitat"] = data.draw(st.lists(PROSE, min_size=1, max_size=6))
    record["burn_ward"]["complaints"] = [
        {"quote": data.draw(PROSE), "source": data.draw(WORDS)}
        for _ in range(data.draw(st.integers(1, 5)))
    ]
    record["org_chart"]["aliases"] = data.draw(st.lists(WORDS, min_size=1, max_size=8))
    try:
        pdf = render_dossier(Record.model_validate(record))
    except InvalidInput as error:
        (problem,) = error.problems
        assert "does not fit on one page" in problem.message
        return
    with pikepdf.open(io.BytesIO(pdf)) as document:
        assert len(document.pages) == 1
