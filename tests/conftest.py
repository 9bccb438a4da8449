"""Shared fixtures: the repository's paths and small record factories."""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent
RECORDS = ROOT / "records"
SEED_TEXT = ROOT / "tests" / "fixtures" / "text" / "seed.txt"
SEED_SLUG = "staff-ai-ml-observability-advocate"
SEED_YAML = RECORDS / f"{SEED_SLUG}.yaml"


@pytest.fixture
def seed_yaml_text() -> str:
    return SEED_YAML.read_text(encoding="utf-8")


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    """A writable copy of the committed catalog."""
    target = tmp_path / "records"
    shutil.copytree(RECORDS, target)
    return target


@pytest.fixture
def lone_seed_dir(tmp_path: Path, seed_yaml_text: str) -> Path:
    """A folder holding only the seed record (its related links point outside it)."""
    folder = tmp_path / "records"
    folder.mkdir()
    (folder / f"{SEED_SLUG}.yaml").write_text(seed_yaml_text, encoding="utf-8")
    return folder


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def weasyprint_messages():
    """What WeasyPrint warns meanwhile (its logger is silent unless a handler is attached)."""
    handler = _Collect()
    logger = logging.getLogger("weasyprint")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


@contextlib.contextmanager
def no_weasyprint_warnings():
    """Fails when WeasyPrint logs a warning."""
    with weasyprint_messages() as messages:
        yield
    assert messages == [], f"WeasyPrint warned: {messages[:5]}"


@pytest.fixture(autouse=True)
def weasyprint_stays_silent(request):
    if "weasyprint_warnings" in request.fixturenames:  # the test checks them itself
        yield
        return
    with no_weasyprint_warnings():
        yield


@pytest.fixture
def weasyprint_warnings():
    """For a test that expects WeasyPrint to warn: the messages it logs, for the test to check."""
    with weasyprint_messages() as messages:
        yield messages


SMALL_CATALOG = (SEED_SLUG, "sdet", "enterprise-architect", "lead-backend-data-procurement-analyst")


def small_catalog(folder: Path) -> Path:
    """The seed and the three specimens it relates to, copied into `folder`/records."""
    records = folder / "records"
    records.mkdir(parents=True)
    for slug in SMALL_CATALOG:
        shutil.copy(RECORDS / f"{slug}.yaml", records)
    return records


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running `code`."""
    probe = f"{code}\nimport sys\nprint(' '.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


# -- mail: the catalog rendered once per module, and a real SMTP server on loopback ----------
@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """The small catalog, two of its dossiers rendered once into a cache shared by a module."""
    from tests.mailing import render_small_catalog

    return render_small_catalog(tmp_path_factory.mktemp("mail"))


@pytest.fixture
def smtp():
    """A real SMTP server on a free loopback port, without TLS."""
    from aiosmtpd.controller import Controller

    from tests.mailing import Recorder, free_port

    recorder, port = Recorder(refuse={"nobody@example.org"}), free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    yield SimpleNamespace(received=recorder.received, address=f"127.0.0.1:{port}", port=port)
    controller.stop()


@pytest.fixture(scope="module")
def signing(tmp_path_factory):
    """A test CA and a signer's PKCS#12 file (tests/signing.py)."""
    from tests.signing import make_signing

    return make_signing(tmp_path_factory.mktemp("signing"))
