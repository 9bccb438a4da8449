"""The outbox: each recipient's copies of the attachments, and the ledger that remembers them.

`dossier mail` renders the attachments once (mail.gather_attachments), then, per message:
- makes the recipient's copies (`Protection`): stamped and traceable (copies.py), encrypted
  with the recipient's password, signed (protect.py), in that order, so that the signature
  covers the final file;
- skips the message when the ledger says the same attachments, as rendered, already reached
  every recipient of it (unless --resend);
- writes it as a draft or sends it, and records each recipient's result in the ledger as soon
  as it is known (ledger.py), so that a run killed half-way leaves a ledger that is true.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path

from . import ledger
from .config import Config
from .copies import Copy, stamp_for, stamped
from .mail import Attachment, compose, recipients_of, write_drafts
from .model import Record

PASSWORDS_NAME = "mail-passwords.csv"  # generated passwords, beside the ledger (0600)


@dataclass(frozen=True)
class Protection:
    """How each recipient's copy of an attachment is made; nothing of it: sent as rendered."""

    stamp: bool = False
    passwords: dict[str, str] | None = None  # by recipient address (addr_spec): encrypt
    signer: object | None = None  # protect.load_signer(...): sign
    date: dt.date = field(default_factory=dt.date.today)

    @property
    def makes_copies(self) -> bool:
        return self.stamp or self.passwords is not None or self.signer is not None


def protection_for(
    recipients: list[str],
    *,
    stamp: bool,
    encrypt: bool,
    passwords_file: Path | None,
    sign_p12: Path | None,
    sign_password_file: Path | None,
    generated: Path,
    dry_run: bool,
) -> Protection:
    """How the copies are made, with every input read and checked before anything renders:
    the passwords (from `passwords_file`, else generated into `generated`), the signer. A dry
    run checks what it can read and makes no copies."""
    from . import protect

    passwords = None
    if encrypt and passwords_file is not None:
        known = protect.read_passwords(passwords_file)
        passwords = protect.passwords_for(recipients, known, passwords_file)
    elif encrypt and not dry_run:
        passwords = protect.kept_passwords(recipients, generated)
    signer = None
    if sign_p12 is not None:
        passphrase = protect.read_secret(sign_password_file) if sign_password_file else None
        signer = protect.load_signer(sign_p12, passphrase)
    if dry_run:
        return Protection()
    return Protection(stamp=stamp, passwords=passwords, signer=signer)


def describe(item: Outgoing, before: ledger.Entry | None, made: dict[str, object]) -> str:
    """A dry run's line for one message: to whom, the subject, each attachment and its size."""
    files = ", ".join(
        f"{part.get_filename()} ({len(part.get_payload(decode=True)) / 1e6:.2f} MB)"
        for part in item.message.iter_attachments()
    )
    how = [name for name, wanted in made.items() if wanted]
    copies = f"; as {', '.join(how)} copies" if how else ""
    line = f"would send to {', '.join(item.recipients)}: {item.message['Subject']}: {files}{copies}"
    if before is not None:
        line += f" (skipped: already delivered {before.time}; --resend sends it again)"
    return line


@dataclass
class Outgoing:
    """A message ready to go, with the copies it carries and what they were made from."""

    message: EmailMessage
    copies: tuple[str, ...]  # copy ids of its stamped attachments
    sources: dict[str, str]  # attachment name -> sha256 of the file as rendered

    @property
    def recipients(self) -> list[str]:
        return recipients_of(self.message)


def outgoing(
    records: list[Record],
    attachments: list[Attachment],
    groups: list[list[Address]],
    *,
    subject: str,
    config: Config,
    sender: Address | None,
    protection: Protection,
) -> Iterator[Outgoing]:
    """The messages, one per group of recipients; with copies, one recipient a group (--each),
    numbered copy 1 to N in the order given."""
    sources = {attachment.filename: ledger.digest(attachment.data) for attachment in attachments}
    for number, group in enumerate(groups, start=1):
        files, copy_ids = attachments, ()
        if protection.makes_copies:
            files, copy_ids = copies_for(attachments, group[0].addr_spec, number, len(groups),
                                         protection, config)  # fmt: skip
        message = compose(records, files, recipients=group, subject=subject, config=config,
                          sender=sender)  # fmt: skip
        yield Outgoing(message, copy_ids, sources)


def copies_for(
    attachments: list[Attachment],
    recipient: str,
    number: int,
    total: int,
    protection: Protection,
    config: Config,
) -> tuple[list[Attachment], tuple[str, ...]]:
    """One recipient's copy of each attachment, and the ids of the stamped ones. The stamp is
    typeset once for the recipient; each copy has an id of its own."""
    from .protect import encrypt, sign_with

    password = (protection.passwords or {}).get(recipient)
    stamp, files, copy_ids = None, [], []
    for attachment in attachments:
        data = attachment.data
        if protection.stamp:
            copy = Copy.new(number, total, recipient, protection.date)
            stamp = stamp or stamp_for(copy, config)
            data = stamped(data, stamp, copy)
            copy_ids.append(copy.copy_id)
        if password is not None:
            data = encrypt(data, password)
        if protection.signer is not None:
            data = sign_with(data, protection.signer, password=password)
        files.append(Attachment(attachment.filename, data))
    return files, tuple(copy_ids)


def may_have_drafts(groups: list[list[Address]], book: ledger.Ledger, subject: str) -> list[bool]:
    """For each group, whether the ledger lists a draft of this subject for its recipients:
    one that may be skipped once the attachments are rendered, so its draft being there
    already is no reason to stop before."""
    drafted = {
        (entry.recipient.lower(), entry.subject)
        for entry in book.entries
        if entry.via == "eml" and entry.status in ledger.DELIVERED
    }
    return [
        all((address.addr_spec.lower(), subject) in drafted for address in group)
        for group in groups
    ]


def delivered_before(item: Outgoing, book: ledger.Ledger, via: str) -> ledger.Entry | None:
    """The ledger's entry of an earlier delivery, the same way, of the same attachments (as
    rendered) to every recipient of `item`: the latest one, or None when any has not had them."""
    digests = ledger.attachment_digests(item.message, item.sources)
    found = [ledger.already_delivered(book, who, digests, via) for who in item.recipients]
    return None if None in found else max(found, key=lambda entry: entry.time)


def skipped(item: Outgoing, before: ledger.Entry) -> list[ledger.Entry]:
    """The ledger's lines for a message not sent again."""
    reason = f"skipped: already delivered {before.time} in {before.message_id}"
    results = dict.fromkeys(item.recipients, reason)
    return ledger.message_entries(item.message, results, before.via, item.copies, item.sources)


def write(items: list[Outgoing], targets: list[Path], book: Path) -> Iterator[Path]:
    """Each message as an .eml draft at its target, recorded in the ledger `book` as it is
    written."""
    drafts = write_drafts([item.message for item in items], targets)
    for item, path in zip(items, drafts, strict=False):
        ledger.record(book, ledger.draft_entries(item.message, item.copies, item.sources))
        yield path


def send(
    items: list[Outgoing], server, book: Path, rate: int | None, on_delivery: Callable
) -> None:
    """Each message over SMTP, recorded in the ledger `book` as soon as its fate is known."""
    from contextlib import closing

    from . import smtp

    by_id = {str(item.message["Message-ID"]): item for item in items}
    deliveries = smtp.send([item.message for item in items], server, rate=rate)
    with closing(deliveries):
        for delivery in deliveries:
            item = by_id[delivery.message_id]
            entries = ledger.delivery_entries(item.message, delivery, item.copies, item.sources)
            ledger.record(book, entries)
            on_delivery(delivery)


@dataclass
class FileCopies:
    """Traced copies written as files for one recipient (`dossier render --stamp-for ADDR`):
    `<slug>--<recipient>.pdf`, each recorded in the ledger `book` before it is written, so
    that no copy is ever out there untraced."""

    recipient: str
    config: Config
    book: Path
    date: dt.date = field(default_factory=dt.date.today)

    @property
    def name(self) -> str:
        from .mail import draft_names

        return next(draft_names([self.recipient]))

    def make(self, slug: str, pdf: bytes, path: Path) -> bytes:
        copy = Copy.new(1, 1, self.recipient, self.date)
        data = stamped(pdf, stamp_for(copy, self.config), copy)
        attached = ledger.Attached(f"{slug}.pdf", ledger.digest(data), ledger.digest(pdf))
        entry = ledger.Entry(ledger.now(), "", self.recipient, f"written to {path}",
                             (attached,), (copy.copy_id,), "written", "file")  # fmt: skip
        ledger.record(self.book, [entry])
        return data
