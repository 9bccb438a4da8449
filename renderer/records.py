"""Records: read YAML files safely, validate them into the model, report every problem at once."""

from __future__ import annotations

import json
import re
import types
import typing
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import yaml
from pydantic import BaseModel, ValidationError

from .cache import cache_key
from .glyphs import covered, describe, missing_glyphs
from .inputfiles import read_bounded
from .layouts import DEFAULT_LAYOUT
from .model import KNOWN_VALID, PATTERN_HINTS, Record
from .problems import InvalidInput, Problem, Severity, did_you_mean, errors_in
from .yamlsource import Location, YamlDocument, YamlProblem, decode, nearest_line, parse

RECORD_SUFFIXES = (".yaml", ".yml")
SCHEMA_COMMENT = "# yaml-language-server: $schema=../schema/record.schema.json\n"
MAX_RECORD_BYTES = 1_000_000
# what turns a file into a Record
READER_MODULES = ("inputfiles", "model", "records", "yamlsource")
CATALOG_FIELDS = ("title", "slug", "related")  # what problems between records point at
_CATALOG_LOCATIONS = {(), *((name,) for name in CATALOG_FIELDS)}


@dataclass(frozen=True)
class Entry:
    """A valid record and the file it came from."""

    record: Record
    path: Path
    lines: dict[Location, int] = field(default_factory=dict)  # of the CATALOG_FIELDS only

    def line_of(self, location: Location) -> int | None:
        return nearest_line(self.lines, location)

    @property
    def slug(self) -> str:
        return self.record.slug


@dataclass
class Catalog:
    """Every valid record of a folder, by slug in file-name order, plus the warnings found."""

    entries: dict[str, Entry]
    warnings: list[Problem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self):
        return iter(self.entries.values())

    def __contains__(self, slug: str) -> bool:
        return slug in self.entries

    def __getitem__(self, slug: str) -> Entry:
        return self.entries[slug]


class Store(Protocol):
    """Bytes by key, such as the build cache: where parsed records are kept between runs."""

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, data: bytes) -> None: ...


def read_record(path: Path, store: Store | None = None) -> tuple[Entry | None, list[Problem]]:
    """Parse and validate one record file; the entry is None when there are errors.

    With a store, a valid record is kept by a hash of the file's bytes and of the code that
    reads it, so an unchanged file is not parsed again (YAML parsing dominates a large catalog).
    """
    name = str(path)
    try:
        raw = read_bounded(path, MAX_RECORD_BYTES, "records")
    except InvalidInput as error:
        return None, error.problems
    key = cache_key("record", code=READER_MODULES, file=raw) if store is not None else ""
    if store is not None and (kept := _thaw(store.get(key), path)) is not None:
        return kept, []
    try:
        document = parse(decode(raw))
    except YamlProblem as error:
        return None, [Problem(name, error.line, field_path(error.location), error.message)]
    record, problems = validate(document, name)
    if record is None:
        return None, problems
    # the whole line map is large; a catalog of thousands keeps only what it reports on
    lines = {
        at: line
        for at, line in document.lines.items()
        if len(at) <= 1 or at[:1] in _CATALOG_LOCATIONS
    }
    entry = Entry(record, path, lines)
    if store is not None:
        store.put(key, _freeze(entry))
    return entry, problems


def _freeze(entry: Entry) -> bytes:
    lines = json.dumps([[*at, line] for at, line in entry.lines.items()])
    return lines.encode() + b"\n" + entry.record.model_dump_json().encode()


def _thaw(data: bytes | None, path: Path) -> Entry | None:
    if data is None:
        return None
    lines, _, record = data.partition(b"\n")
    try:
        located = {tuple(row[:-1]): row[-1] for row in json.loads(lines)}
        return Entry(Record.model_validate_json(record, context={KNOWN_VALID: True}), path, located)
    except ValueError:  # not what this code writes: parse the file again
        return None


def validate(document: YamlDocument, name: str) -> tuple[Record | None, list[Problem]]:
    """Validate parsed YAML into a Record, translating every error to a located problem."""
    if not isinstance(document.data, dict):
        kind = type(document.data).__name__
        message = f"a record is a mapping of fields (title: ..., salary: ...), not a {kind}"
        return None, [Problem(name, 1, "", message)]
    try:
        record = Record.model_validate(document.data)
    except ValidationError as error:
        return None, [_problem(name, document, detail) for detail in error.errors()]
    return record, []


def _problem(name: str, document: YamlDocument, detail: dict) -> Problem:
    location = tuple(detail["loc"])
    kind = detail["type"]
    if kind == "missing":
        parent = location[:-1]
        return Problem(
            name, document.line_of(parent), field_path(location), "required field is missing"
        )
    if kind == "extra_forbidden":
        message = "unknown field" + _suggestion(location)
    elif kind == "value_error":
        message = detail["msg"].removeprefix("Value error, ")
    elif kind == "string_pattern_mismatch":
        pattern = detail["ctx"]["pattern"]
        hint = PATTERN_HINTS.get(pattern, f"text matching {pattern}")
        message = f"expected {hint} (got {_shorten(detail['input'])})"
    elif kind == "too_long" and isinstance(detail["input"], list):
        most, count = detail["ctx"]["max_length"], len(detail["input"])
        message = f"at most {most} items, more than a page holds (got {count})"
    else:
        message = f"{_lower_first(detail['msg'])} (got {_shorten(detail['input'])})"
    return Problem(name, document.line_of(location), field_path(location), message)


def field_path(location: tuple) -> str:
    """('metrics', 2, 'name') -> 'metrics[2].name'."""
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


def _suggestion(location: tuple) -> str:
    allowed = _fields_at(location[:-1])
    if close := did_you_mean(str(location[-1]), allowed):
        return close
    return f" (allowed: {', '.join(allowed)})" if allowed else ""


def _fields_at(location: tuple) -> list[str]:
    """The field names the model accepts at a location, found by walking the annotations."""
    kind: object = Record
    for part in location:
        kind = _unwrap(kind)
        if isinstance(part, int):
            kind = typing.get_args(kind)[0] if typing.get_args(kind) else None
        elif isinstance(kind, type) and issubclass(kind, BaseModel):
            fields = _fields_by_key(kind)
            kind = fields[part].annotation if part in fields else None
        else:
            return []
    kind = _unwrap(kind)
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        return list(_fields_by_key(kind))
    return []


def _fields_by_key(model: type[BaseModel]) -> dict:
    """A model's fields by the key a record file uses for them (the alias, where one is set)."""
    return {info.alias or name: info for name, info in model.model_fields.items()}


def _unwrap(kind: object) -> object:
    """`Case | None` -> `Case`."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        options = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        return options[0] if len(options) == 1 else kind
    return kind


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _shorten(value: object, limit: int = 40) -> str:
    if isinstance(value, int) and value.bit_length() > 128:
        return "a number too large to show"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def record_file(directory: Path, slug: str) -> Path:
    """The file of the record `slug`: an existing <slug>.yaml or <slug>.yml, else <slug>.yaml,
    so that a new record never stands beside an old one of the same slug."""
    for suffix in RECORD_SUFFIXES:
        path = directory / f"{slug}{suffix}"
        if path.exists() or path.is_symlink():
            return path
    return directory / f"{slug}{RECORD_SUFFIXES[0]}"


def record_paths(directory: Path) -> list[Path]:
    return sorted(
        path
        for path in directory.iterdir()
        if path.suffix in RECORD_SUFFIXES and not path.name.startswith(".")
    )


def check_catalog(
    directory: Path, store: Store | None = None, layout_name: str = DEFAULT_LAYOUT
) -> tuple[list[Entry], list[Problem]]:
    """Every record of a folder that is valid, and every problem in the folder (text that layout
    `layout_name` cannot print among them)."""
    if not directory.is_dir():
        return [], [Problem(str(directory), None, "", "records folder not found")]
    paths = record_paths(directory)
    if not paths:
        return [], [Problem(str(directory), None, "", "no records (*.yaml) in this folder")]
    entries: list[Entry] = []
    problems: list[Problem] = []
    for path in paths:
        entry, found = read_record(path, store)
        problems += found
        if entry is not None:
            entries.append(entry)
    # an invalid record is still in the catalog: links to it are not "outside" links
    problems += _catalog_problems(entries, {path.stem for path in paths}, layout_name)
    return entries, sorted(problems, key=Problem.sort_key)


def _catalog_problems(
    entries: list[Entry], file_slugs: set[str], layout_name: str
) -> list[Problem]:
    """Problems between records (names, duplicate slugs, related links), and text that the
    layout's fonts cannot print."""
    printable = covered(layout_name)  # read from the fonts once for the whole catalog
    problems = [p for entry in entries for p in _glyph_warnings(entry, printable, layout_name)]
    slug_counts = Counter(entry.slug for entry in entries)
    known = set(slug_counts) | file_slugs
    for entry in entries:
        name = str(entry.path)
        slug_field = "title" if entry.record.explicit_slug is None else "slug"
        slug_line = entry.line_of((slug_field,))
        if entry.path.stem != entry.slug:
            whose = "the title's slug" if slug_field == "title" else "its slug"
            message = f"file name does not match {whose}; rename to {entry.slug}.yaml"
            problems.append(Problem(name, slug_line, slug_field, message))
        if slug_counts[entry.slug] > 1:
            others = [str(e.path) for e in entries if e.slug == entry.slug and e is not entry]
            message = f"slug {entry.slug!r} is also used by {', '.join(others)}"
            problems.append(Problem(name, slug_line, slug_field, message))
        for index, related in enumerate(entry.record.related):
            where, line = f"related[{index}].slug", entry.line_of(("related", index, "slug"))
            if related.target == entry.slug:
                problems.append(Problem(name, line, where, "a specimen cannot relate to itself"))
            elif related.target not in known:
                message = f"{related.target!r} is not in this catalog; it will link to the web only"
                problems.append(Problem(name, line, where, message, Severity.WARNING))
    return problems


def _glyph_warnings(entry: Entry, known: frozenset[str], layout_name: str) -> list[Problem]:
    if set(entry.record.model_dump_json()) <= known:  # the usual case, checked at once
        return []
    data = entry.record.model_dump(mode="json", exclude_none=True)
    return [
        Problem(str(entry.path), entry.line_of(at), field_path(at), describe(lacking, layout_name),
                Severity.WARNING)
        for at, lacking in missing_glyphs(data, known)
    ]  # fmt: skip


def load_catalog(
    directory: str | Path = "records",
    *,
    strict: bool = False,
    store: Store | None = None,
    layout_name: str = DEFAULT_LAYOUT,
) -> Catalog:
    """The catalog of a folder; raises InvalidInput listing every error (and warning if strict).

    `store` (the build cache) keeps parsed records, so unchanged files are not parsed again.
    """
    entries, problems = check_catalog(Path(directory), store, layout_name)
    fatal = problems if strict else errors_in(problems)
    if fatal:
        raise InvalidInput(fatal)
    warnings = [problem for problem in problems if not problem.is_error]
    return Catalog({entry.slug: entry for entry in entries}, warnings)


def load_record(path: str | Path) -> Entry:
    """One valid record file; raises InvalidInput with every problem."""
    entry, problems = read_record(Path(path))
    if entry is None:
        raise InvalidInput(problems)
    return entry


def dump_record(record: Record) -> str:
    """YAML text for a record, pointing editors at the JSON Schema."""
    data = record.model_dump(mode="python", exclude_none=True)
    if not data.get("case"):
        data.pop("case", None)
    body = yaml.dump(data, Dumper=_RecordDumper, sort_keys=False, allow_unicode=True, width=88)
    return SCHEMA_COMMENT + body


class _RecordDumper(yaml.SafeDumper):
    """Quotes every clock time, so that `09:00` and `10:00` look alike to any reader."""


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "'" if re.fullmatch(r"\d\d:\d\d", text) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_RecordDumper.add_representer(str, _represent_text)
