"""Benchmark: a stamped, traced copy against rendering what it copies, side by side.

Usage: PYTHONPATH=. .venv/bin/python bench/copies.py [--rounds 5] [--size 200] [--jobs 2]

Dossier: rendering the seed record (fitted, one process, engine warm) against making a stamped
copy of its PDF (typesetting the stamp, laying it over the page, new metadata), interleaved
rounds. Compendium: a cold `dossier compendium` of a synthetic catalog of `size` records (fresh
cache, `--jobs` workers) against a stamped copy of the compendium it wrote, interleaved rounds.
Medians, and the ratio of each copy to its render.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pikepdf

from bench.compendium import synthetic_catalog
from renderer.config import Config
from renderer.copies import Copy, stamp_for, stamped
from renderer.records import load_record
from renderer.render import render_dossier

ROOT = Path(__file__).resolve().parent.parent
CONFIG = Config(organisation="Office of Otiose Role Taxonomy")


def stamped_copy(pdf: bytes, number: int) -> bytes:
    copy = Copy.new(number, 12, f"reader{number}@example.org", dt.date(2026, 11, 30))
    return stamped(pdf, stamp_for(copy, CONFIG), copy)


def timed(function, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - start, result


def dossier_rounds(rounds: int) -> None:
    record = load_record(ROOT / "records" / "sdet.yaml").record
    pdf = render_dossier(record, CONFIG)  # the engine and fonts loaded once, for both
    stamped_copy(pdf, 0)
    renders, copies = [], []
    for number in range(1, rounds + 1):
        seconds, pdf = timed(render_dossier, record, CONFIG)
        renders.append(seconds)
        copies.append(timed(stamped_copy, pdf, number)[0])
    report("dossier (1 page)", renders, copies, len(pdf), len(stamped_copy(pdf, 99)))


def compendium_rounds(rounds: int, size: int, jobs: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-copies-") as scratch:
        folder = Path(scratch)
        records = synthetic_catalog(size, folder / "catalog")
        renders, copies, pdf = [], [], b""
        for number in range(1, rounds + 1):
            out, cache = folder / f"compendium-{number}.pdf", folder / f"cache-{number}"
            command = [sys.executable, "-m", "renderer", "compendium", "--records", str(records),
                       "--out", str(out), "--cache", str(cache), "--jobs", str(jobs),
                       "--quiet"]  # fmt: skip
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            seconds = time.perf_counter() - start
            renders.append(seconds)
            pdf = out.read_bytes()
            copies.append(timed(stamped_copy, pdf, number)[0])
        with pikepdf.open(out) as document:
            pages = len(document.pages)
        report(f"compendium ({size} records, {pages} pages, cold, --jobs {jobs})", renders,
               copies, len(pdf), len(stamped_copy(pdf, 99)))  # fmt: skip


def report(what: str, renders: list[float], copies: list[float], size: int, copy_size: int):
    render, copy = statistics.median(renders), statistics.median(copies)
    print(
        f"{what}: render {render:.3f} s, stamped copy {copy:.3f} s (median of {len(renders)}"
        f" interleaved rounds), copy/render {copy / render:.4f}; size {size / 1e3:.1f} KB,"
        f" copy {copy_size / 1e3:.1f} KB (+{(copy_size - size) / 1e3:.1f} KB)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--compendium-rounds", type=int, default=2)
    parser.add_argument("--size", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2)
    options = parser.parse_args()
    dossier_rounds(options.rounds)
    compendium_rounds(options.compendium_rounds, options.size, options.jobs)


if __name__ == "__main__":
    main()
