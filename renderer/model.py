"""The specimen record's typed shape; the JSON Schema is generated from it."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import string
import unicodedata
from typing import Annotated

from anyascii import anyascii
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

# Characters that print nothing or silently reorder the text around them: C0 and C1 controls
# (tab and newline apart) and the bidirectional overrides and isolates.
INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _printable(text: str) -> str:
    found = INVISIBLE.search(text)
    if found:
        raise ValueError(
            f"control character U+{ord(found[0]):04X} at character {found.start() + 1}:"
            " it prints nothing or reorders the text around it; remove it"
        )
    return text


Text = Annotated[
    str,
    Strict(),  # a number or !!binary bytes is not text that the author meant
    StringConstraints(strip_whitespace=True, min_length=1),
    AfterValidator(_printable),
]
MAX_AMOUNT = 10**12
# items in a list, and related specimens (each with a QR code): more than any page holds
MAX_ITEMS = 24
MAX_RELATED = 12


def _sane_amount(amount: int) -> int:
    if amount > MAX_AMOUNT:
        raise ValueError(f"amounts are at most {MAX_AMOUNT:,} (a million million)")
    return amount


Percent = Annotated[int, Strict(), Field(ge=0, le=100)]  # true is no percentage
Amount = Annotated[
    int,
    Strict(),
    Field(ge=0, json_schema_extra={"maximum": MAX_AMOUNT}),
    AfterValidator(_sane_amount),
]
CLOCK_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d$"
SLUG_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
PATTERN_HINTS = {
    CLOCK_PATTERN: "a 24-hour time like '09:00'",
    SLUG_PATTERN: "a slug like 'enterprise-architect' (a-z, 0-9, single dashes)",
    CURRENCY_PATTERN: "a three-letter currency code like USD",
}
# Far more text than one page holds even at the smallest type; laying out more only costs time
# (WeasyPrint takes minutes over 100,000 characters of long words).
MAX_TEXT = 20_000
# validation context of a record read back from the records cache: whole-record checks that only
# depend on the record itself were passed when it was first read
KNOWN_VALID = "known valid"
# A slug names a file (<slug>.yaml, <slug>.pdf) and ends a URL that a QR code must hold.
MAX_SLUG = 120
ClockTime = Annotated[str, StringConstraints(pattern=CLOCK_PATTERN)]
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN, max_length=MAX_SLUG)]

RANGE_NOTE_FIELDS = ("low", "high", "average")

SECTION_TITLES = {
    1: "THE ORG-CHART ARCHITECTURE",
    2: "THE HABITAT (NATURAL RANGE)",
    3: "SALARY DELUSION",
    4: "THE FLIGHT RISK",
    5: "THE BULLSHIT METRICS",
    6: "SIGNATURE WEAPONRY",
    7: "SURVIVAL / ENCOUNTER GUIDE",
    8: "THE JD AUTOPSY: WHAT DO THEY ACTUALLY DO?",
    9: "DAY-IN-THE-LIFE LOG",
    10: "THE BURN WARD (UNFILTERED COMPLAINTS)",
    11: "RELATED SPECIMENS",
}
CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}


# Scripts whose letters have one agreed spelling in a-z; others (CJK, say) give no slug.
TRANSLITERATED_SCRIPTS = ("LATIN", "GREEK", "CYRILLIC")


@functools.lru_cache(maxsize=1 << 16)  # a catalog's checks slugify each title many times
def slugify(title: str) -> str:
    """`Staff AI/ML Observability Advocate` -> `staff-ai-ml-observability-advocate`;
    `Zoë Ångström` -> `zoe-angstrom`. Empty when the title has nothing to spell it with."""
    spelled = "".join(_in_ascii(character) for character in unicodedata.normalize("NFKC", title))
    return re.sub(r"[^a-z0-9]+", "-", spelled.lower()).strip("-")


def _in_ascii(character: str) -> str:
    if character.isascii():
        return character
    if unicodedata.category(character).startswith("M"):  # an accent written apart
        return ""
    if unicodedata.name(character, "").startswith(TRANSLITERATED_SCRIPTS):
        return anyascii(character)
    return " "


def slug_problem(title: str, remedy: str = "add a field slug: with one") -> str | None:
    """Why the title cannot give a slug, in words, ending with `remedy`; None when it can."""
    derived = slugify(title)
    if not derived:
        return (
            "the title has no letters or digits that spell a file name (a-z, 0-9; accented"
            f" and Greek or Cyrillic letters are spelled out); {remedy}, like 'head-of-synergy'"
        )
    if len(derived) > MAX_SLUG:
        return (
            f"the title spells a file name of {len(derived)} characters, over the {MAX_SLUG}"
            f" allowed; shorten the title or {remedy}"
        )
    return None


def invalid_at(field: str, message: str, value: object) -> ValidationError:
    """An error to raise from a model validator, located at one of the model's fields."""
    error = PydanticCustomError("value_error", "{message}", {"message": message})
    return ValidationError.from_exception_data(
        "Record", [InitErrorDetails(type=error, loc=(field,), input=value)]
    )


def default_case_number(slug: str) -> str:
    """A stable case number derived from the slug, so it never changes between builds."""
    digest = hashlib.sha256(slug.encode()).hexdigest().upper()
    return f"OT-{digest[:4]}-{int(digest[4:8], 16) % 1000:03d}"


def money(amount: int, currency: str) -> str:
    """210000, USD -> $210,000; codes without a symbol are written out (CHF 210,000)."""
    symbol = CURRENCY_SYMBOLS.get(currency)
    return f"{symbol}{amount:,}" if symbol else f"{currency} {amount:,}"


class Strict(BaseModel):
    """Every record part: unknown keys are errors, so typos are caught."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Case(Strict):
    """What a case file needs and a scrape lacks; each field has a derived default."""

    number: Text | None = Field(None, description="Case number; derived from the slug when absent.")
    classification: Text | None = Field(
        None, description="Classification level; the project config's label when absent."
    )
    opened: dt.date | None = Field(
        None, description="Date the file was opened; the project config's date when absent."
    )


class OrgChart(Strict):
    """[01] The org-chart architecture."""

    note: Text
    aliases: list[Text] = Field(min_length=1, max_length=MAX_ITEMS)


class Salary(Strict):
    """[03] Salary delusion. The note may name the range as {low}, {high} and {average}."""

    currency: Annotated[str, StringConstraints(pattern=CURRENCY_PATTERN)] = "USD"
    average: Amount
    low: Amount
    high: Amount
    note: Text = Field(description="Range note; {low}, {high}, {average} are filled in.")
    verdict: Text

    def filled_note(self) -> str:
        """The note with {low}, {high} and {average} written as amounts."""
        amounts = {name: money(getattr(self, name), self.currency) for name in RANGE_NOTE_FIELDS}
        return "".join(
            literal + (amounts[name] if name else "") for literal, name in _note_parts(self.note)
        )

    @field_validator("note")
    @classmethod
    def _placeholders_are_known(cls, note: str) -> str:
        _note_parts(note)
        return note

    @model_validator(mode="after")
    def _range_is_ordered(self) -> Salary:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high})")
        if not self.low <= self.average <= self.high:
            raise ValueError(
                f"average ({self.average}) lies outside the range {self.low}..{self.high}"
            )
        return self


PLACEHOLDERS = "write {low}, {high} or {average} (a literal brace as {{ or }})"


def _note_parts(note: str) -> list[tuple[str, str | None]]:
    """The note as (literal text, placeholder name or None) pairs; raises ValueError, in words,
    for anything but a bare {low}, {high} or {average}."""
    try:
        parts = list(string.Formatter().parse(note))
    except ValueError:
        raise ValueError(f"a brace opens or closes no placeholder; {PLACEHOLDERS}") from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        conversion, spec = f"!{conversion}" if conversion else "", f":{spec}" if spec else ""
        written = "{" + name + conversion + spec + "}"
        if name not in RANGE_NOTE_FIELDS:
            raise ValueError(f"unknown placeholder {written}; {PLACEHOLDERS}")
        if spec or conversion:
            raise ValueError(
                f"placeholder {written} has a format; amounts are written for you:"
                f" write just {{{name}}}"
            )
    return [(literal, name) for literal, name, _, _ in parts]


class FlightRisk(Strict):
    """[04] The flight risk."""

    percent: Percent
    level: Text = Field(description="Stamped verdict, e.g. HIGH RISK.")
    diagnosis: Text


class NamedItem(Strict):
    """A metric [05] or a weapon [06]."""

    name: Text
    description: Text


class Encounter(Strict):
    """[07] Survival / encounter guide."""

    condition: Text = Field(description="e.g. IF ENGAGED")
    advice: Text


class Autopsy(Strict):
    """[08] One job-description line and what it means."""

    illusion: Text = Field(description="The job-ad quote, without quotation marks.")
    source: Text | None = Field(None, description="Where the quote came from; absent = redacted.")
    translation: Text


class LogEntry(Strict):
    """[09] One slot of the day-in-the-life log."""

    start: ClockTime
    end: ClockTime
    title: Text
    description: Text

    @model_validator(mode="after")
    def _ends_after_start(self) -> LogEntry:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}) is not after start ({self.start})")
        return self


class Complaint(Strict):
    """[10] One unfiltered complaint."""

    quote: Text = Field(description="Without quotation marks.")
    source: Text


class BurnWard(Strict):
    """[10] The burn ward."""

    intro: Text
    complaints: list[Complaint] = Field(min_length=1, max_length=MAX_ITEMS)


class Related(Strict):
    """[11] A related specimen; it may live outside this catalog."""

    title: Text
    slug: Slug | None = Field(None, description="Derived from the title when absent.")
    match: Percent = Field(description="SYSTEM MATCH percentage.")
    summary: Text

    @property
    def target(self) -> str:
        return self.slug or slugify(self.title)

    @model_validator(mode="after")
    def _has_a_target(self) -> Related:
        if self.slug is None and (problem := slug_problem(self.title)):
            raise invalid_at("title", problem, self.title)
        return self


class Record(Strict):
    """One specimen: the eleven sections of a file record, plus its case data."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        serialize_by_alias=True,
        json_schema_extra={"title": "Dossier specimen record"},
    )

    title: Text
    # `slug` is the property that every reader uses; the field holds only what the file says
    explicit_slug: Slug | None = Field(
        None,
        alias="slug",
        description="File and URL name (<slug>.yaml, <slug>.pdf); derived from the title when"
        " absent, and needed when the title has no letters a-z to spell it with.",
    )
    question: Text = Field(description="Headline, e.g. WHAT DOES A ... ACTUALLY DO?")
    case: Case = Case()
    org_chart: OrgChart
    habitat: list[Text] = Field(min_length=1, max_length=MAX_ITEMS)
    salary: Salary
    flight_risk: FlightRisk
    metrics: list[NamedItem] = Field(min_length=1, max_length=MAX_ITEMS)
    weaponry: list[NamedItem] = Field(min_length=1, max_length=MAX_ITEMS)
    encounter: Encounter
    jd_autopsy: list[Autopsy] = Field(min_length=1, max_length=MAX_ITEMS)
    day_log: list[LogEntry] = Field(min_length=1, max_length=MAX_ITEMS)
    burn_ward: BurnWard
    related: list[Related] = Field(default=[], max_length=MAX_RELATED)

    @property
    def slug(self) -> str:
        return self.explicit_slug or slugify(self.title)

    @model_validator(mode="after")
    def _has_a_slug(self) -> Record:
        if self.explicit_slug is None and (problem := slug_problem(self.title)):
            raise invalid_at("title", problem, self.title)
        return self

    @model_validator(mode="after")
    def _fits_a_page_at_all(self, info: ValidationInfo) -> Record:
        if (info.context or {}).get(KNOWN_VALID):  # read back from the records cache
            return self
        length = self.text_length()
        if length > MAX_TEXT:
            raise ValueError(
                f"the record has {length:,} characters of text, and no page holds more than"
                f" {MAX_TEXT:,}; shorten the longest sections"
            )
        return self

    def text_length(self) -> int:
        """Characters of text in the record: what the dossier's page must hold."""
        return sum(len(text) for text in _texts(self.model_dump()))

    def text_parts(self) -> int:
        """Pieces of text in the record (paragraphs, items, names): each takes a line of its own."""
        return sum(1 for _ in _texts(self.model_dump()))

    @property
    def case_number(self) -> str:
        return self.case.number or default_case_number(self.slug)


def _texts(value: object):
    """Every piece of text in a dumped record, depth first."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict | list):
        for item in value.values() if isinstance(value, dict) else value:
            yield from _texts(item)


def json_schema() -> dict:
    """The record's JSON Schema, as published in `schema/record.schema.json`."""
    schema = Record.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
