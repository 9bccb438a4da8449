from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import pytest

from renderer.config import Config, load_config
from renderer.problems import InvalidInput


def test_defaults_without_a_file(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config() == Config()


def test_file_values_and_overrides(tmp_path: Path):
    path = tmp_path / "dossier.toml"
    path.write_text('paper = "letter"\ndate = 2026-11-01\nbase_url = "https://a.example/x/"\n')
    config = load_config(path, base_url="https://b.example/y", paper=None)
    assert config.paper == "letter"
    assert config.date == dt.date(2026, 11, 1)
    assert config.specimen_url("sdet") == "https://b.example/y/sdet"


def test_one_slash_between_base_url_and_slug():
    assert (
        Config(base_url="https://a.example/x/").specimen_url("sdet") == "https://a.example/x/sdet"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("paper = \n", ":1: not valid TOML: invalid value (column 9)"),
        (
            'paper = "a4"\nbase_url = "ftp://x"\n',
            ":2: base_url: expected an http(s) address like https://specimens.example.org"
            " (got 'ftp://x')",
        ),
        (
            f'base_url = "https://{"a" * 300}.org"\n',
            ":1: base_url: at most 200 characters, so that a QR code holds it with a slug"
            f" (got 'https://{'a' * 51}... (312 characters))",
        ),
        (
            "[mail.smtp]\ntimeout = inf\n",
            ":2: mail.smtp.timeout: input should be a finite number (got inf)",
        ),
        (
            "[mail.smtp]\ntimeout = nan\n",
            ":2: mail.smtp.timeout: input should be a finite number (got nan)",
        ),
        (
            "[mail.smtp]\ntimeout = 1e9\n",
            ":2: mail.smtp.timeout: input should be less than or equal to 3600 (got 1000000000.0)",
        ),
        (
            "[mail]\nmax_attachment_mb = inf\n",
            ":2: mail.max_attachment_mb: input should be a finite number (got inf)",
        ),
        (
            "[mail.smtp]\nport = true\n",
            ":2: mail.smtp.port: input should be a valid integer (got True)",
        ),
        (
            '[mail]\nsender = "desk@example.org\\r\\nBcc: all@example.org"\n',
            ":2: mail.sender: control character U+000D at character 17: a setting is one line of"
            " printable text; remove it (got 'desk@example.org\\r\\nBcc: all@example.org')",
        ),
        (
            '[mail.smtp]\nca_file = "ca\\u0000.pem"\n',
            ":2: mail.smtp.ca_file: control character U+0000 at character 3: a setting is one line"
            " of printable text; remove it (got 'ca\\x00.pem')",
        ),
        ("[mial]\nsender = 'x'\n", ":1: mial: unknown table (did you mean 'mail'?)"),
        ("[mail]\nsmtp.hots = 'x'\n", ":2: mail.smtp.hots: unknown setting (did you mean 'host'?)"),
        (
            "# the catalog\n\ncolour = 'red'\n",
            ":3: colour: unknown setting (known: base_url, paper, classification, organisation,"
            " author, layout, date, mail)",
        ),
        (
            "[mail]\n\n  sendr = 'x'\n",
            ":3: mail.sendr: unknown setting (did you mean 'sender'?)",
        ),
        ("date = 2025-02-30\n", ":1: not valid TOML: invalid date or datetime (column 8)"),
        ("a = " + "[" * 3000 + "]" * 3000 + "\n", ": not valid TOML: values nested too deeply"),
    ],
)
def test_invalid_files(tmp_path: Path, text, message):
    path = tmp_path / "dossier.toml"
    path.write_text(text)
    with pytest.raises(InvalidInput) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}{message}"


def test_a_file_that_is_not_utf8_is_named_with_its_line(tmp_path: Path):
    path = tmp_path / "dossier.toml"
    path.write_bytes(b'paper = "a4"\norganisation = "Caf\xe9"\n')
    with pytest.raises(InvalidInput) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}:2: not UTF-8 text (byte 0xe9); save the file as UTF-8"


def test_a_folder_named_like_the_config_is_refused_not_ignored(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("dossier.toml").mkdir()
    with pytest.raises(InvalidInput) as caught:
        load_config()
    assert str(caught.value) == (
        "dossier.toml: not a regular file (a folder); config files must be regular files"
    )


def test_a_fifo_is_refused_unread_instead_of_waiting_for_a_writer(tmp_path: Path):
    path = tmp_path / "dossier.toml"
    os.mkfifo(path)
    with pytest.raises(InvalidInput) as caught:
        load_config(path)  # would block for ever if it opened the FIFO
    assert (
        str(caught.value)
        == f"{path}: not a regular file (a FIFO); config files must be regular files"
    )


def test_a_link_to_a_device_is_refused_unread(tmp_path: Path):
    path = tmp_path / "dossier.toml"
    path.symlink_to("/dev/zero")
    with pytest.raises(InvalidInput) as caught:
        load_config(path)
    assert str(caught.value) == (
        f"{path}: not a regular file (a link to a character device);"
        " config files must be regular files"
    )


def test_a_broken_link_in_place_of_the_config_is_reported(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("dossier.toml").symlink_to("gone.toml")
    with pytest.raises(InvalidInput) as caught:
        load_config()
    assert str(caught.value) == "dossier.toml: cannot read: no such file or directory"


def test_a_huge_file_costs_no_more_than_the_limit(tmp_path: Path):
    path = tmp_path / "dossier.toml"
    path.write_bytes(b"# " + b"x" * 5_000_000 + b"\n")
    with pytest.raises(InvalidInput) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: file is 5.0 MB; config files are at most 1 MB"


def test_a_path_below_a_file_is_one_line(tmp_path: Path):
    (tmp_path / "plain").write_text("")
    with pytest.raises(InvalidInput) as caught:
        load_config(tmp_path / "plain" / "dossier.toml")
    assert str(caught.value) == f"{tmp_path}/plain/dossier.toml: cannot read: not a directory"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"base_url": "ftp://x"},
            "--base-url: expected an http(s) address like https://specimens.example.org"
            " (got 'ftp://x')",
        ),
        ({"paper": "a5"}, "--paper: input should be 'a4' or 'letter' (got 'a5')"),
        (
            {"layout": "a\nb"},
            "--layout: control character U+000A at character 2: a setting is"
            " one line of printable text; remove it (got 'a\\nb')",
        ),
    ],
)
def test_option_problems_name_the_option_not_the_file(tmp_path: Path, overrides, message):
    path = tmp_path / "dossier.toml"
    path.write_text('paper = "a4"\nbase_url = "https://a.example"\n')
    with pytest.raises(InvalidInput) as caught:
        load_config(path, **overrides)
    assert str(caught.value) == message


def test_no_message_shows_a_regular_expression(tmp_path: Path):
    path = tmp_path / "dossier.toml"
    path.write_text('base_url = "https://a b"\n[mail.smtp]\nhost = ""\n')
    with pytest.raises(InvalidInput) as caught:
        load_config(path)
    assert not re.search(r"pattern|\^|\$|\\[sSdDwW]", str(caught.value))


def test_missing_explicit_file(tmp_path: Path):
    with pytest.raises(InvalidInput, match="config file not found"):
        load_config(tmp_path / "none.toml")


def test_an_unknown_layout_is_named_where_it_was_set(tmp_path: Path, monkeypatch):
    path = tmp_path / "dossier.toml"
    path.write_text('paper = "a4"\n\n# ours\nlayout = "fancy"\n')
    message = "no layout 'fancy' (available: classified, memo)"
    config = load_config(path)
    assert [str(problem) for problem in config.layout_problems()] == [
        f"{path}:4: layout: {message}"
    ]
    with pytest.raises(InvalidInput) as caught:
        config.require_layout()
    assert str(caught.value) == f"{path}:4: layout: {message}"
    option = load_config(path, layout="fancy")
    assert [str(problem) for problem in option.layout_problems()] == [f"--layout: {message}"]
    assert load_config(path, layout="memo").layout_problems() == []
    monkeypatch.chdir(tmp_path)
    path.write_text('paper = "a4"\n')  # the default layout, whatever is in dossier.toml
    assert load_config().layout_problems() == []
