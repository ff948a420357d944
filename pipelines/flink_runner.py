"""Where the streaming engines are, and how a job is handed to them.

Flink: the `apache-flink` package of .venv-flink (built by `make install`) ships Flink's runtime
(`pyflink/lib/flink-dist-*.jar`) and scripts (`pyflink/bin/`). `meterroot stream --engine flink`
runs pipelines/flink_job.py with that interpreter: `python -m pipelines.flink_job` starts an
embedded mini-cluster; with `--flink-master HOST:PORT`, `pyflink/bin/flink run -m HOST:PORT -py …
-pyexec PYTHON` submits it to a cluster (one `meterroot flink up` started, or any Flink 2.x).

Prism: Beam's own portable runner, a Go program built into `.cache/prism/<beam version>/` by
`make prism`, runs the Beam stream (`--engine beam`).

This module never imports Beam or PyFlink at import time: it runs in both environments.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

from settlement.errors import UsageError

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = ROOT / ".cache"
FLINK_VENV = ROOT / ".venv-flink"


class PrismMissing(UsageError):
    """No Prism runner binary of this apache-beam version is in the cache."""


class FlinkMissing(UsageError):
    """No Flink environment (.venv-flink with apache-flink) to run the job in."""


def _beam_version() -> str:
    from apache_beam.version import __version__

    return __version__


def find_prism_binary(cache_dir: Path = CACHE_DIR, beam_version: str | None = None) -> Path:
    """The cached Prism runner built for this Beam version."""
    beam_version = beam_version or _beam_version()
    binary = cache_dir / "prism" / beam_version / "prism"
    if not binary.is_file():
        raise PrismMissing(
            f"no Prism runner for apache-beam {beam_version} at {binary}: run `make prism`"
        )
    return binary


def prism_pipeline_args(
    binary: Path, *, streaming: bool = True, job_endpoint: str | None = None
) -> list[str]:
    """Pipeline arguments that run on the Prism runner `binary` with LOOPBACK workers."""
    args = [
        "--runner=PrismRunner",
        f"--prism_location={binary}",
        "--environment_type=LOOPBACK",
    ]
    if streaming:
        args.append("--streaming")
    if job_endpoint is not None:
        args.append(f"--job_endpoint={job_endpoint}")
    return args


@contextlib.contextmanager
def running_job_server(pipeline_args: list[str]) -> Iterator[str]:
    """Start the Prism job server `pipeline_args` (from prism_pipeline_args) run on, yield its
    endpoint, stop it after; pass the endpoint back as `job_endpoint=…` to reuse it."""
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.portability.prism_runner import PrismJobServer
    from apache_beam.utils.subprocess_server import pick_port

    (port,) = pick_port(None)
    server = PrismJobServer(PipelineOptions(pipeline_args + [f"--job_port={port}"]))
    server.start()
    try:
        yield f"localhost:{port}"
    finally:
        server.stop()


# ------------------------------------------------------------------------------------- Flink

def flink_python() -> Path:
    """The interpreter of the Flink environment: METERROOT_FLINK_PYTHON, else .venv-flink's."""
    configured = os.environ.get("METERROOT_FLINK_PYTHON")
    python = Path(configured) if configured else FLINK_VENV / "bin" / "python"
    if not python.exists():
        raise FlinkMissing(f"no Flink environment at {python}: run `make install` (it builds "
                           ".venv-flink with apache-flink), or set METERROOT_FLINK_PYTHON to a "
                           "Python that has apache-flink 2.x and this project")
    return python


def flink_home(python: Path | None = None) -> Path:
    """The Flink distribution inside the PyFlink package of `python` (bin/, lib/, conf/)."""
    python = python or flink_python()
    found = subprocess.run(
        [str(python), "-c", "import pyflink, os; print(os.path.dirname(pyflink.__file__))"],
        capture_output=True, text=True)
    if found.returncode != 0:
        raise FlinkMissing(f"{python} has no apache-flink: run `make install`")
    return Path(found.stdout.strip())


def flink_job_command(job_args: list[str], flink_master: str | None = None,
                      python: Path | None = None) -> list[str]:
    """The command that runs the Flink job with `job_args` (pipelines/flink_job.py's flags)."""
    python = python or flink_python()
    if flink_master is None:
        return [str(python), "-m", "pipelines.flink_job", *job_args]
    script = ROOT / "pipelines" / "flink_job.py"
    return [str(flink_home(python) / "bin" / "flink"), "run", "-m", flink_master,
            "-py", str(script), "-pyexec", str(python), "-pyclientexec", str(python), *job_args]


def flink_env(python: Path | None = None) -> dict:
    """Environment of a Flink job or cluster process: the project importable, Java found."""
    python = python or flink_python()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYFLINK_CLIENT_EXECUTABLE"] = str(python)
    env.setdefault("METERROOT_LOG", "ERROR")
    bin_dir = str(Path(python).parent)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", "")])
    return env


def run_flink_job(job_args: list[str], flink_master: str | None = None, *, stdout=None,
                  timeout: float | None = None, stop_file: Path | None = None) -> int:
    """Run the Flink job to its end; its exit code (2: bad configuration, 1: failed).

    The job runs in a session of its own, so a Ctrl-C reaches only this process: with
    `stop_file`, the first one leaves that file (the job's client then drains the job: see
    pipelines.flink_job.run_watched) and waits; a second one, or none given, stops it at once."""
    command = flink_job_command(job_args, flink_master)
    job = subprocess.Popen(command, env=flink_env(), stdout=stdout, start_new_session=True)
    asked = False
    while True:
        try:
            return job.wait(timeout=timeout)
        except KeyboardInterrupt:
            if stop_file is None or asked:
                os.killpg(job.pid, signal.SIGTERM)
                job.wait()
                raise
            asked = True
            print("stopping: the job drains what it read (Ctrl-C again to stop at once)", flush=True)
            stop_file.parent.mkdir(parents=True, exist_ok=True)
            stop_file.write_text("stop\n")
        except subprocess.TimeoutExpired:
            os.killpg(job.pid, signal.SIGTERM)
            job.wait()
            raise
