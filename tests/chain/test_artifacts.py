"""The committed contract artifacts are what the sources compile to today."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from sinks.chain.artifacts import COUNTER_NFT, FEE_TOKEN, REGISTRY, TEST_TOKEN, TEST_WALLET, decode_revert, load_artifact

REPO = Path(__file__).resolve().parents[2]


def test_committed_artifacts_match_a_fresh_compile():
    done = subprocess.run(["node", "contracts/compile.js", "--check"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "contract artifacts are current" in done.stdout


def test_artifacts_name_the_pinned_compiler_and_settings():
    for name in (REGISTRY, COUNTER_NFT, TEST_TOKEN, TEST_WALLET, FEE_TOKEN):
        data = json.loads((REPO / "contracts" / "build" / f"{name}.json").read_text())
        assert data["compiler"]["version"].startswith("0.8.30+")
        assert data["compiler"]["settings"]["optimizer"] == {"enabled": True, "runs": 1000}
        assert data["bytecode"].startswith("0x60") or data["bytecode"].startswith("0x61")  # PUSH1/PUSH2 0x80
        assert len(data["sourceHash"]) == 64
    assert len({load_artifact(name).input_hash for name in (REGISTRY, COUNTER_NFT, TEST_TOKEN, TEST_WALLET)}) == 1


def test_the_registry_fits_the_contract_size_limit():
    """EIP-170: 24,576 bytes of runtime code."""
    data = json.loads((REPO / "contracts" / "build" / f"{REGISTRY}.json").read_text())
    assert (len(data["deployedBytecode"]) - 2) // 2 <= 24_576


def test_revert_data_of_every_custom_error_decodes():
    from eth_abi import encode
    from eth_utils import function_signature_to_4byte_selector as selector

    data = selector("BatchOutOfOrder(uint64,uint64)") + encode(["uint64", "uint64"], [4, 2])
    assert decode_revert("0x" + data.hex()) == "BatchOutOfOrder(batch=4, expected=2)"
    data = selector("Error(string)") + encode(["string"], ["no"])
    assert decode_revert(data) == "Error('no')"
    assert decode_revert("0xdeadbeef") == "unknown revert data 0xdeadbeef"
    assert decode_revert(None) == "reverted without a reason"
