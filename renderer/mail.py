"""Mail: dossiers and the compendium attached to messages, and written as .eml drafts."""

from __future__ import annotations

import datetime as dt
import hashlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.policy import default as default_policy
from email.utils import format_datetime, make_msgid
from pathlib import Path

from .build import Builder, DossierJob
from .config import Config
from .fileio import write_atomic
from .layouts import Layout
from .model import Record, slugify
from .problems import CONTROL, InvalidInput, Problem
from .records import Catalog, Entry

COMPENDIUM_NAME = "compendium.pdf"
DRAFT_STEM_LENGTH = 60
DRAFT_RECIPIENT_LENGTH = 80


@dataclass(frozen=True)
class Attachment:
    filename: str
    data: bytes

    @property
    def megabytes(self) -> float:
        return len(self.data) / 1e6


# -- addresses ---------------------------------------------------------------------------------
def parse_address(text: str, where: str = "--to") -> Address:
    """One address ("ann@example.org" or "Ann <ann@example.org>"); InvalidInput otherwise."""
    header_text(text, where)
    try:
        header = default_policy.header_factory("To", text)
        (address,) = header.addresses
        valid = not header.defects and address.username and "." in address.domain.strip(".")
    except (ValueError, IndexError):  # the header parser raises on some broken input
        valid = False
    if not valid:
        raise InvalidInput([Problem(where, None, "", f"{text!r} is not an e-mail address")])
    return Address(address.display_name, address.username, _ascii_domain(address.domain))


def header_text(text: str, where: str) -> str:
    """Text that can go into a header as it is: one line, nothing invisible, valid Unicode.

    The email package decodes encoded words (=?utf-8?q?...?=) in what it is given, so a line
    break hidden in one is looked for in the decoded text too."""
    found = CONTROL.search(text) or CONTROL.search(_decoded(text))
    if found:
        message = (
            f"{text!r} has U+{ord(found[0]):04X}, a line break or control character; a mail"
            " header is one line of printable text"
        )
        raise InvalidInput([Problem(where, None, "", message)])
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        message = f"{text!r} holds bytes that are not UTF-8 text"
        raise InvalidInput([Problem(where, None, "", message)]) from None
    return text


def _decoded(text: str) -> str:
    try:
        return str(default_policy.header_factory("subject", text))
    except (ValueError, IndexError, LookupError):  # not a header the parser can read: refused
        return "\n"


def _ascii_domain(domain: str) -> str:
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain


# -- attachments -------------------------------------------------------------------------------
def gather_attachments(
    entries: list[Entry], config: Config, builder: Builder, compendium: Catalog | None = None
) -> list[Attachment]:
    """The dossiers' PDFs (from the build cache when current, rendered otherwise), and the
    compendium when a catalog is given."""
    from .compendium import build_compendium

    with builder.session() as session:
        pending = session.start([DossierJob(entry.record, config) for entry in entries])
        typesets = [pending.typeset(key) for key in pending.keys]
        run = pending.finish()
    if run.problems:
        raise InvalidInput(run.problems)
    files = [
        Attachment(f"{entry.slug}.pdf", typeset.single)
        for entry, typeset in zip(entries, typesets, strict=True)
    ]
    if compendium is not None:
        with tempfile.TemporaryDirectory(prefix="dossier-mail-") as scratch:
            report = build_compendium(compendium, config, Path(scratch) / COMPENDIUM_NAME, builder)
            files.append(Attachment(COMPENDIUM_NAME, report.path.read_bytes()))
    return files


def check_size(attachments: list[Attachment], limit_mb: float) -> None:
    """Refuse attachments over the limit, naming the file and what to send instead."""
    total = sum(attachment.megabytes for attachment in attachments)
    if total <= limit_mb:
        return
    largest = max(attachments, key=lambda attachment: attachment.megabytes)
    limit = f"one message carries at most {limit_mb:g} MB of attachments (mail.max_attachment_mb)"
    if largest.filename == COMPENDIUM_NAME:
        advice = "send single dossiers instead: dossier mail SLUG... --to ADDR"
    elif len(attachments) > 1:
        advice = "send fewer dossiers per message"
    else:
        advice = "raise mail.max_attachment_mb if your mail server accepts more"
    message = f"{largest.filename} is {largest.megabytes:.1f} MB"
    if len(attachments) > 1:
        message += f" of {total:.1f} MB attached"
    raise InvalidInput([Problem(largest.filename, None, "", f"{message}; {limit}; {advice}")])


# -- messages ----------------------------------------------------------------------------------
def default_subject(records: list[Record], with_compendium: bool, specimens: int) -> str:
    if with_compendium:
        extra = f" and {len(records)} dossier(s)" if records else ""
        return f"Specimen compendium ({specimens} specimens){extra}"
    if len(records) == 1:
        return f"Specimen dossier: {_one_line(records[0].title)}"
    titles = ", ".join(_one_line(record.title) for record in records[:3])
    more = f" and {len(records) - 3} more" if len(records) > 3 else ""
    return f"{len(records)} specimen dossiers: {titles}{more}"


def _one_line(title: str) -> str:
    """A title as a subject can carry it: a record's title may hold line breaks, and text that
    looks like an encoded word (=?utf-8?q?...?=), which the email package would decode."""
    return " ".join(title.split()).replace("=?", "= ?")


def summary(record: Record, config: Config) -> dict:
    """What the message body says about one attached specimen."""
    return {
        "title": record.title,
        "slug": record.slug,
        "case_number": record.case_number,
        "flight_risk": record.flight_risk.percent,
        "risk_level": record.flight_risk.level,
        "line": record.flight_risk.diagnosis,
        "url": config.specimen_url(record.slug),
    }


def compose(
    records: list[Record],
    attachments: list[Attachment],
    *,
    recipients: list[Address],
    subject: str,
    config: Config,
    sender: Address | None = None,
) -> EmailMessage:
    """One message: a plain-text body, an HTML alternative, the PDFs attached."""
    context = {
        "subject": subject,
        "organisation": config.organisation or "",
        "classification": config.classification,
        "specimens": [summary(record, config) for record in records],
        "attachments": [
            {"filename": a.filename, "size": f"{a.megabytes:.1f} MB"} for a in attachments
        ],
    }
    layout = Layout.find(config.layout)
    message = EmailMessage(policy=default_policy)
    message["Subject"] = subject
    if sender is not None:
        message["From"] = sender
    message["To"] = recipients
    message["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    domain = sender.domain if sender is not None else "dossier.invalid"
    message["Message-ID"] = make_msgid("dossier", domain=domain)
    message.set_content(layout.render_mail(context, "text"))
    message.add_alternative(layout.render_mail(context, "html"), subtype="html")
    for attachment in attachments:
        message.add_attachment(
            attachment.data, maintype="application", subtype="pdf", filename=attachment.filename
        )
    return message


def recipients_of(message: EmailMessage) -> list[str]:
    return [address.addr_spec for address in message["To"].addresses]


# -- drafts ------------------------------------------------------------------------------------
def write_drafts(messages: list[EmailMessage], targets: list[Path]) -> Iterator[Path]:
    """Each message as a draft file at its target (see draft_paths), opened as a draft by mail
    clients; each path is given once its file is whole, so that a failure half-way leaves a
    known set.

    Existing files are never overwritten: every name is checked before anything is written.
    """
    refuse_existing(targets)
    for message, target in zip(messages, targets, strict=True):
        message["X-Unsent"] = "1"  # Outlook and Thunderbird open the file as a draft to send
        write_atomic(target, message.as_bytes(policy=SMTP_POLICY), overwrite=False)
        yield target


def draft_paths(subject: str, first_recipients: list[str], folder: Path) -> list[Path]:
    """Where the drafts of messages to these (first) recipients go: <subject>.eml for one
    message, <subject>--<recipient>.eml for each of several, a file of its own for every one."""
    stem = slugify(subject)[:DRAFT_STEM_LENGTH].strip("-") or "dossier"
    if len(first_recipients) == 1:
        names = [f"{stem}.eml"]
    else:
        names = [f"{stem}--{name}.eml" for name in draft_names(first_recipients)]
    return [folder / name for name in names]


def refuse_existing(targets: list[Path]) -> None:
    """InvalidInput, naming them, when any target is already there (a link too): drafts never
    replace a file, and callers may ask before anything is rendered."""
    existing = [target for target in targets if target.exists() or target.is_symlink()]
    if existing:
        problems = [
            Problem(str(path), None, "", "already exists; not overwritten") for path in existing
        ]
        raise InvalidInput(problems)


def draft_names(recipients: list[str]) -> Iterator[str]:
    """A distinct file-name part per recipient: the address's slug, and where two slugs meet
    (a.b@ and a-b@, or case only) a short hash of the exact address; a counter for repeats."""
    slugs = [
        slugify(recipient)[:DRAFT_RECIPIENT_LENGTH].strip("-") or "to" for recipient in recipients
    ]
    taken: set[str] = set()
    for slug, recipient in zip(slugs, recipients, strict=True):
        name = f"{slug}-{_short_hash(recipient)}" if slugs.count(slug) > 1 else slug
        candidate, count = name, 1
        while candidate in taken:
            count += 1
            candidate = f"{name}-{count}"
        taken.add(candidate)
        yield candidate


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]
