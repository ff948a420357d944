"""A standalone Flink cluster on loopback from the distribution inside the PyFlink package:
one JobManager and N TaskManagers, each its own JVM, started by Flink's own scripts
(`bin/jobmanager.sh start`, `bin/taskmanager.sh start`) with a configuration written under the
cluster's folder D (D/conf/config.yaml, logs in D/log, pid files in D/pid).

`meterroot flink up --dir D` returns once every TaskManager has registered with the JobManager's
REST endpoint (`--flink-master 127.0.0.1:PORT`); `meterroot flink down --dir D` stops them.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from settlement.errors import MeterrootError, UsageError
from pipelines.flink_runner import flink_env, flink_home, flink_python

HOST = "127.0.0.1"
STATE_FILE = "cluster.json"


class ClusterFailed(MeterrootError, RuntimeError):
    """The cluster did not come up (the message names its log folder)."""


@dataclass(frozen=True)
class Cluster:
    folder: Path
    """D: conf/, log/, pid/ and cluster.json."""
    rest_port: int
    """The REST port: `--flink-master 127.0.0.1:<rest_port>`."""
    taskmanagers: int
    slots: int

    @property
    def master(self) -> str:
        return f"{HOST}:{self.rest_port}"

    def pids(self, daemon: str) -> list[int]:
        """Pids of the running `standalonesession` (JobManager) or `taskexecutor` processes."""
        pids = []
        for pid_file in (self.folder / "pid").glob(f"flink-*-{daemon}.pid"):
            pids += [int(line) for line in pid_file.read_text().split() if line.isdigit()]
        return [pid for pid in pids if _alive(pid)]

    def taskmanager_pids(self) -> list[int]:
        return self.pids("taskexecutor")

    def registered_taskmanagers(self) -> int:
        return len(_rest(self.rest_port, "/taskmanagers").get("taskmanagers", []))

    @classmethod
    def read(cls, folder: Path) -> "Cluster":
        path = Path(folder) / STATE_FILE
        if not path.exists():
            raise UsageError(f"no Flink cluster in {folder}: start one with `meterroot flink up --dir {folder}`")
        data = json.loads(path.read_text())
        return cls(Path(folder), data["rest_port"], data["taskmanagers"], data["slots"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is not alive
        return stat.read().split(")")[-1].split()[0] != "Z"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _rest(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=2) as answer:
        return json.loads(answer.read())


def write_config(folder: Path, rest_port: int, slots: int, python: Path) -> Path:
    """D/conf/: the distribution's log configuration and our config.yaml, loopback only."""
    conf = folder / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    home = flink_home(python)
    for name in ("log4j.properties", "log4j-console.properties", "log4j-cli.properties"):
        shutil.copy(home / "conf" / name, conf / name)
    settings = {
        "jobmanager.rpc.address": HOST, "jobmanager.rpc.port": free_port(),
        "jobmanager.bind-host": HOST, "taskmanager.bind-host": HOST, "taskmanager.host": HOST,
        "rest.address": HOST, "rest.bind-address": HOST, "rest.port": rest_port,
        "blob.server.port": free_port(),
        "jobmanager.memory.process.size": "1200m", "taskmanager.memory.process.size": "1400m",
        "taskmanager.numberOfTaskSlots": slots, "parallelism.default": slots,
        "heartbeat.interval": 2000, "heartbeat.timeout": 20000,
        "pekko.startup-timeout": "60 s", "pekko.ask.timeout": "30 s",
        # a job's slots spread over the TaskManagers, so that losing one is a real failover
        "taskmanager.load-balance.mode": "SLOTS",
        "python.executable": str(python), "python.client.executable": str(python),
        "env.pid.dir": str(folder / "pid"), "env.log.dir": str(folder / "log"),
    }
    lines = [f"{key}: {json.dumps(value) if isinstance(value, str) else value}"
             for key, value in settings.items()]
    (conf / "config.yaml").write_text("\n".join(lines) + "\n")
    (conf / "masters").write_text(f"{HOST}:{rest_port}\n")
    (conf / "workers").write_text(f"{HOST}\n")
    return conf


def _script_env(folder: Path, python: Path) -> dict:
    env = flink_env(python)
    env.update(FLINK_CONF_DIR=str(folder / "conf"), FLINK_LOG_DIR=str(folder / "log"),
               FLINK_PID_DIR=str(folder / "pid"))
    return env


def _script(folder: Path, python: Path, name: str, *args: str) -> None:
    script = flink_home(python) / "bin" / name
    done = subprocess.run(["bash", str(script), *args], env=_script_env(folder, python),
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise ClusterFailed(f"{name} {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}; "
                            f"logs in {folder / 'log'}")


def up(folder: Path, rest_port: int | None = None, taskmanagers: int = 1, slots: int = 2,
       wait_seconds: float = 120) -> Cluster:
    """Start a JobManager and `taskmanagers` TaskManagers; return once all have registered."""
    folder = Path(folder).resolve()
    if (folder / STATE_FILE).exists() and Cluster.read(folder).pids("standalonesession"):
        raise UsageError(f"a Flink cluster is already running from {folder}: "
                         f"`meterroot flink down --dir {folder}` first")
    if taskmanagers < 1 or slots < 1:
        raise UsageError("--taskmanagers and --slots must be >= 1")
    python = flink_python()
    rest_port = rest_port or free_port()
    for sub in ("log", "pid"):
        shutil.rmtree(folder / sub, ignore_errors=True)
        (folder / sub).mkdir(parents=True)
    write_config(folder, rest_port, slots, python)
    cluster = Cluster(folder, rest_port, taskmanagers, slots)
    (folder / STATE_FILE).write_text(json.dumps(
        {"rest_port": rest_port, "taskmanagers": taskmanagers, "slots": slots}))
    _script(folder, python, "jobmanager.sh", "start")
    for _ in range(taskmanagers):
        add_taskmanager(cluster, python)
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        try:
            if cluster.registered_taskmanagers() >= taskmanagers:
                return cluster
        except OSError:
            pass
        if not cluster.pids("standalonesession"):
            break
        time.sleep(0.5)
    down(folder)
    raise ClusterFailed(f"the Flink cluster in {folder} did not register {taskmanagers} TaskManagers "
                        f"within {wait_seconds:.0f} s (or its JobManager exited); logs in {folder / 'log'}")


def add_taskmanager(cluster: Cluster, python: Path | None = None) -> None:
    _script(cluster.folder, python or flink_python(), "taskmanager.sh", "start")


def down(folder: Path, wait_seconds: float = 30) -> int:
    """Stop every process of the cluster in `folder`; how many were running."""
    cluster = Cluster.read(Path(folder).resolve())
    pids = cluster.pids("taskexecutor") + cluster.pids("standalonesession")
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.2)
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    for pid_file in (cluster.folder / "pid").glob("*.pid"):
        pid_file.unlink()
    return len(pids)
