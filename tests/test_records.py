from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from renderer.model import json_schema
from renderer.problems import InvalidInput
from renderer.records import check_catalog, dump_record, load_catalog, load_record
from tests.conftest import ROOT, SEED_SLUG, SEED_YAML


def edited(text: str, old: str, new: str) -> str:
    assert old in text, f"fixture text not found: {old!r}"
    return text.replace(old, new, 1)


def problems_for(folder: Path, text: str, name: str = SEED_SLUG) -> list[str]:
    (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    _, problems = check_catalog(folder)
    return [str(problem).removeprefix(str(folder) + "/") for problem in problems]


START_1175 = "- start: '11:75'"


def line_of(text: str, fragment: str) -> int:
    return text[: text.index(fragment)].count("\n") + 1


def test_the_committed_catalog_is_valid_without_warnings():
    catalog = load_catalog(ROOT / "records", strict=True)
    assert len(catalog) >= 16
    assert SEED_SLUG in catalog


def test_every_committed_record_is_complete_and_links_inside_the_catalog():
    catalog = load_catalog(ROOT / "records", strict=True)
    for entry in catalog:
        assert entry.path.read_text(encoding="utf-8").startswith("# yaml-language-server: $schema=")
        for related in entry.record.related:
            assert related.target in catalog, (entry.slug, related.target)


def test_the_published_schema_matches_the_model():
    published = json.loads((ROOT / "schema" / "record.schema.json").read_text(encoding="utf-8"))
    assert published == json_schema()


def test_dump_then_load_gives_the_same_record(tmp_path):
    record = load_record(SEED_YAML).record
    path = tmp_path / f"{SEED_SLUG}.yaml"
    path.write_text(dump_record(record), encoding="utf-8")
    assert load_record(path).record == record


def test_unknown_key_is_an_error_with_a_suggestion(lone_seed_dir, seed_yaml_text):
    text = edited(seed_yaml_text, "  verdict:", "  verdikt:")
    errors = [p for p in problems_for(lone_seed_dir, text) if "warning:" not in p]
    assert errors == [
        f"{SEED_SLUG}.yaml:{line_of(text, 'salary:')}: salary.verdict: required field is missing",
        f"{SEED_SLUG}.yaml:{line_of(text, '  verdikt:')}: salary.verdikt: unknown field"
        " (did you mean 'verdict'?)",
    ]


def test_every_problem_is_reported_at_once(lone_seed_dir, seed_yaml_text):
    text = edited(seed_yaml_text, "  percent: 85", "  percent: 185")
    text = edited(text, "  average: 210000", "  average: lots")
    text = edited(text, "- start: '11:00'", "- start: '11:75'")
    text = edited(text, "  match: 84", "  match: -4")
    text = edited(text, "question: WHAT", "headline: WHAT")
    errors = [p for p in problems_for(lone_seed_dir, text) if "warning:" not in p]
    name = f"{SEED_SLUG}.yaml"
    assert errors == sorted(
        [
            f"{name}:{line_of(text, 'title:')}: question: required field is missing",
            f"{name}:{line_of(text, 'headline:')}: headline: unknown field (allowed: "
            "title, slug, question, case, org_chart, habitat, salary, flight_risk, metrics,"
            " weaponry, encounter, jd_autopsy, day_log, burn_ward, related)",
            f"{name}:{line_of(text, '  average: lots')}: salary.average: input should be a valid"
            " integer (got 'lots')",
            f"{name}:{line_of(text, '  percent: 185')}: flight_risk.percent: input should be less"
            " than or equal to 100 (got 185)",
            f"{name}:{line_of(text, START_1175)}: day_log[1].start: expected a 24-hour"
            " time like '09:00' (got '11:75')",
            f"{name}:{line_of(text, '  match: -4')}: related[2].match: input should be greater"
            " than or equal to 0 (got -4)",
        ],
        key=lambda message: int(message.split(":")[1]),
    )


def test_salary_low_above_high(lone_seed_dir, seed_yaml_text):
    text = edited(seed_yaml_text, "  low: 194000", "  low: 294000")
    assert problems_for(lone_seed_dir, text)[0] == (
        f"{SEED_SLUG}.yaml:{line_of(text, 'salary:')}: salary: low (294000) is above high (237000)"
    )


def test_wrong_type_for_a_list(lone_seed_dir, seed_yaml_text):
    text = edited(seed_yaml_text, "habitat:\n- Large", "habitat: Large\nhabitat_: \n- Large")
    problems = problems_for(lone_seed_dir, text)
    assert (
        f"{SEED_SLUG}.yaml:{line_of(text, 'habitat:')}: habitat: input should be a valid list"
        in (problems[0])
    )


def test_log_entry_must_end_after_it_starts(lone_seed_dir, seed_yaml_text):
    text = edited(seed_yaml_text, "  end: '10:00'", "  end: '08:00'")
    assert problems_for(lone_seed_dir, text)[0] == (
        f"{SEED_SLUG}.yaml:{line_of(text, '- start: ')}: day_log[0]: end (08:00) is not after"
        " start (09:00)"
    )


def test_file_name_must_match_the_slug(lone_seed_dir, seed_yaml_text):
    (lone_seed_dir / f"{SEED_SLUG}.yaml").unlink()
    problems = problems_for(lone_seed_dir, seed_yaml_text, name="advocate")
    assert problems[0] == (
        f"advocate.yaml:{line_of(seed_yaml_text, 'title:')}: title: file name does not match the"
        f" title's slug; rename to {SEED_SLUG}.yaml"
    )


def test_duplicate_slugs_name_both_files(lone_seed_dir, seed_yaml_text):
    problems = problems_for(lone_seed_dir, seed_yaml_text, name="copy")
    duplicates = [p for p in problems if "is also used by" in p]
    assert len(duplicates) == 2


def test_related_outside_the_catalog_is_a_warning(lone_seed_dir):
    entries, problems = check_catalog(lone_seed_dir)
    assert len(entries) == 1
    assert [str(p).split(": ", 1)[1] for p in problems] == [
        "warning: related[0].slug: 'lead-backend-data-procurement-analyst' is not in this catalog;"
        " it will link to the web only",
        "warning: related[1].slug: 'enterprise-architect' is not in this catalog; it will link to"
        " the web only",
        "warning: related[2].slug: 'sdet' is not in this catalog; it will link to the web only",
    ]
    assert len(load_catalog(lone_seed_dir)) == 1
    with pytest.raises(InvalidInput):
        load_catalog(lone_seed_dir, strict=True)


def test_relating_to_itself_is_an_error(lone_seed_dir, seed_yaml_text):
    text = edited(seed_yaml_text, "slug: sdet", f"slug: {SEED_SLUG}")
    line = line_of(text, f"slug: {SEED_SLUG}")
    assert f"{SEED_SLUG}.yaml:{line}: related[2].slug: a specimen cannot relate to itself" in (
        problems_for(lone_seed_dir, text)
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "1: the file is empty"),
        (b"- a\n- b\n", "1: a record is a mapping of fields (title: ..., salary: ...), not a list"),
        (b"title: [unclosed\n", "2: while parsing a flow sequence"),
        (b"title: caf\xe9\n", "1: not UTF-8 text (byte 0xe9); save the file as UTF-8"),
    ],
)
def test_unusable_files(lone_seed_dir, content, message):
    (lone_seed_dir / "broken.yaml").write_bytes(content)
    problems = [str(p) for p in check_catalog(lone_seed_dir)[1] if p.is_error]
    assert problems[0].startswith(f"{lone_seed_dir}/broken.yaml:{message}")


def test_missing_and_empty_folders(tmp_path):
    assert [str(p) for p in check_catalog(tmp_path / "nope")[1]] == [
        f"{tmp_path}/nope: records folder not found"
    ]
    assert [str(p) for p in check_catalog(tmp_path)[1]] == [
        f"{tmp_path}: no records (*.yaml) in this folder"
    ]


class CountingStore(dict):
    """A store of bytes by key that counts what it is asked for."""

    def __init__(self):
        super().__init__()
        self.hits = 0

    def get(self, key):
        found = super().get(key)
        self.hits += found is not None
        return found

    def put(self, key, data):
        self[key] = data


def test_a_store_keeps_parsed_records_until_the_file_changes(tmp_path):
    folder = tmp_path / "records"
    folder.mkdir()
    (folder / f"{SEED_SLUG}.yaml").write_text(SEED_YAML.read_text(encoding="utf-8"))
    store = CountingStore()
    first = load_catalog(folder, store=store)
    again = load_catalog(folder, store=store)
    assert store.hits == 1
    assert [e.record for e in again] == [e.record for e in first]
    assert [e.lines for e in again] == [e.lines for e in first]
    text = (folder / f"{SEED_SLUG}.yaml").read_text()
    (folder / f"{SEED_SLUG}.yaml").write_text(edited(text, "  percent: ", "  percent: 1"))
    _, problems = check_catalog(folder, store)
    assert store.hits == 1  # the edited file was parsed, and its error found
    assert any("flight_risk.percent" in str(problem) for problem in problems)


@pytest.mark.parametrize(
    ("character", "code"), [("\u0007", "U+0007"), ("\u202e", "U+202E"), ("\x1b", "U+001B")]
)
def test_control_and_bidi_override_characters_are_errors(tmp_path, seed_yaml_text, character, code):
    escaped = character.encode("unicode_escape").decode()  # as YAML writes it between quotes
    item = f'- "odd{escaped}Large"'
    text = edited(seed_yaml_text, "habitat:\n- Large", f"habitat:\n{item}\n- Large")
    line = line_of(text, item)
    assert problems_for(tmp_path, text) == [
        f"{SEED_SLUG}.yaml:{line}: habitat[0]: control character {code} at"
        " character 4: it prints nothing or reorders the text around it; remove it"
    ]


def test_a_raw_control_character_is_located(tmp_path, seed_yaml_text):
    text = edited(seed_yaml_text, "habitat:\n- Large", "habitat:\n- odd\x07Large")
    assert problems_for(tmp_path, text) == [
        f"{SEED_SLUG}.yaml:{line_of(text, '- odd')}: character U+0007 is not allowed in YAML"
        " text; remove it"
    ]


def test_text_the_layouts_fonts_cannot_print_is_a_warning(tmp_path, seed_yaml_text):
    text = edited(seed_yaml_text, "habitat:\n- ", "habitat:\n- 首席 مرحبا שלום Ελληνικά Кириллица ")
    problems = [p for p in problems_for(tmp_path, text) if "related" not in p]
    assert problems == [
        f"{SEED_SLUG}.yaml:{line_of(text, 'habitat:')}: warning: habitat[0]: U+9996 '首',"
        " U+5E2D '席' have no glyph in layout classified"
    ]


def test_the_glyph_warning_names_the_layout_and_is_an_error_when_strict(tmp_path, seed_yaml_text):
    path = tmp_path / f"{SEED_SLUG}.yaml"
    path.write_text(edited(seed_yaml_text, "habitat:\n- ", "habitat:\n- 首 "), encoding="utf-8")
    _, problems = check_catalog(tmp_path, layout_name="memo")
    glyphs = [str(p) for p in problems if "glyph" in p.message]
    assert glyphs == [f"{path}:{line_of(path.read_text(), 'habitat:')}: warning: habitat[0]:"
                      " U+9996 '首' has no glyph in layout memo"]  # fmt: skip
    with pytest.raises(InvalidInput) as raised:
        load_catalog(tmp_path, strict=True, layout_name="memo")
    assert glyphs[0] in [str(problem) for problem in raised.value.problems]


def refusal(path: Path) -> list[str]:
    return [str(problem) for problem in check_catalog(path.parent)[1] if problem.is_error]


def make_socket(path: Path):
    import socket

    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    return server


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (os.mkfifo, "a FIFO"),
        (lambda path: path.symlink_to("/dev/zero"), "a link to a character device"),
        (lambda path: path.symlink_to("/dev/null"), "a link to a character device"),
        (Path.mkdir, "a folder"),
        (make_socket, "a socket"),
    ],
)
def test_special_files_are_refused_unread(tmp_path, make, kind):
    path = tmp_path / "records" / "x.yaml"
    path.parent.mkdir()
    made = make(path)
    started = time.monotonic()
    assert refusal(path) == [f"{path}: not a regular file ({kind}); records must be regular files"]
    assert time.monotonic() - started < 5
    if made is not None:
        made.close()


def test_a_link_to_a_fifo_given_as_a_path_is_refused_unread(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "x.yaml").symlink_to(fifo)
    with pytest.raises(InvalidInput) as caught:
        load_record(tmp_path / "x.yaml")
    assert str(caught.value) == (
        f"{tmp_path}/x.yaml: not a regular file (a link to a FIFO); records must be regular files"
    )


def test_a_link_to_a_regular_record_is_read(tmp_path):
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / f"{SEED_SLUG}.yaml").symlink_to(SEED_YAML)
    assert load_record(tmp_path / "records" / f"{SEED_SLUG}.yaml").slug == SEED_SLUG


def test_a_missing_or_looping_file_is_one_line(tmp_path):
    (tmp_path / "gone.yaml").symlink_to(tmp_path / "nowhere")
    (tmp_path / "loop.yaml").symlink_to(tmp_path / "loop.yaml")
    assert [str(p) for p in check_catalog(tmp_path)[1]] == [
        f"{tmp_path}/gone.yaml: cannot read: no such file or directory",
        f"{tmp_path}/loop.yaml: cannot read: too many levels of symbolic links",
    ]


def test_a_huge_sparse_file_is_refused_at_once(tmp_path):
    path = tmp_path / "huge.yaml"
    with path.open("wb") as stream:
        stream.truncate(50 * 10**9)  # 50 GB of nothing: reading it whole would never end
    started = time.monotonic()
    assert refusal(path) == [f"{path}: file is 50000.0 MB; records are at most 1 MB"]
    assert time.monotonic() - started < 5


def test_an_explicit_slug_names_the_file(tmp_path, seed_yaml_text):
    title = "title: Staff AI/ML Observability Advocate"
    text = edited(seed_yaml_text, title, "title: 首席观测布道师\nslug: chief-observer")
    (tmp_path / "named").mkdir()
    problems = problems_for(tmp_path / "named", text, name="chief-observer")
    assert [p for p in problems if "warning:" not in p] == []
    (tmp_path / "misnamed").mkdir()
    problems = problems_for(tmp_path / "misnamed", text)
    assert [p for p in problems if "warning:" not in p] == [
        f"{SEED_SLUG}.yaml:3: slug: file name does not match its slug; rename to"
        " chief-observer.yaml"
    ]


def test_a_title_without_a_slug_is_asked_for_one_at_its_line(tmp_path, seed_yaml_text):
    title = "title: Staff AI/ML Observability Advocate"
    text = edited(seed_yaml_text, title, "title: 首席观测布道师")
    assert problems_for(tmp_path, text) == [
        f"{SEED_SLUG}.yaml:2: title: the title has no letters or digits that spell a file name"
        " (a-z, 0-9; accented and Greek or Cyrillic letters are spelled out); add a field slug:"
        " with one, like 'head-of-synergy'"
    ]


def test_a_transliterated_title_names_its_file(tmp_path, seed_yaml_text):
    title = "title: Staff AI/ML Observability Advocate"
    text = edited(seed_yaml_text, title, "title: Zoë Ångström")
    problems = problems_for(tmp_path, text, name="zoe-angstrom")
    assert [p for p in problems if "warning:" not in p] == []


def test_two_records_with_one_slug_name_each_other(tmp_path, seed_yaml_text):
    title = "title: Staff AI/ML Observability Advocate"
    first = edited(seed_yaml_text, title, "title: 首席\nslug: chief")
    second = edited(seed_yaml_text, title, "title: Chief")
    (tmp_path / "chief.yaml").write_text(first, encoding="utf-8")
    (tmp_path / "chief.yml").write_text(second, encoding="utf-8")
    errors = [str(p) for p in check_catalog(tmp_path)[1] if p.is_error]
    assert errors == [
        f"{tmp_path}/chief.yaml:3: slug: slug 'chief' is also used by {tmp_path}/chief.yml",
        f"{tmp_path}/chief.yml:2: title: slug 'chief' is also used by {tmp_path}/chief.yaml",
    ]


def test_an_explicit_slug_is_written_after_the_title_and_kept_by_a_store(tmp_path, seed_yaml_text):
    title = "title: Staff AI/ML Observability Advocate"
    text = edited(seed_yaml_text, title, "title: 首席\nslug: chief")
    (tmp_path / "chief.yaml").write_text(text, encoding="utf-8")
    record = load_record(tmp_path / "chief.yaml").record
    assert dump_record(record).splitlines()[1:3] == ["title: 首席", "slug: chief"]
    store = CountingStore()
    first = load_catalog(tmp_path, store=store)
    again = load_catalog(tmp_path, store=store)
    assert store.hits == 1
    assert again["chief"].record == first["chief"].record == record


def test_a_skeleton_takes_a_slug_and_reports_a_bad_title_once():
    from renderer.skeleton import skeleton

    assert skeleton("首席执行官", "chief-executive").slug == "chief-executive"
    assert skeleton("Zoë Ångström").slug == "zoe-angstrom"
    with pytest.raises(InvalidInput) as caught:
        skeleton("Bell\u0007 Ringer")
    assert str(caught.value) == (
        "dossier new: title: control character U+0007 at character 5: it prints nothing or"
        " reorders the text around it; remove it"
    )
    with pytest.raises(InvalidInput) as caught:
        skeleton("Evil", "../evil")
    assert str(caught.value) == (
        "dossier new: slug: expected a slug like 'enterprise-architect' (a-z, 0-9, single"
        " dashes) (got '../evil')"
    )
