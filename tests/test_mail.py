"""Mail: messages and drafts, sent through a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import subprocess
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from types import SimpleNamespace

import pytest

from renderer import mail as post
from renderer import smtp as outgoing
from renderer.config import Config
from renderer.problems import InvalidInput
from renderer.records import load_record
from tests.conftest import SEED_SLUG
from tests.mailing import CLEAN_ENVIRONMENT, OTHER_SLUG, free_port, mail, refused_early, run


def attachments(message: EmailMessage) -> dict[str, bytes]:
    return {part.get_filename(): part.get_content() for part in message.iter_attachments()}


def bodies(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return text, html


def cached_pdfs(cache: Path) -> set[Path]:
    return {path for path in cache.rglob("*.cache") if b"\n%PDF" in path.read_bytes()[:200]}


# -- over SMTP -----------------------------------------------------------------------------------
def test_one_message_carries_both_bodies_and_the_rendered_pdfs(rendered, smtp):
    before = cached_pdfs(rendered.cache)
    result = mail(rendered, SEED_SLUG, OTHER_SLUG, "--to", "ann@example.org",
                  "--to", "Bo Bell <bo@example.org>", "--from", "desk@example.org",
                  "--smtp", smtp.address)  # fmt: skip
    assert result.exit_code == 0, result.output
    seed = load_record(rendered.records / f"{SEED_SLUG}.yaml").record
    other = load_record(rendered.records / f"{OTHER_SLUG}.yaml").record
    subject = f"2 specimen dossiers: {seed.title}, {other.title}"
    assert result.stdout == f"sent to ann@example.org, bo@example.org: {subject}\n"
    (arrived,) = smtp.received
    assert arrived.sender == "desk@example.org"
    assert arrived.recipients == ["ann@example.org", "bo@example.org"]
    assert arrived.message["Subject"] == subject
    assert arrived.message["To"] == "ann@example.org, Bo Bell <bo@example.org>"
    text, html = bodies(arrived.message)
    for record in (seed, other):
        assert record.title in text and record.flight_risk.diagnosis in text
        assert f"Flight risk {record.flight_risk.percent}% - {record.flight_risk.level}" in text
        assert record.title.replace("&", "&amp;") in html
    assert attachments(arrived.message) == {
        f"{slug}.pdf": (rendered.dossiers / f"{slug}.pdf").read_bytes()
        for slug in (SEED_SLUG, OTHER_SLUG)
    }
    assert cached_pdfs(rendered.cache) == before  # served from the build cache, not rendered


def test_each_recipient_gets_a_message_of_their_own(rendered, smtp):
    result = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--to", "bo@example.org",
                  "--each", "--from", "desk@example.org", "--smtp", smtp.address)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [r.recipients for r in smtp.received] == [["ann@example.org"], ["bo@example.org"]]
    assert [r.message["To"] for r in smtp.received] == ["ann@example.org", "bo@example.org"]
    assert result.stdout.count("sent to ") == 2


def test_a_refused_recipient_is_named_and_the_exit_code_says_so(rendered, smtp):
    result = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--to", "nobody@example.org",
                  "--from", "desk@example.org", "--smtp", smtp.address)  # fmt: skip
    assert result.exit_code == 1
    assert result.stdout.startswith("sent to ann@example.org: ")
    assert result.stderr == ("NOT sent to nobody@example.org: 550 5.1.1 no such mailbox here\n")
    assert [r.recipients for r in smtp.received] == [["ann@example.org"]]


def test_a_server_that_is_down_fails_every_recipient_in_one_line_each(rendered):
    port = free_port()
    result = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--to", "bo@example.org",
                  "--from", "desk@example.org", "--smtp", f"127.0.0.1:{port}")  # fmt: skip
    assert result.exit_code == 1
    reason = f"cannot connect to 127.0.0.1:{port}: connection refused (is the server running?)"
    assert result.stderr == (
        f"NOT sent to ann@example.org: {reason}\nNOT sent to bo@example.org: {reason}\n"
    )
    assert result.stdout == ""


@pytest.mark.parametrize("address", ["not an address", "ann@", "@example.org", "a@b@c.org"])
def test_an_address_that_is_not_one_stops_before_anything_is_sent(rendered, smtp, address):
    result = mail(rendered, SEED_SLUG, "--to", address, "--from", "desk@example.org",
                  "--smtp", smtp.address)  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr == f"--to: {address!r} is not an e-mail address\n"
    assert smtp.received == []


def test_attachments_over_the_limit_are_refused_with_what_to_send_instead(rendered, smtp, tmp_path):
    config = tmp_path / "dossier.toml"
    config.write_text("[mail]\nmax_attachment_mb = 0.05\n")
    result = mail(rendered, SEED_SLUG, OTHER_SLUG, "--to", "ann@example.org", "--config", config,
                  "--from", "desk@example.org", "--smtp", smtp.address)  # fmt: skip
    assert result.exit_code == 1
    assert "one message carries at most 0.05 MB of attachments" in result.stderr
    assert "send fewer dossiers per message" in result.stderr
    assert result.stderr.startswith(f"{SEED_SLUG}.pdf: ") or result.stderr.startswith(
        f"{OTHER_SLUG}.pdf: "
    )
    assert smtp.received == []


def test_a_compendium_over_the_limit_suggests_single_dossiers():
    files = [post.Attachment("compendium.pdf", b"x" * 300_000)]
    with pytest.raises(InvalidInput) as error:
        post.check_size(files, 0.2)
    assert str(error.value) == (
        "compendium.pdf: compendium.pdf is 0.3 MB; one message carries at most 0.2 MB of"
        " attachments (mail.max_attachment_mb); send single dossiers instead:"
        " dossier mail SLUG... --to ADDR"
    )


@pytest.mark.slow
def test_the_compendium_can_be_attached(rendered, smtp, tmp_path):
    result = mail(rendered, "--compendium", "--to", "ann@example.org", "--from", "desk@example.org",
                  "--smtp", smtp.address)  # fmt: skip
    assert result.exit_code == 0, result.output
    (arrived,) = smtp.received
    assert arrived.message["Subject"] == "Specimen compendium (4 specimens)"
    (name, pdf), *_ = attachments(arrived.message).items()
    assert name == "compendium.pdf" and pdf.startswith(b"%PDF-")


def test_a_remote_server_without_starttls_is_refused_unless_insecure(rendered, smtp, monkeypatch):
    monkeypatch.setattr(outgoing.Server, "is_loopback", property(lambda server: False))
    args = (SEED_SLUG, "--to", "ann@example.org", "--from", "desk@example.org",
            "--smtp", smtp.address)  # fmt: skip
    result = mail(rendered, *args)
    assert result.exit_code == 1
    assert result.stderr == (
        f"NOT sent to ann@example.org: {smtp.address} does not offer STARTTLS; refusing to send"
        " in clear text (use --insecure to allow it)\n"
    )
    assert smtp.received == []
    assert mail(rendered, *args, "--insecure").exit_code == 0
    assert len(smtp.received) == 1


# -- what is checked before anything is rendered ------------------------------------------------
ONE_LINE = "a line break or control character; a mail header is one line of printable text"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--subject", "Hi\r\nBcc: all@example.org"],
         f"--subject: 'Hi\\r\\nBcc: all@example.org' has U+000D, {ONE_LINE}"),
        (["--subject", "Hi\u2028Bcc: all@example.org"],
         f"--subject: 'Hi\\u2028Bcc: all@example.org' has U+2028, {ONE_LINE}"),
        (["--subject", "Hi\x00"], f"--subject: 'Hi\\x00' has U+0000, {ONE_LINE}"),
        (["--subject", "Hi \udcff"], "--subject: 'Hi \\udcff' holds bytes that are not UTF-8 text"),
        (["--to", "Ann\nBcc: all@example.org <ann@example.org>"],
         f"--to: 'Ann\\nBcc: all@example.org <ann@example.org>' has U+000A, {ONE_LINE}"),
        (["--from", "Desk\r\n <desk@example.org>"],
         f"--from: 'Desk\\r\\n <desk@example.org>' has U+000D, {ONE_LINE}"),
    ],
)  # fmt: skip
def test_line_breaks_in_headers_are_refused_naming_the_option(args, message, tmp_path):
    stderr = refused_early(["--to", "ann@example.org", "--eml-dir", tmp_path, *args])
    assert stderr == message + "\n"
    assert list(tmp_path.iterdir()) == []


def test_a_line_break_in_the_configured_sender_names_the_line(tmp_path):
    config = tmp_path / "dossier.toml"
    config.write_text('[mail]\nsender = "desk@example.org\\nBcc: all@example.org"\n')
    stderr = refused_early(["--to", "ann@example.org", "--config", config, "--smtp", "h:25"])
    assert stderr == (
        f"{config}:2: mail.sender: control character U+000A at character 17: a setting is one"
        " line of printable text; remove it (got 'desk@example.org\\nBcc: all@example.org')\n"
    )


# -- drafts -------------------------------------------------------------------------------------
def test_an_eml_draft_parses_back_into_the_same_parts(rendered, tmp_path):
    drafts = tmp_path / "drafts"
    args = (SEED_SLUG, "--to", "Zoë Ångström <zoe@example.org>", "--subject", "Dossier für Zoë",
            "--eml-dir", drafts)  # fmt: skip
    result = mail(rendered, *args)
    assert result.exit_code == 0, result.output
    (path,) = drafts.iterdir()
    assert result.stdout == f"{path}\n"
    message = BytesParser(policy=default).parsebytes(path.read_bytes())
    assert message["Subject"] == "Dossier für Zoë"
    assert message["To"] == "Zoë Ångström <zoe@example.org>"
    assert message["X-Unsent"] == "1"
    text, html = bodies(message)
    title = load_record(rendered.records / f"{SEED_SLUG}.yaml").record.title
    assert title in text and "<html>" in html
    assert attachments(message) == {
        f"{SEED_SLUG}.pdf": (rendered.dossiers / f"{SEED_SLUG}.pdf").read_bytes()
    }
    again = mail(rendered, *args)
    assert again.exit_code == 1
    assert again.stderr == f"{path}: already exists; not overwritten\n"


def test_each_recipient_gets_a_draft_of_their_own_even_when_their_names_meet(rendered, tmp_path):
    drafts = tmp_path / "drafts"
    recipients = ["a.b@example.org", "a-b@example.org", "A.B@Example.org", "a.b@example.org"]
    to = [arg for recipient in recipients for arg in ("--to", recipient)]
    result = mail(rendered, SEED_SLUG, *to, "--each", "--eml-dir", drafts)
    assert result.exit_code == 0, result.output
    paths = [Path(line) for line in result.stdout.splitlines()]
    assert len(set(paths)) == 4 and sorted(drafts.iterdir()) == sorted(paths)
    parsed = [BytesParser(policy=default).parsebytes(path.read_bytes()) for path in paths]
    assert [message["To"] for message in parsed] == recipients
    before = {path: path.read_bytes() for path in paths}
    again = mail(rendered, SEED_SLUG, *to, "--each", "--eml-dir", drafts)
    assert again.exit_code == 1
    assert again.stderr == "".join(
        f"{path}: already exists; not overwritten\n" for path in sorted(paths)
    )
    assert {path: path.read_bytes() for path in drafts.iterdir()} == before


def test_a_draft_already_there_stops_the_command_before_it_renders(rendered, tmp_path):
    drafts, cache = tmp_path / "drafts", tmp_path / "fresh-cache"
    drafts.mkdir()
    (drafts / "hello.eml").write_text("mine")
    result = run("mail", SEED_SLUG, "--to", "ann@example.org", "--subject", "Hello",
                 "--eml-dir", drafts, "--records", rendered.records, "--cache", cache,
                 env=CLEAN_ENVIRONMENT)  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr == f"{drafts / 'hello.eml'}: already exists; not overwritten\n"
    assert (drafts / "hello.eml").read_text() == "mine"
    assert cached_pdfs(cache) == set()


def test_a_link_in_the_way_of_a_draft_is_not_replaced(rendered, tmp_path):
    drafts = tmp_path / "drafts"
    drafts.mkdir()
    first = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--eml-dir", tmp_path / "probe")
    (name,) = [Path(line).name for line in first.stdout.splitlines()]
    (drafts / name).symlink_to(tmp_path / "elsewhere.eml")  # dangling: exists() says no
    result = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--eml-dir", drafts)
    assert result.exit_code == 1
    assert result.stderr == f"{drafts / name}: already exists; not overwritten\n"
    assert (drafts / name).is_symlink() and not (tmp_path / "elsewhere.eml").exists()


@contextlib.contextmanager
def mounted_tmpfs(folder: Path, options: str):
    """A real tmpfs at `folder` (root only, as in CI)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_drafts_on_a_read_only_file_system_are_one_line(rendered, tmp_path):
    with mounted_tmpfs(tmp_path / "drafts", "ro,size=1m") as drafts:
        result = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--subject", "Hello",
                      "--eml-dir", drafts)  # fmt: skip
        assert result.exit_code == 1
        assert result.stderr == f"{drafts / 'hello.eml'}: cannot write: read-only file system\n"
        assert list(drafts.iterdir()) == []


def test_a_full_disk_keeps_the_drafts_written_before_it_and_names_the_first_that_failed(
    rendered, tmp_path
):
    pdf = (rendered.dossiers / f"{SEED_SLUG}.pdf").stat().st_size
    room = (pdf * 2 // 4096 + 1) * 4096  # one draft (base64: 4/3 of the PDF), not two
    with mounted_tmpfs(tmp_path / "drafts", f"size={room}") as drafts:
        result = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--to", "bo@example.org",
                      "--each", "--subject", "Hello", "--eml-dir", drafts)  # fmt: skip
        assert result.exit_code == 1
        first, second = drafts / "hello--ann-example-org.eml", drafts / "hello--bo-example-org.eml"
        assert result.stdout == f"{first}\n"
        assert result.stderr == f"{second}: cannot write: no space left on device\n"
        assert list(drafts.iterdir()) == [first]  # and no temporary file left behind
        assert BytesParser(policy=default).parsebytes(first.read_bytes())["To"] == "ann@example.org"


def test_draft_names_are_distinct_for_every_recipient():
    long = "x" * 200
    recipients = ["a.b@example.org", "a-b@example.org", "A.B@Example.org", "a.b@example.org",
                  "c@example.org", f"{long}@example.org", f"{long}@example.net"]  # fmt: skip
    names = list(post.draft_names(recipients))
    assert len(set(names)) == len(recipients)
    assert names[4] == "c-example-org"  # no collision, no hash
    assert names[3] == f"{names[0]}-2"  # the same address twice
    assert all(len(name) <= 100 for name in names)


def test_a_title_with_a_line_break_makes_a_one_line_subject():
    record = SimpleNamespace(title="Chief\nExecutive   Officer")
    assert post.default_subject([record], False, 1) == "Specimen dossier: Chief Executive Officer"
    two = post.default_subject([record, record], False, 2)
    assert "\n" not in two


def test_a_title_that_looks_like_an_encoded_word_cannot_add_a_header():
    record = SimpleNamespace(title="=?utf-8?q?hi=0D=0ABcc:_evil@example.org?=")
    subject = post.default_subject([record], False, 1)
    message = post.compose([], [], recipients=[post.parse_address("a@example.org")],
                           subject=subject, config=Config())  # fmt: skip
    assert "Bcc" not in message and "\nBcc:" not in message.as_string()
    assert str(message["Subject"]) == subject


@pytest.mark.parametrize(
    "subject",
    ["=?utf-8?q?hi=0D=0ABcc:_evil@example.org?=", "=?utf-8?q?a=00b?=", "=?utf-8?q?=E2=80=A8x?="],
)
def test_an_encoded_word_hiding_a_line_break_in_the_subject_is_refused(subject):
    with pytest.raises(InvalidInput) as caught:
        post.header_text(subject, "--subject")
    assert "a line break or control character; a mail header is one line" in str(caught.value)


# -- the parts ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ann@example.org", "ann@example.org"),
        ("Ann Lee <ann@example.org>", "Ann Lee <ann@example.org>"),
        ("zoe@exämple.org", "zoe@xn--exmple-cua.org"),
    ],
)
def test_addresses_are_parsed_and_domains_made_ascii(text, expected):
    assert str(post.parse_address(text)) == expected


def test_smtp_settings_do_not_change_what_renders():
    plain = Config()
    with_server = Config(mail={"smtp": {"host": "mail.example.org"}, "sender": "a@example.org"})
    assert plain.rendering() == with_server.rendering()


def test_unknown_mail_settings_list_the_known_ones_or_the_closest(tmp_path):
    from renderer.config import load_config

    config = tmp_path / "dossier.toml"
    config.write_text("[mail.smtp]\nrelay = 'x'\n")  # close to no setting: all are listed
    with pytest.raises(InvalidInput) as error:
        load_config(config)
    assert str(error.value) == (
        f"{config}:2: mail.smtp.relay: unknown setting (known: host, port, security, user,"
        " password_env, password_file, ca_file, timeout)"
    )
    config.write_text("[mail.smtp]\nhots = 'x'\n")
    with pytest.raises(InvalidInput) as error:
        load_config(config)
    assert str(error.value) == f"{config}:2: mail.smtp.hots: unknown setting (did you mean 'host'?)"
