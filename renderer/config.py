"""The project config file (`dossier.toml`): defaults, validation, located errors."""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from .problems import InvalidInput, Problem

DEFAULT_CONFIG_NAME = "dossier.toml"
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class Config(BaseModel):
    """Project settings; every one has a default, so a project needs no config file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s/]+(/\S*)?$")] = Field(
        "https://specimens.example.org", description="QR codes link to <base_url>/<slug>."
    )
    paper: Literal["a4", "letter"] = "a4"
    classification: Text = Field("CONFIDENTIAL", description="Default classification level.")
    organisation: Text = "Office of Otiose Role Taxonomy"
    author: Text = "Bureau of Specimen Records"
    layout: Text = "classified"
    date: dt.date | None = Field(
        None, description="Build date for covers and undated files; never the wall clock."
    )

    def specimen_url(self, slug: str) -> str:
        return f"{self.base_url.rstrip('/')}/{slug}"


def load_config(path: str | Path | None = None, **overrides: object) -> Config:
    """The config from `path` (or ./dossier.toml when present), with non-None overrides applied."""
    data: dict = {}
    name = str(path) if path is not None else DEFAULT_CONFIG_NAME
    text = ""
    if path is not None or Path(DEFAULT_CONFIG_NAME).is_file():
        text, data = _read(Path(name))
    data.update({key: value for key, value in overrides.items() if value is not None})
    try:
        return Config.model_validate(data)
    except ValidationError as error:
        raise InvalidInput([_problem(name, text, detail) for detail in error.errors()]) from None


def _read(path: Path) -> tuple[str, dict]:
    try:
        text = path.read_text(encoding="utf-8-sig")
        return text, tomllib.loads(text)
    except FileNotFoundError:
        raise InvalidInput([Problem(str(path), None, "", "config file not found")]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput([Problem(str(path), None, "", f"cannot read: {error}")]) from None
    except tomllib.TOMLDecodeError as error:
        found = re.search(r"\(at line (\d+)", str(error))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(error))
        line = int(found.group(1)) if found else None
        message = f"not valid TOML: {message[:1].lower()}{message[1:]}"
        raise InvalidInput([Problem(str(path), line, "", message)]) from None


def _problem(name: str, text: str, detail: dict) -> Problem:
    key = ".".join(str(part) for part in detail["loc"])
    found = re.search(rf"^\s*{re.escape(str(detail['loc'][-1]))}\s*=", text, re.MULTILINE)
    line = text.count("\n", 0, found.start()) + 1 if found else None
    if detail["type"] == "extra_forbidden":
        message = f"unknown setting (known: {', '.join(Config.model_fields)})"
    else:
        message = f"{detail['msg'][:1].lower()}{detail['msg'][1:]} (got {detail['input']!r})"
    return Problem(name, line, key, message)
