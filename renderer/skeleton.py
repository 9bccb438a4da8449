"""Skeleton: a complete new record with placeholder guidance, for `dossier new`."""

from __future__ import annotations

from .model import Record
from .problems import InvalidInput
from .yamlsource import YamlDocument

GUIDANCE = {
    "org_chart": {
        "note": "One line on where this role sits and who it answers to.",
        "aliases": ["Another title the same role hides behind"],
    },
    "habitat": ["Where this role is found: the kind of company, the stage it is in."],
    "salary": {
        "currency": "USD",
        "average": 150000,
        "low": 120000,
        "high": 180000,
        "note": "Salary ranges typically fall between {low} and {high}.",
        "verdict": "What the money actually buys, in one sentence.",
    },
    "flight_risk": {
        "percent": 50,
        "level": "MODERATE RISK",
        "diagnosis": "Why the role disappears (or survives) when budgets tighten.",
    },
    "metrics": [{"name": "A number the role reports", "description": "What it really measures."}],
    "weaponry": [{"name": "The role's favourite tool", "description": "How it is wielded."}],
    "encounter": {"condition": "IF ENGAGED", "advice": "What to do when you meet one."},
    "jd_autopsy": [
        {
            "illusion": "A line from a real job advertisement.",
            "source": "Where the line came from",
            "translation": "What the line means in practice.",
        }
    ],
    "day_log": [
        {
            "start": "09:00",
            "end": "10:00",
            "title": "A recurring slot",
            "description": "What happens in it, and what comes out of it.",
        }
    ],
    "burn_ward": {
        "intro": "Where the complaints below were collected.",
        "complaints": [{"quote": "A complaint, in the complainer's words.", "source": "r/..."}],
    },
    "related": [
        {
            "title": "A Related Specimen",
            "match": 80,
            "summary": "One line on how it resembles this one.",
        }
    ],
}


def skeleton(title: str, slug: str | None = None, name: str = "dossier new") -> Record:
    """A valid record for `title` (named `slug` when given): every section present, each holding
    what belongs there. Raises InvalidInput, naming `name`, when the title or slug cannot be used.
    """
    from .records import validate

    article = "AN" if title[:1].upper() in "AEIOU" else "A"
    question = f"WHAT DOES {article} {title.upper()} ACTUALLY DO?"
    named = {"slug": slug} if slug is not None else {}
    data = {"title": title, **named, "question": question, **GUIDANCE}
    record, problems = validate(YamlDocument(data), name)
    if record is None:  # the question is made from the title: its problems are the title's
        raise InvalidInput([problem for problem in problems if problem.field != "question"])
    return record
