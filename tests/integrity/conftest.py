import pytest

from tests.integrity.forked import ForkServer


@pytest.fixture(scope="session")
def forks():
    """One fork server for the trials of the session (tests/integrity/forked.py)."""
    server = ForkServer()
    yield server
    server.close()
