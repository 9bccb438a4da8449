from __future__ import annotations

from pathlib import Path

import pytest

from renderer.problems import InvalidInput, did_you_mean
from renderer.selection import select_entries, select_records
from tests.conftest import small_catalog


def test_a_mistyped_slug_is_told_the_closest_ones(tmp_path: Path):
    records = small_catalog(tmp_path)
    (records / "sdet.yaml").rename(records / "sdets.yaml")  # left out: its slug is sdet
    selection = select_records(records, ("sdte", "enterprise-architekt", "cfo"))
    assert [str(problem) for problem in selection.failures] == [
        f"{records}: no record 'cfo'",
        f"{records}: no record 'enterprise-architekt' (did you mean 'enterprise-architect'?)",
        f"{records}: no record 'sdte' (did you mean 'sdets'?)",
    ]
    assert selection.entries == []


def test_select_entries_raises_with_the_suggestion(tmp_path: Path):
    records = small_catalog(tmp_path)
    with pytest.raises(InvalidInput) as caught:
        select_entries(records, ("sdte",))
    assert str(caught.value) == f"{records}: no record 'sdte' (did you mean 'sdet'?)"


def test_one_way_to_suggest_names():
    assert did_you_mean("papr", ["paper", "layout"]) == " (did you mean 'paper'?)"
    assert did_you_mean("lead", ["leads", "lead-a", "lad", "x"]) == (
        " (did you mean 'leads', 'lad' or 'lead-a'?)"
    )
    assert did_you_mean("zzz", ["paper"]) == ""
