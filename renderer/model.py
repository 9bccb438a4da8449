"""The specimen record's typed shape; the JSON Schema is generated from it."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import string
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

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
    str, StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(_printable)
]
Percent = Annotated[int, Field(ge=0, le=100)]
Amount = Annotated[int, Field(ge=0)]
CLOCK_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d$"
SLUG_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"
PATTERN_HINTS = {
    CLOCK_PATTERN: "a 24-hour time like '09:00'",
    SLUG_PATTERN: "a slug like 'enterprise-architect' (a-z, 0-9, single dashes)",
    CURRENCY_PATTERN: "a three-letter currency code like USD",
}
ClockTime = Annotated[str, StringConstraints(pattern=CLOCK_PATTERN)]
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]

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


def slugify(title: str) -> str:
    """`Staff AI/ML Observability Advocate` -> `staff-ai-ml-observability-advocate`."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


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
    aliases: list[Text] = Field(min_length=1)


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
        return self.note.format(**amounts)

    @model_validator(mode="after")
    def _range_is_ordered(self) -> Salary:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high})")
        if not self.low <= self.average <= self.high:
            raise ValueError(
                f"average ({self.average}) lies outside the range {self.low}..{self.high}"
            )
        unknown = _placeholders(self.note) - set(RANGE_NOTE_FIELDS)
        if unknown:
            raise ValueError(
                f"note has unknown placeholder(s) {', '.join(sorted(unknown))};"
                " use {low}, {high} or {average}"
            )
        return self


def _placeholders(text: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as error:
        raise ValueError(f"note: {error} (write a literal brace as {{{{ or }}}})") from None


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
    complaints: list[Complaint] = Field(min_length=1)


class Related(Strict):
    """[11] A related specimen; it may live outside this catalog."""

    title: Text
    slug: Slug | None = Field(None, description="Derived from the title when absent.")
    match: Percent = Field(description="SYSTEM MATCH percentage.")
    summary: Text

    @property
    def target(self) -> str:
        return self.slug or slugify(self.title)


class Record(Strict):
    """One specimen: the eleven sections of a file record, plus its case data."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={"title": "Dossier specimen record"},
    )

    title: Text
    question: Text = Field(description="Headline, e.g. WHAT DOES A ... ACTUALLY DO?")
    case: Case = Case()
    org_chart: OrgChart
    habitat: list[Text] = Field(min_length=1)
    salary: Salary
    flight_risk: FlightRisk
    metrics: list[NamedItem] = Field(min_length=1)
    weaponry: list[NamedItem] = Field(min_length=1)
    encounter: Encounter
    jd_autopsy: list[Autopsy] = Field(min_length=1)
    day_log: list[LogEntry] = Field(min_length=1)
    burn_ward: BurnWard
    related: list[Related] = Field(min_length=1)

    @property
    def slug(self) -> str:
        return slugify(self.title)

    @property
    def case_number(self) -> str:
        return self.case.number or default_case_number(self.slug)


def json_schema() -> dict:
    """The record's JSON Schema, as published in `schema/record.schema.json`."""
    schema = Record.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
