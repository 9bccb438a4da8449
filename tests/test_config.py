from __future__ import annotations

import datetime as dt
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
        ("paper = \n", ":1: not valid TOML: invalid value"),
        ('base_url = "ftp://x"\n', ":1: base_url: string should match pattern"),
    ],
)
def test_invalid_files(tmp_path: Path, text, message):
    path = tmp_path / "dossier.toml"
    path.write_text(text)
    with pytest.raises(InvalidInput) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}{message}")


def test_missing_explicit_file(tmp_path: Path):
    with pytest.raises(InvalidInput, match="config file not found"):
        load_config(tmp_path / "none.toml")
