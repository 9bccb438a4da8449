from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from renderer.cli import main
from tests.conftest import SEED_SLUG, SEED_TEXT, SEED_YAML, modules_after, small_catalog


def run(*args: str):
    return CliRunner().invoke(main, [str(arg) for arg in args])


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_has_help(command):
    result = run(command, "--help")
    assert result.exit_code == 0
    assert main.commands[command].help
    assert "Exit codes: 0 success; 1 invalid input" in result.output


def test_the_help_shows_every_commands_summary_whole():
    """Click cuts summaries to fit a line ("render every dossier into..."); ours wrap."""
    import re

    result = CliRunner().invoke(main, ["--help"], terminal_width=80)
    assert result.exit_code == 0
    listed = " ".join(result.output.partition("Commands:")[2].split())
    for name, command in sorted(main.commands.items()):
        paragraph = " ".join(command.help.partition("\n\n")[0].split())
        summary = re.match(r".*?\.(?=\s+[^a-z]|$)|.*", paragraph)[0]  # click's first sentence
        assert f" {name} {summary} " in f" {listed} "
    assert "..." not in listed


def test_help_starts_fast_without_weasyprint_or_pydantic():
    code = "from renderer.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    assert not {"weasyprint", "pydantic", "yaml"} & modules_after(code)


def test_check_passes_on_the_committed_catalog():
    result = run("check", "--strict")
    assert (result.exit_code, result.stdout) == (
        0,
        "16 valid record(s), 0 error(s), 0 warning(s)\n",
    )


def test_check_lists_every_problem_and_exits_1(catalog_dir: Path):
    seed = catalog_dir / f"{SEED_SLUG}.yaml"
    seed.write_text(seed.read_text().replace("percent: 85", "percent: 850"), encoding="utf-8")
    (catalog_dir / "sdet.yaml").write_text("title: SDET\ntitle: again\n", encoding="utf-8")
    result = run("check", "--records", catalog_dir)
    percent_line = seed.read_text().splitlines().index("  percent: 850") + 1
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{catalog_dir}/sdet.yaml:2: duplicate key 'title' (first on line 1)",
        f"{seed}:{percent_line}: flight_risk.percent: input should be less than or equal to 100"
        " (got 850)",
    ]
    assert result.stdout == "14 valid record(s), 2 error(s), 0 warning(s)\n"


def test_check_strict_reports_and_counts_warnings_as_errors(tmp_path: Path):
    from tests.conftest import RECORDS

    sdet = tmp_path / "sdet.yaml"  # alone, so its related specimens are outside the catalog
    sdet.write_text((RECORDS / "sdet.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    lines = sdet.read_text(encoding="utf-8").splitlines()
    warnings = [
        f"{sdet}:{lines.index(f'  slug: {slug}') + 1}: warning: related[{index}].slug: {slug!r}"
        " is not in this catalog; it will link to the web only"
        for index, slug in enumerate(
            ["developer-productivity-lead", SEED_SLUG, "senior-scrum-master"]
        )
    ]
    lenient = run("check", "--records", tmp_path)
    assert (lenient.exit_code, lenient.stdout) == (
        0,
        "1 valid record(s), 0 error(s), 3 warning(s)\n",
    )
    assert lenient.stderr.splitlines() == warnings
    strict = run("check", "--records", tmp_path, "--strict")
    assert (strict.exit_code, strict.stdout) == (
        1,
        "0 valid record(s), 3 error(s), 0 warning(s)\n",
    )
    assert strict.stderr.splitlines() == [line.replace("warning: ", "") for line in warnings]


def test_wrong_usage_exits_2():
    assert run("check", "--no-such-option").exit_code == 2
    assert run("import").exit_code == 2


def test_import_writes_the_record_and_prints_its_path(tmp_path: Path):
    result = run("import", SEED_TEXT, "--records", tmp_path)
    target = tmp_path / f"{SEED_SLUG}.yaml"
    assert (result.exit_code, result.stdout) == (0, f"{target}\n")
    assert target.read_text(encoding="utf-8") == SEED_YAML.read_text(encoding="utf-8")


def test_import_never_overwrites_without_force(tmp_path: Path):
    target = tmp_path / f"{SEED_SLUG}.yaml"
    target.write_text("mine", encoding="utf-8")
    result = run("import", SEED_TEXT, "--records", tmp_path)
    assert result.exit_code == 1
    assert result.stderr == f"{SEED_TEXT}: {target} already exists; use --force to overwrite it\n"
    assert target.read_text(encoding="utf-8") == "mine"
    assert run("import", SEED_TEXT, "--records", tmp_path, "--force").exit_code == 0
    assert target.read_text(encoding="utf-8") == SEED_YAML.read_text(encoding="utf-8")


def test_import_of_broken_text_writes_nothing(tmp_path: Path):
    broken = tmp_path / "broken.txt"
    broken.write_text(SEED_TEXT.read_text().split("[05]")[0], encoding="utf-8")
    out = tmp_path / "records"
    result = run("import", broken, SEED_TEXT, "--records", out)
    assert result.exit_code == 1
    assert "file ends before section [05] THE BULLSHIT METRICS" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"{SEED_SLUG}.yaml"]


def test_bad_config_is_reported_with_its_line(tmp_path: Path):
    config = tmp_path / "dossier.toml"
    config.write_text('paper = "a3"\nbase_url = "https://x.example"\npapr = 1\n', encoding="utf-8")
    result = run("check", "--config", config)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{config}:1: paper: input should be 'a4' or 'letter' (got 'a3')",
        f"{config}:3: papr: unknown setting (did you mean 'paper'?)",
    ]


def test_schema_command_prints_the_published_schema():
    from tests.conftest import ROOT

    result = run("schema")
    assert result.stdout == (ROOT / "schema" / "record.schema.json").read_text(encoding="utf-8")


def test_module_entry_point():
    output = subprocess.run(
        [sys.executable, "-m", "renderer", "--version"], capture_output=True, text=True, check=True
    )
    assert output.stdout.startswith("dossier ")


def test_render_writes_one_pdf_per_record(tmp_path: Path):
    from tests import pdfs

    result = run("render", "sdet", SEED_YAML, "--out", tmp_path, "--cache", tmp_path / "cache")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [f"{tmp_path}/{SEED_SLUG}.pdf", f"{tmp_path}/sdet.pdf"]
    assert pdfs.page_sizes((tmp_path / "sdet.pdf").read_bytes()) == [(595.3, 841.9)]


def test_render_of_an_unknown_slug_or_nothing(tmp_path: Path):
    result = run("render", "no-such-role", "--out", tmp_path)
    assert (result.exit_code, result.stderr) == (1, "records: no record 'no-such-role'\n")
    assert run("render", "--out", tmp_path).exit_code == 2
    assert list(tmp_path.iterdir()) == []


def test_a_mistyped_slug_gets_the_closest_names(tmp_path: Path):
    result = run("render", "sdte", "--out", tmp_path)
    assert (result.exit_code, result.stderr) == (
        1,
        "records: no record 'sdte' (did you mean 'sdet'?)\n",
    )
    mail = run("mail", "senior-scrum-mastr", "sdet", "--to", "a@example.org", "--eml-dir", tmp_path)
    assert (mail.exit_code, mail.stderr) == (
        1,
        "records: no record 'senior-scrum-mastr' (did you mean 'senior-scrum-master'?)\n",
    )
    assert list(tmp_path.iterdir()) == []


def test_render_of_a_record_too_long_writes_no_pdf(tmp_path: Path):
    import yaml

    data = yaml.safe_load(SEED_YAML.read_text(encoding="utf-8"))
    data["burn_ward"]["complaints"] = [dict(c) for c in data["burn_ward"]["complaints"] * 8]
    source = tmp_path / f"{SEED_SLUG}.yaml"
    source.write_text(yaml.safe_dump(data), encoding="utf-8")
    out = tmp_path / "out"
    result = run("render", source, "--out", out, "--cache", tmp_path / "cache")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"{source}: does not fit on one page even at the smallest")
    assert not out.exists() or list(out.iterdir()) == []


RENDER_SDET = [sys.executable, "-m", "renderer", "render", "sdet"]


def test_rendering_is_reproducible_across_processes(tmp_path: Path):
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        subprocess.run(
            [*RENDER_SDET, "--out", str(out), "--cache", str(out / "cache")],
            check=True,
            capture_output=True,
        )
    assert (first / "sdet.pdf").read_bytes() == (second / "sdet.pdf").read_bytes()


def test_build_writes_dossiers_and_the_compendium(tmp_path: Path):
    out = tmp_path / "out"
    result = run("build", "--records", small_catalog(tmp_path), "--out", out, "--jobs", "1")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in (out / "dossiers").iterdir()) == [
        "enterprise-architect.pdf",
        "lead-backend-data-procurement-analyst.pdf",
        "sdet.pdf",
        f"{SEED_SLUG}.pdf",
    ]
    assert (
        result.stdout.splitlines()[-1] == f"{out}/compendium.pdf (7 pages, 0 dossier(s) rendered)"
    )
    again = run("compendium", "--records", small_catalog(tmp_path / "b"), "--out", out / "c.pdf",
                "--cache", out / ".cache", "--jobs", "1")  # fmt: skip
    assert again.stdout == f"{out}/c.pdf (7 pages, 0 dossier(s) rendered)\n"
    assert (out / "c.pdf").read_bytes() == (out / "compendium.pdf").read_bytes()


def test_new_writes_a_valid_skeleton_and_never_overwrites(tmp_path):
    result = run("new", "Chief Vibes Officer", "--records", tmp_path)
    target = tmp_path / "chief-vibes-officer.yaml"
    assert (result.exit_code, result.stdout) == (0, f"{target}\n")
    assert target.read_text().startswith("# yaml-language-server: $schema=")
    check = run("check", "--records", tmp_path)
    assert check.exit_code == 0 and "1 valid record(s), 0 error(s)" in check.stdout
    target.write_text(target.read_text() + "# my edits\n")
    again = run("new", "Chief Vibes Officer", "--records", tmp_path)
    assert (again.exit_code, again.stderr) == (1, f"{target}: already exists; not overwritten\n")
    assert target.read_text().endswith("# my edits\n")


def test_render_writes_a_png_beside_the_pdf_and_takes_a_layout_folder(tmp_path):
    import shutil

    from PIL import Image

    from renderer.layouts import LAYOUTS_DIR

    own = tmp_path / "my-layout"
    shutil.copytree(LAYOUTS_DIR / "classified", own)
    out = tmp_path / "out"
    result = run("render", SEED_YAML, "--out", out, "--cache", tmp_path / "cache", "--png",
                 "--dpi", "72", "--layout", own, "--jobs", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"{out / SEED_SLUG}.pdf", f"{out / SEED_SLUG}.png"]
    with Image.open(out / f"{SEED_SLUG}.png") as image:
        assert abs(image.width - 595) <= 1 and abs(image.height - 842) <= 1  # A4 at 72 dpi
    missing = run("render", SEED_YAML, "--out", out, "--layout", "nope")
    assert missing.exit_code == 1
    assert missing.stderr == "--layout: no layout 'nope' (available: classified, memo)\n"


def test_an_unknown_layout_in_the_config_is_named_at_its_line(tmp_path: Path):
    from tests.conftest import RECORDS

    config = tmp_path / "dossier.toml"
    config.write_text('paper = "a4"\n\nlayout = "fancy"\n', encoding="utf-8")
    problem = f"{config}:3: layout: no layout 'fancy' (available: classified, memo)"
    check = run("check", "--config", config, "--records", RECORDS)
    assert (check.exit_code, check.stderr) == (1, problem + "\n")
    assert check.stdout == "16 valid record(s), 1 error(s), 0 warning(s)\n"
    out = tmp_path / "out"
    render = run("render", "sdet", "--config", config, "--records", RECORDS, "--out", out,
                 "--cache", out / ".cache")  # fmt: skip
    assert (render.exit_code, render.stderr) == (1, problem + "\n")
    build = run("build", "--config", config, "--records", RECORDS, "--out", out)
    assert (build.exit_code, build.stderr) == (1, problem + "\n")
    option = run("render", "sdet", "--config", config, "--records", RECORDS, "--out", out,
                 "--layout", "fancy")  # fmt: skip
    assert (option.exit_code, option.stderr) == (
        1,
        "--layout: no layout 'fancy' (available: classified, memo)\n",
    )
    assert not out.exists()


@pytest.mark.slow
def test_compendium_contact_sheet_shows_every_page(tmp_path):
    from PIL import Image

    records, out = small_catalog(tmp_path), tmp_path / "c.pdf"
    result = run("compendium", "--records", records, "--out", out, "--cache", tmp_path / "cache",
                 "--contact-sheet", "--jobs", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == str(tmp_path / "c.png")
    pages = int(result.stdout.split("(")[1].split(" pages")[0])
    with Image.open(tmp_path / "c.png") as sheet:
        thumbnail_height = round(160 * 842 / 595)
        rows = -(-pages // 8)
        assert sheet.width == 12 + 8 * (160 + 12)
        assert abs(sheet.height - (12 + rows * (thumbnail_height + 16 + 12))) <= rows
    from renderer.raster import page_images

    labels = [label for _, label in page_images(out.read_bytes(), "", lambda width: 0.1)]
    assert labels == ["i", "ii", *(str(n) for n in range(1, pages - 1))]  # as printed


def test_an_interrupted_build_gives_the_terminal_its_cursor_back(tmp_path):
    """The progress bar hides the cursor while it draws; Ctrl-C must not leave it hidden."""
    import os
    import pty
    import select
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT, small_catalog

    small_catalog(tmp_path)
    leader, follower = pty.openpty()
    build = subprocess.Popen(
        [sys.executable, "-m", "renderer", "build", "--jobs", "2"], cwd=tmp_path,
        stdin=follower, stdout=follower, stderr=follower,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    os.close(follower)
    # Generous limits: under `pytest -n 2` on two cores the build shares them with other tests
    screen, deadline, interrupted = b"", time.monotonic() + 180, False
    try:
        while time.monotonic() < deadline:
            if not interrupted and b"rendering" in screen:
                build.send_signal(signal.SIGINT)
                interrupted, deadline = True, time.monotonic() + 60
            if select.select([leader], [], [], 0.1)[0]:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the terminal closed with the last process on it
                    break
                if not chunk:
                    break
                screen += chunk
            elif build.poll() is not None and interrupted:
                break
        exit_code = build.wait(10)
    except subprocess.TimeoutExpired:
        build.kill()
        build.wait()
        pytest.fail(f"interrupted: {interrupted}; still running; the screen: {screen[-500:]!r}")
    finally:
        os.close(leader)
    assert exit_code == 130, screen[-500:]
    assert interrupted and b"interrupted" in screen
    assert screen.count(b"\x1b[?25l") == screen.count(b"\x1b[?25h") >= 1
