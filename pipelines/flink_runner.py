"""Where the portable streaming runners are and how a pipeline is pointed at them.

Flink is the production runner: Beam's Flink job server jar, fetched into `.cache/flink/` by
`make flink`, starts an embedded Flink cluster (`flink_master=[local]`) and calls back into this
process for every Python step (LOOPBACK: no Docker). The jar must be the same Beam version as the
apache-beam package, so its file name carries both versions:
`beam-runners-flink-<flink version>-job-server-<beam version>.jar`.

Prism is Beam's own portable runner, a Go program built into `.cache/prism/<beam version>/` by
`make prism`. It runs the same portable pipeline, with the same SDK harness, watermarks, timers
and splittable DoFns, where no Flink job server jar can be had.

`flink_pipeline_args` and `prism_pipeline_args` return plain argument lists, so that a caller
can put them in front of its own argv and parse the lot with its `PipelineOptions` subclass.
"""
from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

from apache_beam.version import __version__ as BEAM_VERSION

from settlement.errors import UsageError

CACHE_DIR = Path(__file__).resolve().parent.parent / ".cache"
LOCAL_FLINK = "[local]"  # the job server starts an embedded Flink cluster in its own JVM
_JAR_NAME = re.compile(r"beam-runners-flink-(?P<flink>\d+\.\d+)-job-server-(?P<beam>.+)\.jar")


class FlinkJobServerMissing(UsageError):
    """No Flink job server jar of this apache-beam version is in the cache."""


class PrismMissing(UsageError):
    """No Prism runner binary of this apache-beam version is in the cache."""


def flink_version_of(jar: Path) -> str:
    """The Flink minor version a job server jar was built for, read from its file name."""
    match = _JAR_NAME.fullmatch(jar.name)
    if match is None:
        raise UsageError(
            f"{jar.name!r} is not named like a Beam Flink job server jar "
            "(beam-runners-flink-<flink>-job-server-<beam>.jar); fetch it with `make flink`"
        )
    return match["flink"]


def _version_key(flink_version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in flink_version.split("."))


def find_flink_job_server_jar(
    cache_dir: Path = CACHE_DIR, beam_version: str = BEAM_VERSION
) -> Path:
    """The cached job server jar for this Beam version, the newest Flink if there are several."""
    jars = sorted(
        (cache_dir / "flink").glob(f"beam-runners-flink-*-job-server-{beam_version}.jar"),
        key=lambda jar: _version_key(flink_version_of(jar)),
    )
    if not jars:
        raise FlinkJobServerMissing(
            f"no Beam Flink job server jar for apache-beam {beam_version} in "
            f"{cache_dir / 'flink'}: run `make flink` (the jar must be the same Beam version "
            "as the apache-beam package)"
        )
    return jars[-1]


def flink_pipeline_args(
    jar: Path,
    *,
    flink_master: str = LOCAL_FLINK,
    parallelism: int = 1,
    streaming: bool = True,
    job_endpoint: str | None = None,
    checkpointing_interval_ms: int | None = None,
) -> list[str]:
    """Pipeline arguments that run on Flink through the job server `jar`.

    Without `job_endpoint` the FlinkRunner starts the job server itself for this one pipeline
    (seconds: a JVM and a Flink cluster); with it, the pipeline goes to a job server already
    running there (see `running_job_server`).
    Checkpointing is off by default. With it on, sources are also shut down once idle: Beam's
    Flink runner otherwise keeps a finished source, and so the job, alive for checkpoints
    forever, and a replay would never end.
    """
    args = [
        "--runner=FlinkRunner",
        f"--flink_master={flink_master}",
        f"--flink_version={flink_version_of(jar)}",
        f"--flink_job_server_jar={jar}",
        "--environment_type=LOOPBACK",
        f"--parallelism={parallelism}",
    ]
    if streaming:
        args.append("--streaming")
    if job_endpoint is not None:
        args.append(f"--job_endpoint={job_endpoint}")
    if checkpointing_interval_ms is not None:
        args += [
            f"--checkpointing_interval={checkpointing_interval_ms}",
            f"--shutdown_sources_after_idle_ms={checkpointing_interval_ms}",
        ]
    return args


@contextlib.contextmanager
def running_job_server(pipeline_args: list[str]) -> Iterator[str]:
    """Start the job server that `pipeline_args` run on, yield its endpoint, stop it after.

    `pipeline_args` come from `flink_pipeline_args` (the Flink job server jar, with its embedded
    Flink cluster) or `prism_pipeline_args` (the Prism binary). One job server serves any number
    of pipelines: pass the endpoint back as `job_endpoint=…`. Beam's own launchers start the
    process on a free port and wait until its job service answers.
    """
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
    from apache_beam.runners.portability.flink_runner import FlinkJarJobServer
    from apache_beam.runners.portability.prism_runner import PrismJobServer
    from apache_beam.utils.subprocess_server import pick_port

    (port,) = pick_port(None)
    options = PipelineOptions(pipeline_args + [f"--job_port={port}"])
    runner = options.view_as(StandardOptions).runner
    launchers = {"FlinkRunner": FlinkJarJobServer, "PrismRunner": PrismJobServer}
    if runner not in launchers:
        raise UsageError(
            f"no job server to start for --runner={runner}; use one of {sorted(launchers)}"
        )
    server = launchers[runner](options)
    server.start()
    try:
        yield f"localhost:{port}"
    finally:
        server.stop()


def find_prism_binary(cache_dir: Path = CACHE_DIR, beam_version: str = BEAM_VERSION) -> Path:
    """The cached Prism runner built for this Beam version."""
    binary = cache_dir / "prism" / beam_version / "prism"
    if not binary.is_file():
        raise PrismMissing(
            f"no Prism runner for apache-beam {beam_version} at {binary}: run `make prism`"
        )
    return binary


def prism_pipeline_args(
    binary: Path, *, streaming: bool = True, job_endpoint: str | None = None
) -> list[str]:
    """Pipeline arguments that run on the Prism runner `binary` with LOOPBACK workers.

    Without `job_endpoint` the PrismRunner starts Prism for this one pipeline (a fraction of a
    second); with it, the pipeline goes to a Prism already running there.
    """
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
