"""Property-based: any input gives a valid record or a clean error, never an escaping exception."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from renderer.glyphs import covered
from renderer.layouts import DEFAULT_LAYOUT
from renderer.model import INVISIBLE
from renderer.problems import InvalidInput
from renderer.records import read_record, validate
from renderer.textimport import import_text
from renderer.yamlsource import YamlDocument
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


# Records generated through the model, hostile text included: whatever validation accepts
# must give a dossier (one page, or refused as too long), never an exception or a hang.
HOSTILE = st.sampled_from(
    [
        "<script>alert(1)</script>",
        "</div><div id=sheet>",
        "{low}",
        "{{",
        "}}",
        "{low:>9999}",
        "{low:x}",
        "{high!z}",
        "{{ config }}",
        "{% raw %}",
        "&amp; &#0; &lt;",
        "url(file:///etc/passwd)",
        "@page{size:1in}",
        "Zoë Ångström",
        "Ελληνικά",
        "Инженер",
        "首席执行官",
        "データ",
        "مهندس",
        "עברית",
        "🦄👩‍💻🏳️‍🌈",
        "e\u0301\u0301\u0301",
        "\u200b\u200d\u2060",
        "\ufeff",
        "\u00ad" * 20,
        "A" * 300,
        "https://example.org/" + "x" * 200,
        "9" * 60,
        "﷽",
        "ǅ",
        "ß" * 40,
        "—" * 30,
        "line\nbreak",
        "tab\there",
        "\u2028\u2029",
    ]
)
CHARACTERS = st.characters(
    blacklist_categories=["Cc", "Cs", "Co"],
    blacklist_characters="\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",
)


def texts(pieces) -> st.SearchStrategy[str]:
    return st.lists(pieces, min_size=1, max_size=6).map(" ".join).filter(str.strip)


TEXT = texts(st.one_of(HOSTILE, st.text(CHARACTERS, min_size=1, max_size=30)))
# Only what the bundled fonts print: other text is a warning of `check`, and WeasyPrint's
# warning about it fails any test.
PRINTABLE = sorted(
    character
    for character in covered(DEFAULT_LAYOUT)
    if not INVISIBLE.match(character) and character.strip()
)
PRINTABLE_TEXT = texts(
    st.one_of(
        HOSTILE.filter(lambda text: set(text) <= covered(DEFAULT_LAYOUT)),
        st.text(st.sampled_from(PRINTABLE), min_size=1, max_size=30),
    )
)


def items(strategy, low: int = 1, high: int = 8):
    return st.lists(strategy, min_size=low, max_size=high)


SLUGS = st.from_regex(r"[a-z0-9]{1,60}(-[a-z0-9]{1,30}){0,3}", fullmatch=True)


@st.composite
def slot(draw, text) -> dict:
    start = draw(st.integers(0, 23 * 60 + 58))
    end = draw(st.integers(start + 1, 23 * 60 + 59))
    clock = lambda minutes: f"{minutes // 60:02d}:{minutes % 60:02d}"  # noqa: E731
    return {"start": clock(start), "end": clock(end), "title": draw(text),
            "description": draw(text)}  # fmt: skip


@st.composite
def salary(draw, text) -> dict:
    low, average, high = sorted(draw(st.lists(st.integers(0, 10**12), min_size=3, max_size=3)))
    note = draw(st.lists(st.one_of(text, st.sampled_from(["{low}", "{high}", "{average}"]))))
    return {
        "currency": draw(st.sampled_from(["USD", "EUR", "GBP", "JPY", "CHF", "XXX"])),
        "average": average, "low": low, "high": high,
        "note": " ".join(note) or "between {low} and {high}", "verdict": draw(text),
    }  # fmt: skip


@st.composite
def records(draw, text=TEXT) -> dict:
    named = lambda: items(st.fixed_dictionaries({"name": text, "description": text}))  # noqa: E731
    record = {
        "title": draw(text),
        "question": draw(text),
        "case": draw(st.fixed_dictionaries({}, optional={
            "number": text, "classification": text, "opened": st.dates()})),
        "org_chart": {"note": draw(text), "aliases": draw(items(text))},
        "habitat": draw(items(text)),
        "salary": draw(salary(text)),
        "flight_risk": {"percent": draw(st.integers(0, 100)), "level": draw(text),
                        "diagnosis": draw(text)},
        "metrics": draw(named()),
        "weaponry": draw(named()),
        "encounter": {"condition": draw(text), "advice": draw(text)},
        "jd_autopsy": draw(items(st.fixed_dictionaries(
            {"illusion": text, "translation": text}, optional={"source": text}))),
        "day_log": draw(items(slot(text))),
        "burn_ward": {"intro": draw(text), "complaints": draw(items(
            st.fixed_dictionaries({"quote": text, "source": text})))},
        "related": draw(items(st.fixed_dictionaries(
            {"title": text, "match": st.integers(0, 100), "summary": text},
            optional={"slug": SLUGS},
        ))),
    }  # fmt: skip
    if draw(st.booleans()):
        record["slug"] = draw(SLUGS)
    return record


def accepted(data: dict):
    """The record, when validation (what `dossier check` runs) accepts it; else None."""
    record, problems = validate(YamlDocument(data), "generated.yaml")
    assert (record is None) == bool(problems)
    return record


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(records())
def test_whatever_validates_gives_a_dossier_page_html(data):
    from markupsafe import escape

    from renderer.config import Config
    from renderer.render import dossier_html

    record = accepted(data)
    if record is None:
        return
    for layout in ("classified", "memo"):
        html = dossier_html(record, Config(layout=layout))
        assert f"<title>{escape(record.title)} — " in html
        assert escape(record.salary.filled_note()) in html


@pytest.mark.slow
@settings(max_examples=10, deadline=timedelta(seconds=30), suppress_health_check=list(HealthCheck))
@given(records(PRINTABLE_TEXT))
def test_whatever_validates_renders_one_page_or_is_refused_as_too_long(data):
    record = accepted(data)
    if record is not None:
        assert_one_page_or_too_long(record)


def assert_one_page_or_too_long(record) -> None:
    import io

    import pikepdf

    from renderer.render import render_dossier

    try:
        pdf = render_dossier(record)
    except InvalidInput as error:
        (problem,) = error.problems
        assert "does not fit on one page" in problem.message
        return
    with pikepdf.open(io.BytesIO(pdf)) as document:
        assert len(document.pages) == 1


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
    import yaml

    from renderer.model import Record

    record = yaml.safe_load(SEED_YAML.read_text(encoding="utf-8"))
    record["flight_risk"]["diagnosis"] = data.draw(PROSE)
    record["habitat"] = data.draw(st.lists(PROSE, min_size=1, max_size=6))
    record["burn_ward"]["complaints"] = [
        {"quote": data.draw(PROSE), "source": data.draw(WORDS)}
        for _ in range(data.draw(st.integers(1, 5)))
    ]
    record["org_chart"]["aliases"] = data.draw(st.lists(WORDS, min_size=1, max_size=8))
    assert_one_page_or_too_long(Record.model_validate(record))
