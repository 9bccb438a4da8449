"""Shared fixtures: the repository's paths and small record factories."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RECORDS = ROOT / "records"
SEED_TEXT = ROOT / "tests" / "fixtures" / "text" / "seed.txt"
SEED_SLUG = "staff-ai-ml-observability-advocate"
SEED_YAML = RECORDS / f"{SEED_SLUG}.yaml"


@pytest.fixture
def seed_yaml_text() -> str:
    return SEED_YAML.read_text(encoding="utf-8")


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    """A writable copy of the committed catalog."""
    target = tmp_path / "records"
    shutil.copytree(RECORDS, target)
    return target


@pytest.fixture
def lone_seed_dir(tmp_path: Path, seed_yaml_text: str) -> Path:
    """A folder holding only the seed record (its related links point outside it)."""
    folder = tmp_path / "records"
    folder.mkdir()
    (folder / f"{SEED_SLUG}.yaml").write_text(seed_yaml_text, encoding="utf-8")
    return folder
