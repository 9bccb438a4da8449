"""Template context: a record (with links and config) into the data a layout prints; pure."""

from __future__ import annotations

from .config import Config
from .contract import PAPER_SIZES
from .model import SECTION_TITLES, Record, money
from .qr import qr_svg

# A page links to a related specimen as specimen:<slug>: a compendium turns the link into one to
# the specimen's page, a dossier printed alone into one to its web address (`single_link`).
INTERNAL_SCHEME = "specimen:"
RISK_CELLS = 10


def dossier_context(record: Record, config: Config, *, scale: float = 1.0) -> dict:
    """Everything a dossier template may use; see layouts/README.md for each key. Page numbers
    are not known here: the layout leaves slots for them (`slots.py`)."""
    return {
        "scale": round(scale, 4),
        "paper": PAPER_SIZES[config.paper],
        "organisation": config.organisation or "",
        "author": config.author or "",
        "sections": {number: f"[{number:02d}] {title}" for number, title in SECTION_TITLES.items()},
        "slug": record.slug,
        "title": record.title,
        "question": record.question,
        "case": _case(record, config),
        "org_chart": record.org_chart,
        "habitat": record.habitat,
        "salary": _salary(record),
        "flight_risk": _flight_risk(record),
        "metrics": record.metrics,
        "weaponry": record.weaponry,
        "encounter": record.encounter,
        "jd_autopsy": record.jd_autopsy,
        "day_log": _day_log(record),
        "burn_ward": record.burn_ward,
        "related": [_related(item, config) for item in record.related],
        "keywords": ", ".join(record.org_chart.aliases),
    }


def _case(record: Record, config: Config) -> dict:
    opened = record.case.opened or config.date
    return {
        "number": record.case_number,
        "classification": record.case.classification or config.classification,
        "opened": opened.isoformat() if opened else "UNDATED",
    }


def _salary(record: Record) -> dict:
    salary = record.salary
    spread = max(salary.high - salary.low, 1)
    axis_low, axis_high = salary.low - spread * 0.35, salary.high + spread * 0.35

    def position(amount: int) -> float:
        return round(100 * (amount - axis_low) / (axis_high - axis_low), 2)

    return {
        "average": money(salary.average, salary.currency),
        "low": money(salary.low, salary.currency),
        "high": money(salary.high, salary.currency),
        "currency": salary.currency,
        "note": salary.filled_note(),
        "verdict": salary.verdict,
        "bar": {
            "low": position(salary.low),
            "high": position(salary.high),
            "average": position(salary.average),
        },
    }


def _flight_risk(record: Record) -> dict:
    risk = record.flight_risk
    return {
        "percent": risk.percent,
        "level": risk.level,
        "diagnosis": risk.diagnosis,
        "cells": [index < round(risk.percent / (100 / RISK_CELLS)) for index in range(RISK_CELLS)],
    }


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def _day_log(record: Record) -> list[dict]:
    start = min(_minutes(slot.start) for slot in record.day_log)
    end = max(_minutes(slot.end) for slot in record.day_log)
    span = max(end - start, 1)
    return [
        {
            "start": slot.start,
            "end": slot.end,
            "title": slot.title,
            "description": slot.description,
            "offset": round(100 * (_minutes(slot.start) - start) / span, 2),
            "length": round(100 * (_minutes(slot.end) - _minutes(slot.start)) / span, 2),
        }
        for slot in record.day_log
    ]


def _related(item, config: Config) -> dict:
    url = config.specimen_url(item.target)
    return {
        "title": item.title,
        "slug": item.target,
        "match": item.match,
        "summary": item.summary,
        "url": url,
        "address": printed_address(url),
        "href": f"{INTERNAL_SCHEME}{item.target}",
        "qr": qr_svg(url),
    }


def printed_address(url: str) -> str:
    """A web address as print shows it: without its https:// (the QR code holds all of it)."""
    return url.removeprefix("https://")


def single_link(uri: str, config: Config) -> str:
    """Where a link of a dossier printed alone goes: a specimen's web address."""
    if uri.startswith(INTERNAL_SCHEME):
        return config.specimen_url(uri.removeprefix(INTERNAL_SCHEME))
    return uri
