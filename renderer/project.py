"""Projects: a catalog's folder, marked by its dossier.toml, and the paths relative to it.

As git finds .git, the project is found from the current folder upwards; --config names its
file instead. records/, out/ (with its cache) and layouts/ lie in the project's folder, never
in the current one. Without a dossier.toml the current folder is the project.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from .config import DEFAULT_CONFIG_NAME, Config, load_config
from .contract import DOSSIER_TEMPLATE
from .problems import InvalidInput, Problem

PROJECT_LAYOUTS = "layouts"  # a project's own layouts, each a folder


@dataclass(frozen=True)
class Project:
    root: Path  # relative to the current folder when it lies under it, as messages show it
    config_path: Path | None  # None: no dossier.toml, every setting has its default

    @classmethod
    def find(cls, config_path: Path | None = None, start: Path | None = None) -> Project:
        """The project of `config_path`, else of the first dossier.toml from `start` (the
        current folder) upwards, else `start` itself."""
        if config_path is not None:
            return cls(config_path.parent, config_path)
        here = Path.cwd() if start is None else start
        for folder in [here, *here.parents]:
            candidate = folder / DEFAULT_CONFIG_NAME
            if candidate.exists() or candidate.is_symlink():  # a broken one is worth a word
                root = Path(os.path.relpath(folder, Path.cwd()))
                return cls(root, root / DEFAULT_CONFIG_NAME)
        return cls(Path(os.path.relpath(here, Path.cwd())), None)

    @property
    def records(self) -> Path:
        return self.root / "records"

    @property
    def out(self) -> Path:
        return self.root / "out"

    @property
    def cache(self) -> Path:
        return self.out / ".cache"

    @property
    def layouts(self) -> Path:
        return self.root / PROJECT_LAYOUTS

    def config(self, **overrides: object) -> Config:
        """The project's settings, with the command line's (non-None) `overrides`."""
        config = load_config(self.config_path, **overrides)
        layout = self._layout(config.layout, on_command_line=overrides.get("layout") is not None)
        return config if layout == config.layout else config.model_copy(update={"layout": layout})

    def _layout(self, name: str, on_command_line: bool) -> str:
        """The layout as every process finds it without knowing the project: a path in
        dossier.toml is relative to the project's folder (on the command line, to the current
        one), and a layout of the project's layouts/ is named by its path. Other names are
        left to `Layout.find`."""
        path = Path(name) if on_command_line else self.root / name
        if _is_there(path, Path.is_dir):
            return str(path)
        own = self.layouts / name
        if _is_there(own / DOSSIER_TEMPLATE, Path.is_file):
            return str(own)
        return name


def _is_there(path: Path, kind) -> bool:
    """Whether `path` is there and of that kind; a name too long for a file name is not."""
    try:
        return kind(path)
    except (OSError, ValueError):
        return False


EXAMPLE_RECORD = "sdet.yaml"  # the seed record, package data (renderer/records)
IGNORED = "# dossier's output and cache: made again by `dossier build`\nout/\n"
CONFIG_HEADER = """\
# This catalog's settings (dossier.toml). Every setting is shown with its default, commented
# out: uncomment a line to change it. This file marks the project's folder: dossier finds it
# from the current folder upwards, and records/, out/ and layouts/ lie next to it.
"""


def init_project(folder: Path) -> list[Path]:
    """A new project in `folder`: a commented dossier.toml, records/ with an example record,
    and a .gitignore for out/. Nothing that is already there is overwritten: when any of them
    is, nothing is written."""
    from .fileio import write_atomic

    files = {
        folder / DEFAULT_CONFIG_NAME: commented_settings(),
        folder / "records" / EXAMPLE_RECORD: _example_record(),
        folder / ".gitignore": IGNORED,
    }
    there = [path for path in files if path.exists() or path.is_symlink()]
    if there:
        problems = [
            Problem(str(path), None, "", "already exists; not overwritten") for path in there
        ]
        raise InvalidInput(problems)
    for path, text in files.items():
        write_atomic(path, text.encode(), overwrite=False)
    return list(files)


def _example_record() -> str:
    from .layouts import package_data

    return (package_data("records") / EXAMPLE_RECORD).read_text(encoding="utf-8")


def commented_settings() -> str:
    """dossier.toml with every setting, its description and its default, commented out."""
    lines = [CONFIG_HEADER]
    _settings_of(Config, [], lines)
    return "\n".join(lines) + "\n"


def _settings_of(model: type[BaseModel], table: list[str], lines: list[str]) -> None:
    tables = []
    for name, field in model.model_fields.items():
        if isinstance(field.default, BaseModel):
            tables.append((name, type(field.default)))
            continue
        if field.description:
            lines += textwrap.wrap(
                field.description, 98, initial_indent="# ", subsequent_indent="# "
            )
        if field.default is None:
            example = field.examples[0] if field.examples else ""
            lines.append(f"# {name} = {_toml(example)}  # an example: unset by default")
        else:
            lines.append(f"# {name} = {_toml(field.default)}")
    for name, submodel in tables:
        lines += ["", f"[{'.'.join([*table, name])}]"]
        if submodel.__doc__:
            lines.append(f"# {submodel.__doc__.splitlines()[0]}")
        _settings_of(submodel, [*table, name], lines)


def _toml(value: object) -> str:
    """A TOML value: JSON writes strings, numbers and booleans as TOML reads them."""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Path):
        value = str(value)
    return json.dumps(value, ensure_ascii=False)
