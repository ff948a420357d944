"""The External Adapter (adapters/availability, Chainlink's EA framework) as a node's bridge
task calls it: the request/response contract, the framework's error shape, and its cache."""
import subprocess
import sys

from tests.availability.conftest import (EPOCH, EXPECTED, ROOT, free_port, post_json, start_adapter, stop,
                                         wait_http)
from tests.support.events import PROVIDER_A, PROVIDER_B


def availability_request(provider, epoch, job="job-1"):
    return {"id": job, "data": {"endpoint": "availability", "provider": provider, "epoch": epoch}}


def test_availability_answers_the_ea_contract(adapter_url):
    status, body = post_json(adapter_url, availability_request(PROVIDER_A, EPOCH, "run-42"))
    assert status == 200
    assert body["jobRunID"] == "run-42"
    assert body["statusCode"] == 200
    assert body["result"] == body["data"]["result"] == EXPECTED[(PROVIDER_A, EPOCH)][2]
    assert (body["data"]["probes"], body["data"]["okProbes"]) == EXPECTED[(PROVIDER_A, EPOCH)][:2]
    assert (body["data"]["latencyP50Ms"], body["data"]["latencyP99Ms"]) == (30, 60)


def test_batch_endpoint_answers_the_root(adapter_url, serve_url):
    from tests.availability.conftest import get_json
    _, manifest, _ = get_json(serve_url + "/batches/1")
    status, body = post_json(adapter_url, {"id": "b1", "data": {"endpoint": "batch", "batch": 1}})
    assert (status, body["result"], body["data"]["leafCount"]) == (200, manifest["root"], manifest["leaf_count"])
    status, body = post_json(adapter_url, {"id": "b9", "data": {"endpoint": "batch", "batch": 9}})
    assert status == 404 and body["jobRunID"] == "b9" and "batch 9" in body["errorMessage"]


def test_unknown_provider_is_a_404_in_the_framework_error_shape(adapter_url):
    status, body = post_json(adapter_url, availability_request(PROVIDER_B, EPOCH + 1, "run-7"))
    assert status == 404
    assert body["statusCode"] == 404 and body["jobRunID"] == "run-7"
    assert "no availability" in body["errorMessage"]
    assert "result" not in body


def test_bad_input_is_a_400_adapter_error(adapter_url):
    for data in ({"endpoint": "availability", "provider": "0x12", "epoch": EPOCH},
                 {"endpoint": "availability", "provider": PROVIDER_A},
                 {"endpoint": "availability", "provider": PROVIDER_A, "epoch": -1}):
        status, body = post_json(adapter_url, {"id": "bad", "data": data})
        assert status == 400, data
        assert body["status"] == "errored" and body["error"]["name"] and body["error"]["message"]
    status, body = post_json(adapter_url, {"id": "bad", "data": {"endpoint": "nope"}})
    assert status == 404 and body["status"] == "errored" and "nope" in body["error"]["message"]


def test_repeated_requests_are_served_from_the_cache_when_serve_is_gone(settled_output, tmp_path):
    """A serve of its own, stopped after the first answer: the adapter keeps answering the same
    value from the framework's cache (CACHE_MAX_AGE), where a pass-through would fail."""
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as handle:
        serve = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "serve", "--output",
                                  str(settled_output.out), "--listen", f"127.0.0.1:{port}"],
                                 stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
    adapter = None
    try:
        wait_http(f"http://127.0.0.1:{port}/health", serve, log=log, timeout=180)
        adapter, url = start_adapter(f"http://127.0.0.1:{port}", tmp_path / "adapter.log", CACHE_MAX_AGE=120000)
        status, first = post_json(url, availability_request(PROVIDER_A, EPOCH))
        assert status == 200
        stop(serve)
        for i in range(20):
            status, again = post_json(url, availability_request(PROVIDER_A, EPOCH, f"again-{i}"))
            assert (status, again["result"], again["jobRunID"]) == (200, first["result"], f"again-{i}")
        status, missing = post_json(url, availability_request(PROVIDER_A, EPOCH + 7))
        assert status == 504  # never fetched, and serve is gone: the framework's timeout
    finally:
        stop(serve)
        if adapter is not None:
            stop(adapter)
