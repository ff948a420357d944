"""A leaf's proof fetched from a `meterroot serve` API (SPEC §14: what `dataURI` points at), so a
payee can claim without the operator's output directory. Nothing fetched is trusted: the leaf is
recomputed from its value and the proof walked up to the root before anything is sent, and the
registry checks the root again."""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

from eth_utils import to_checksum_address

from settlement.errors import UsageError
from settlement.merkle import SETTLEMENT_LEAF_ENCODING, hash_leaf, process_proof
from sinks.chain.batch_files import BATCH, CHAIN_ID, CONSUMER, PAYEE, REGISTRY, LeafProof


def _bytes32(text, what: str) -> bytes:
    if not isinstance(text, str) or not text.startswith("0x") or len(text) != 66:
        raise UsageError(f"the API's {what} {text!r} is not a 32-byte hex value")
    return bytes.fromhex(text[2:])


def fetch_leaf_proof(api_url: str, batch: int, consumer: str, payee: str, *, chain_id: int, registry: str,
                     timeout: float = 30.0) -> LeafProof:
    """The (consumer, payee) leaf of `batch` with its proof from the API at `api_url`, verified."""
    if not api_url.startswith(("http://", "https://")):
        raise UsageError(f"--from-api {api_url!r} must be the http:// URL of a `meterroot serve`")
    query = urllib.parse.urlencode({"consumer": consumer, "payee": payee})
    url = f"{api_url.rstrip('/')}/batches/{batch}/proof?{query}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = exc.reason
        raise UsageError(f"{url} answered HTTP {exc.code}: {message}") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{url} did not answer with a proof ({exc}); check --from-api") from None
    try:
        value = [str(v) for v in answer["value"]]
        proof = [_bytes32(node, "proof node") for node in answer["proof"]]
        root = _bytes32(answer["root"], "root")
    except (KeyError, TypeError) as exc:
        raise UsageError(f"{url} answered without a leaf proof ({exc})") from None
    wanted = (str(chain_id), to_checksum_address(registry), str(batch), to_checksum_address(consumer),
              to_checksum_address(payee))
    got = (value[CHAIN_ID], to_checksum_address(value[REGISTRY]), value[BATCH], to_checksum_address(value[CONSUMER]),
           to_checksum_address(value[PAYEE])) if len(value) == 6 else None
    if got != wanted:
        raise UsageError(f"{url} answered the leaf {value}, not one of batch {batch} for {consumer} -> {payee} "
                         f"on chain {chain_id} registry {registry}")
    leaf = hash_leaf(SETTLEMENT_LEAF_ENCODING, value)
    if process_proof(leaf, proof) != root:
        raise UsageError(f"{url} answered a proof that does not lead from its leaf to its root 0x{root.hex()}")
    return LeafProof(batch=batch, value=value, leaf=leaf, proof=proof, root=root)
