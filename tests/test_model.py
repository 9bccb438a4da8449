from __future__ import annotations

import pytest
from pydantic import ValidationError

from renderer.model import Record, Salary, default_case_number, money, slugify


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Staff AI/ML Observability Advocate", "staff-ai-ml-observability-advocate"),
        ("SDET", "sdet"),
        ("  VP of -- Platform   Strategy!! ", "vp-of-platform-strategy"),
        ("Head of R&D (Acting)", "head-of-r-d-acting"),
    ],
)
def test_slugify(title, slug):
    assert slugify(title) == slug


def test_money_uses_symbols_and_grouping():
    assert money(210000, "USD") == "$210,000"
    assert money(98000, "EUR") == "€98,000"
    assert money(120000, "CHF") == "CHF 120,000"


def salary(**changes) -> dict:
    data = {"average": 210, "low": 194, "high": 237, "note": "between {low} and {high}"}
    return {**data, "verdict": "Too much.", **changes}


def test_salary_note_is_filled_with_amounts():
    assert Salary(**salary()).filled_note() == "between $194 and $237"


def test_salary_note_keeps_escaped_braces():
    note = Salary(**salary(note="{{sic}} from {low}")).filled_note()
    assert note == "{sic} from $194"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"low": 300}, "low (300) is above high (237)"),
        ({"average": 100}, "average (100) lies outside the range 194..237"),
        ({"note": "from {lo}"}, "unknown placeholder {lo}; write {low}, {high} or {average}"),
    ],
)
def test_salary_rules(changes, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Salary(**salary(**changes))


def test_case_number_is_stable_and_derived_from_the_slug():
    assert default_case_number("sdet") == default_case_number("sdet")
    assert default_case_number("sdet") != default_case_number("enterprise-architect")
    assert default_case_number("sdet").startswith("OT-")


def test_every_record_part_refuses_unknown_keys():
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Record.model_validate({"title": "X", "titel": "typo"})
