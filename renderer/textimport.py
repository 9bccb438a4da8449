"""The scraped FILE RECORD text format, read into a record and written back out."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .inputfiles import read_bounded
from .model import (
    CURRENCY_SYMBOLS,
    MAX_AMOUNT,
    MAX_SLUG,
    SECTION_TITLES,
    Record,
    money,
    slugify,
)
from .problems import InvalidInput, Problem
from .records import validate
from .yamlsource import YamlDocument, YamlProblem, decode

MAX_TEXT_BYTES = 1_000_000  # a scraped record is about 10 kB

SECTION_HEADING = re.compile(r"^\[(\d{2})\]\s+(.+)$")
AMOUNT = re.compile(r"([$€£¥])\s?(\d{1,3}(?:,\d{3})+|\d+)")
SYMBOL_CURRENCIES = {symbol: code for code, symbol in CURRENCY_SYMBOLS.items()}
QUOTED = r"[\"“](.+)[\"”]"
# Camel-case words that must survive the splitting of glued aliases.
CAMEL_WORDS = (
    "DevOps", "MLOps", "FinOps", "DataOps", "SecOps", "DevSecOps", "GitOps", "AIOps",
    "GenAI", "OpenAI", "ChatGPT", "GitHub", "GitLab", "LinkedIn", "PowerPoint", "SharePoint",
    "JavaScript", "TypeScript", "YouTube", "iPhone", "McKinsey", "PhD", "DevEx", "DevRel",
    "SaaS", "PaaS", "IaaS",
)  # fmt: skip


class FormatError(Exception):
    """The text does not follow the format at a line; `expected` names what was due."""

    def __init__(self, line: int, section: str, message: str):
        super().__init__(message)
        self.line, self.section, self.message = line, section, message


@dataclass
class Lines:
    """The non-blank lines of one part of the file, read front to back."""

    section: str
    items: list[tuple[int, str]]
    end_line: int
    position: int = 0

    def more(self) -> bool:
        return self.position < len(self.items)

    def peek(self) -> str | None:
        return self.items[self.position][1] if self.more() else None

    def take(self, pattern: str, expected: str) -> tuple[int, re.Match]:
        if not self.more():
            raise FormatError(self.end_line, self.section, f"section ends before {expected}")
        number, text = self.items[self.position]
        match = re.fullmatch(pattern, text)
        if match is None:
            raise FormatError(number, self.section, f"expected {expected}, found {_clip(text)!r}")
        self.position += 1
        return number, match

    def finish(self) -> None:
        if self.more():
            number, text = self.items[self.position]
            raise FormatError(number, self.section, f"unexpected line {_clip(text)!r}")


@dataclass
class Builder:
    """Collects record data with the text line of every field, for located validation."""

    data: dict = field(default_factory=dict)
    lines: dict = field(default_factory=dict)

    def put(self, location: tuple, value: object, line: int) -> None:
        target = self.data
        for index, part in enumerate(location[:-1]):
            self.lines.setdefault(location[: index + 1], line)
            following = location[index + 1]
            if isinstance(part, int):
                while len(target) <= part:
                    target.append({})
                target = target[part]
            else:
                target = target.setdefault(part, [] if isinstance(following, int) else {})
        last = location[-1]
        if isinstance(last, int):
            target.append(value)
        else:
            target[last] = value
        self.lines[location] = line


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def split_glued(text: str) -> list[str]:
    """'MLOps Governance SpecialistAI Reliability Evangelist' -> two aliases."""
    protected = text
    for word in sorted(CAMEL_WORDS, key=len, reverse=True):  # DevSecOps before SecOps
        protected = protected.replace(word, f"\x00{CAMEL_WORDS.index(word)}\x01")
    # a lower-case letter, or an acronym, runs straight into a capitalised word
    parts = re.split(r"(?<=[a-z\x01)])(?=[A-Z\x00])|(?<=[A-Z]{2})(?=[A-Z][a-z])", protected)

    def restore(part: str) -> str:
        return re.sub(r"\x00(\d+)\x01", lambda m: CAMEL_WORDS[int(m.group(1))], part).strip()

    return [restore(part) for part in parts if part.strip()]


def parse_text(text: str) -> YamlDocument:
    """Structured record data (with lines) from the text format; raises FormatError."""
    numbered = [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    end = len(text.splitlines()) or 1
    builder = Builder()
    header, sections = _split_sections(numbered, end)
    _read_header(header, builder)
    for number, reader in SECTION_READERS.items():
        lines = sections[number]
        reader(lines, builder)
        lines.finish()
    return YamlDocument(builder.data, builder.lines)


def _split_sections(numbered: list, end: int) -> tuple[Lines, dict[int, Lines]]:
    """Cut the file at its `[NN] TITLE` headings, which must come in order, once each."""
    starts = [i for i, (_, text) in enumerate(numbered) if SECTION_HEADING.fullmatch(text)]
    header = Lines("header", numbered[: starts[0] if starts else len(numbered)], end)
    sections: dict[int, Lines] = {}
    for expected, title in SECTION_TITLES.items():
        label = f"[{expected:02d}] {title}"
        if len(starts) < expected:
            raise FormatError(end, label, f"file ends before section {label}")
        index = starts[expected - 1]
        number, heading = numbered[index]
        if heading.upper() != label:
            raise FormatError(number, label, f"expected section {label}, found {_clip(heading)!r}")
        stop = starts[expected] if expected < len(starts) else len(numbered)
        body_end = numbered[stop][0] if stop < len(numbered) else end
        sections[expected] = Lines(label, numbered[index + 1 : stop], body_end)
    if len(starts) > len(SECTION_TITLES):
        number, heading = numbered[starts[len(SECTION_TITLES)]]
        raise FormatError(number, "end of record", f"unexpected section {_clip(heading)!r}")
    return header, sections


def _read_header(lines: Lines, out: Builder) -> None:
    id_line, record_id = lines.take(r"FILE RECORD:\s*(\S+)", "'FILE RECORD: <ID>'")
    line, question = lines.take(r"(.+\?)", "the headline question ending in '?'")
    out.put(("question",), question.group(1), line)
    line, title = lines.take(r"(.+)", "the specimen's title")
    out.put(("title",), title.group(1), line)
    lines.finish()
    given, derived = record_id.group(1).lower(), slugify(title.group(1))
    if given != derived and (not derived or len(derived) > MAX_SLUG):
        out.put(("slug",), given, id_line)  # the title cannot name the record: the id does
    elif given != derived:
        raise FormatError(
            id_line, "header",
            f"record id {record_id.group(1)} does not match the title"
            f" {title.group(1)!r} (expected {slugify(title.group(1)).upper()})",
        )  # fmt: skip


def _org_chart(lines: Lines, out: Builder) -> None:
    line, note = lines.take(r"\*\s*(.+)", "the org-chart note starting with '*'")
    out.put(("org_chart", "note"), note.group(1), line)
    line, head = lines.take(r"KNOWN ALIASES / DISGUISES:\s*(.*)", "'KNOWN ALIASES / DISGUISES:'")
    glued = [(line, head.group(1))] if head.group(1) else []
    while lines.more():
        glued.append(lines.take(r"(.+)", "aliases")[::1])
        glued[-1] = (glued[-1][0], glued[-1][1].group(1))
    if not glued:
        raise FormatError(line, lines.section, "expected at least one alias")
    for number, text in glued:
        for alias in split_glued(text):
            index = len(out.data.get("org_chart", {}).get("aliases", []))
            out.put(("org_chart", "aliases", index), alias, number)


def _habitat(lines: Lines, out: Builder) -> None:
    index = 0
    while lines.more() or index == 0:
        line, item = lines.take(r"[-•]\s*(.+)", "a habitat line starting with '-'")
        out.put(("habitat", index), item.group(1), line)
        index += 1


def _salary(lines: Lines, out: Builder) -> None:
    lines.take(r"MARKET AVERAGE", "'MARKET AVERAGE'")
    line, average = lines.take(AMOUNT.pattern, "the market average, e.g. $210,000")
    currency = SYMBOL_CURRENCIES[average.group(1)]
    out.put(("salary", "currency"), currency, line)
    out.put(("salary", "average"), _number(average.group(2), line, lines), line)
    line, note = lines.take(r"\*\s*(.+)", "the salary note starting with '*'")
    amounts = list(AMOUNT.finditer(note.group(1)))[:2]
    if len(amounts) < 2:
        raise FormatError(
            line, lines.section, "expected the salary range (two amounts) in the note"
        )
    for name, amount in zip(("low", "high"), amounts, strict=True):
        if SYMBOL_CURRENCIES[amount.group(1)] != currency:
            raise FormatError(line, lines.section, f"{amount.group(0)} is not in {currency}")
        out.put(("salary", name), _number(amount.group(2), line, lines), line)
    out.put(("salary", "note"), _range_template(note.group(1), amounts), line)
    line, verdict = lines.take(QUOTED, "the quoted verdict")
    out.put(("salary", "verdict"), verdict.group(1), line)


def _number(digits: str, line: int, lines: Lines) -> int:
    digits = digits.replace(",", "")
    if len(digits) > len(str(MAX_AMOUNT)):  # Python will not even read a number of 5000 digits
        message = f"an amount of {len(digits)} digits; amounts are at most {MAX_AMOUNT:,}"
        raise FormatError(line, lines.section, message)
    return int(digits)


def _range_template(note: str, amounts: list[re.Match]) -> str:
    """The note with its braces escaped and the range amounts as {low} and {high}."""
    low, high = amounts
    parts = [note[: low.start()], note[low.end() : high.start()], note[high.end() :]]
    escaped = [part.replace("{", "{{").replace("}", "}}") for part in parts]
    return f"{escaped[0]}{{low}}{escaped[1]}{{high}}{escaped[2]}"


def _flight_risk(lines: Lines, out: Builder) -> None:
    line, risk = lines.take(
        r"FLIGHT RISK:\s*(\d{1,3})\s*%\s*(.+)", "'FLIGHT RISK:<percent>%<LEVEL>'"
    )
    out.put(("flight_risk", "percent"), int(risk.group(1)), line)
    out.put(("flight_risk", "level"), risk.group(2), line)
    line, diagnosis = lines.take(r"\[DIAGNOSIS\]\s*(.+)", "'[DIAGNOSIS]' and its text")
    out.put(("flight_risk", "diagnosis"), diagnosis.group(1), line)


def _named_items(key: str, what: str):
    def read(lines: Lines, out: Builder) -> None:
        index = 0
        while lines.more() or index == 0:
            line, name = lines.take(r"(.+)", f"a {what} name")
            out.put((key, index, "name"), name.group(1), line)
            line, description = lines.take(r"(.+)", f"the description of {what} {name.group(1)!r}")
            out.put((key, index, "description"), description.group(1), line)
            index += 1

    return read


def _encounter(lines: Lines, out: Builder) -> None:
    line, guide = lines.take(r"\[([^\]]+?):?\]\s*(.+)", "'[IF ...:]' and the advice")
    out.put(("encounter", "condition"), guide.group(1), line)
    out.put(("encounter", "advice"), guide.group(2), line)


def _jd_autopsy(lines: Lines, out: Builder) -> None:
    index = 0
    while lines.more() or index == 0:
        line, _ = lines.take(r"LINKEDIN ILLUSION", "'LINKEDIN ILLUSION'")
        _, source = lines.take(
            r"\[SOURCE(?: REDACTED|:\s*(.+))\]", "'[SOURCE REDACTED]' or '[SOURCE: ...]'"
        )
        if source.group(1):
            out.put(("jd_autopsy", index, "source"), source.group(1), line)
        line, illusion = lines.take(QUOTED, "the quoted job-ad line")
        out.put(("jd_autopsy", index, "illusion"), illusion.group(1), line)
        lines.take(r"OTIOSE TRANSLATION", "'OTIOSE TRANSLATION'")
        line, translation = lines.take(r"(.+)", "the translation")
        out.put(("jd_autopsy", index, "translation"), translation.group(1), line)
        index += 1


def _day_log(lines: Lines, out: Builder) -> None:
    index = 0
    while lines.more() or index == 0:
        line, slot = lines.take(
            r"\[(\d{1,2}:\d{2})\s*[-–]\s*(\d{1,2}:\d{2})\]", "a time slot like '[09:00 - 10:00]'"
        )
        out.put(("day_log", index, "start"), slot.group(1).zfill(5), line)
        out.put(("day_log", index, "end"), slot.group(2).zfill(5), line)
        line, title = lines.take(r"(.+)", "the slot's title")
        out.put(("day_log", index, "title"), title.group(1), line)
        line, description = lines.take(r"(.+)", "the slot's description")
        out.put(("day_log", index, "description"), description.group(1), line)
        index += 1


def _burn_ward(lines: Lines, out: Builder) -> None:
    line, intro = lines.take(r"\*\s*(.+)", "the burn-ward intro starting with '*'")
    out.put(("burn_ward", "intro"), intro.group(1), line)
    index = 0
    while lines.more() or index == 0:
        line, quote = lines.take(QUOTED, "a quoted complaint")
        out.put(("burn_ward", "complaints", index, "quote"), quote.group(1), line)
        line, source = lines.take(r"[—–-]\s*(.+)", "the complaint's source after '—'")
        out.put(("burn_ward", "complaints", index, "source"), source.group(1), line)
        index += 1


def _related(lines: Lines, out: Builder) -> None:
    line, head = lines.take(r"\[VIEW FULL TAXONOMY\]\s*↗?\s*(.*)", "'[VIEW FULL TAXONOMY] ↗'")
    if head.group(1):  # the scrape glues the first SYSTEM MATCH onto the heading
        lines.items[lines.position - 1] = (line, head.group(1))
        lines.position -= 1
    index = 0
    while lines.more() or index == 0:
        line, match = lines.take(r"→?\s*SYSTEM MATCH:\s*(\d{1,3})\s*%", "'SYSTEM MATCH: <n>%'")
        out.put(("related", index, "match"), int(match.group(1)), line)
        line, title = lines.take(r"(.+)", "the related specimen's title")
        out.put(("related", index, "title"), title.group(1), line)
        out.put(("related", index, "slug"), slugify(title.group(1)), line)
        line, summary = lines.take(r"(.+?)\s*→?", "the related specimen's summary")
        out.put(("related", index, "summary"), summary.group(1), line)
        if lines.peek() == "→":
            lines.position += 1
        index += 1


SECTION_READERS = {
    1: _org_chart,
    2: _habitat,
    3: _salary,
    4: _flight_risk,
    5: _named_items("metrics", "metric"),
    6: _named_items("weaponry", "weapon"),
    7: _encounter,
    8: _jd_autopsy,
    9: _day_log,
    10: _burn_ward,
    11: _related,
}


def import_text(text: str, name: str) -> Record:
    """A valid record from text in the scraped format; raises InvalidInput."""
    try:
        document = parse_text(text)
    except FormatError as error:
        raise InvalidInput([Problem(name, error.line, error.section, error.message)]) from None
    record, problems = validate(document, name)
    if record is None:
        raise InvalidInput(problems)
    return record


def import_into(
    files: Iterable[Path], records_dir: Path, *, force: bool = False
) -> Iterator[tuple[Path | None, list[Problem]]]:
    """Each text file as <records_dir>/<slug>.yaml: the path written, or the problems that
    stopped it (an existing record is kept unless `force`); one file does not stop the next."""
    from .fileio import AlreadyExists, write_atomic
    from .records import dump_record, record_file

    for file in files:
        try:
            record = import_file(file)
            target = record_file(records_dir, record.slug)
            write_atomic(target, dump_record(record).encode(), overwrite=force)
        except AlreadyExists:
            message = f"{target} already exists; use --force to overwrite it"
            yield None, [Problem(str(file), None, "", message)]
        except InvalidInput as error:
            yield None, error.problems
        else:
            yield target, []


def import_file(path: str | Path) -> Record:
    """A valid record from a text file; raises InvalidInput."""
    path = Path(path)
    raw = read_bounded(path, MAX_TEXT_BYTES, "imported texts")
    try:
        text = decode(raw)
    except YamlProblem as error:
        raise InvalidInput([Problem(str(path), error.line, "", error.message)]) from None
    return import_text(text, str(path))


def to_text(record: Record) -> str:
    """The record in the scraped format, glued exactly as the scrape glues it."""
    salary, risk = record.salary, record.flight_risk
    out = [f"FILE RECORD: {record.slug.upper()}", record.question, record.title]
    out += [_heading(1), f"* {record.org_chart.note}", "KNOWN ALIASES / DISGUISES:"]
    out += ["".join(record.org_chart.aliases), _heading(2)]
    out += [f"- {line}" for line in record.habitat]
    out += [_heading(3), "MARKET AVERAGE", money(salary.average, salary.currency)]
    out += [f"* {salary.filled_note()}", f'"{salary.verdict}"', _heading(4)]
    out += [f"FLIGHT RISK:{risk.percent}%{risk.level}", f"[DIAGNOSIS]{risk.diagnosis}"]
    for number, items in ((5, record.metrics), (6, record.weaponry)):
        out.append(_heading(number))
        out += [line for item in items for line in (item.name, item.description)]
    out += [_heading(7), f"[{record.encounter.condition}:]{record.encounter.advice}", _heading(8)]
    for pair in record.jd_autopsy:
        source = f"[SOURCE: {pair.source}]" if pair.source else "[SOURCE REDACTED]"
        out += ["LINKEDIN ILLUSION", source, f'"{pair.illusion}"']
        out += ["OTIOSE TRANSLATION", pair.translation]
    out.append(_heading(9))
    for slot in record.day_log:
        out += [f"[{slot.start} - {slot.end}]", slot.title, slot.description]
    out += [_heading(10), f"* {record.burn_ward.intro}"]
    for complaint in record.burn_ward.complaints:
        out += [f'"{complaint.quote}"', f"— {complaint.source}"]
    out += [_heading(11), "[VIEW FULL TAXONOMY] ↗" + _related_text(record)]
    return "\n".join(out)


def _heading(number: int) -> str:
    return f"[{number:02d}] {SECTION_TITLES[number]}"


def _related_text(record: Record) -> str:
    blocks = [f"SYSTEM MATCH: {r.match}%\n{r.title}\n{r.summary}\n→" for r in record.related]
    return "\n".join(blocks)
