"""`meterroot serve` (SPEC §14): every endpoint, bounded pages, ETags, errors, and proofs that
the real registry on anvil pays."""
import urllib.parse

from settlement.merkle import hash_leaf, process_proof
from sinks.chain.keys import anvil_dev_account
from sinks.chain.registry import Registry, advance_time
from sinks.chain.rpc import Sender, connect
from sinks.chain.settle import commit_output
from sinks.chain.spend_permits import sign_permit
from tests.availability.conftest import CHALLENGE_PERIOD, CONSUMER, CONSUMER_ACCOUNT, EPOCH, EXPECTED, get_json
from tests.support.events import PROVIDER_A, PROVIDER_B


def test_openapi_document_lists_every_route(serve_url):
    status, doc, _ = get_json(serve_url + "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    for path in ("/batches", "/batches/{batch}", "/batches/{batch}/manifest.json", "/batches/{batch}/tree.json",
                 "/batches/{batch}/proof", "/batches/{batch}/leaves", "/bills/{consumer}", "/revenue",
                 "/availability", "/availability/{provider}/{epoch}"):
        assert path in doc["paths"], path


def test_batches_manifest_and_tree_are_the_files_on_disk(serve_url, settled_output):
    status, page, _ = get_json(serve_url + "/batches")
    assert status == 200 and page["total"] == 1 and page["next"] is None
    manifest_bytes = (settled_output.out / "batches" / "1" / "manifest.json").read_bytes()
    import urllib.request
    assert urllib.request.urlopen(serve_url + "/batches/1/manifest.json").read() == manifest_bytes
    assert urllib.request.urlopen(serve_url + "/batches/1/tree.json").read() == \
        (settled_output.out / "batches" / "1" / "tree.json").read_bytes()
    status, manifest, _ = get_json(serve_url + "/batches/1")
    assert manifest["root"] == page["items"][0]["root"]


def test_etag_gives_304_when_unchanged(serve_url):
    status, _, headers = get_json(serve_url + "/batches/1")
    etag = headers["ETag"]
    status, body, _ = get_json(serve_url + "/batches/1", {"If-None-Match": etag})
    assert status == 304 and body is None
    status, _, _ = get_json(serve_url + "/batches/1", {"If-None-Match": '"something-else"'})
    assert status == 200


def test_pages_are_bounded_and_chain_with_next(serve_url):
    status, first, _ = get_json(serve_url + "/batches/1/leaves?limit=2")
    assert status == 200 and len(first["items"]) == 2 and first["total"] > 2
    seen = list(first["items"])
    url = first["next"]
    while url:
        _, page, _ = get_json(serve_url + url)
        seen += page["items"]
        url = page["next"]
    assert len(seen) == first["total"]
    status, error, _ = get_json(serve_url + "/batches/1/leaves?limit=100000")
    assert status == 400 and "limit" in error["error"]["message"]


def test_bills_revenue_and_availability(serve_url):
    status, bill, _ = get_json(serve_url + f"/bills/{CONSUMER}")
    assert status == 200 and bill["total"] == len(bill["items"]) > 0
    assert sum(line["amount_wei"] for line in bill["items"]) == bill["totals"]["amount_wei"]
    status, revenue, _ = get_json(serve_url + "/revenue")
    assert {r["provider"] for r in revenue["items"]} == {PROVIDER_A, PROVIDER_B}
    status, one, _ = get_json(serve_url + f"/revenue/{PROVIDER_A}")
    assert status == 200 and one["provider"] == PROVIDER_A
    status, page, _ = get_json(serve_url + "/availability")
    assert {(r["provider"], r["epoch"]): r["availability_bps"] for r in page["items"]} == {
        k: v[2] for k, v in EXPECTED.items()}
    status, row, _ = get_json(serve_url + f"/availability/{PROVIDER_A}/{EPOCH}")
    assert (status, row["availability_bps"], row["latency_p50_ms"], row["latency_p99_ms"]) == (200, 7500, 30, 60)


def test_unknown_and_bad_requests_answer_404_and_400_with_the_error_shape(serve_url):
    for path, status in ((f"/availability/{PROVIDER_B}/{EPOCH + 1}", 404), ("/batches/7", 404),
                         ("/batches/1/proof?consumer=0x12&payee=0x34", 400), ("/bills/nobody", 400),
                         (f"/batches/1/proof?consumer={PROVIDER_A}&payee={PROVIDER_B}", 404)):
        got, body, _ = get_json(serve_url + path)
        assert got == status, path
        assert body["error"]["status"] == status and body["error"]["message"]


def test_a_proof_from_serve_is_paid_by_the_registry_on_chain(serve_url, settled_output):
    query = urllib.parse.urlencode({"consumer": CONSUMER, "payee": PROVIDER_A})
    status, proof, _ = get_json(serve_url + f"/batches/1/proof?{query}")
    assert status == 200
    leaf = hash_leaf(proof["leafEncoding"], proof["value"])
    assert process_proof(leaf, [bytes.fromhex(p[2:]) for p in proof["proof"]]).hex() == proof["root"][2:]

    w3 = connect(settled_output.url)
    registry = Registry(w3, settled_output.deployment, Sender(w3, anvil_dev_account()))
    commit_output(settled_output.out, registry, skip_validation=True)
    amount = int(proof["cumulativeAmount"])
    registry.deposit_for(CONSUMER, amount, mint=True)
    registry.stake(10**18, provider=PROVIDER_A, mint=True)  # a provider payee must hold the minimum stake
    permit = sign_permit(CONSUMER_ACCOUNT, w3.eth.chain_id, settled_output.deployment.registry, CONSUMER,
                         PROVIDER_A, amount)
    advance_time(w3, CHALLENGE_PERIOD + 1)
    before = registry.token_balance(PROVIDER_A)
    result = registry.claim_with_permit(1, proof["consumer"], proof["payee"], amount,
                                        [bytes.fromhex(p[2:]) for p in proof["proof"]], permit)
    assert result.paid == amount and registry.token_balance(PROVIDER_A) - before == amount


def test_chain_claim_from_api_pays_with_the_proof_serve_gives(serve_url, settled_output, tmp_path, capsys):
    """`chain claim --from-api URL` needs no output directory: the proof comes from serve, the
    permit from a file the consumer signed; the treasury's leaf needs no stake."""
    from pipelines.cli import main
    from tests.support.events import TREASURY

    query = urllib.parse.urlencode({"consumer": CONSUMER, "payee": TREASURY})
    _, proof, _ = get_json(serve_url + f"/batches/1/proof?{query}")
    w3 = connect(settled_output.url)
    registry = Registry(w3, settled_output.deployment, Sender(w3, anvil_dev_account()))
    commit_output(settled_output.out, registry, skip_validation=True)  # idempotent: once is enough
    amount = int(proof["cumulativeAmount"])
    registry.deposit_for(CONSUMER, amount, mint=True)
    advance_time(w3, CHALLENGE_PERIOD + 1)
    permit = sign_permit(CONSUMER_ACCOUNT, w3.eth.chain_id, settled_output.deployment.registry, CONSUMER,
                         TREASURY, amount)
    permit_file = tmp_path / "permits.jsonl"
    from sinks.permit_files import write_permit_file
    write_permit_file(permit_file, [permit])
    deployment_file = tmp_path / "deployment.json"
    settled_output.deployment.write(deployment_file)
    before = registry.token_balance(TREASURY)
    code = main(["chain", "claim", "--from-api", serve_url, "--deployment", str(deployment_file), "--batch", "1",
                 "--consumer", CONSUMER, "--payee", TREASURY, "--permit", str(permit_file)])
    assert code == 0, capsys.readouterr().err
    assert registry.token_balance(TREASURY) - before == amount
    bad = main(["chain", "claim", "--from-api", serve_url, "--deployment", str(deployment_file), "--batch", "1",
                "--consumer", CONSUMER, "--payee", PROVIDER_B.replace("2", "9"), "--permit", str(permit_file)])
    assert bad == 2 and "HTTP 404" in capsys.readouterr().err


def test_a_file_edited_after_the_commit_is_not_served(settled_output, tmp_path):
    import shutil

    import pytest

    from sinks.api.published import DamagedOutput, Published

    out = tmp_path / "out"
    shutil.copytree(settled_output.out, out)
    published = Published(out)
    assert published.manifest(1)["batch"] == 1
    manifest = out / "batches" / "1" / "manifest.json"
    manifest.write_bytes(manifest.read_bytes().replace(b'"batch": 1', b'"batch": 1 '))
    with pytest.raises(DamagedOutput, match="differs from what the ledger committed"):
        published.manifest_file(1)
