"""A local anvil chain kept under an output folder (`meterroot chain up` / `chain down`).

    OUT/chain/anvil-state.json   the chain's state: loaded on start, dumped when anvil stops
    OUT/chain/anvil.json         {pid, url, port, chain_id, state_file, log_file} while it runs
    OUT/chain/anvil.log          anvil's output

anvil comes from npm's @foundry-rs/anvil: its platform package's binary is run directly, not the
node_modules/.bin/anvil wrapper, which exits 0 whatever anvil does and does not wait for anvil to
finish dumping its state on SIGTERM. METERROOT_ANVIL overrides it. The node listens on 127.0.0.1
only.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from settlement.errors import ChainError, UsageError
from sinks.chain.keys import ANVIL_CHAIN_ID

log = logging.getLogger("meterroot.chain")

ANVIL_ENV = "METERROOT_ANVIL"
HOST = "127.0.0.1"
DEFAULT_PORT = 8545
_NODE_MODULES = Path(__file__).resolve().parents[2] / "node_modules"

# Processes this Python process started, so that stopping one also reaps it.
_launched: dict[int, subprocess.Popen] = {}
_states: dict[int, Path] = {}
"""The states folder of each anvil this process launched (removed when it is terminated)."""


@dataclass(frozen=True)
class LocalChain:
    """A running anvil started by `start`."""

    pid: int
    """Its process id."""
    url: str
    """JSON-RPC URL, http://127.0.0.1:<port>."""
    port: int
    """TCP port on 127.0.0.1."""
    chain_id: int
    """Chain id it serves."""
    state_file: str
    """Where it loads and dumps its state."""
    log_file: str
    """Its output."""


def anvil_binary() -> str:
    # npm installs only the platform package matching this machine (anvil-linux-amd64, ...).
    platform_binaries = sorted(str(p) for p in _NODE_MODULES.glob("@foundry-rs/anvil-*/bin/anvil"))
    candidates = [os.environ.get(ANVIL_ENV), *platform_binaries,
                  str(_NODE_MODULES / ".bin" / "anvil"), shutil.which("anvil")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise UsageError(f"anvil not found: run `npm ci` in the repository (it installs @foundry-rs/anvil) "
                     f"or point {ANVIL_ENV} at an anvil binary")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def launch(port: int, log_file: Path, *, chain_id: int = ANVIL_CHAIN_ID,
           state_file: Path | None = None) -> subprocess.Popen:
    """Start anvil on 127.0.0.1:`port`, its output in `log_file` (rewritten).

    It runs in its own session, so a terminal's ^C does not reach it. The old states anvil moves
    out of memory go to `anvil-states-<port>/` beside the log, removed when it is terminated
    (anvil's default, a folder of its own under ~/.foundry, outlives a SIGTERM: gigabytes a day).
    """
    states = states_folder(log_file, port)
    args = [anvil_binary(), "--host", HOST, "--port", str(port), "--chain-id", str(chain_id),
            "--cache-path", str(states)]
    if state_file is not None:
        args += ["--state", str(state_file)]
    with open(log_file, "wb") as output:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=output,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    _launched[process.pid] = process
    _states[process.pid] = states
    return process


def states_folder(log_file: Path, port: int) -> Path:
    return Path(log_file).resolve().parent / f"anvil-states-{port}"


def wait_ready(url: str, process: subprocess.Popen, log_file: Path, *, timeout: float = 30) -> None:
    """Return once this anvil has bound its port (says so in its log) and `url` answers.

    The log tells our process from another node already on that port, which would answer too.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ChainError(f"anvil exited with code {process.returncode} before answering at {url} "
                             f"(is the port taken?); see {log_file}")
        if b"Listening on" in Path(log_file).read_bytes() and _answers(url):
            return
        time.sleep(0.05)
    terminate(process.pid)
    raise ChainError(f"anvil did not answer at {url} within {timeout:g} s; stopped it (see {log_file})")


def _answers(url: str) -> bool:
    request = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    try:
        return requests.post(url, json=request, timeout=1).ok
    except (requests.ConnectionError, requests.Timeout):
        return False


def chain_folder(out: Path) -> Path:
    return Path(out) / "chain"


def start(out: Path, *, port: int = DEFAULT_PORT, chain_id: int = ANVIL_CHAIN_ID,
          timeout: float = 30) -> LocalChain:
    """Start (or find already running) the local chain of OUT; port 0 picks a free port."""
    folder = chain_folder(out).resolve()
    current = running(out)
    if current is not None:
        log.info("the chain of %s already runs at %s (pid %d)", out, current.url, current.pid)
        return current
    folder.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    _refuse_taken(port)
    state_file, log_file = folder / "anvil-state.json", folder / "anvil.log"
    process = launch(port, log_file, chain_id=chain_id, state_file=state_file)
    url = f"http://{HOST}:{port}"
    wait_ready(url, process, log_file, timeout=timeout)
    chain = LocalChain(pid=process.pid, url=url, port=port, chain_id=chain_id,
                       state_file=str(state_file), log_file=str(log_file))
    _write_json(folder / "anvil.json", asdict(chain))
    return chain


def _refuse_taken(port: int) -> None:
    with socket.socket() as probe:
        # As a server binds: connections of a stopped node lingering in TIME_WAIT do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            raise UsageError(f"port {port} on {HOST} is taken (another node?); pass another --port, "
                             f"or 0 for any free port") from None


def running(out: Path) -> LocalChain | None:
    """The chain `start` left running for OUT, or None (a stale pid file is ignored)."""
    info = chain_folder(out) / "anvil.json"
    try:
        chain = LocalChain(**json.loads(info.read_text()))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, TypeError) as exc:
        raise UsageError(f"{info} is not a chain record ({exc}); delete it and run `meterroot chain up`") from None
    return chain if _is_our_anvil(chain) else None


def stop(out: Path, *, timeout: float = 10) -> LocalChain | None:
    """Stop OUT's chain (its state is dumped to the state file); None if none was running."""
    info = chain_folder(out) / "anvil.json"
    chain = running(out)
    if chain is not None:
        terminate(chain.pid, timeout=timeout)  # (started by another process: its states folder is ours to remove)
        shutil.rmtree(states_folder(Path(chain.log_file), chain.port), ignore_errors=True)
    info.unlink(missing_ok=True)
    return chain


def terminate(pid: int, *, timeout: float = 10) -> None:
    """SIGTERM (anvil dumps its state and exits), then SIGKILL if it is still there after `timeout`."""
    _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            log.warning("anvil (pid %d) ignored SIGTERM for %g s; killing it: its state is not saved", pid, timeout)
            _signal(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
        time.sleep(0.02)
    _launched.pop(pid, None)
    states = _states.pop(pid, None)
    if states is not None:
        shutil.rmtree(states, ignore_errors=True)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    process = _launched.get(pid)
    if process is not None:  # our own child: poll() reaps it once it exits
        return process.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_our_anvil(chain: LocalChain) -> bool:
    """The pid is alive and still the anvil serving this state file (pids get reused)."""
    if not _alive(chain.pid):
        return False
    cmdline = Path(f"/proc/{chain.pid}/cmdline")
    if not cmdline.exists():  # no procfs: trust the live pid
        return True
    args = cmdline.read_bytes().split(b"\0")
    return any(b"anvil" in a for a in args) and chain.state_file.encode() in args


def _write_json(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    os.replace(tmp, path)
