"""The corpus runner: one case of tests/corpus/<category>/cases.toml, run as a user would.

A case names a dossier command, the files it meets (made by a bash `setup` in a fresh folder:
FIFOs, mounts, symlinks, broken records) and the exact answer it must get. The command runs in
its own process, so a hang, a traceback or a crash is seen as the user would see it.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
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
    "root", "timeout", "smtp", "requests", "signal",
}  # fmt: skip
SERVING = re.compile(r"Previewing at http://127\.0\.0\.1:(\d+)/")
SIGNALS = {"SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT, "SIGKILL": signal.SIGKILL}
GONE_WITHIN = 5.0  # seconds after the command ends by which none of its processes may be left


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
    answers: list[int] = field(default_factory=list)  # HTTP statuses, for `requests`
    left: list[str] = field(default_factory=list)  # its processes still alive, for `signal`


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
    """Run the command; a case with `requests` talks to it as a server, one with `signal`
    interrupts it while it works; then it is waited for, at most the case's time limit."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DOSSIER_")},
        "PYTHONPATH": str(ROOT),
        **{key: fill(value, places) for key, value in case.spec.get("env", {}).items()},
    }
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "renderer", *args], cwd=folder, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        # Ctrl-C as in a terminal, even where these tests run with SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    streams = _Streams(process)
    answers, family = [], []
    try:
        if "requests" in case.spec:
            answers = _ask(streams, case.spec["requests"], case.timeout)
            process.send_signal(signal.SIGTERM)
        if "signal" in case.spec:
            family = _interrupt(process, case.spec["signal"], case.timeout)
        process.wait(timeout=max(case.timeout - (time.monotonic() - started), 0.1))
        code = process.returncode
    except (subprocess.TimeoutExpired, TimeoutError):
        code = None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    stdout, stderr = streams.finish()
    outcome = Outcome(code, stdout, stderr, time.monotonic() - started, answers=answers)
    outcome.left = _still_alive(family)
    return outcome


class _Streams:
    """The command's stdout and stderr, read as they come (a server never closes them)."""

    def __init__(self, process: subprocess.Popen):
        self.process, self.chunks = process, {"stdout": [], "stderr": []}
        self.readers = [
            threading.Thread(target=self._read, args=(name,), daemon=True) for name in self.chunks
        ]
        for reader in self.readers:
            reader.start()

    def _read(self, name: str) -> None:
        stream = getattr(self.process, name)
        for line in iter(stream.readline, b""):
            self.chunks[name].append(line)

    def text(self, name: str) -> str:
        return b"".join(self.chunks[name]).decode(errors="replace")

    def finish(self) -> tuple[str, str]:
        for reader in self.readers:
            reader.join(10)
        for name in self.chunks:
            getattr(self.process, name).close()
        return self.text("stdout"), self.text("stderr")


def _ask(streams: _Streams, requests: list[dict], limit: float) -> list[int]:
    """Wait for the server's address, then send each request as raw HTTP; their statuses."""
    deadline = time.monotonic() + limit
    while not (found := SERVING.search(streams.text("stderr"))):
        if time.monotonic() > deadline or streams.process.poll() is not None:
            raise TimeoutError("the server did not start")
        time.sleep(0.05)
    port = int(found[1])
    return [_status(port, request) for request in requests]


def _status(port: int, request: dict) -> int:
    path = request["path"] + "a" * request.get("pad", 0)
    host = request.get("host", "127.0.0.1:{port}").replace("{port}", str(port))
    head = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(head.encode("utf-8", "surrogateescape"))
        answer = connection.makefile("rb").readline().decode("latin-1")
    return int(answer.split()[1])


def _interrupt(process: subprocess.Popen, spec: dict, limit: float) -> list:
    """Once the command has `workers` child processes (or after `after` seconds), send it the
    signal; returns every process of its family seen by then."""
    import psutil

    main = psutil.Process(process.pid)
    deadline, earliest = time.monotonic() + limit, time.monotonic() + spec.get("after", 0)
    family = []
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(psutil.Error):
            family = [main, *main.children(recursive=True)]
        workers = len(family) - 2  # less the main process and multiprocessing's resource tracker
        if workers >= spec.get("workers", 0) and time.monotonic() >= earliest:
            break
        time.sleep(0.05)
    if process.poll() is None:  # else it ended first: its exit code tells
        process.send_signal(SIGNALS[spec["send"]])
    return family


def _still_alive(family: list) -> list[str]:
    import psutil

    deadline = time.monotonic() + GONE_WITHIN
    alive = [p for p in family if _alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [p for p in alive if _alive(p)]
    left = []
    for survivor in alive:
        with contextlib.suppress(psutil.Error):
            left.append(" ".join(survivor.cmdline()))
        with contextlib.suppress(psutil.Error):
            survivor.kill()
    return left


def _alive(process) -> bool:
    import psutil

    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


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
    starters = {"normal": _aiosmtpd, "refuse-login": _aiosmtpd, "silent": _raw, "drop": _raw,
                "trickle": _raw}  # fmt: skip
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


def _trickle(connection: socket.socket, stop: threading.Event) -> None:
    with contextlib.suppress(OSError):
        for _ in range(300):
            if stop.is_set():
                return
            connection.sendall(b"220-still greeting you\r\n")
            time.sleep(0.1)


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
    """`silent` accepts connections and never says a word; `drop` closes each at once;
    `trickle` sends a greeting without end, a line every 0.1 s (for at most 30 s)."""
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
            if mode == "trickle":
                threading.Thread(target=_trickle, args=(connection, stop), daemon=True).start()

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
