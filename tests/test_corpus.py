"""Broken and hostile input through the CLI: one clear line per problem, exit 1, nothing touched."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pikepdf
import pytest
from click.testing import CliRunner

from renderer.cli import main
from tests.conftest import SEED_SLUG, SEED_YAML

CORPUS = Path(__file__).parent / "corpus"
RECORD_CASES = tomllib.loads((CORPUS / "records" / "cases.toml").read_text(encoding="utf-8"))
TEXT_CASES = tomllib.loads((CORPUS / "text" / "cases.toml").read_text(encoding="utf-8"))


def run(*args):
    return CliRunner().invoke(main, [str(arg) for arg in args])


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file of the folder but the tool's own cache, with its size and time."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))
            if p.is_file() and ".cache" not in p.relative_to(folder).parts}  # fmt: skip


@pytest.fixture
def out(tmp_path):
    """An output folder holding a file the commands did not make: it must stay as it is."""
    folder = tmp_path / "out"
    (folder / "dossiers").mkdir(parents=True)
    (folder / "dossiers" / "keep-me.pdf").write_bytes(b"%PDF-1.7 someone else's file")
    (folder / "compendium.pdf").write_bytes(b"%PDF-1.7 an earlier compendium")
    return folder


def assert_refused(result, expected: list[str]) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.stderr.splitlines()[: len(expected)] == expected


def alone(tmp_path: Path, source: Path | None = None, name: str = "", data: bytes = b"") -> Path:
    folder = tmp_path / "records"
    folder.mkdir()
    target = folder / (source.name if source else name)
    target.write_bytes(source.read_bytes() if source else data)
    return target


@pytest.mark.parametrize("name", sorted(RECORD_CASES))
@pytest.mark.parametrize("command", ["check", "render", "compendium"])
def test_broken_records_get_their_answer(name, command, tmp_path, out):
    path = alone(tmp_path, CORPUS / "records" / name)
    before = snapshot(out)
    cache = ("--cache", out / ".cache")
    arguments = {
        "check": ("check", "--records", path.parent),
        "render": ("render", path, "--out", out / "dossiers", *cache),
        "compendium": (
            "compendium",
            "--records",
            path.parent,
            "--out",
            out / "compendium.pdf",
            *cache,
        ),
    }[command]
    result = run(*arguments)
    assert_refused(result, [RECORD_CASES[name].replace("{file}", str(path))])
    assert snapshot(out) == before


@pytest.mark.parametrize("name", sorted(TEXT_CASES))
def test_broken_text_records_are_not_imported(name, tmp_path):
    source = CORPUS / "text" / name
    records = tmp_path / "records"
    result = run("import", source, "--records", records)
    assert_refused(result, [TEXT_CASES[name].replace("{file}", str(source))])
    assert not records.exists() or not any(records.iterdir())


def test_a_50_mb_file_is_refused_without_being_parsed(tmp_path):
    path = alone(tmp_path, name="huge.yaml", data=b"title: " + b"x" * 50_000_000 + b"\n")
    started = time.perf_counter()
    result = run("check", "--records", path.parent)
    assert_refused(result, [f"{path}: file is 50.0 MB; records are at most 1 MB"])
    assert time.perf_counter() - started < 5


def test_a_deep_alias_bomb_is_refused_fast(tmp_path):
    levels = [b'l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 30):
        refs = ",".join([f"*l{level - 1}"] * 10)
        levels.append(f"l{level}: &l{level} [{refs}]".encode())
    path = alone(tmp_path, name="bomb.yaml", data=b"\n".join(levels) + b"\n")
    started = time.perf_counter()
    result = run("check", "--records", path.parent)
    assert result.exit_code == 1
    assert "anchors and aliases (*name) are not supported in records" in result.stderr
    assert time.perf_counter() - started < 5


def test_a_byte_order_mark_is_accepted(tmp_path):
    path = alone(tmp_path, name=SEED_YAML.name, data=b"\xef\xbb\xbf" + SEED_YAML.read_bytes())
    result = run("check", "--records", path.parent)
    assert result.exit_code == 0
    assert result.stdout.startswith("1 valid record(s), 0 error(s)")


HOSTILE = {
    "question": "<script>alert(1)</script> WHAT DOES IT DO?",
    "org_chart.note": "<img src=file:///etc/passwd> <link rel=attachment href=file:///etc/hosts>",
    "flight_risk.level": 'HIGH" style="background:url(file:///etc/passwd)',
    "encounter.advice": '<a href="javascript:alert(1)">click</a> url(file:///etc/passwd)',
    "burn_ward.intro": "<style>@import url(http://example.org/x.css)</style> http://example.org/x.png",
}


def hostile_record(tmp_path: Path) -> Path:
    import yaml

    data = yaml.safe_load(SEED_YAML.read_text(encoding="utf-8"))
    for dotted, text in HOSTILE.items():
        *parents, key = dotted.split(".")
        target = data
        for parent in parents:
            target = target[parent]
        target[key] = text
    return alone(tmp_path, name=SEED_YAML.name, data=yaml.safe_dump(data).encode())


def test_markup_and_urls_in_fields_print_as_text_and_fetch_nothing(tmp_path, out):
    path = hostile_record(tmp_path)
    result = run("render", path, "--out", out / "dossiers", "--cache", out / ".cache")
    assert result.exit_code == 0, result.output
    pdf = (out / "dossiers" / f"{SEED_SLUG}.pdf").read_bytes()
    with pikepdf.open(io.BytesIO(pdf)) as document:
        names = document.Root.get("/Names", pikepdf.Dictionary())
        assert "/EmbeddedFiles" not in names and "/JavaScript" not in names
        assert "/OpenAction" not in document.Root and "/AA" not in document.Root
        actions = [a.A for page in document.pages for a in page.get("/Annots", []) if "/A" in a]
        uris = [str(action.URI) for action in actions if "/URI" in action]
        assert all(uri.startswith("https://specimens.example.org/") for uri in uris)
        text = _text(document)
    for fragment in ("<script>alert(1)</script>", "<img src=file:///etc/passwd>",
                     "javascript:alert(1)", "url(file:///etc/passwd)"):  # fmt: skip
        assert fragment in text


def _text(document: pikepdf.Pdf) -> str:
    import pdfplumber

    buffer = io.BytesIO()
    document.save(buffer)
    with pdfplumber.open(buffer) as pdf:
        return re.sub(r"\s+", " ", " ".join(page.extract_text() or "" for page in pdf.pages))


def test_import_never_overwrites_and_render_never_deletes(tmp_path, out):
    records = tmp_path / "records"
    records.mkdir()
    existing = records / f"{SEED_SLUG}.yaml"
    existing.write_text("# someone's draft\n")
    result = run("import", CORPUS.parent / "fixtures" / "text" / "seed.txt", "--records", records)
    assert result.exit_code == 1
    assert existing.read_text() == "# someone's draft\n"
    shutil.copy(SEED_YAML, tmp_path / "seed.yaml")
    before = snapshot(out)
    result = run("render", tmp_path / "seed.yaml", "--out", out / "dossiers", "--cache",
                 out / ".cache")  # fmt: skip
    assert result.exit_code == 0
    after = snapshot(out)
    assert {name: stamp for name, stamp in after.items() if name in before} == before
    assert (out / "dossiers" / "keep-me.pdf").exists()


def _rendered_entries(cache: Path) -> dict[Path, int]:
    """The cache's rendered dossiers (file -> time written): the entries holding two PDFs, the
    page with its slots open and the copy printed alone."""
    found = {}
    for path in cache.rglob("*.cache"):
        with contextlib.suppress(OSError):
            if path.read_bytes().count(b"%PDF-") == 2:
                found[path] = path.stat().st_mtime_ns
    return found


@pytest.mark.slow
def test_a_build_killed_midway_leaves_only_complete_files_and_the_next_one_reuses_them(tmp_path):
    from tests.conftest import small_catalog

    records, out = small_catalog(tmp_path), tmp_path / "out"
    command = [sys.executable, "-m", "renderer", "build", "--records", str(records),
               "--out", str(out), "--jobs", "1", "--quiet"]  # fmt: skip
    build = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(_rendered_entries(out / ".cache")) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    build.send_signal(signal.SIGKILL)
    build.wait()
    kept = _rendered_entries(out / ".cache")
    assert 2 <= len(kept) < 4, "the build was not killed midway"
    for path in [*(out / "dossiers").glob("*.pdf"), *out.glob("*.pdf")]:
        with pikepdf.open(path):  # whatever is there is complete
            pass
    again = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "Traceback" not in again.stderr
    assert re.search(r"compendium.pdf \(\d+ pages, \d+ dossier\(s\) rendered\)", again.stdout)
    for path in (out / "dossiers").glob("*.pdf"):
        with pikepdf.open(path) as document:
            assert len(document.pages) == 1
    assert len(list((out / "dossiers").glob("*.pdf"))) == 4
    after = _rendered_entries(out / ".cache")
    assert {path: after[path] for path in kept} == kept  # reused, not rendered again
    assert not list(out.rglob(".dossier-tmp.*")), "temporary files left behind"


def _seed_with(tmp_path: Path, **fields: str) -> Path:
    import yaml

    data = yaml.safe_load(SEED_YAML.read_text(encoding="utf-8"))
    for dotted, text in fields.items():
        *parents, key = dotted.split("__")
        target = data
        for parent in parents:
            target = target[int(parent)] if parent.isdigit() else target[parent]
        target[key] = text
    return alone(tmp_path, name=SEED_YAML.name, data=yaml.safe_dump(data).encode())


@pytest.mark.parametrize("layout", ["classified", "memo"])
def test_long_unbroken_words_and_urls_wrap_inside_the_page(tmp_path, out, layout):
    url = "https://example.org/" + "x" * 300
    fields = {
        "flight_risk__diagnosis": "Z" * 400,
        "burn_ward__complaints__0__quote": url,
        "burn_ward__complaints__1__source": "r/" + "y" * 120,
    }
    path = _seed_with(tmp_path, **fields)
    result = run("render", path, "--out", out / "dossiers", "--cache", out / ".cache",
                 "--layout", layout)  # fmt: skip
    assert result.exit_code == 0, result.output
    import pdfplumber

    with pdfplumber.open(out / "dossiers" / f"{SEED_SLUG}.pdf") as pdf:
        (page,) = pdf.pages
        assert all(char["x0"] >= 0 and char["x1"] <= page.width for char in page.chars)


def test_a_5000_character_word_is_refused_as_too_long(tmp_path, out):
    path = _seed_with(tmp_path, flight_risk__diagnosis="A" * 5000)
    result = run("render", path, "--out", out / "dossiers", "--cache", out / ".cache")
    assert result.exit_code == 1
    assert "does not fit on one page even at the smallest legible type" in result.stderr
    assert not (out / "dossiers" / f"{SEED_SLUG}.pdf").exists()
