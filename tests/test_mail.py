"""Mail: messages, drafts and a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import socket
import ssl
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from click.testing import CliRunner

from renderer import mail as post
from renderer.cli import main
from renderer.config import Config, SmtpSettings
from renderer.problems import InvalidInput
from renderer.records import load_record
from tests.conftest import SEED_SLUG, small_catalog

OTHER_SLUG = "sdet"


def run(*args, env=None):
    return CliRunner().invoke(main, [str(arg) for arg in args], env=env)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """The small catalog, two of its dossiers rendered once into a cache shared by these tests."""
    folder = tmp_path_factory.mktemp("mail")
    records = small_catalog(folder)
    cache, out = folder / "cache", folder / "dossiers"
    result = run("render", SEED_SLUG, OTHER_SLUG, "--records", records, "--cache", cache,
                 "--out", out, "--jobs", "1", "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    return SimpleNamespace(records=records, cache=cache, dossiers=out)


# the machine's own mail settings must not leak into these tests
CLEAN_ENVIRONMENT = dict.fromkeys(
    [*post.ENVIRONMENT, "DOSSIER_SMTP_PASSWORD", post.PASSWORD_FILE_VARIABLE]
)


def mail(rendered, *args, env=None):
    common = ("--records", rendered.records, "--cache", rendered.cache, "--jobs", "1", "--quiet")
    return run("mail", *args, *common, env={**CLEAN_ENVIRONMENT, **(env or {})})


class Recorder:
    """An aiosmtpd handler that keeps every message it accepts and can refuse recipients."""

    def __init__(self, refuse=()):
        self.refuse, self.received = set(refuse), []

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address in self.refuse:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = BytesParser(policy=default).parsebytes(envelope.original_content)
        self.received.append(
            SimpleNamespace(
                sender=envelope.mail_from,
                recipients=list(envelope.rcpt_tos),
                message=message,
                tls=session.ssl is not None,
            )
        )
        return "250 Message accepted"


@pytest.fixture
def smtp():
    """A real SMTP server on a free loopback port, without TLS."""
    recorder, port = Recorder(refuse={"nobody@example.org"}), free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    yield SimpleNamespace(received=recorder.received, address=f"127.0.0.1:{port}", port=port)
    controller.stop()


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
    monkeypatch.setattr(post.Server, "is_loopback", property(lambda server: False))
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


# -- TLS and login ------------------------------------------------------------------------------
@pytest.fixture
def tls_smtp(tmp_path):
    """A server that requires STARTTLS and a login (ann / secret), with a CA of its own."""
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))

    def authenticate(server, session, envelope, mechanism, auth_data):
        accepted = (auth_data.login, auth_data.password) == (b"ann", b"secret")
        return AuthResult(success=accepted, handled=False)  # handled=False: answer 535

    recorder, port = Recorder(), free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port, tls_context=server_context,
                            require_starttls=True, authenticator=authenticate,
                            auth_require_tls=True)  # fmt: skip
    controller.start()
    config = tmp_path / "dossier.toml"
    config.write_text(
        f'[mail]\nsender = "desk@example.org"\n[mail.smtp]\nhost = "127.0.0.1"\nport = {port}\n'
        f'user = "ann"\nca_file = "{ca_file}"\n'
    )
    yield SimpleNamespace(received=recorder.received, config=config, port=port)
    controller.stop()


def test_starttls_and_login_with_the_password_from_the_environment(rendered, tls_smtp):
    result = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--config", tls_smtp.config,
                  env={"DOSSIER_SMTP_PASSWORD": "secret"})  # fmt: skip
    assert result.exit_code == 0, result.output
    (arrived,) = tls_smtp.received
    assert arrived.tls


def test_a_refused_login_is_one_line_without_the_password(rendered, tls_smtp, tmp_path):
    password_file = tmp_path / "password"
    password_file.write_text("wrong-horse\n")
    result = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--config", tls_smtp.config,
                  env={"DOSSIER_SMTP_PASSWORD_FILE": str(password_file)})  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"NOT sent to ann@example.org: login as 'ann' refused by 127.0.0.1:{tls_smtp.port}: 535"
    )
    assert "wrong-horse" not in result.output
    assert tls_smtp.received == []


def test_a_user_without_a_password_is_told_where_to_put_it(rendered, tls_smtp):
    result = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--config", tls_smtp.config,
                  env={"DOSSIER_SMTP_PASSWORD": ""})  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.startswith("password: a user is set, so a password is needed")


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


def test_server_settings_come_from_the_command_line_then_environment_then_config(tmp_path):
    settings = SmtpSettings(host="mail.example.org", user="ann", password_file=tmp_path / "pw")
    (tmp_path / "pw").write_text("from-file\n")
    from_config = post.smtp_server(settings, {})
    assert (from_config.host, from_config.port, from_config.password) == (
        "mail.example.org", 587, "from-file"
    )  # fmt: skip
    environ = {"DOSSIER_SMTP_HOST": "relay.example.org", "DOSSIER_SMTP_PASSWORD": "from-env"}
    from_environment = post.smtp_server(settings, environ)
    assert (from_environment.host, from_environment.password) == ("relay.example.org", "from-env")
    from_option = post.smtp_server(settings, environ, "[::1]:2525")
    assert (from_option.host, from_option.port, from_option.is_loopback) == ("::1", 2525, True)
    assert "from-env" not in repr(from_option)
    implicit = post.smtp_server(SmtpSettings(host="mail.example.org", security="tls"), {})
    assert implicit.port == 465


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("mail.example.org:smtp", "--smtp: 'smtp' is not a port number (1-65535)"),
        ("mail.example.org:70000", "--smtp: '70000' is not a port number (1-65535)"),
    ],
)
def test_a_bad_server_address_is_a_clear_error(address, message):
    with pytest.raises(InvalidInput) as error:
        post.smtp_server(SmtpSettings(), {}, address)
    assert str(error.value) == message


def test_no_server_anywhere_says_where_to_set_one():
    with pytest.raises(InvalidInput) as error:
        post.smtp_server(SmtpSettings(), {})
    assert "no SMTP server: give --smtp HOST:PORT" in str(error.value)


def test_smtp_settings_do_not_change_what_renders():
    plain = Config()
    with_server = Config(mail={"smtp": {"host": "mail.example.org"}, "sender": "a@example.org"})
    assert plain.rendering() == with_server.rendering()


def test_unknown_mail_settings_list_the_known_ones(tmp_path):
    from renderer.config import load_config

    config = tmp_path / "dossier.toml"
    config.write_text("[mail.smtp]\nhots = 'x'\n")
    with pytest.raises(InvalidInput) as error:
        load_config(config)
    assert str(error.value) == (
        f"{config}:2: mail.smtp.hots: unknown setting (known: host, port, security, user,"
        " password_env, password_file, ca_file, timeout)"
    )
