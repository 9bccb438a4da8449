"""Benchmark: compendium builds against one single-document WeasyPrint render, side by side.

Usage: .venv/bin/python bench/compendium.py [--sizes 200 1000] [--jobs 2] [--skip-reference]
                                [--skip-build] [--only-build | --only-dask | --only-reference]

Generates synthetic catalogs (the committed records as templates, realistic lengths, related links
inside the catalog), then reports for each size: cold build time, peak memory of the whole
process tree, file size per page; then each change to the catalog (add a record first in order,
rename one, remove one, edit one record's text) with the dossiers it rendered and its
time as a share of the cold build. For the smallest size: the same figures for one WeasyPrint
document holding every dossier, with the ratios, and cold `dossier build` against cold
`dossier render --all` (interleaved rounds, fresh caches).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from renderer.config import Config
from renderer.context import dossier_context
from renderer.layouts import FONTS_CSS, Layout
from renderer.records import dump_record, load_catalog

REFERENCE_SCALE = 0.73  # one document has one root size: the smallest, so every dossier fits a page


def synthetic_catalog(size: int, folder: Path) -> Path:
    """`size` records made from the committed ones, renamed, linked among themselves."""
    templates = [entry.record for entry in load_catalog("records")]
    chooser = random.Random(size)
    titles = [
        f"{templates[i % len(templates)].title} {i // len(templates) + 1:04d}" for i in range(size)
    ]
    folder.mkdir(parents=True, exist_ok=True)
    for index, title in enumerate(titles):
        template = templates[index % len(templates)]
        others = chooser.sample([t for t in titles if t != title], len(template.related))
        related = [
            item.model_copy(update={"title": other, "slug": None})
            for item, other in zip(template.related, others, strict=True)
        ]
        record = template.model_copy(update={"title": title, "related": related})
        (folder / f"{record.slug}.yaml").write_text(dump_record(record), encoding="utf-8")
    return folder


class PeakMemory:
    """Polls the RSS of this process's children (the build or reference runs in them); in MB."""

    def __init__(self):
        self.peak, self._running = 0.0, True
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._running = False
        self._thread.join()

    def _poll(self):
        me = psutil.Process()
        while self._running:
            processes = me.children(recursive=True)
            total = 0
            for process in processes:
                with contextlib.suppress(psutil.Error):  # a worker may just have exited
                    total += process.memory_info().rss
            self.peak = max(self.peak, total / 1e6)
            time.sleep(0.05)


def timed_command(command: list[str]) -> tuple[float, float, str]:
    """(seconds, peak MB of the process tree, stdout) of a command in a fresh process."""
    with PeakMemory() as memory:
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - start
    return seconds, memory.peak, done.stdout


def dossier(*args: object) -> list[str]:
    return [sys.executable, "-m", "renderer", *map(str, args)]


def timed_build(catalog_dir: Path, cache: Path, out: Path, jobs: int) -> dict:
    """`dossier compendium` in a fresh process, its whole process tree watched for memory."""
    seconds, peak, stdout = timed_command(
        dossier(
            "compendium",
            "--records",
            catalog_dir,
            "--cache",
            cache,
            "--out",
            out,
            "--jobs",
            jobs,
            "--quiet",
        )
    )
    pages, rendered = re.search(r"\((\d+) pages, (\d+) dossier", stdout).groups()
    return {
        "seconds": seconds,
        "peak_mb": peak,
        "pages": int(pages),
        "bytes_per_page": out.stat().st_size / int(pages),
        "rendered": int(rendered),
    }


def single_document(catalog_dir: Path, out: Path) -> dict:
    """The reference, in a fresh process watched like the builds (this process stays small, so
    that no later fork of it is mistaken for a large build process)."""
    command = [sys.executable, __file__, "--single-document", str(catalog_dir), str(out)]
    with PeakMemory() as memory:
        done = subprocess.run(command, capture_output=True, text=True, check=True)
    figures = json.loads(done.stdout)
    size = out.stat().st_size
    return {**figures, "peak_mb": memory.peak, "bytes_per_page": size / figures["pages"]}


def render_single_document(catalog_dir: Path, out: Path) -> dict:
    """Every dossier's final HTML in one WeasyPrint document (one root scale for all)."""
    import weasyprint
    from weasyprint.text.fonts import FontConfiguration

    config, catalog = Config(), load_catalog(catalog_dir)
    layout = Layout.find(config.layout)
    bodies = []
    for entry in catalog:
        html = layout.render_html(dossier_context(entry.record, config, scale=REFERENCE_SCALE))
        body = html.split("<body>", 1)[1].rsplit("</body>", 1)[0]
        bodies.append(f'<div style="break-after: page">{body}</div>')
    head = html.split("<body>", 1)[0]
    document = head + "<body>" + "".join(bodies) + "</body></html>"
    start = time.perf_counter()
    fonts = FontConfiguration()
    stylesheet = weasyprint.CSS(filename=str(FONTS_CSS), font_config=fonts)
    pdf = weasyprint.HTML(string=document, base_url=layout.base_url).write_pdf(
        stylesheets=[stylesheet], font_config=fonts
    )
    seconds = time.perf_counter() - start
    out.write_bytes(pdf)
    return {"seconds": seconds, "pages": _pages(pdf)}


def _pages(pdf: bytes) -> int:
    import io

    import pikepdf

    with pikepdf.open(io.BytesIO(pdf)) as document:
        return len(document.pages)


def _middle(catalog_dir: Path) -> Path:
    paths = sorted(catalog_dir.glob("*.yaml"))
    return paths[len(paths) // 2]


def edit_one(catalog_dir: Path) -> None:
    path = _middle(catalog_dir)
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace("  diagnosis: ", "  diagnosis: Re-examined. ", 1), encoding="utf-8"
    )


def add_first(catalog_dir: Path) -> None:
    """A new record that sorts first: every page number after it changes."""
    source = _middle(catalog_dir)
    text = source.read_text(encoding="utf-8")
    title = re.search(r"^title: (.*)$", text, re.MULTILINE)[1]
    (catalog_dir / "aardvark-alignment-architect.yaml").write_text(
        text.replace(f"title: {title}", "title: Aardvark Alignment Architect", 1),
        encoding="utf-8",
    )


def rename_one(catalog_dir: Path) -> None:
    """A record's title (and so its slug and file) changes."""
    source = _middle(catalog_dir)
    text = source.read_text(encoding="utf-8")
    title = re.search(r"^title: (.*)$", text, re.MULTILINE)[1]
    (catalog_dir / "renamed-specimen.yaml").write_text(
        text.replace(f"title: {title}", "title: Renamed Specimen", 1), encoding="utf-8"
    )
    source.unlink()


def remove_one(catalog_dir: Path) -> None:
    _middle(catalog_dir).unlink()


CHANGES = [
    ("adding a record first in order", add_first),
    ("renaming a record", rename_one),
    ("removing a record", remove_one),
    ("editing one record's text", edit_one),
]


def build_against_render_all(records: Path, root: Path, jobs: int, rounds: int = 2) -> None:
    """Cold `dossier build` (every dossier and the compendium) against cold `render --all`,
    interleaved, each round with fresh caches."""
    times = {"build": [], "render --all": []}
    for round_ in range(rounds):
        for name in times:
            out = root / f"{name.split()[0]}-{round_}"
            command = "build" if name == "build" else "render"
            # build keeps its cache in <out>/.cache: a fresh folder is a cold build
            extra = [] if name == "build" else ["--all", "--cache", out / "cache"]
            seconds, _, _ = timed_command(
                dossier(
                    command, *extra, "--records", records, "--out", out, "--jobs", jobs, "--quiet"
                )
            )
            times[name].append(seconds)
    build, render_all = (statistics.median(times[name]) for name in times)
    print(
        f"cold build {build:.1f} s against cold render --all {render_all:.1f} s"
        f" (medians of {rounds}, interleaved): {build / render_all:.2f}",
        flush=True,
    )


def dask_against_pool(records: Path, root: Path, jobs: int, rounds: int = 2) -> None:
    """Cold `dossier compendium` on a 2-worker Dask LocalCluster against the process pool,
    interleaved, each round with fresh caches; the two files must be the same bytes."""
    from dask.distributed import LocalCluster

    times = {"pool": [], "dask": []}
    cluster = LocalCluster(
        n_workers=jobs,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        local_directory=str(root / "dask"),
    )
    with cluster:
        for round_ in range(rounds):
            outputs = {}
            for name in times:
                out, cache = root / f"{name}-{round_}.pdf", root / f"{name}-{round_}-cache"
                where = (
                    ["--jobs", jobs]
                    if name == "pool"
                    else ["--scheduler", cluster.scheduler_address]
                )
                command = dossier(
                    "compendium", "--records", records, "--cache", cache, "--out", out, "--quiet",
                    *where,
                )  # fmt: skip
                seconds, _, _ = timed_command(command)
                times[name].append(seconds)
                outputs[name] = out.read_bytes()
            assert outputs["pool"] == outputs["dask"], "Dask gave other bytes"
    pool, dask = (statistics.median(times[name]) for name in times)
    print(
        f"cold compendium on Dask ({jobs} workers) {dask:.1f} s against the process pool"
        f" {pool:.1f} s (medians of {rounds}, interleaved, same bytes): {dask / pool:.2f}",
        flush=True,
    )


def compendium_against_one_document(records: Path, root: Path, jobs: int, rounds: int = 2) -> None:
    """Cold `dossier compendium` against one WeasyPrint document of the same dossiers,
    interleaved, each round with a fresh cache."""
    times = {"compendium": [], "one document": []}
    for round_ in range(rounds):
        cold = timed_build(records, root / f"cache-{round_}", root / f"c{round_}.pdf", jobs)
        times["compendium"].append(cold["seconds"])
        times["one document"].append(single_document(records, root / f"s{round_}.pdf")["seconds"])
    compendium, one = (statistics.median(times[name]) for name in times)
    print(
        f"cold compendium {compendium:.1f} s against one WeasyPrint document {one:.1f} s"
        f" (medians of {rounds}, interleaved): {compendium / one:.2f}",
        flush=True,
    )


def describe(figures: dict) -> str:
    return (
        f"{figures['seconds']:.1f} s, {figures['pages']} pages, peak {figures['peak_mb']:.0f} MB,"
        f" {figures['bytes_per_page'] / 1000:.1f} KB/page"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument("--rounds", type=int, default=2, help="of build against render --all")
    parser.add_argument("--only-build", action="store_true", help="only build against render --all")
    parser.add_argument("--only-dask", action="store_true", help="only Dask against the pool")
    parser.add_argument("--only-reference", action="store_true",
                        help="only the compendium against one document")  # fmt: skip
    parser.add_argument("--single-document", nargs=2, metavar=("RECORDS", "OUT"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    if args.single_document:
        records, out = map(Path, args.single_document)
        print(json.dumps(render_single_document(records, out)))
        return
    with tempfile.TemporaryDirectory(prefix="dossier-bench-") as scratch:
        root = Path(scratch)
        if args.only_build or args.only_dask or args.only_reference:
            records = synthetic_catalog(min(args.sizes), root / "records")
            compare = (
                build_against_render_all
                if args.only_build
                else dask_against_pool
                if args.only_dask
                else compendium_against_one_document
            )
            compare(records, root / "builds", args.jobs, args.rounds)
            return
        for size in args.sizes:
            records = synthetic_catalog(size, root / f"records-{size}")
            cache = root / f"cache-{size}"
            cold = timed_build(records, cache, root / f"c{size}.pdf", args.jobs)
            print(f"N={size} cold build: {describe(cold)}", flush=True)
            for what, change in CHANGES:
                change(records)
                warm = timed_build(records, cache, root / f"w{size}.pdf", args.jobs)
                share = warm["seconds"] / cold["seconds"]
                print(
                    f"N={size} rebuild after {what} ({warm['rendered']} rendered):"
                    f" {describe(warm)}; {share:.1%} of the cold build",
                    flush=True,
                )
            if size == min(args.sizes) and not args.skip_build:
                build_against_render_all(records, root / f"builds-{size}", args.jobs, args.rounds)
            if size == min(args.sizes) and not args.skip_reference:
                ref = single_document(records, root / f"single{size}.pdf")
                print(f"N={size} one WeasyPrint document: {describe(ref)}")
                print(
                    f"N={size} compendium / one document:"
                    f" time {cold['seconds'] / ref['seconds']:.2f},"
                    f" size per page {cold['bytes_per_page'] / ref['bytes_per_page']:.2f},"
                    f" peak memory {cold['peak_mb'] / ref['peak_mb']:.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
