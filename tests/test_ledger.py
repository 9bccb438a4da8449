"""The mail ledger: whole lines from writers at once or killed, refusals, and its queries."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from renderer import ledger
from renderer.ledger import Attached, Entry
from renderer.problems import InvalidInput
from renderer.smtp import Delivery, Outcome
from tests.conftest import ROOT

TIME = "2026-12-03T10:15:02Z"
PDF_A, PDF_B = b"%PDF-1.7 first dossier", b"%PDF-1.7 second dossier"
SHA_A, SHA_B = hashlib.sha256(PDF_A).hexdigest(), hashlib.sha256(PDF_B).hexdigest()
REFUSE = "not a regular file ({}); refusing to use it as the mail ledger"


def message_to(*recipients: str, files: dict[str, bytes] | None = None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "desk@example.org"
    message["To"] = ", ".join(recipients)
    message["Subject"] = "2 specimen dossiers: SDET, Observability Advocate"
    message["Message-ID"] = "<17.dossier@example.org>"
    message.set_content("Two dossiers attached.")
    for name, data in (files or {"sdet.pdf": PDF_A, "advocate.pdf": PDF_B}).items():
        message.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    return message


def entry(recipient="ann@example.org", result="sent", digests=(SHA_A,), copies=(), **fields):
    attachments = tuple(Attached(f"{number}.pdf", sha) for number, sha in enumerate(digests))
    values = {"time": TIME, "message_id": "<1@example.org>", "recipient": recipient,
              "subject": "Specimen dossier: SDET", "attachments": attachments,
              "copies": tuple(copies), "result": result, "via": "smtp", **fields}  # fmt: skip
    return Entry(**values)


# -- lines -------------------------------------------------------------------------------------
def test_a_delivery_is_a_line_per_recipient_and_reads_back_the_same(tmp_path):
    path = tmp_path / "out" / ledger.LEDGER_NAME
    message = message_to("ann@example.org", "Bo Bell <bo@example.org>")
    delivery = Delivery(message["Subject"], message["Message-ID"], {
        "ann@example.org": Outcome("sent", "", 2),
        "bo@example.org": Outcome("refused", "550 5.1.1 no such mailbox here", 1),
    })  # fmt: skip
    written = ledger.delivery_entries(message, delivery, copies=["c-0017", "c-0018"])
    ledger.record(path, written)
    lines = path.read_bytes().splitlines()
    assert [json.loads(line) for line in lines] == [
        {
            "time": written[0].time,
            "message_id": "<17.dossier@example.org>",
            "recipient": recipient,
            "subject": "2 specimen dossiers: SDET, Observability Advocate",
            "attachments": [
                {"name": "sdet.pdf", "sha256": SHA_A},
                {"name": "advocate.pdf", "sha256": SHA_B},
            ],
            "copies": ["c-0017", "c-0018"],
            "result": result,
            "via": "smtp",
        }
        for recipient, result in [
            ("ann@example.org", "sent"),
            ("bo@example.org", "refused: 550 5.1.1 no such mailbox here"),
        ]
    ]
    assert written[0].time.endswith("Z") and len(written[0].time) == len(TIME)
    read = ledger.read_ledger(path)
    assert (read.entries, read.skipped) == (written, [])


def test_a_draft_is_written_for_each_of_its_recipients(tmp_path):
    path = tmp_path / ledger.LEDGER_NAME
    message = message_to("ann@example.org", "bo@example.org")
    ledger.record(path, ledger.draft_entries(message))
    entries = ledger.read_ledger(path).entries
    assert [(e.recipient, e.result, e.via, e.copies) for e in entries] == [
        ("ann@example.org", "written", "eml", ()),
        ("bo@example.org", "written", "eml", ()),
    ]


def test_text_beyond_ascii_and_line_breaks_stay_on_one_line(tmp_path):
    path = tmp_path / ledger.LEDGER_NAME
    odd = entry(recipient="zoë@exämple.org", subject="Für Zoë\u2028\nBcc: x", copies=["c\udcff"])
    ledger.record(path, [odd])
    assert path.read_bytes().count(b"\n") == 1
    assert ledger.read_ledger(path).entries == [odd]


def test_an_entry_that_would_not_read_back_is_not_written(tmp_path):
    path = tmp_path / ledger.LEDGER_NAME
    with pytest.raises(ValueError) as error:
        ledger.record(path, [entry(), entry(result="failed: ")])
    assert str(error.value) == (
        'not a ledger entry: result: "failed: " is not a result (sent, written, or refused,'
        " failed, unknown or skipped, then ': ' and the reason)"
    )
    assert not path.exists()


def test_a_missing_ledger_has_no_entries(tmp_path):
    read = ledger.read_ledger(tmp_path / "none.jsonl")
    assert (read.entries, read.skipped) == ([], [])
    assert not (tmp_path / "none.jsonl").exists()


def test_the_ledger_is_created_for_its_owner_only(tmp_path):
    path = tmp_path / "out" / ledger.LEDGER_NAME
    old = os.umask(0o022)
    try:
        ledger.check_writable(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == b""
    ledger.record(path, [entry()])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def bound_socket(path: Path) -> None:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (os.mkdir, "a folder"),
        (os.mkfifo, "a FIFO"),
        (lambda path: path.symlink_to("/dev/null"), "a link to a character device"),
        (bound_socket, "a socket"),
    ],
)
def test_a_ledger_that_is_not_a_file_is_refused_before_anything_is_sent(tmp_path, make, kind):
    path = tmp_path / ledger.LEDGER_NAME
    make(path)
    expected = f"{path}: {REFUSE.format(kind)}"
    for use in (ledger.check_writable, ledger.read_ledger, lambda p: ledger.record(p, [entry()])):
        with pytest.raises(InvalidInput) as error:
            use(path)
        assert str(error.value) == expected


def test_a_ledger_in_a_folder_that_cannot_be_made_is_named(tmp_path):
    (tmp_path / "out").write_text("a file, not a folder")
    with pytest.raises(InvalidInput) as error:
        ledger.check_writable(tmp_path / "out" / ledger.LEDGER_NAME)
    assert str(error.value) == f"{tmp_path / 'out'}: cannot create folder: not a directory"


# -- writers at once, killed, or out of room ----------------------------------------------------
WRITER = """
import sys, time
from pathlib import Path
from renderer import ledger
path, name, count, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
Path(f"{path}.{name}.ready").touch()
while not go.exists():
    time.sleep(0.001)
for number in range(count):
    line = ledger.Entry("2026-12-03T10:15:02Z", f"<{number}@{name}>", "ann@example.org",
                        name * 3000, (), (f"{name}-{number}",), "sent", "smtp")
    ledger.record(path, [line])
    if number == 99:
        Path(f"{path}.{name}.100").touch()
"""


def start_writer(path: Path, name: str, count: int, go: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), name, str(count), str(go)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


def copies_by_writer(entries: list[Entry]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for each in entries:
        (copy,) = each.copies
        found.setdefault(copy.split("-")[0], []).append(copy)
    return found


def test_two_processes_appending_at_once_write_whole_lines(tmp_path):
    path, go = tmp_path / ledger.LEDGER_NAME, tmp_path / "go"
    writers = [start_writer(path, name, 500, go) for name in ("left", "right")]
    started = time.monotonic()
    while not all(Path(f"{path}.{name}.ready").exists() for name in ("left", "right")):
        assert time.monotonic() - started < 60
        time.sleep(0.01)
    go.touch()
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0]
    lines = path.read_bytes().split(b"\n")
    assert len(lines) == 1001 and lines[-1] == b""
    read = ledger.read_ledger(path)
    assert read.skipped == []
    assert copies_by_writer(read.entries) == {
        name: [f"{name}-{number}" for number in range(500)] for name in ("left", "right")
    }
    writer_of_each = [each.copies[0].split("-")[0] for each in read.entries]
    turns = sum(one != next_one for one, next_one in itertools.pairwise(writer_of_each))
    assert turns > 1  # they did write at once


def test_a_process_killed_while_appending_leaves_whole_lines(tmp_path):
    path, go = tmp_path / ledger.LEDGER_NAME, tmp_path / "go"
    go.touch()
    writer = start_writer(path, "killed", 1_000_000, go)
    started = time.monotonic()
    while not Path(f"{path}.killed.100").exists():
        assert time.monotonic() - started < 60 and writer.poll() is None
        time.sleep(0.01)
    os.kill(writer.pid, signal.SIGKILL)
    assert writer.wait(timeout=10) == -signal.SIGKILL
    whole, _, rest = path.read_bytes().rpartition(b"\n")
    count = whole.count(b"\n") + 1
    read = ledger.read_ledger(path)  # a write() torn by the kill is at most the last line
    assert len(read.entries) == count >= 100
    assert len(read.skipped) == (1 if rest else 0)
    ledger.record(path, [entry(copies=["after-0"])])
    after = ledger.read_ledger(path)
    assert copies_by_writer(after.entries) == {
        "killed": [f"killed-{number}" for number in range(count)], "after": ["after-0"]
    }  # fmt: skip
    assert len(after.skipped) == len(read.skipped)


FULL = """
import resource, signal, sys
from pathlib import Path
from renderer import ledger
from renderer.problems import InvalidInput
path = Path(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + 50, resource.RLIM_INFINITY))
try:
    ledger.record(path, [ledger.Entry("2026-12-03T10:15:02Z", "<2@example.org>",
                         "bo@example.org", "Hello", (), (), "sent", "smtp")])
except InvalidInput as error:
    sys.exit(str(error))
"""


def test_a_line_that_cannot_be_written_whole_leaves_nothing_of_itself(tmp_path):
    path = tmp_path / ledger.LEDGER_NAME
    ledger.record(path, [entry()])
    before = path.read_bytes()
    # room for 50 more bytes: the write is cut short, the next one fails
    done = subprocess.run([sys.executable, "-c", FULL, str(path)], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert (done.returncode, done.stderr) == (1, f"{path}: cannot write: file too large\n")
    assert path.read_bytes() == before


# -- lines that are not whole entries ----------------------------------------------------------
def test_a_last_line_cut_short_is_skipped_then_marked_by_the_next_writer(tmp_path):
    path = tmp_path / ledger.LEDGER_NAME
    first, second = entry(copies=["c-1"]), entry(copies=["c-2"])
    ledger.record(path, [first, second])
    raw = path.read_bytes()
    cut = raw.index(b'"subject": "Spec', len(first.line())) + len(b'"subject": "Spec')
    path.write_bytes(raw[:cut])  # as a disk that filled up leaves it
    column = len(b'"subject": ') + raw.index(b'"subject": ') + 1
    read = ledger.read_ledger(path)
    assert read.entries == [first]
    assert [str(problem) for problem in read.skipped] == [
        f"{path}:2: warning: skipped the last line, not a whole entry: not JSON: Unterminated"
        f" string starting at (column {column})"
    ]
    third = entry(copies=["c-3"])
    ledger.record(path, [third])
    assert path.read_bytes() == raw[:cut] + ledger.CUT_SHORT + b"\n" + third.line()
    read = ledger.read_ledger(path)
    assert read.entries == [first, third]
    assert [str(problem) for problem in read.skipped] == [
        f"{path}:2: warning: skipped a line cut short (a process was killed while writing it)"
    ]


def test_a_whole_last_line_without_its_line_break_gets_only_the_break(tmp_path):
    path = tmp_path / ledger.LEDGER_NAME
    first, second = entry(copies=["c-1"]), entry(copies=["c-2"])
    path.write_bytes(first.line().rstrip(b"\n"))  # as an editor may save it
    ledger.record(path, [second])
    assert path.read_bytes() == first.line() + second.line()
    assert ledger.read_ledger(path).entries == [first, second]


def line_with(**changes) -> bytes:
    data = json.loads(entry().line())
    for name, value in changes.items():
        if value is None:
            del data[name]
        else:
            data[name] = value
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (line_with(recipient=None), "recipient: missing"),
        (line_with(subject=12), "subject: should be text (got 12)"),
        (line_with(time="yesterday"), "time: \"yesterday\" is not an ISO 8601 time"),
        (line_with(attachments=[{"name": "a.pdf", "sha256": "abc"}]),
         'attachments: each needs a name and a sha256 of 64 hex digits (got {"name": "a.pdf",'
         ' "sha256": "abc"})'),
        (line_with(copies="c-1"), 'copies: should be a list (got "c-1")'),
        (line_with(copies=[1]), "copies: should hold copy ids as text (got 1)"),
        (line_with(result="delivered"), "result: \"delivered\" is not a result (sent, written,"
         " or refused, failed, unknown or skipped, then ': ' and the reason)"),
        (line_with(result="failed: "), "result: \"failed: \" is not a result (sent, written, or"
         " refused, failed, unknown or skipped, then ': ' and the reason)"),
        (line_with(via="fax"), 'via: "fax": should be smtp or eml'),
        (b"[1, 2]", "not a JSON object"),
        (b'{"time": 2026-12-03}', "not JSON: Expecting ',' delimiter (column 14)"),
        (b'{"subject": "\xe4"}', "not UTF-8 text (byte 0xe4)"),
    ],
)  # fmt: skip
def test_an_invalid_line_before_the_last_is_named_at_its_line(tmp_path, line, problem):
    path = tmp_path / ledger.LEDGER_NAME
    path.write_bytes(entry().line() + line + b"\n" + entry().line())
    with pytest.raises(InvalidInput) as error:
        ledger.read_ledger(path)
    assert str(error.value) == f"{path}:2: {problem}"
    path.write_bytes(entry().line() + line + b"\n")  # the last line: skipped, with a warning
    read = ledger.read_ledger(path)
    assert read.entries == [entry()]
    assert [str(skipped) for skipped in read.skipped] == [
        f"{path}:2: warning: skipped the last line, not a whole entry: {problem}"
    ]


# -- queries -----------------------------------------------------------------------------------
def test_already_delivered_is_the_same_set_of_attachments_to_the_same_recipient(tmp_path):
    path = tmp_path / ledger.LEDGER_NAME
    sent = entry(digests=(SHA_A, SHA_B), message_id="<sent@example.org>")
    ledger.record(path, [
        entry(digests=(SHA_A, SHA_B), result="failed: 451 4.7.1 try later (after 3 retries)"),
        sent,
        entry(recipient="bo@example.org", digests=(SHA_A,), result="refused: 550 no such user"),
    ])  # fmt: skip
    read = ledger.read_ledger(path)
    assert ledger.already_delivered(read, "ann@example.org", [SHA_B, SHA_A]) == sent
    assert ledger.already_delivered(read, "ann@EXAMPLE.org", {SHA_A, SHA_B}) == sent
    assert ledger.already_delivered(read, "Ann@example.org", {SHA_A, SHA_B}) is None
    assert ledger.already_delivered(read, "ann@example.org", {SHA_A}) is None
    assert ledger.already_delivered(read, "ann@example.org", {SHA_A, SHA_B, "0" * 64}) is None
    assert ledger.already_delivered(read, "bo@example.org", {SHA_A}) is None  # refused


@pytest.mark.parametrize(
    ("result", "delivered"),
    [("sent", True), ("written", True), ("unknown: 127.0.0.1:25 closed the connection", True),
     ("failed: 451 try later (after 3 retries)", False), ("refused: 550 no", False),
     ("skipped: already sent", False)],
)  # fmt: skip
def test_what_counts_as_delivered(tmp_path, result, delivered):
    read = ledger.Ledger(tmp_path, [entry(result=result)])
    found = ledger.already_delivered(read, "ann@example.org", {SHA_A})
    assert found == (entry(result=result) if delivered else None)


def test_the_digests_of_a_message_are_those_of_its_attachments():
    assert ledger.attachment_digests(message_to("ann@example.org")) == {SHA_A, SHA_B}


def test_a_copy_is_found_in_the_message_that_delivered_it(tmp_path):
    path = tmp_path / ledger.LEDGER_NAME
    failed = entry(copies=["c-1", "c-2"], result="failed: 451 try later (after 3 retries)")
    sent = entry(recipient="bo@example.org", copies=["c-2", "c-3"], time="2026-12-04T08:00:00Z")
    never = entry(copies=["c-4"], result="refused: 550 no such user")
    ledger.record(path, [failed, sent, never])
    read = ledger.read_ledger(path)
    assert ledger.find_copy(read, "c-2") == sent  # delivered, though tried before
    assert ledger.find_copy(read, "c-4") == never  # never delivered: its result says why
    assert ledger.find_copy(read, "c-9") is None
    assert ledger.entries_of_copy(read, "c-2") == [failed, sent]
