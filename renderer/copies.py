"""Distribution copies: a rendered PDF stamped for one recipient, and traceable to them.

A copy is made without laying its pages out again. Its stamp (the layout's stamp.html.j2, one
line of real text in the layout's font) is typeset once per copy, and laid over every page of
the rendered PDF with pikepdf: a compendium of 1,000 pages gets one form XObject, drawn 1,000
times. The copy id goes into the XMP metadata (xmpMM:InstanceID) and the document ID, where
`dossier trace` reads it back.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import pikepdf

from . import ledger
from .config import Config
from .contract import PAPER_SIZES, STAMP_TEMPLATE
from .layouts import Layout
from .problems import InvalidInput, Problem

COPY_ID = re.compile(r"[0-9a-f]{32}")
MAX_TRACED_BYTES = 2_000_000_000  # a compendium of thousands of pages is far less
INSTANCE_PREFIX = "uuid:dossier-copy-"  # xmpMM:InstanceID of a traced copy
LAST_ID = re.compile(rb"/ID\s*\[\s*<([0-9A-Fa-f]{32})>")  # a trailer's document ID, first part


@dataclass(frozen=True)
class Copy:
    """Copy `number` of `total`, for one recipient, on one date; its id is random."""

    number: int
    total: int
    recipient: str
    date: dt.date
    copy_id: str

    @classmethod
    def new(cls, number: int, total: int, recipient: str, date: dt.date) -> Copy:
        return cls(number, total, recipient, date, secrets.token_hex(16))

    @property
    def text(self) -> str:
        return (
            f"COPY {self.number} OF {self.total} · EYES ONLY · {self.recipient} · "
            f"{self.date.isoformat()}"
        )


def stamp_for(copy: Copy, config: Config) -> bytes:
    """The copy's stamp: one page of the paper size, as a PDF, typeset by the layout."""
    from .render import engine_for  # WeasyPrint loads only when something is rendered

    layout = Layout.find(config.layout)
    layout.require((STAMP_TEMPLATE,), "a stamped copy")
    html = layout.render_html({"stamp": copy.text, "paper": PAPER_SIZES[config.paper]},
                              STAMP_TEMPLATE)  # fmt: skip
    engine = engine_for(layout)
    return engine.write_document(engine.layout_html(html))


def stamped(pdf: bytes, stamp: bytes, copy: Copy) -> bytes:
    """`pdf` with the stamp drawn over every page, and the copy's id in its metadata and
    document ID. In a tagged PDF the stamp is an artifact, outside the structure tree."""
    with pikepdf.open(io.BytesIO(pdf)) as document, pikepdf.open(io.BytesIO(stamp)) as source:
        form = document.copy_foreign(source.pages[0].as_form_xobject())
        for page in document.pages:
            _draw_over(document, page, form)
        with document.open_metadata(set_pikepdf_as_editor=False) as metadata:
            metadata["xmpMM:InstanceID"] = INSTANCE_PREFIX + copy.copy_id
        first = pikepdf.String(bytes.fromhex(copy.copy_id))
        document.trailer.ID = pikepdf.Array([first, first])  # the second is made on saving
        out = io.BytesIO()
        document.save(out, deterministic_id=True)
        return out.getvalue()


def _draw_over(document: pikepdf.Pdf, page: pikepdf.Page, form: pikepdf.Object) -> None:
    name = page.add_resource(form, pikepdf.Name.XObject, prefix="Stamp")
    box = page.mediabox
    origin = f"1 0 0 1 {float(box[0]):g} {float(box[1]):g} cm"
    page.contents_add(pikepdf.Stream(document, b"q\n"), prepend=True)
    overlay = f"\nQ\n/Artifact BMC q {origin} {name} Do Q EMC\n".encode()
    page.contents_add(pikepdf.Stream(document, overlay))


def copy_id_of(pdf: bytes, shown: str) -> str | None:
    """The copy id of a traced copy, None for any other PDF. It is read from the document ID,
    which encryption leaves in the clear, and, when the file opens without a password,
    confirmed by its XMP InstanceID. A file that is no PDF is a problem of `shown`."""
    try:
        with pikepdf.open(io.BytesIO(pdf)) as document:
            instance = str(document.open_metadata().get("xmpMM:InstanceID", ""))
            ids = document.trailer.get("/ID")
            first = bytes(ids[0]).hex() if isinstance(ids, pikepdf.Array) and len(ids) else ""
    except pikepdf.PasswordError:  # an encrypted copy: its trailer is not encrypted
        found = LAST_ID.findall(pdf[-65_536:])
        return found[-1].decode().lower() if found else None
    except pikepdf.PdfError:
        raise InvalidInput([Problem(shown, None, "", "not a PDF file")]) from None
    copy_id = instance.removeprefix(INSTANCE_PREFIX)
    if instance.startswith(INSTANCE_PREFIX) and COPY_ID.fullmatch(copy_id) and first == copy_id:
        return copy_id
    return None


def trace_copy(path: Path, book: Path) -> tuple[ledger.Entry | None, str]:
    """Who received the copy at `path`, as the ledger `book` tells it: the entry, and a line
    saying it ("copy 3f2a… sent to ann@example.org on …"); None when it is not a traced copy
    or the ledger does not list it."""
    from .inputfiles import read_bounded

    copy_id = copy_id_of(read_bounded(path, MAX_TRACED_BYTES, "PDF files"), str(path))
    if copy_id is None:
        return None, "not a traced copy"
    entry = ledger.find_copy(ledger.read_ledger(book), copy_id)
    if entry is None:
        return None, f"a traced copy ({copy_id}) that {book} does not list"
    return entry, describe_delivery(entry, copy_id)


def describe_delivery(entry: ledger.Entry, copy_id: str) -> str:
    names = ", ".join(attached.name for attached in entry.attachments)
    if entry.via == "file":
        return f"copy {copy_id} of {names} for {entry.recipient}, {entry.subject}, {entry.time}"
    how = {"sent": "sent to", "written": "in a draft to"}.get(entry.status, "meant for")
    outcome = "" if entry.status in ("sent", "written") else f" ({entry.result})"
    return (
        f"copy {copy_id} of {names} {how} {entry.recipient} on {entry.time} in message"
        f" {entry.message_id} under the subject {entry.subject!r}{outcome}"
    )
