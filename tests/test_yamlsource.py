from __future__ import annotations

import datetime as dt

import pytest

from renderer.yamlsource import YamlProblem, decode, parse


def problem(text: str) -> tuple[int | None, str]:
    with pytest.raises(YamlProblem) as caught:
        parse(text)
    return caught.value.line, caught.value.message


def test_lines_are_kept_for_keys_and_items():
    document = parse("a: 1\nb:\n  - x\n  - y: 2\n")
    assert document.data == {"a": 1, "b": ["x", {"y": 2}]}
    assert document.line_of(("b", 1, "y")) == 4
    assert document.line_of(("b", 1, "missing")) == 4


def test_clock_times_and_yes_no_stay_text():
    assert parse("a: 10:00\nb: 09:00\nc: no\nd: on\n").data == {
        "a": "10:00",
        "b": "09:00",
        "c": "no",
        "d": "on",
    }


def test_duplicate_keys_are_errors():
    assert problem("a: 1\nb: 2\na: 3\n") == (3, "duplicate key 'a' (first on line 1)")


def test_tabs_are_explained():
    assert problem("a:\n\t- x\n") == (
        2,
        "tab character: indent with spaces, YAML does not allow tabs here",
    )


def test_python_tags_are_refused():
    line, message = problem("a: !!python/object/apply:os.system ['true']\n")
    assert (line, message) == (1, "tag !!python/object/apply:os.system is not allowed in records")


def test_aliases_are_refused():
    assert problem("a: &x [1]\nb: *x\n") == (
        2,
        "anchors and aliases (*name) are not supported in records",
    )


def test_empty_file():
    assert problem("# only a comment\n") == (1, "the file is empty")


def test_syntax_error_has_a_line():
    line, message = problem("a: [1\nb: 2\n")
    assert line == 2
    assert "did not find expected" in message


def test_byte_order_mark_is_accepted():
    assert parse(decode(b"\xef\xbb\xbfa: 1\n")).data == {"a": 1}


def test_other_encodings_are_refused_with_a_line():
    with pytest.raises(YamlProblem) as caught:
        decode(b"a: 1\nb: caf\xe9\n")
    assert caught.value.line == 2
    assert "not UTF-8" in caught.value.message


def located(text: str) -> tuple[int | None, tuple, str]:
    with pytest.raises(YamlProblem) as caught:
        parse(text)
    return caught.value.line, caught.value.location, caught.value.message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2025-02-30", "'2025-02-30' is not a date on the calendar: day is out of range for month"),
        ("2025-13-45", "'2025-13-45' is not a date on the calendar: month must be in 1..12"),
        ("2025-01-01 25:00:00", "'2025-01-01 25:00:00' is not a date on the calendar:"
                                " hour must be in 0..23"),
        ("!!timestamp garbage", "'garbage' is not a date; write dates like 2025-02-28"),
        ("!!int abc", "'abc' is not a whole number"),
        ("!!int 1.5", "'1.5' is not a whole number"),
        ("!!float xyz", "'xyz' is not a number"),
        ("!!bool maybe", "'maybe' is not true or false"),
        ("9" * 5000, "a number of 5000 digits is too large for any field of a record"),
        ("!!int " + "9" * 4301, "a number of 4301 digits is too large for any field of a record"),
    ],
)  # fmt: skip
def test_values_yaml_cannot_make_are_located_problems(value, message):
    text = f"title: x\ncase:\n  opened: {value}\n"
    assert located(text) == (3, ("case", "opened"), message)


def test_the_largest_number_python_reads_is_still_a_number():
    assert parse("a: " + "9" * 4300 + "\n").data == {"a": int("9" * 4300)}


def test_valid_dates_and_tagged_values_still_read():
    data = parse("a: 2024-02-29\nb: !!int '42'\nc: !!float '1.5'\nd: !!str 10\n").data
    assert data == {"a": dt.date(2024, 2, 29), "b": 42, "c": 1.5, "d": "10"}


DEEP = "nested more than 50 levels deep; records need only a few levels"


@pytest.mark.parametrize("levels", [51, 990])
def test_deep_nesting_is_refused_at_its_field(levels):
    flow = "habitat: " + "[" * levels + "]" * levels + "\n"
    assert located(flow) == (1, ("habitat",), DEEP)
    block = "habitat:\n" + "".join("  " * i + "-\n" for i in range(levels)) + "  " * levels + "x\n"
    assert located(block) == (52, ("habitat",), DEEP)


def test_nesting_past_what_libyaml_reads_is_refused_by_it():
    flow = "habitat: " + "[" * 5000 + "]" * 5000 + "\n"
    assert located(flow) == (1, (), "while increasing flow level, exceeded maximum nesting depth")


def test_fifty_levels_are_enough():
    assert parse("a: " + "[" * 50 + "]" * 50 + "\n").data


def test_merge_keys_are_refused():
    text = "title: x\nflight_risk:\n  <<: {percent: 3}\n  percent: 85\n"
    assert located(text) == (
        3,
        ("flight_risk",),
        "merge keys (<<) are not supported in records; write the fields out",
    )


def test_duplicate_keys_name_their_mapping():
    assert located("a:\n  b: 1\n  b: 2\n") == (3, ("a",), "duplicate key 'b' (first on line 2)")
