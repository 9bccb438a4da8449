"""Build: choosing records and rendering a batch of dossiers into an output folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .config import Config
from .fileio import write_atomic
from .problems import InvalidInput, Problem
from .records import Entry, load_catalog, load_record


def select_entries(records_dir: Path, targets: tuple[str, ...]) -> list[Entry]:
    """Records named by slug (in the catalog) or by path; every record when none are named."""
    paths = [target for target in targets if target.endswith((".yaml", ".yml"))]
    slugs = [target for target in targets if target not in paths]
    entries = [load_record(path) for path in paths]
    if slugs or not targets:
        catalog = load_catalog(records_dir)
        missing = [slug for slug in slugs if slug not in catalog]
        if missing:
            problems = [Problem(str(records_dir), None, "", f"no record {s!r}") for s in missing]
            raise InvalidInput(problems)
        entries += [catalog[slug] for slug in slugs] if targets else list(catalog)
    return entries


def render_dossiers(
    entries: list[Entry],
    config: Config,
    out: Path,
    *,
    variant: str | None = None,
    echo: Callable[..., None] = print,
) -> list[Problem]:
    """Render each entry to <out>/<slug>.pdf; returns the problems of those that failed."""
    from .render import render_dossier

    failed: list[Problem] = []
    for entry in entries:
        try:
            pdf = render_dossier(entry.record, config, variant=variant, source=entry.path)
        except InvalidInput as error:
            failed += error.problems
            for problem in error.problems:
                echo(f"{entry.path}: {problem.message}", err=True)
            continue
        target = out / f"{entry.slug}.pdf"
        write_atomic(target, pdf)
        echo(str(target))
    return failed
