"""README.md's command reference is generated from the commands by cog: it must be current."""

from __future__ import annotations

import shutil
from pathlib import Path

from cogapp import Cog

from tests.conftest import ROOT

REGENERATE = "README.md is stale: run .venv/bin/cog -r README.md"


def cog_check(path: Path) -> tuple[int, str]:
    """cog --check, in this process (a fresh one would import the package again)."""
    cog = Cog()
    messages: list[str] = []
    cog.set_output(stdout=_Lines(messages), stderr=_Lines(messages))
    status = cog.main(["cog", "--check", "--diff", "--check-fail-msg", REGENERATE, str(path)])
    return status, "".join(messages)


class _Lines:
    def __init__(self, into: list[str]):
        self.write, self.flush = into.append, lambda: None


def test_the_command_reference_in_the_readme_is_current():
    from renderer.cli import main

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert [name for name in sorted(main.commands) if f"\n### dossier {name}\n" not in text] == []
    status, said = cog_check(ROOT / "README.md")
    assert status == 0, said


def test_a_stale_command_reference_fails(tmp_path: Path):
    stale = tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", stale)
    text = stale.read_text(encoding="utf-8")
    assert "\n### dossier render\n" in text
    stale.write_text(text.replace("\n### dossier render\n", "\n### dossier rendre\n"), "utf-8")
    status, said = cog_check(stale)
    assert status == 5
    assert REGENERATE in said
