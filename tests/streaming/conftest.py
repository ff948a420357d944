"""The Prism job server of the Beam streaming tests, one for the whole session.

A runner that is not in the cache skips its tests with the make target that fetches it.
"""
from __future__ import annotations

import pytest

from pipelines.flink_runner import (PrismMissing, find_prism_binary, prism_pipeline_args,
                                    running_job_server)


@pytest.fixture(scope="session")
def prism_args() -> list[str]:
    """Pipeline arguments for a Prism job server started once for the session."""
    try:
        binary = find_prism_binary()
    except PrismMissing as missing:
        pytest.skip(str(missing))
    with running_job_server(prism_pipeline_args(binary)) as endpoint:
        yield prism_pipeline_args(binary, job_endpoint=endpoint)
