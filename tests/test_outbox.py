"""Distribution copies end to end: dossier mail --each --stamp/--encrypt/--sign against a real
SMTP server on loopback, the ledger that keeps it from sending twice, and dossier trace."""

from __future__ import annotations

import datetime as dt
import io
import re
import stat

import pikepdf
import pytest

from tests import pdfs
from tests.conftest import SEED_SLUG
from tests.mailing import CLEAN_ENVIRONMENT, mail, run

SENDER = ("--from", "desk@example.org")
TODAY = dt.date.today().isoformat()


def attached_pdfs(arrived) -> dict[str, bytes]:
    return {
        part.get_filename(): part.get_payload(decode=True)
        for part in arrived.message.iter_attachments()
    }


def send(rendered, smtp, ledger, *args):
    return mail(rendered, *args, *SENDER, "--smtp", smtp.address, "--ledger", ledger)


def test_each_recipient_gets_stamped_copies_of_their_own_that_trace_names(rendered, smtp, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    to = ("--to", "ann@example.org", "--to", "Bo Bell <bo@example.org>")
    result = send(rendered, smtp, ledger, SEED_SLUG, "--compendium", *to, "--each", "--stamp")
    assert result.exit_code == 0, result.output
    ann, bo = (attached_pdfs(arrived) for arrived in smtp.received)
    assert sorted(ann) == sorted(bo) == ["compendium.pdf", f"{SEED_SLUG}.pdf"]
    for name in ann:
        assert ann[name] != bo[name]  # different bytes for each recipient
    for number, (who, files) in enumerate([("ann", ann), ("bo", bo)], start=1):
        stamp = f"COPY {number} OF 2 · EYES ONLY · {who}@example.org · {TODAY}"
        for name, data in files.items():
            with pikepdf.open(io.BytesIO(data)) as document:
                pages = len(document.pages)
            assert all(stamp in pdfs.page_text(data, page) for page in range(pages)), name
            path = tmp_path / f"{who}-{name}"
            path.write_bytes(data)
            traced = run("trace", path, "--ledger", ledger)
            assert traced.exit_code == 0, traced.output
            line = traced.stdout.strip()
            assert line.startswith(f"{path}: copy ")
            assert f" of {SEED_SLUG}.pdf, compendium.pdf sent to {who}@example.org on " in line
            assert line.endswith(f"under the subject {smtp.received[0].message['Subject']!r}")


def test_trace_says_when_a_file_is_not_a_traced_copy(rendered, tmp_path):
    plain = rendered.dossiers / f"{SEED_SLUG}.pdf"
    result = run("trace", plain, "--ledger", tmp_path / "ledger.jsonl")
    assert (result.exit_code, result.stdout) == (1, f"{plain}: not a traced copy\n")


def test_the_same_dossier_is_not_sent_twice_unless_resend(rendered, smtp, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    args = (SEED_SLUG, "--to", "ann@example.org", "--stamp")
    assert send(rendered, smtp, ledger, *args).exit_code == 0
    again = send(rendered, smtp, ledger, *args)
    assert again.exit_code == 0
    assert re.fullmatch(
        r"skipped ann@example\.org: already delivered \S+Z in <\S+> \(--resend sends it again\)\n",
        again.stdout,
    )
    assert len(smtp.received) == 1
    other = send(rendered, smtp, ledger, SEED_SLUG, "--to", "bo@example.org", "--stamp")
    assert other.exit_code == 0 and len(smtp.received) == 2  # someone else: sent
    resent = send(rendered, smtp, ledger, *args, "--resend")
    assert resent.exit_code == 0 and resent.stdout.startswith("sent to ann@example.org")
    assert len(smtp.received) == 3
    results = [
        line.split('"result": ')[1].split(",")[0] for line in ledger.read_text().splitlines()
    ]
    assert [r.strip('"').partition(":")[0] for r in results] == ["sent", "skipped", "sent", "sent"]


def test_a_dry_run_sends_writes_and_records_nothing(rendered, smtp, tmp_path):
    ledger = tmp_path / "out" / "ledger.jsonl"
    to = ("--to", "ann@example.org", "--to", "bo@example.org")
    result = send(rendered, smtp, ledger, SEED_SLUG, *to, "--each", "--stamp", "--encrypt",
                  "--dry-run")  # fmt: skip
    assert result.exit_code == 0, result.output
    subject = "Specimen dossier: Staff AI/ML Observability Advocate"
    expected = [
        rf"would send to {who}@example\.org: {re.escape(subject)}: {SEED_SLUG}\.pdf"
        r" \(0\.\d\d MB\); as stamped, encrypted copies"
        for who in ("ann", "bo")
    ]
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and all(
        re.fullmatch(e, line) for e, line in zip(expected, lines, strict=True)
    )
    assert smtp.received == []
    assert not (tmp_path / "out").exists()  # no ledger, no passwords file


def test_encrypted_copies_open_with_their_recipients_password_alone(rendered, smtp, tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    to = ("--to", "ann@example.org", "--to", "bo@example.org")
    result = send(rendered, smtp, ledger, SEED_SLUG, *to, "--each", "--encrypt")
    assert result.exit_code == 0, result.output
    passwords_file = tmp_path / "mail-passwords.csv"
    assert stat.S_IMODE(passwords_file.stat().st_mode) == 0o600
    assert result.stdout.splitlines()[0] == f"passwords for the encrypted copies: {passwords_file}"
    passwords = dict(line.split(",") for line in passwords_file.read_text().splitlines()[1:])
    copies = [attached_pdfs(arrived)[f"{SEED_SLUG}.pdf"] for arrived in smtp.received]
    for who, data in zip(["ann@example.org", "bo@example.org"], copies, strict=True):
        with pytest.raises(pikepdf.PasswordError):
            pikepdf.open(io.BytesIO(data))
        other = next(password for name, password in passwords.items() if name != who)
        with pytest.raises(pikepdf.PasswordError):
            pikepdf.open(io.BytesIO(data), password=other)
        with pikepdf.open(io.BytesIO(data), password=passwords[who]) as document:
            assert document.encryption.R == 6 and not document.allow.modify_other
    seen = result.output + ledger.read_text()
    seen += "".join(arrived.message.as_string() for arrived in smtp.received)
    assert not [password for password in passwords.values() if password in seen]


def test_signed_encrypted_stamped_copies_validate_with_the_signers_ca(
    rendered, smtp, tmp_path, signing
):
    from tests.signing import PASSPHRASE, validated

    secret = tmp_path / "passphrase.txt"
    secret.write_bytes(PASSPHRASE + b"\n")
    passwords = tmp_path / "passwords.csv"
    passwords.write_text("address,password\nann@example.org,ann-secret-1\n")
    result = send(rendered, smtp, tmp_path / "ledger.jsonl", SEED_SLUG, "--to", "ann@example.org",
                  "--stamp", "--encrypt", "--passwords", passwords, "--sign", signing.p12,
                  "--sign-password-file", secret)  # fmt: skip
    assert result.exit_code == 0, result.output
    data = attached_pdfs(smtp.received[0])[f"{SEED_SLUG}.pdf"]
    status = validated(data, signing, password="ann-secret-1")
    assert (status.intact, status.valid, status.trusted) == (True, True, True)
    changed = bytearray(data)
    changed[len(changed) // 3] ^= 0x01
    assert not validated(bytes(changed), signing, password="ann-secret-1").intact
    (tmp_path / "copy.pdf").write_bytes(data)  # traced without its password
    traced = run("trace", tmp_path / "copy.pdf", "--ledger", tmp_path / "ledger.jsonl")
    assert traced.exit_code == 0 and " sent to ann@example.org on " in traced.stdout


def test_copies_for_several_recipients_of_one_message_are_refused(rendered):
    result = mail(rendered, SEED_SLUG, "--to", "a@example.org", "--to", "b@example.org",
                  "--stamp", "--eml-dir", "drafts")  # fmt: skip
    assert result.exit_code == 2
    assert "--stamp and --encrypt make each recipient's own copy: add --each" in result.stderr


def test_a_copy_made_by_render_is_traced_to_its_recipient(rendered, tmp_path):
    ledger, out = tmp_path / "ledger.jsonl", tmp_path / "copies"
    result = run("render", SEED_SLUG, "--stamp-for", "Ann <ann@example.org>", "--records",
                 rendered.records, "--cache", rendered.cache, "--out", out, "--ledger", ledger,
                 "--quiet", env=CLEAN_ENVIRONMENT)  # fmt: skip
    assert result.exit_code == 0, result.output
    path = out / f"{SEED_SLUG}--ann-example-org.pdf"
    assert result.stdout == f"{path}\n"
    assert f"COPY 1 OF 1 · EYES ONLY · ann@example.org · {TODAY}" in pdfs.text(path.read_bytes())
    traced = run("trace", path, "--ledger", ledger)
    assert traced.exit_code == 0
    assert re.fullmatch(
        rf"{re.escape(str(path))}: copy [0-9a-f]{{32}} of {SEED_SLUG}\.pdf for ann@example\.org,"
        rf" written to {re.escape(str(path))}, \S+Z\n",
        traced.stdout,
    )


@pytest.mark.slow
def test_mail_killed_half_way_leaves_a_ledger_of_whole_lines_that_matches_the_drafts(
    rendered, tmp_path
):
    import os
    import signal
    import subprocess
    import sys
    import time

    from renderer.ledger import read_ledger
    from tests.conftest import ROOT

    ledger, drafts = tmp_path / "ledger.jsonl", tmp_path / "drafts"
    to = [arg for number in range(60) for arg in ("--to", f"reader{number}@example.org")]
    command = [sys.executable, "-m", "renderer", "mail", SEED_SLUG, *to, "--each", "--stamp",
               "--eml-dir", str(drafts), "--ledger", str(ledger), "--records",
               str(rendered.records), "--cache", str(rendered.cache), "--jobs", "1",
               "--quiet"]  # fmt: skip
    process = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(ROOT)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if ledger.exists() and ledger.read_bytes().count(b"\n") >= 5:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    book = read_ledger(ledger)
    assert book.skipped == []  # no torn line
    written = len(list(drafts.glob("*.eml")))
    assert 5 <= len(book.entries) < 60, "killed half-way"
    assert len(book.entries) <= written <= len(book.entries) + 1
    assert {entry.recipient for entry in book.entries} <= {
        f"reader{n}@example.org" for n in range(60)
    }
