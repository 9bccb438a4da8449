"""Projects: found from the current folder upwards, `dossier init`, layouts from anywhere."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pikepdf
import pytest
from click.testing import CliRunner

from renderer.cli import main
from renderer.config import Config
from renderer.layouts import LAYOUTS_DIR, Layout, available
from renderer.project import Project, commented_settings
from tests.conftest import ROOT, small_catalog


def run(*args: str):
    return CliRunner().invoke(main, [str(arg) for arg in args])


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A catalog with a dossier.toml, and the current folder two levels below it."""
    small_catalog(tmp_path)
    (tmp_path / "dossier.toml").write_text('paper = "letter"\n', encoding="utf-8")
    below = tmp_path / "notes" / "drafts"
    below.mkdir(parents=True)
    monkeypatch.chdir(below)
    return tmp_path


def test_the_project_is_found_upwards_and_its_paths_are_relative_to_it(project):
    found = Project.find()
    assert found.root.resolve() == project
    assert str(found.records) == "../../records"
    assert found.config_path == Path("../../dossier.toml")
    assert found.config().paper == "letter"


def test_without_a_dossier_toml_the_current_folder_is_the_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    found = Project.find()
    assert (found.root, found.config_path, found.cache) == (Path(), None, Path("out/.cache"))


def test_config_names_the_project(project, tmp_path_factory):
    other = tmp_path_factory.mktemp("other")
    (other / "dossier.toml").write_text('paper = "a4"\n', encoding="utf-8")
    found = Project.find(other / "dossier.toml")
    assert (found.root, found.config().paper) == (other, "a4")


def test_commands_below_the_project_use_its_records_and_its_out_folder(project):
    result = run("check")
    assert result.exit_code == 0
    assert result.stderr.startswith("../../records/enterprise-architect.yaml:97: warning: ")
    assert result.output.splitlines()[-1] == "4 valid record(s), 0 error(s), 7 warning(s)"
    result = run("render", "sdet", "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stdout == "../../out/dossiers/sdet.pdf\n"
    assert (project / "out" / ".cache").is_dir()
    assert sorted(p.name for p in Path().iterdir()) == []  # nothing in the current folder


def test_a_layout_path_in_dossier_toml_is_relative_to_the_project(project):
    shutil.copytree(LAYOUTS_DIR / "memo", project / "house" / "memo")
    (project / "dossier.toml").write_text('layout = "house/memo"\n', encoding="utf-8")
    assert Project.find().config().layout == "../../house/memo"


def test_a_layout_in_the_projects_layouts_folder_is_found_by_name(project):
    _own_layout(project / "layouts" / "house", "Our house style")
    (project / "dossier.toml").write_text('layout = "house"\n', encoding="utf-8")
    assert Project.find().config().layout == "../../layouts/house"
    result = run("layouts")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[:2] == [
        "house  (project: ../../layouts/house)",
        "    Our house style",
    ]
    assert "classified  (built in: " in result.stdout
    assert run("render", "sdet", "--quiet").exit_code == 0


def test_an_unknown_layout_names_what_there_is(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("render", "x", "--layout", "clasified")
    assert result.exit_code == 1
    assert result.stderr == ("--layout: no layout 'clasified' (did you mean 'classified'?)\n")


def _own_layout(folder: Path, description: str) -> Path:
    shutil.copytree(LAYOUTS_DIR / "memo", folder)
    settings = folder / "layout.toml"
    text = settings.read_text(encoding="utf-8")
    settings.write_text(re.sub(r'(?m)^description = ".*"', f'description = "{description}"', text))
    return folder


def _installed_layout_package(site: Path, module: str = "fancy_layout") -> Path:
    """A layout package as pip would install it: the package folder and its dist-info."""
    _own_layout(site / module, "Fancy, from a package")
    info = site / "fancy_layout-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fancy-layout\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text(f"[dossier.layouts]\nfancy = {module}\n")
    return site


def test_a_layout_installed_by_another_package_is_found_by_name(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(_installed_layout_package(tmp_path / "site")))
    found = available()["fancy"]
    assert (found.origin, found.folder) == (
        "package fancy-layout 1.2",
        tmp_path / "site" / "fancy_layout",
    )
    assert Layout.find("fancy").folder == tmp_path / "site" / "fancy_layout"


def test_an_installed_layout_that_cannot_load_is_reported_by_name(tmp_path, monkeypatch):
    site = _installed_layout_package(tmp_path / "site", module="missing_module")
    shutil.rmtree(site / "missing_module")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.chdir(tmp_path)
    result = run("render", "x", "--layout", "fancy")
    assert result.exit_code == 1
    assert result.stderr == (
        "--layout: the layout of package fancy-layout 1.2: its entry point names"
        " 'missing_module', which is not an installed package\n"
    )


@pytest.mark.slow
def test_a_build_renders_with_a_layout_from_another_package(tmp_path):
    """In a new process, with spawned workers: they find the package as the command does."""
    site = _installed_layout_package(tmp_path / "site")
    small_catalog(tmp_path / "catalog")
    (tmp_path / "catalog" / "dossier.toml").write_text('layout = "fancy"\n', encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "renderer", "build", "--jobs", "2", "--quiet"],
        cwd=tmp_path / "catalog", capture_output=True, text=True, timeout=600,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(site)])},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with pikepdf.open(tmp_path / "catalog" / "out" / "dossiers" / "sdet.pdf") as pdf:
        fonts = {str(font.get("/BaseFont")) for font in pdf.pages[0].Resources.Font.values()}
    assert any("Archivo-Narrow" in name for name in fonts)  # the memo layout's own face


def test_init_writes_a_project_that_checks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run("init", "catalog")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "catalog/dossier.toml",
        "catalog/records/sdet.yaml",
        "catalog/.gitignore",
        "",
        "Next:",
        "cd catalog  # then",
        "dossier check",
        "dossier build",
        "dossier new 'Your Role Title'",
    ]
    assert (tmp_path / "catalog" / ".gitignore").read_text().splitlines()[-1] == "out/"
    monkeypatch.chdir(tmp_path / "catalog")
    result = run("check")
    assert result.exit_code == 0
    assert result.output.splitlines()[-1] == "1 valid record(s), 0 error(s), 3 warning(s)"


def test_init_overwrites_nothing_and_writes_nothing_when_a_file_is_there(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path(".gitignore").write_text("mine\n")
    result = run("init")
    assert (result.exit_code, result.stderr) == (1, ".gitignore: already exists; not overwritten\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gitignore"]
    assert Path(".gitignore").read_text() == "mine\n"


def test_the_commented_config_holds_every_setting_and_its_default():
    text = commented_settings()
    assert tomllib.loads(text) == {"mail": {"smtp": {}}}  # all commented out: the defaults
    uncommented = tomllib.loads(re.sub(r"(?m)^# (\w+ = )", r"\1", text))
    config = Config.model_validate(uncommented)  # every example is a valid setting
    defaults = Config()
    for name in Config.model_fields:
        if name != "mail" and getattr(defaults, name) is not None:
            assert getattr(config, name) == getattr(defaults, name)
    mail = Config.model_fields["mail"].annotation
    smtp = mail.model_fields["smtp"].annotation
    every = {*Config.model_fields, *mail.model_fields, *smtp.model_fields} - {"mail", "smtp"}
    assert set(re.findall(r"(?m)^# (\w+) = ", text)) == every
