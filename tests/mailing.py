"""Shared by the mail and SMTP tests: the CLI, a recording SMTP handler, a rendered catalog."""

from __future__ import annotations

import socket
import uuid
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from types import SimpleNamespace

from click.testing import CliRunner

from renderer import smtp as outgoing
from renderer.cli import main
from tests.conftest import SEED_SLUG, small_catalog

OTHER_SLUG = "sdet"


def run(*args, env=None):
    return CliRunner().invoke(main, [str(arg) for arg in args], env=env)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# the machine's own mail settings must not leak into these tests
CLEAN_ENVIRONMENT = dict.fromkeys(
    [*outgoing.ENVIRONMENT, "DOSSIER_SMTP_PASSWORD", outgoing.PASSWORD_FILE_VARIABLE]
)


def mail(rendered, *args, env=None):
    """`dossier mail` on the rendered catalog, with a ledger of its own (a later --ledger in
    `args` wins), so that no test skips what another one sent."""
    ledger = rendered.cache.parent / f"ledger-{uuid.uuid4().hex}.jsonl"
    common = ("--records", rendered.records, "--cache", rendered.cache, "--jobs", "1", "--quiet",
              "--ledger", ledger)  # fmt: skip
    return run("mail", *common, *args, env={**CLEAN_ENVIRONMENT, **(env or {})})


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


def render_small_catalog(folder: Path) -> SimpleNamespace:
    """The small catalog, two of its dossiers rendered into a cache that mail tests share."""
    records = small_catalog(folder)
    cache, out = folder / "cache", folder / "dossiers"
    result = run("render", SEED_SLUG, OTHER_SLUG, "--records", records, "--cache", cache,
                 "--out", out, "--jobs", "1", "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    return SimpleNamespace(records=records, cache=cache, dossiers=out)


def refused_early(args, env=None, records="no-such-folder"):
    """Run `dossier mail` where rendering would fail: the answer must come before it."""
    result = run("mail", SEED_SLUG, "--records", records, *args,
                 env={**CLEAN_ENVIRONMENT, **(env or {})})  # fmt: skip
    assert result.exit_code == 1, result.output
    return result.stderr
