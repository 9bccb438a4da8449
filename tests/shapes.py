"""Records of other shapes than the committed ones: any list length, any number of related
specimens, any length of text, long words and names. Deterministic for a seed; used by the
property tests and by bench/dossiers.py."""

from __future__ import annotations

import random
from dataclasses import dataclass

from renderer.model import Record

ADJECTIVES = (  # noqa: SIM905 (word lists read better as text)
    "strategic holistic cross-functional mission-critical scalable frictionless data-driven"
    " customer-centric best-in-class future-proof asynchronous outcome-oriented bespoke agile"
    " seamless omnichannel evergreen quarterly synergistic"
).split()
NOUNS = (  # noqa: SIM905
    "alignment synergy roadmap deliverable stakeholder paradigm bandwidth touchpoint flywheel"
    " offsite retrospective workstream mindshare pivot deck journey ecosystem moonshot playbook"
    " KPI swimlane dashboard steerco framework"
).split()
VERBS = (  # noqa: SIM905
    "leverages socialises operationalises reframes unblocks evangelises timeboxes right-sizes"
    " sunsets pressure-tests upskills aligns incubates productises deprioritises escalates"
).split()
LONG_WORDS = [
    "Überverantwortungsbereichsleitung",
    "antidisestablishmentarianism-adjacent",
    "hyperconvergedinfrastructureenablement",
    "https://intranet.example.org/wiki/Synergy_Programme_2027/Workstreams",
]
LONG_TITLE = "Principal Distinguished Staff Vice President of Cross-Functional Enablement"
SOURCES = ["r/ExperiencedDevs", "teamblind.com", "Hacker News comment", "Glassdoor review"]
# share of the record's words that each field's prose takes (before items are counted)
PROSE_WEIGHTS = {
    "note": 2,
    "alias": 0.6,
    "habitat": 2,
    "salary_note": 2,
    "verdict": 2,
    "diagnosis": 3,
    "metric": 2,
    "weapon": 2,
    "advice": 3,
    "illusion": 1.5,
    "translation": 2,
    "log": 2,
    "intro": 1.5,
    "quote": 2.5,
    "summary": 1.5,
}
LIST_FIELDS = {"alias", "habitat", "metric", "weapon", "illusion", "translation", "log", "quote"}


@dataclass(frozen=True)
class Shape:
    items: int = 3  # in every list
    related: int = 3
    words: int = 800
    long_words: bool = False
    long_names: bool = False

    def __str__(self) -> str:
        extras = ("long words " if self.long_words else "") + (
            "long names " if self.long_names else ""
        )
        return f"{self.items} items, {self.related} related, {self.words} words {extras}".strip()


def varied_record(seed: int, shape: Shape) -> Record:
    """A valid record of the shape, about `shape.words` words of record text."""
    rng = random.Random(seed)
    budget = _field_budgets(shape)

    def prose(field: str) -> str:
        return _prose(rng, budget[field], shape.long_words)

    def name() -> str:
        if shape.long_names and rng.random() < 0.5:
            return LONG_TITLE
        return " ".join(rng.choice(NOUNS).title() for _ in range(rng.randint(2, 4)))

    items = range(shape.items)
    title = LONG_TITLE if shape.long_names else f"Head of {rng.choice(NOUNS).title()} {seed}"
    data = {
        "title": title,
        "question": f"WHAT DOES A {title.upper()} ACTUALLY DO?",
        "org_chart": {"note": prose("note"), "aliases": [name() for _ in items]},
        "habitat": [prose("habitat") for _ in items],
        "salary": {
            "average": 140000,
            "low": 120000,
            "high": 170000,
            "note": prose("salary_note") + " Between {low} and {high}.",
            "verdict": prose("verdict"),
        },
        "flight_risk": {
            "percent": rng.randint(0, 100),
            "level": "ELEVATED",
            "diagnosis": prose("diagnosis"),
        },
        "metrics": [{"name": name(), "description": prose("metric")} for _ in items],
        "weaponry": [{"name": name(), "description": prose("weapon")} for _ in items],
        "encounter": {"condition": "IF YOU MEET ONE", "advice": prose("advice")},
        "jd_autopsy": [
            {"illusion": prose("illusion"), "translation": prose("translation")} for _ in items
        ],
        "day_log": [
            {
                "start": f"{8 + i * 15 // max(shape.items, 1):02d}:00",
                "end": f"{8 + i * 15 // max(shape.items, 1):02d}:45",
                "title": name(),
                "description": prose("log"),
            }
            for i in items
        ],
        "burn_ward": {
            "intro": prose("intro"),
            "complaints": [{"quote": prose("quote"), "source": rng.choice(SOURCES)} for _ in items],
        },
        "related": [
            {
                "title": f"{name()} {seed}-{n}",
                "match": rng.randint(40, 99),
                "summary": prose("summary"),
            }
            for n in range(shape.related)
        ],
    }
    return Record.model_validate(data)


def _field_budgets(shape: Shape) -> dict[str, int]:
    """Words for each prose field, so that the record's words come to about shape.words."""
    fixed = 60 + shape.items * 8 + shape.related * 4  # titles, names, sources, labels of items
    counts = {
        field: shape.items if field in LIST_FIELDS else shape.related if field == "summary" else 1
        for field in PROSE_WEIGHTS
    }
    weight = sum(PROSE_WEIGHTS[field] * counts[field] for field in PROSE_WEIGHTS)
    words = max(shape.words - fixed, 0)
    return {field: max(2, round(words * w / weight)) for field, w in PROSE_WEIGHTS.items()}


def _prose(rng: random.Random, words: int, long_words: bool) -> str:
    out: list[str] = []
    while len(out) < words:
        out += [
            "The subject",
            rng.choice(VERBS),
            "every",
            rng.choice(ADJECTIVES),
            rng.choice(NOUNS),
        ]
        out += ["before", "the", "next", rng.choice(NOUNS) + "."]
        if long_words and rng.random() < 0.3:
            out.append(rng.choice(LONG_WORDS))
    text = " ".join(" ".join(out).split()[:words])
    return text if text.endswith(".") else text + "."


def word_count(record: Record) -> int:
    """Words of record text, as ../shared/perf-reference counts them (not slugs or times)."""

    def count(value, key=None) -> int:
        if isinstance(value, str):
            return 0 if key in ("slug", "start", "end", "currency") else len(value.split())
        if isinstance(value, dict):
            return sum(count(v, k) for k, v in value.items())
        if isinstance(value, list):
            return sum(count(v, key) for v in value)
        return 0

    return count(record.model_dump())
