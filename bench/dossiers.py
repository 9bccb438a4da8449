"""Benchmark: fitted dossiers against one plain WeasyPrint render of the same final HTML.

Usage: .venv/bin/python bench/dossiers.py [--records records] [--repeat 3] [--layout NAME]
Prints, per record and as medians: seconds per dossier (fitted, plain, ratio), layout passes,
PDF size. Both are measured in the same process, interleaved, since these machines are noisy.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from pathlib import Path

import weasyprint

from renderer.config import load_config
from renderer.context import dossier_context
from renderer.layouts import FONTS_CSS, Layout
from renderer.problems import InvalidInput
from renderer.records import load_catalog
from renderer.render import engine_for, render_dossier_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", default="records", type=Path)
    parser.add_argument("--repeat", default=3, type=int)
    parser.add_argument("--layout", default=None, help="A layout by name or folder [config].")
    args = parser.parse_args()
    config = load_config(layout=args.layout)
    catalog = load_catalog(args.records)
    layout = Layout.find(config.layout)
    engine = engine_for(layout)
    render_dossier_report(next(iter(catalog)).record, config)  # warm caches and imports

    rows = []
    for entry in catalog:
        fitted_times, plain_times = [], []
        for _ in range(args.repeat):
            start = time.perf_counter()
            try:
                report = render_dossier_report(entry.record, config)
            except InvalidInput as error:
                print(error)
                break
            fitted_times.append(time.perf_counter() - start)
            html = layout.render_html(dossier_context(entry.record, config, scale=report.scale))
            start = time.perf_counter()
            plain_render_with_css(html, engine)
            plain_times.append(time.perf_counter() - start)
        if not fitted_times:
            continue
        fitted, plain = statistics.median(fitted_times), statistics.median(plain_times)
        rows.append((entry.slug, fitted, plain, report.passes, len(report.pdf)))
        print(
            f"{entry.slug:42} fitted {fitted:5.2f}s  plain {plain:5.2f}s"
            f"  ratio {fitted / plain:4.2f}  passes {report.passes}"
            f"  {len(report.pdf) / 1000:5.1f} KB"
        )
    fitted = statistics.median(row[1] for row in rows)
    plain = statistics.median(row[2] for row in rows)
    print(
        f"\nmedian per dossier: fitted {fitted:.2f}s, plain {plain:.2f}s,"
        f" ratio {fitted / plain:.2f};"
        f" mean passes {statistics.mean(row[3] for row in rows):.2f};"
        f" median size {statistics.median(row[4] for row in rows) / 1000:.1f} KB,"
        f" max {max(row[4] for row in rows) / 1000:.1f} KB"
    )


def plain_render_with_css(html: str, engine) -> bytes:
    """The plain reference gets the same stylesheets, but a fresh font setup and no caches."""
    from weasyprint.text.fonts import FontConfiguration

    fonts = FontConfiguration()
    links = re.findall(r'<link rel="stylesheet" href="([^"]+)">', html)
    html = re.sub(r'<link rel="stylesheet" href="[^"]+">', "", html)
    css = [
        *(
            weasyprint.CSS(filename=str(engine.layout.folder / href), font_config=fonts)
            for href in links
        ),
        weasyprint.CSS(filename=str(FONTS_CSS), font_config=fonts),
    ]
    return weasyprint.HTML(string=html, base_url=engine.layout.base_url).write_pdf(
        stylesheets=css, font_config=fonts
    )


if __name__ == "__main__":
    main()
