"""Reading input files: bounded, regular files only, text and TOML problems at their line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from renderer.inputfiles import parse_toml, read_bounded, read_text
from renderer.problems import InvalidInput


def problems(call) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        call()
    return [str(problem) for problem in caught.value.problems]


def test_a_file_larger_than_it_says_costs_no_more_than_the_limit():
    smaps = Path("/proc/self/smaps")  # a regular file whose size says 0
    assert smaps.stat().st_size == 0
    with pytest.raises(InvalidInput) as caught:
        read_bounded(smaps, 1000, "records")
    assert str(caught.value) == (
        "/proc/self/smaps: file is over 1,000 bytes; records are at most 1,000 bytes"
    )
    assert len(read_bounded(smaps, 10**7, "records")) > 1000


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "settings.toml"
    os.mkfifo(fifo)
    assert problems(lambda: read_text(fifo, 100, "settings")) == [
        f"{fifo}: not a regular file (a FIFO); settings must be regular files"
    ]


def test_text_that_is_not_utf8_is_named_at_its_line(tmp_path):
    path = tmp_path / "notes.toml"
    path.write_bytes(b"a = 1\nb = 'caf\xe9'\n")
    assert problems(lambda: read_text(path, 100, "notes", shown="notes.toml")) == [
        "notes.toml:2: not UTF-8 text (byte 0xe9); save the file as UTF-8"
    ]


def test_a_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbfa = 1\n")
    assert parse_toml(read_text(path, 100, "notes"), str(path)) == {"a": 1}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a = \n", "x.toml:1: not valid TOML: invalid value (column 5)"),
        ("a = 1\na = 2\n", "x.toml:2: not valid TOML: cannot overwrite a value (column 6)"),
        ("a = " + "[" * 3000 + "]" * 3000, "x.toml: not valid TOML: values nested too deeply"),
    ],
)
def test_toml_problems_are_located(text, message):
    assert problems(lambda: parse_toml(text, "x.toml")) == [message]
