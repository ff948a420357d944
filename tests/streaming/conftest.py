"""Portable runners for the streaming tests: one job server each for the whole session.

A runner that is not in the cache skips its tests with the make target that fetches it.
"""
from __future__ import annotations

import pytest

from pipelines.flink_runner import (
    FlinkJobServerMissing,
    PrismMissing,
    find_flink_job_server_jar,
    find_prism_binary,
    flink_pipeline_args,
    prism_pipeline_args,
    running_job_server,
)


@pytest.fixture(scope="session")
def prism_args() -> list[str]:
    """Pipeline arguments for a Prism job server started once for the session."""
    try:
        binary = find_prism_binary()
    except PrismMissing as missing:
        pytest.skip(str(missing))
    with running_job_server(prism_pipeline_args(binary)) as endpoint:
        yield prism_pipeline_args(binary, job_endpoint=endpoint)


@pytest.fixture(scope="session")
def flink_args() -> list[str]:
    """Pipeline arguments for a Flink job server (embedded Flink) started once for the session."""
    try:
        jar = find_flink_job_server_jar()
    except FlinkJobServerMissing as missing:
        pytest.skip(str(missing))
    with running_job_server(flink_pipeline_args(jar)) as endpoint:
        yield flink_pipeline_args(jar, job_endpoint=endpoint)
