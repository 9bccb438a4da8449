"""Selection: which records a batch command renders, and which files it leaves out and why."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from .layouts import DEFAULT_LAYOUT
from .problems import InvalidInput, Problem, did_you_mean, errors_in
from .records import Entry, check_catalog, read_record, record_paths


@dataclass(frozen=True)
class Selection:
    """The records a batch command renders, and the record files it leaves out with their
    problems: one bad record does not stop the others."""

    entries: list[Entry]
    failures: list[Problem] = field(default_factory=list)  # why files (or targets) are left out
    warnings: list[Problem] = field(default_factory=list)
    left_out: list[Path] = field(default_factory=list)  # record files not rendered

    def without(self, problems: list[Problem]) -> Selection:
        """The records whose files these problems name are left out as well."""
        failing = {problem.path for problem in errors_in(problems)}
        dropped = [entry.path for entry in self.entries if str(entry.path) in failing]
        return replace(
            self,
            entries=[entry for entry in self.entries if entry.path not in dropped],
            failures=sorted([*self.failures, *problems], key=Problem.sort_key),
            left_out=sorted([*self.left_out, *dropped]),
        )


def select_catalog(
    records_dir: Path, *, strict: bool = False, store=None, layout_name: str = DEFAULT_LAYOUT
) -> Selection:
    """Every record of the folder that can be rendered in layout `layout_name`; the others are
    left out, with their problems (with `strict`, warnings leave a record out too)."""
    entries, problems = check_catalog(records_dir, store, layout_name)
    failures = problems if strict else errors_in(problems)
    failing = {problem.path for problem in failures}
    kept = [entry for entry in entries if str(entry.path) not in failing]
    rendered = {entry.path for entry in kept}
    files = record_paths(records_dir) if records_dir.is_dir() else []
    left_out = [path for path in files if path not in rendered]
    warnings = [problem for problem in problems if problem not in failures]
    return Selection(kept, failures, warnings, left_out)


def select_records(
    records_dir: Path, targets: tuple[str, ...], store=None, layout_name: str = DEFAULT_LAYOUT
) -> Selection:
    """Records named by slug (in the catalog) or by path; every record when none are named."""
    paths = [Path(target) for target in targets if target.endswith((".yaml", ".yml"))]
    slugs = [target for target in targets if not target.endswith((".yaml", ".yml"))]
    catalog = partial(select_catalog, records_dir, store=store, layout_name=layout_name)
    chosen = Selection([]) if targets else catalog()
    for path in paths:
        entry, problems = read_record(path)
        if entry is None:
            chosen = replace(chosen, failures=chosen.failures + problems,
                             left_out=[*chosen.left_out, path])  # fmt: skip
        else:
            chosen = replace(chosen, entries=[*chosen.entries, entry])
    if slugs:
        chosen = _by_slug(chosen, catalog(), slugs, records_dir)
    return replace(chosen, failures=sorted(chosen.failures, key=Problem.sort_key))


def _by_slug(chosen: Selection, catalog: Selection, slugs: list[str], records_dir: Path):
    """The catalog's records of these slugs; for a slug whose file was left out, its problems."""
    by_slug = {entry.slug: entry for entry in catalog.entries}
    known = sorted({*by_slug, *(path.stem for path in catalog.left_out)})
    folder = [problem for problem in catalog.failures if problem.path == str(records_dir)]
    failures, left_out, entries = list(folder), [], []
    for slug in slugs:
        files = [path for path in catalog.left_out if path.stem == slug]
        if slug in by_slug:
            entries.append(by_slug[slug])
        elif files:
            failures += [p for p in catalog.failures if p.path in {str(f) for f in files}]
            left_out += files
        elif not folder:
            failures.append(no_record(records_dir, slug, known))
    return replace(
        chosen,
        entries=chosen.entries + entries,
        failures=chosen.failures + failures,
        left_out=chosen.left_out + left_out,
    )


def no_record(records_dir: Path, slug: str, known: Iterable[str]) -> Problem:
    """A slug that names no record of the folder, with the `known` slugs closest to it: what
    every command that takes slugs says."""
    return Problem(str(records_dir), None, "", f"no record {slug!r}{did_you_mean(slug, known)}")


def select_entries(
    records_dir: Path, targets: tuple[str, ...], store=None, layout_name: str = DEFAULT_LAYOUT
) -> list[Entry]:
    """Like select_records, for commands that need every record named: raises InvalidInput
    listing the problems of those that cannot be rendered."""
    selection = select_records(records_dir, targets, store, layout_name)
    if selection.failures:
        raise InvalidInput(selection.failures)
    return selection.entries
