"""Regenerate the README walk-through's pictures: run the commands it shows, on a scratch copy
of records/, and keep the PNGs they write (and two screenshots of `dossier preview`).

    .venv/bin/python docs/walkthrough/make_images.py     # needs the test extras and chromium
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "docs" / "img"
RECORD = Path(__file__).with_name("chief-vibes-officer.yaml")
SLUG = RECORD.stem


def dossier(*args: str, cwd: Path) -> None:
    subprocess.run([sys.executable, "-m", "renderer", *args], cwd=cwd, check=True)


def keep(source: Path, name: str, colours: int = 96) -> None:
    """A palette PNG (a few dozen grey and paper tones) is a third of the size, and looks alike."""
    with Image.open(source) as image:
        image.convert("RGB").quantize(colours).save(IMAGES / name, optimize=True)
    print(IMAGES / name, (IMAGES / name).stat().st_size // 1024, "KB")


def screenshots(work: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    command = [sys.executable, "-m", "renderer", "preview", SLUG, "--port", "0"]
    server = subprocess.Popen(command, cwd=work, stderr=subprocess.PIPE, text=True)
    try:
        url = re.search(r"http://\S+", server.stderr.readline()).group(0)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"))
            page = browser.new_page(viewport={"width": 1000, "height": 760})
            page.goto(url)
            page.screenshot(path=work / "preview.png")
            record = work / "records" / f"{SLUG}.yaml"
            text = record.read_text(encoding="utf-8")
            record.write_text(text.replace("percent: 91", "percent: 191"), encoding="utf-8")
            expect(page.locator("#problems")).to_be_visible(timeout=20_000)
            page.set_viewport_size({"width": 1000, "height": 300})
            page.screenshot(path=work / "problem.png")
            record.write_text(text, encoding="utf-8")
            browser.close()
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        shutil.copytree(ROOT / "records", work / "records")
        dossier("new", "Chief Vibes Officer", cwd=work)
        dossier("render", SLUG, "--png", "--dpi", "60", "--out", "new", "--quiet", cwd=work)
        keep(work / "new" / f"{SLUG}.png", "walkthrough-new.png")
        text = RECORD.read_text(encoding="utf-8").replace("../../schema", "../schema")
        (work / "records" / f"{SLUG}.yaml").write_text(text, encoding="utf-8")
        screenshots(work)
        keep(work / "preview.png", "walkthrough-preview.png")
        keep(work / "problem.png", "walkthrough-problem.png")
        for layout in ("classified", "memo"):
            out = f"out-{layout}"
            dossier("render", SLUG, "--png", "--dpi", "72", "--layout", layout, "--out", out,
                    "--quiet", cwd=work)  # fmt: skip
            keep(work / out / f"{SLUG}.png", f"walkthrough-{layout}.png")


if __name__ == "__main__":
    main()
