"""The mail ledger: a line for each recipient of every message sent, or written as a draft.

One JSON object a line, appended and never rewritten (`out/mail-ledger.jsonl` by default):

    {"time": "2026-12-03T10:15:02Z", "message_id": "<...@example.org>",
     "recipient": "ann@example.org", "subject": "Specimen dossier: ...",
     "attachments": [{"name": "sdet.pdf", "sha256": "<64 hex digits>"}],
     "copies": ["<copy id>", ...], "result": "sent", "via": "smtp"}

`result` is one of:
- "sent": the server accepted the message for this recipient;
- "written": the message was written as an .eml draft (via "eml");
- "refused: REASON": the server refused it for good (a 5xx answer), or it cannot go as it is;
- "failed: REASON": not sent: temporary failures until the retries ran out, or no connection;
- "unknown: REASON": the whole message went, then the connection was lost before the server's
  answer: it may have arrived;
- "skipped: REASON": not sent, on purpose (already delivered, say).

Each line is written with one write() to the file opened with O_APPEND, under an exclusive
flock, then fsync'd: lines of two processes never mix, and a line that fails (a full disk) is
cut off again. Only a process killed in the middle of a write() can leave part of a line: the
next writer ends it with CUT_SHORT and a line break, and readers skip it, with a warning.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING

from .fileio import KINDS, make_folder, os_problem, refused
from .inputfiles import read_bounded
from .mail import recipients_of
from .problems import InvalidInput, Problem, Severity

if TYPE_CHECKING:
    from .smtp import Delivery, Outcome

Sources = Mapping[str, str] | None  # attachment name -> sha256 of the file its copy was made from
LEDGER_NAME = "mail-ledger.jsonl"
MAX_LEDGER_BYTES = 250_000_000  # some 500,000 lines: start a new ledger beyond that
DELIVERED = ("sent", "written", "unknown")  # "unknown" too: it may have arrived
REASONED = ("refused", "failed", "unknown", "skipped")
VIAS = ("smtp", "eml", "file")  # file: a copy written by `dossier render --stamp-for`
CUT_SHORT = b"\t<- cut short: the write of this line did not finish"
SHA256 = re.compile(r"[0-9a-f]{64}")
APPEND_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


@dataclass(frozen=True)
class Attached:
    """One attachment of a message: its file name and the sha256 of its bytes; for a copy
    made for its recipient (stamped, encrypted, signed), also the sha256 of the file it was
    made from, which tells whether the same dossier went before."""

    name: str
    sha256: str
    source: str = ""  # "" when it went as rendered

    @property
    def original(self) -> str:
        return self.source or self.sha256


@dataclass(frozen=True)
class Entry:
    """One line of the ledger: what became of one message for one recipient."""

    time: str  # ISO 8601, UTC: 2026-12-03T10:15:02Z
    message_id: str
    recipient: str
    subject: str
    attachments: tuple[Attached, ...]
    copies: tuple[str, ...]
    result: str  # "sent", "written", or "refused: ...", "failed: ...", "unknown: ...", ...
    via: str  # "smtp" or "eml"

    @property
    def status(self) -> str:
        """The result without its reason: "sent", "refused"..."""
        return self.result.partition(":")[0]

    @property
    def digests(self) -> frozenset[str]:
        """The attachments as rendered, before any copy was made of them."""
        return frozenset(attached.original for attached in self.attachments)

    def line(self) -> bytes:
        data = {
            "time": self.time,
            "message_id": self.message_id,
            "recipient": self.recipient,
            "subject": self.subject,
            "attachments": [_attached_data(a) for a in self.attachments],
            "copies": list(self.copies),
            "result": self.result,
            "via": self.via,
        }
        # json escapes every line break; a lone surrogate (bytes that were not UTF-8 in a name)
        # is written as its \\udcxx escape, which JSON reads back as it was
        text = json.dumps(data, ensure_ascii=False) + "\n"
        return text.encode("utf-8", "backslashreplace")


@dataclass
class Ledger:
    """A ledger as read: its entries in the order written, and the lines skipped (warnings)."""

    path: Path
    entries: list[Entry] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)


# -- entries -----------------------------------------------------------------------------------
def delivery_entries(
    message: EmailMessage, delivery: Delivery, copies: Iterable[str] = (), sources: Sources = None
) -> list[Entry]:
    """A message sent over SMTP: one entry per recipient, with its outcome."""
    results = {who: result_of(outcome) for who, outcome in delivery.outcomes.items()}
    return message_entries(message, results, "smtp", copies, sources)


def draft_entries(
    message: EmailMessage, copies: Iterable[str] = (), sources: Sources = None
) -> list[Entry]:
    """A message written as an .eml draft: "written" for each of its recipients."""
    written = dict.fromkeys(recipients_of(message), "written")
    return message_entries(message, written, "eml", copies, sources)


def message_entries(
    message: EmailMessage,
    results: Mapping[str, str],
    via: str,
    copies: Iterable[str] = (),
    sources: Sources = None,
) -> list[Entry]:
    """One entry per recipient of `message`, with its result ("skipped: already sent", ...).
    `sources` gives, by attachment name, the sha256 of the file a copy was made from."""
    time, attachments, copies = now(), attachments_of(message, sources), tuple(copies)
    message_id, subject = str(message["Message-ID"] or ""), str(message["Subject"] or "")
    return [
        Entry(time, message_id, recipient, subject, attachments, copies, result, via)
        for recipient, result in results.items()
    ]


def result_of(outcome: Outcome) -> str:
    if outcome.status == "sent":
        return "sent"
    return f"{outcome.status}: {outcome.reason or 'no reason given'}"


def attachments_of(message: EmailMessage, sources: Sources = None) -> tuple[Attached, ...]:
    attached = []
    for part in message.iter_attachments():
        name = part.get_filename() or ""
        sha256 = digest(part.get_payload(decode=True) or b"")
        source = (sources or {}).get(name, "")
        attached.append(Attached(name, sha256, "" if source == sha256 else source))
    return tuple(attached)


def attachment_digests(message: EmailMessage, sources: Sources = None) -> frozenset[str]:
    """What already_delivered compares: the sha256 of each attachment as rendered (before a
    copy was made of it), whatever its name."""
    return frozenset(attached.original for attached in attachments_of(message, sources))


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- writing -----------------------------------------------------------------------------------
def check_writable(path: Path) -> None:
    """Refuse, before anything is sent, a ledger that cannot take a line: a folder, a FIFO, a
    device or a socket (or a link to one), or a file that cannot be opened for appending.
    Creates the file (mode 0600: it names recipients) and its folder when missing."""
    os.close(_open_for_append(path))


def record(path: Path, entries: Iterable[Entry]) -> None:
    """Append a line for each entry, each one whole and on disk before this returns.

    Raises InvalidInput naming the file when a line cannot be written; nothing of that line is
    left in the file, and the lines before it stay. An entry that readers would refuse (a result
    without its reason, say) is a ValueError, and nothing is written."""
    lines = [_checked_line(entry) for entry in entries]
    if not lines:
        return
    handle = _open_for_append(path)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        for line in lines:
            _append(handle, line)
    except OSError as error:
        raise InvalidInput([os_problem(error, "write", path)]) from None
    finally:
        os.close(handle)  # and with it the lock


def _checked_line(entry: Entry) -> bytes:
    """The entry's line, once it reads back: one line readers refuse would stop every later
    run at it."""
    line = entry.line()
    try:
        entry_of(line.rstrip(b"\n"))
    except _Invalid as invalid:
        raise ValueError(f"not a ledger entry: {invalid}") from None
    return line


def _open_for_append(path: Path) -> int:
    make_folder(path.parent)
    try:
        return _open_regular(path, APPEND_FLAGS)
    except OSError as error:
        raise InvalidInput([os_problem(error, "write", path)]) from None


def _append(handle: int, line: bytes) -> None:
    """One line in one write(), after ending a line a killed writer left unfinished; a line that
    fails half-way is cut off again (the lock is held: nobody else writes meanwhile)."""
    size = os.fstat(handle).st_size
    line = _ending_unfinished_line(handle, size) + line
    try:
        written = os.write(handle, line)
        while written < len(line):  # a short write: the disk or the file size limit is reached
            written += os.write(handle, line[written:])
    except BaseException:
        with contextlib.suppress(OSError):
            os.ftruncate(handle, size)
        raise
    os.fsync(handle)


def _ending_unfinished_line(handle: int, size: int) -> bytes:
    """What ends the file's last line when a killed writer left it without its line break: the
    CUT_SHORT mark, so that readers know it for what it is (a whole entry needs only the break)."""
    if size == 0 or os.pread(handle, 1, size - 1) == b"\n":
        return b""
    start = max(0, size - 65_536)
    tail = os.pread(handle, size - start, start).rpartition(b"\n")[2]
    return b"\n" if _is_entry(tail) else CUT_SHORT + b"\n"


# -- reading -----------------------------------------------------------------------------------
def read_ledger(path: Path) -> Ledger:
    """The ledger's entries (none when the file does not exist yet).

    A line cut short by a killed writer, and an invalid last line (a disk that filled up), are
    skipped and listed in `skipped`; any other invalid line raises InvalidInput, at its line."""
    try:
        handle = _open_regular(path, READ_FLAGS)
    except FileNotFoundError:
        return Ledger(path)
    except OSError as error:
        raise InvalidInput([os_problem(error, "read", path)]) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_SH)  # no line is read while it is being written
        raw = read_bounded(path, MAX_LEDGER_BYTES, "mail ledgers")
    finally:
        os.close(handle)
    return parse_ledger(raw, path)


def parse_ledger(raw: bytes, path: Path) -> Ledger:
    """The ledger's entries from its bytes; see read_ledger."""
    ledger, problems = Ledger(path), []
    lines = raw.split(b"\n")
    last = max((n for n, text in enumerate(lines, start=1) if text.strip()), default=0)
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        if text.endswith(CUT_SHORT):
            message = "skipped a line cut short (a process was killed while writing it)"
            ledger.skipped.append(Problem(str(path), number, "", message, Severity.WARNING))
            continue
        try:
            ledger.entries.append(entry_of(text))
        except _Invalid as invalid:
            if number == last:
                message = f"skipped the last line, not a whole entry: {invalid}"
                ledger.skipped.append(Problem(str(path), number, "", message, Severity.WARNING))
            else:
                problems.append(Problem(str(path), number, invalid.field, invalid.message))
    if problems:
        raise InvalidInput(problems)
    return ledger


class _Invalid(Exception):
    def __init__(self, where: str, message: str):
        super().__init__(f"{where}: {message}" if where else message)
        self.field, self.message = where, message


def entry_of(text: bytes) -> Entry:
    """One line as an Entry; _Invalid says which field is wrong, and how."""
    try:
        data = json.loads(text.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise _Invalid("", f"not UTF-8 text (byte 0x{text[error.start]:02x})") from None
    except json.JSONDecodeError as error:
        raise _Invalid("", f"not JSON: {error.msg} (column {error.colno})") from None
    if not isinstance(data, dict):
        raise _Invalid("", "not a JSON object")
    return Entry(
        time=_time(data),
        message_id=_text(data, "message_id"),
        recipient=_text(data, "recipient"),
        subject=_text(data, "subject"),
        attachments=tuple(_attached(item) for item in _list(data, "attachments")),
        copies=tuple(_copy(item) for item in _list(data, "copies")),
        result=_result(data),
        via=_via(data),
    )


def _is_entry(text: bytes) -> bool:
    try:
        entry_of(text)
    except _Invalid:
        return False
    return True


def _text(data: dict, name: str) -> str:
    if name not in data:
        raise _Invalid(name, "missing")
    if not isinstance(data[name], str):
        raise _Invalid(name, f"should be text (got {_shown(data[name])})")
    return data[name]


def _list(data: dict, name: str) -> list:
    if name not in data:
        raise _Invalid(name, "missing")
    if not isinstance(data[name], list):
        raise _Invalid(name, f"should be a list (got {_shown(data[name])})")
    return data[name]


def _time(data: dict) -> str:
    text = _text(data, "time")
    try:
        dt.datetime.fromisoformat(text)
    except ValueError:
        raise _Invalid("time", f"{_shown(text)} is not an ISO 8601 time") from None
    return text


def _attached_data(attached: Attached) -> dict:
    data = {"name": attached.name, "sha256": attached.sha256}
    return {**data, "source": attached.source} if attached.source else data


def _attached(item) -> Attached:
    if not isinstance(item, dict):
        raise _Invalid("attachments", f"should hold objects (got {_shown(item)})")
    name, sha256, source = item.get("name"), item.get("sha256"), item.get("source", "")
    digests = [sha256, source] if source else [sha256]
    if not isinstance(name, str) or not all(_is_sha256(text) for text in digests):
        message = f"each needs a name and a sha256 of 64 hex digits (got {_shown(item)})"
        raise _Invalid("attachments", message)
    return Attached(name, sha256, source)


def _is_sha256(text: object) -> bool:
    return isinstance(text, str) and SHA256.fullmatch(text) is not None


def _copy(item) -> str:
    if not isinstance(item, str):
        raise _Invalid("copies", f"should hold copy ids as text (got {_shown(item)})")
    return item


def _result(data: dict) -> str:
    text = _text(data, "result")
    status, colon, reason = text.partition(": ")
    if text in ("sent", "written") or (status in REASONED and colon and reason.strip()):
        return text
    message = (
        f"{_shown(text)} is not a result (sent, written, or refused, failed, unknown or"
        " skipped, then ': ' and the reason)"
    )
    raise _Invalid("result", message)


def _via(data: dict) -> str:
    text = _text(data, "via")
    if text not in VIAS:
        raise _Invalid("via", f"{_shown(text)}: should be smtp or eml")
    return text


def _shown(value) -> str:
    """A value as a message shows it: JSON, one line, at most 60 characters."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _open_regular(path: Path, flags: int) -> int:
    """`path` opened with `flags`, once it is known to be a regular file (before opening: a
    FIFO or a device is never opened; after: the file opened is checked again)."""
    try:
        _refuse_special(path, path.stat())
    except FileNotFoundError:
        if not flags & os.O_CREAT:
            raise
    handle = os.open(path, flags, 0o600)
    try:
        _refuse_special(path, os.fstat(handle))
    except BaseException:
        os.close(handle)
        raise
    return handle


def _refuse_special(path: Path, status: os.stat_result) -> None:
    if stat.S_ISREG(status.st_mode):
        return
    kind = KINDS.get(stat.S_IFMT(status.st_mode), "a special file")
    if path.is_symlink():
        kind = f"a link to {kind}"
    raise refused(path, kind, "use it as the mail ledger")


# -- queries -----------------------------------------------------------------------------------
def already_delivered(
    ledger: Ledger, recipient: str, attachment_digests: Iterable[str], via: str | None = None
) -> Entry | None:
    """The latest entry that delivered the same set of attachments (by sha256, whatever their
    names) to this recipient: sent, written as a draft, or perhaps arrived ("unknown"); only
    by way of `via` when given (a draft written is not a message sent)."""
    wanted, who = frozenset(attachment_digests), _address_key(recipient)
    for entry in reversed(ledger.entries):
        same_recipient = _address_key(entry.recipient) == who
        same_way = via is None or entry.via == via
        if entry.status in DELIVERED and entry.digests == wanted and same_recipient and same_way:
            return entry
    return None


def find_copy(ledger: Ledger, copy_id: str) -> Entry | None:
    """The entry of the message that carried this copy: the latest that delivered it, else the
    latest that tried to (its result says why it did not arrive); None if none carried it."""
    carried = entries_of_copy(ledger, copy_id)
    delivered = [entry for entry in carried if entry.status in DELIVERED]
    return (delivered or carried or [None])[-1]


def entries_of_copy(ledger: Ledger, copy_id: str) -> list[Entry]:
    """Every entry that names this copy (a message to several recipients names it in each)."""
    return [entry for entry in ledger.entries if copy_id in entry.copies]


def _address_key(address: str) -> str:
    """An address as compared: the domain in any case, the local part as it is (RFC 5321)."""
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.lower()}"
