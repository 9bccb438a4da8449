from __future__ import annotations

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
