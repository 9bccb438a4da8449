"""The tool as a package: the sdist and the wheel hold what it needs, and the wheel, installed in
a fresh venv, runs every command in an empty folder with no checkout of this repository in
sight (build, venv and pip take a minute or two: slow)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pikepdf
import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow
DATA = {"layouts": "renderer/layouts", "fonts": "renderer/fonts"}  # source -> in the wheel


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    source = tmp_path_factory.mktemp("source") / "dossier"
    listing = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    tracked = subprocess.run(listing, cwd=ROOT, capture_output=True, check=True)
    for name in tracked.stdout.decode().split("\0"):  # what a commit would hold, nothing else
        if name and (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    done = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(source)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "WARNING" not in done.stdout + done.stderr
    return out


def _source_files(folder: str) -> set[str]:
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", folder],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    return {line.removeprefix(f"{folder}/") for line in tracked.stdout.splitlines()}


def test_the_wheel_holds_every_layout_and_font_file_and_no_tests(dist):
    (wheel,) = dist.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, packaged in DATA.items():
        inside = {n.removeprefix(f"{packaged}/") for n in names if n.startswith(f"{packaged}/")}
        assert inside == _source_files(folder)
    assert "renderer/records/sdet.yaml" in names  # the example `dossier init` writes
    assert "renderer/preview_site/live.js" in names
    assert not [name for name in names if name.startswith(("tests/", "layouts/", "fonts/"))]


def test_the_sdist_holds_the_sources_of_the_package_data(dist):
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.partition("/")[2] for name in archive.getnames()}
    for folder in DATA:
        assert {f"{folder}/{name}" for name in _source_files(folder)} <= names
    assert {"pyproject.toml", "README.md", "records/sdet.yaml"} <= names


@pytest.fixture(scope="module")
def installed(dist, tmp_path_factory) -> Path:
    """A fresh venv outside the repository with the wheel (and the png extra) installed."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    (wheel,) = dist.glob("*.whl")
    done = subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check",
         f"{wheel}[png]"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return venv


def dossier(venv: Path, folder: Path, *args: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL"))}
    return subprocess.run(
        [str(venv / "bin" / "dossier"), *args], cwd=folder, capture_output=True, text=True,
        env={**environment, "PATH": f"{venv / 'bin'}:{environment.get('PATH', '')}"}, timeout=900,
    )  # fmt: skip


def test_the_installed_tool_runs_every_command_in_an_empty_folder(installed, tmp_path):
    probe = "import renderer; print(renderer.__file__)"
    where = subprocess.run([installed / "bin" / "python", "-c", probe], cwd=tmp_path,
                           capture_output=True, text=True, check=True)  # fmt: skip
    assert where.stdout.startswith(str(installed))  # the wheel's copy, not this checkout
    steps = [
        ["--version"],
        ["init"],
        ["check"],
        ["layouts"],
        ["build", "--quiet"],
        ["render", "sdet", "--png", "--quiet"],
        ["mail", "sdet", "--to", "ada@example.org", "--from", "records@example.org",
         "--eml-dir", "drafts", "--quiet"],
    ]  # fmt: skip
    for args in steps:
        done = dossier(installed, tmp_path, *args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
    with pikepdf.open(tmp_path / "out" / "compendium.pdf") as compendium:
        assert len(compendium.pages) > 1
    with pikepdf.open(tmp_path / "out" / "dossiers" / "sdet.pdf") as dossier_pdf:
        assert len(dossier_pdf.pages) == 1
    assert (tmp_path / "out" / "dossiers" / "sdet.png").stat().st_size > 10_000
    assert [path.suffix for path in (tmp_path / "drafts").iterdir()] == [".eml"]


def test_a_second_catalog_builds_with_its_own_layout(installed, tmp_path):
    catalog = tmp_path / "second"
    assert dossier(installed, tmp_path, "init", "second").returncode == 0
    shown = dossier(installed, catalog, "layouts").stdout
    memo = Path(shown.split("memo  (built in: ")[1].split(")")[0])  # inside the venv
    assert memo.is_relative_to(installed)
    shutil.copytree(memo, catalog / "layouts" / "house")
    settings = catalog / "dossier.toml"
    settings.write_text('layout = "house"\n' + settings.read_text(), encoding="utf-8")
    (catalog / "records" / "deep").mkdir()
    done = dossier(installed, catalog / "records" / "deep", "build", "--quiet")  # found upwards
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("../../out/compendium.pdf (")
    with pikepdf.open(catalog / "out" / "dossiers" / "sdet.pdf") as pdf:
        fonts = {str(font.get("/BaseFont")) for font in pdf.pages[0].Resources.Font.values()}
    assert any("Archivo-Narrow" in name for name in fonts)
    assert dossier(installed, catalog, "layouts").stdout.startswith(
        "house  (project: layouts/house)"
    )


def test_a_layout_package_as_layouts_readme_shows_installs_and_renders(installed, tmp_path):
    """The pyproject.toml of layouts/README.md, built and installed with pip into the venv."""
    readme = (ROOT / "layouts" / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Publishing a layout as a package")[1]
    pyproject = section.split("```toml\n")[1].split("```")[0]
    package = tmp_path / "house-style"
    shutil.copytree(ROOT / "layouts" / "memo", package / "house_style")
    (package / "pyproject.toml").write_text(pyproject, encoding="utf-8")
    done = subprocess.run(
        [installed / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check",
         str(package)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    catalog = tmp_path / "catalog"
    assert dossier(installed, tmp_path, "init", "catalog").returncode == 0
    listed = dossier(installed, catalog, "layouts").stdout
    assert "house  (package house-style 1.0: " in listed
    done = dossier(installed, catalog, "render", "sdet", "--layout", "house", "--quiet")
    assert done.returncode == 0, done.stderr
    with pikepdf.open(catalog / "out" / "dossiers" / "sdet.pdf") as pdf:
        fonts = {str(font.get("/BaseFont")) for font in pdf.pages[0].Resources.Font.values()}
    assert any("Archivo-Narrow" in name for name in fonts)
