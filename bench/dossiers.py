"""Benchmark: how fitted dossiers fill their page, in how many passes, at what cost.

Usage (from the repository root):
    PYTHONPATH=. .venv/bin/python bench/dossiers.py [--layout NAME] [--count 40] [--rounds 5]
    PYTHONPATH=. .venv/bin/python bench/dossiers.py --calibrate [--layout NAME]

1. Fill and passes over a generated catalog of varied records (tests/shapes.py: 1-8 items in each
   list, 0-8 related, 300-950 words, long words and names): the distribution of how full each
   page is, of layout passes, and which records are refused as too long.
2. Cost per 1,000 words: the committed records fitted in the layout, against the plain case-file
   layout of ../shared/perf-reference (one WeasyPrint pass, Debian's DejaVu fonts), in the same
   process, in interleaved rounds (A, B, A, B...); medians and their ratio.
`--calibrate` instead lays the generated records out at several scales and prints the [fit]
table of the layout's page model (renderer/fitting.py), for its layout.toml.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import sys
import time
from pathlib import Path

from renderer.config import Config
from renderer.engine import measure_sheet
from renderer.fitting import FULL, LINE, MAX_SCALE, MIN_SCALE, PageModel
from renderer.layouts import Layout
from renderer.problems import InvalidInput
from renderer.records import load_catalog
from renderer.render import dossier_html, engine_for, render_dossier_report, text_size
from tests.shapes import Shape, varied_record, word_count

REFERENCE = Path(__file__).resolve().parent.parent.parent / "shared" / "perf-reference"
CALIBRATION_SCALES = (MIN_SCALE, 0.8, 0.9, 1.0, 1.1, 1.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", default="classified", help="A layout by name or folder.")
    parser.add_argument("--count", default=40, type=int, help="Generated records.")
    parser.add_argument(
        "--rounds", default=5, type=int, help="Interleaved rounds of the cost (0: none)."
    )
    parser.add_argument("--seed", default=1, type=int)
    parser.add_argument("--calibrate", action="store_true")
    args = parser.parse_args()
    config = Config(layout=args.layout)
    records = generated_records(args.count, args.seed)
    if args.calibrate:
        print(calibrated_model(records, config))
        return
    report_fitting(records, config)
    if args.rounds:
        report_cost(config, args.rounds)


def generated_records(count: int, seed: int) -> list:
    chooser = random.Random(seed)
    shapes = [
        Shape(
            items=chooser.randint(1, 8),
            related=chooser.randint(0, 8),
            words=chooser.randint(300, 950),
            long_words=chooser.random() < 0.2,
            long_names=chooser.random() < 0.2,
        )
        for _ in range(count)
    ]
    return [varied_record(seed * 10_000 + n, shape) for n, shape in enumerate(shapes)]


def report_fitting(records: list, config: Config) -> None:
    fills, passes, refused, at_largest, opened = [], [], [], 0, []
    for record in records:
        try:
            report = render_dossier_report(record, config)
        except InvalidInput as error:
            refused.append(f"{word_count(record)} words: {error.problems[0].message}")
            continue
        passes.append(report.passes)
        if report.opened:
            opened.append(report.opened / (LINE * report.scale))
        if report.scale >= MAX_SCALE:
            at_largest += 1  # short: the largest type, whatever the fill
        else:
            fills.append(report.fill)
    print(f"layout {config.layout}: {len(records)} generated records")
    print(
        f"  passes: mean {statistics.mean(passes):.2f}, "
        + ", ".join(f"{n}: {passes.count(n)}" for n in sorted(set(passes)))
    )
    deciles = statistics.quantiles(fills, n=10) if len(fills) > 1 else fills
    print(
        f"  fill (below the largest type, {len(fills)} pages): min {min(fills):.3f},"
        f" 10% {deciles[0]:.3f}, median {statistics.median(fills):.3f}, max {max(fills):.3f};"
        f" under {FULL:.0%}: {sum(fill < FULL for fill in fills)}"
    )
    if opened:
        print(
            f"  spread (spread.py): {len(opened)} pages; the widest gap opened by a median of"
            f" {statistics.median(opened):.2f} lines of body text, at most {max(opened):.2f}"
        )
    print(f"  at the largest type: {at_largest}; refused as too long: {len(refused)}")
    for line in refused:
        print(f"    {line}")


def report_cost(config: Config, rounds: int) -> None:
    sys.path.insert(0, str(REFERENCE))
    import reference  # ../shared/perf-reference

    ours = [entry.record for entry in load_catalog("records")]
    theirs = reference.records(len(ours))
    our_words = sum(word_count(record) for record in ours)
    their_words = sum(reference.words(record) for record in theirs)
    render_dossier_report(ours[0], config)  # imports and font caches, for both
    with system_fonts():
        reference.render(theirs[0])
    dossier, plain = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        for record in ours:
            render_dossier_report(record, config)
        dossier.append((time.perf_counter() - start) / our_words * 1000)
        start = time.perf_counter()
        with system_fonts():
            for record in theirs:
                reference.render(record)
        plain.append((time.perf_counter() - start) / their_words * 1000)
    ratios = [a / b for a, b in zip(dossier, plain, strict=True)]
    print(
        f"cost per 1,000 words, medians of {rounds} interleaved rounds:"
        f" fitted {config.layout} {statistics.median(dossier):.3f} s"
        f" ({len(ours)} committed records, {our_words} words),"
        f" reference {statistics.median(plain):.3f} s ({len(theirs)} records, {their_words} words);"
        f" ratio {statistics.median(ratios):.2f}"
    )


@contextlib.contextmanager
def system_fonts():
    """The reference uses the fonts of this machine (a new FontConfiguration reads this)."""
    ours = os.environ.pop("FONTCONFIG_FILE", None)
    try:
        yield
    finally:
        if ours is not None:
            os.environ["FONTCONFIG_FILE"] = ours


def calibrated_model(records: list, config: Config) -> str:
    """The [fit] table that best predicts, by least squares, the fill of every page that fits."""
    engine = engine_for(Layout.find(config.layout))
    rows, fills = [], []
    for record in records:
        size = text_size(record)
        for scale in CALIBRATION_SCALES:
            html = dossier_html(record, config, scale=scale, layout=engine.layout)
            measure = measure_sheet(engine.layout_html(html))
            if not measure.fits:
                break
            rows.append(
                [size.chars * scale**2, size.parts * scale, size.related, scale**2, scale, 1.0]
            )
            fills.append(measure.fill)
    names = ("per_char", "per_part", "per_related", "squared", "linear", "fixed")
    coefficients = dict(zip(names, least_squares(rows, fills), strict=True))
    model = PageModel(**coefficients)
    errors = [
        abs(sum(c * x for c, x in zip(coefficients.values(), row, strict=True)) / fill - 1)
        for row, fill in zip(rows, fills, strict=True)
    ]
    return "\n".join(
        [
            f"# {len(fills)} pages of {len(records)} generated records; model error: median"
            f" {statistics.median(errors):.1%}, 90% {statistics.quantiles(errors, n=10)[-1]:.1%}",
            "[fit]",
            *(f"{name} = {getattr(model, name):.6g}" for name in names),
        ]
    )


def least_squares(rows: list[list[float]], values: list[float]) -> list[float]:
    """x minimising |rows x - values|, by the normal equations (few unknowns, many rows)."""
    n = len(rows[0])
    system = [
        [sum(row[i] * row[j] for row in rows) for j in range(n)]
        + [sum(row[i] * v for row, v in zip(rows, values, strict=True))]
        for i in range(n)
    ]
    for i in range(n):  # Gauss-Jordan with partial pivoting
        pivot = max(range(i, n), key=lambda k: abs(system[k][i]))
        system[i], system[pivot] = system[pivot], system[i]
        for k in range(n):
            if k != i:
                factor = system[k][i] / system[i][i]
                system[k] = [a - factor * b for a, b in zip(system[k], system[i], strict=True)]
    return [system[i][n] / system[i][i] for i in range(n)]


if __name__ == "__main__":
    main()
