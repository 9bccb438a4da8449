from __future__ import annotations

import pytest
from pydantic import ValidationError

from renderer.model import MAX_SLUG, Record, Salary, default_case_number, money, slugify


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Staff AI/ML Observability Advocate", "staff-ai-ml-observability-advocate"),
        ("SDET", "sdet"),
        ("  VP of -- Platform   Strategy!! ", "vp-of-platform-strategy"),
        ("Head of R&D (Acting)", "head-of-r-d-acting"),
        ("Zoë Ångström", "zoe-angstrom"),
        ("Zoe\u0308 A\u030angstro\u0308m", "zoe-angstrom"),  # accents written apart
        ("Leiter der Straßenbahn", "leiter-der-strassenbahn"),
        ("Ведущий инженер", "vedushchiy-inzhener"),
        ("Ελληνικά", "ellinika"),
        ("ＳＤＥＴ²", "sdet2"),
        ("🦄 Chief Unicorn", "chief-unicorn"),
        ("首席 Vibes 官", "vibes"),
        ("首席执行官", ""),
        ("データ", ""),
        ("!!!", ""),
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


def test_salary_note_fills_all_three_and_nothing_else():
    note = Salary(**salary(note="{average} in {{{low}..{high}}} {{low}}")).filled_note()
    assert note == "$210 in {$194..$237} {low}"


PLACEHOLDERS = "write {low}, {high} or {average} (a literal brace as {{ or }})"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"low": 300}, "low (300) is above high (237)"),
        ({"average": 100}, "average (100) lies outside the range 194..237"),
        ({"note": "from {lo}"}, f"unknown placeholder {{lo}}; {PLACEHOLDERS}"),
        ({"note": "from {}"}, f"unknown placeholder {{}}; {PLACEHOLDERS}"),
        ({"note": "from {0}"}, f"unknown placeholder {{0}}; {PLACEHOLDERS}"),
        ({"note": "{low.real}"}, f"unknown placeholder {{low.real}}; {PLACEHOLDERS}"),
        ({"note": "{low[0]}"}, f"unknown placeholder {{low[0]}}; {PLACEHOLDERS}"),
        ({"note": "{low:x}"}, "placeholder {low:x} has a format; amounts are written for you:"
                              " write just {low}"),
        ({"note": "{low!z}"}, "placeholder {low!z} has a format; amounts are written for you:"
                              " write just {low}"),
        ({"note": "{low:{high}}"}, "placeholder {low:{high}} has a format; amounts are written"
                                   " for you: write just {low}"),
        ({"note": "{high:>100000000}"}, "placeholder {high:>100000000} has a format; amounts are"
                                        " written for you: write just {high}"),
        ({"note": "from {low"}, f"a brace opens or closes no placeholder; {PLACEHOLDERS}"),
        ({"note": "to } here"}, f"a brace opens or closes no placeholder; {PLACEHOLDERS}"),
        ({"high": 10**400}, "amounts are at most 1,000,000,000,000 (a million million)"),
        ({"high": 10**12 + 1}, "amounts are at most 1,000,000,000,000 (a million million)"),
    ],
)  # fmt: skip
def test_salary_rules(changes, message):
    with pytest.raises(ValidationError) as caught:
        Salary(**salary(**changes))
    (error,) = caught.value.errors()
    assert error["msg"].removeprefix("Value error, ") == message


def test_the_largest_amount_is_accepted_and_written_out():
    top = Salary(**salary(low=0, average=10**12, high=10**12, note="{high}"))
    assert top.filled_note() == "$1,000,000,000,000"


def test_case_number_is_stable_and_derived_from_the_slug():
    assert default_case_number("sdet") == default_case_number("sdet")
    assert default_case_number("sdet") != default_case_number("enterprise-architect")
    assert default_case_number("sdet").startswith("OT-")


def test_every_record_part_refuses_unknown_keys():
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Record.model_validate({"title": "X", "titel": "typo"})


def record_data(**changes) -> dict:
    import yaml

    from tests.conftest import SEED_YAML

    data = yaml.safe_load(SEED_YAML.read_text(encoding="utf-8"))
    return {**data, **changes}


def errors_of(data: dict) -> list[tuple[tuple, str]]:
    with pytest.raises(ValidationError) as caught:
        Record.model_validate(data)
    return [(error["loc"], error["msg"]) for error in caught.value.errors()]


NO_SLUG = (
    "the title has no letters or digits that spell a file name (a-z, 0-9; accented and Greek or"
    " Cyrillic letters are spelled out); add a field slug: with one, like 'head-of-synergy'"
)


@pytest.mark.parametrize("title", ["首席执行官", "!!!", "— ・ —"])
def test_a_title_without_a_slug_asks_for_one_at_the_title(title):
    assert errors_of(record_data(title=title)) == [(("title",), NO_SLUG)]


def test_an_explicit_slug_names_the_record():
    record = Record.model_validate(record_data(title="首席执行官", slug="chief-executive"))
    assert record.slug == "chief-executive"
    assert record.model_dump()["slug"] == "chief-executive"
    assert Record.model_validate(record_data(title="Zoë Ångström")).slug == "zoe-angstrom"


def test_a_title_too_long_for_a_file_name_asks_for_a_shorter_one():
    title = "Staff " * 41
    assert errors_of(record_data(title=title)) == [
        (("title",), "the title spells a file name of 245 characters, over the 120 allowed;"
                     " shorten the title or add a field slug: with one"),
    ]  # fmt: skip
    assert Record.model_validate(record_data(title=title, slug="staff")).slug == "staff"
    assert Record.model_validate(record_data(title="x" * 120)).slug == "x" * 120


@pytest.mark.parametrize(
    ("slug", "message"),
    [
        ("a" * 121, "String should have at most 120 characters"),
        ("Bad Slug", "String should match pattern '^[a-z0-9]+(-[a-z0-9]+)*$'"),
        ("../etc", "String should match pattern '^[a-z0-9]+(-[a-z0-9]+)*$'"),
        (".hidden", "String should match pattern '^[a-z0-9]+(-[a-z0-9]+)*$'"),
    ],
)
def test_explicit_slugs_are_slugs(slug, message):
    assert errors_of(record_data(slug=slug)) == [(("slug",), message)]


def test_related_specimens_need_a_slug_a_qr_code_can_hold():
    related = record_data()["related"]
    titled = [{**related[0], "title": "测试"}, *related[1:]]
    titled[0].pop("slug", None)
    assert errors_of(record_data(related=titled)) == [(("related", 0, "title"), NO_SLUG)]
    long = [{**related[0], "slug": "s" * 121}, *related[1:]]
    assert errors_of(record_data(related=long)) == [
        (("related", 0, "slug"), "String should have at most 120 characters")
    ]


def test_a_record_holds_at_most_20000_characters_of_text():
    data = record_data()
    data["habitat"] = ["word " * 3000] * 2
    ((location, message),) = errors_of(data)
    assert location == ()
    assert message.startswith("Value error, the record has 3")
    assert message.endswith(
        " characters of text, and no page holds more than 20,000; shorten the longest sections"
    )


def test_the_longest_slug_fits_a_qr_code_with_room_for_the_base_url():
    from renderer.qr import qr_svg

    base_url = "https://specimens.example.org/" + "catalog/" * 100  # 830 characters
    assert "<svg" in qr_svg(f"{base_url}/{'s' * MAX_SLUG}")
