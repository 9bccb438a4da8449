"""The corpus runner: one case of tests/corpus/<category>/cases.toml, run as a user would.

A case names a dossier command, the files it meets (made by a bash `setup` in a fresh folder:
FIFOs, mounts, symlinks, broken records) and the exact answer it must get. The command runs in
its own process, so a hang, a traceback or a crash is seen as the user would see it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import ROOT, SEED_SLUG, small_catalog

CORPUS = Path(__file__).parent / "corpus"
DEFAULT_TIMEOUT = 60
SITUATION_FILE = "cases.toml"
KNOWN_KEYS = {
    "setup", "args", "exit", "stderr", "stderr_has", "stdout", "stdout_has", "env", "unchanged",
    "root", "timeout", "smtp",
}  # fmt: skip


@dataclass(frozen=True)
class Case:
    category: str
    name: str
    spec: dict

    @property
    def id(self) -> str:
        return f"{self.category}: {self.name}"

    @property
    def timeout(self) -> float:
        return self.spec.get("timeout", DEFAULT_TIMEOUT)


def situation_cases() -> list[Case]:
    """Every case in a category's cases.toml whose tables carry `args` (situations)."""
    cases = []
    for path in sorted(CORPUS.glob(f"*/{SITUATION_FILE}")):
        for name, spec in tomllib.loads(path.read_text(encoding="utf-8")).items():
            if isinstance(spec, dict) and "args" in spec:
                cases.append(Case(path.parent.name, name, spec))
    return cases


@dataclass
class Outcome:
    code: int | None  # None: killed at the time limit
    stdout: str
    stderr: str
    seconds: float
    places: dict[str, str] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)  # of the paths that were to stay unchanged


def fill(text: str, places: dict[str, str]) -> str:
    for name, value in places.items():
        text = text.replace("{" + name + "}", value)
    return text


def run_case(case: Case, folder: Path) -> Outcome:
    """Lay out the case's folder, run its setup and its command, and tidy up its mounts."""
    unknown = set(case.spec) - KNOWN_KEYS
    assert not unknown, f"{case.id}: unknown keys {sorted(unknown)}"
    small_catalog(folder)
    places = {
        "tmp": str(folder),
        "here": str(CORPUS / case.category),
        "seed": str(folder / "records" / f"{SEED_SLUG}.yaml"),
    }
    with smtp_server(case.spec.get("smtp")) as address:
        if address:
            places["smtp"] = address
        try:
            if "setup" in case.spec:
                _setup(fill(case.spec["setup"], places), folder)
            kept = [folder / fill(path, places) for path in case.spec.get("unchanged", [])]
            before = [fingerprint(path) for path in kept]
            outcome = _command(case, [fill(arg, places) for arg in case.spec["args"]], places,
                               folder)  # fmt: skip
            outcome.changed = [
                str(path)
                for path, was in zip(kept, before, strict=True)
                if fingerprint(path) != was
            ]
        finally:
            unmount_below(folder)
    outcome.places = places
    return outcome


def _setup(script: str, folder: Path) -> None:
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=folder,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, f"setup failed: {done.stderr}"


def _command(case: Case, args: list[str], places: dict, folder: Path) -> Outcome:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DOSSIER_")},
        "PYTHONPATH": str(ROOT),
        **{key: fill(value, places) for key, value in case.spec.get("env", {}).items()},
    }
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "renderer", *args], cwd=folder, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = process.communicate(timeout=case.timeout)
        code = process.returncode
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 9)
        stdout, stderr = process.communicate()
        code = None
    seconds = time.monotonic() - started
    return Outcome(code, stdout.decode(errors="replace"), stderr.decode(errors="replace"), seconds)


def unmount_below(folder: Path) -> None:
    """Unmount whatever a setup mounted below the case's folder, deepest first."""
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    points = [line.split()[1].replace("\\040", " ") for line in mounts]
    below = [p for p in points if Path(p).is_relative_to(folder)]
    for point in sorted(below, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def fingerprint(path: Path) -> dict[str, tuple]:
    """Every file below a path (or the file itself): kind, size, time and bytes."""
    if not path.exists() and not path.is_symlink():
        return {}
    paths = [path] if not path.is_dir() or path.is_symlink() else sorted(path.rglob("*"))
    found = {}
    for item in paths:
        stat = item.lstat()
        content = item.read_bytes() if item.is_file() and not item.is_symlink() else b""
        found[str(item)] = (stat.st_mode, stat.st_size, stat.st_mtime_ns, content)
    return found


# -- loopback SMTP servers ---------------------------------------------------------------------
@contextlib.contextmanager
def smtp_server(mode: str | None):
    """A server on 127.0.0.1 for the case: its `host:port`, or None when the case needs none."""
    if mode is None:
        yield None
        return
    starters = {"normal": _aiosmtpd, "refuse-login": _aiosmtpd, "silent": _raw, "drop": _raw}
    assert mode in starters, f"unknown smtp mode {mode!r}"
    with starters[mode](mode) as port:
        yield f"127.0.0.1:{port}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Accept:
    async def handle_DATA(self, server, session, envelope):
        return "250 Message accepted"


def _refuse_every_login(server, session, envelope, mechanism, auth_data):
    from aiosmtpd.smtp import AuthResult

    return AuthResult(success=False, handled=False)


@contextlib.contextmanager
def _aiosmtpd(mode: str):
    from aiosmtpd.controller import Controller

    options = {}
    if mode == "refuse-login":  # offers AUTH and refuses every login (535)
        options = {"authenticator": _refuse_every_login, "auth_require_tls": False}
    controller = Controller(_Accept(), hostname="127.0.0.1", port=_free_port(), **options)
    controller.start()
    try:
        yield controller.port
    finally:
        controller.stop()


@contextlib.contextmanager
def _raw(mode: str):
    """`silent` accepts connections and never says a word; `drop` closes each at once."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop, held = threading.Event(), []

    def serve():
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if mode == "drop":
                connection.close()
            else:
                held.append(connection)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()
