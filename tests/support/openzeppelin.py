"""Run @openzeppelin/merkle-tree (npm, in node_modules) on the same values as our tree."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

_SCRIPT = r"""
const { StandardMerkleTree } = require('@openzeppelin/merkle-tree');
const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const out = {};
if (input.values) {
  const tree = StandardMerkleTree.of(input.values, input.encoding);
  out.root = tree.root;
  out.dump = tree.dump();
  out.proofs = input.values.map((_, i) => tree.getProof(i));
}
if (input.dump) {
  const loaded = StandardMerkleTree.load(input.dump);
  loaded.validate();
  out.loaded_root = loaded.root;
  out.verified = [];
  for (const [i, v] of loaded.entries()) out.verified.push(loaded.verify(i, loaded.getProof(i)));
}
process.stdout.write(JSON.stringify(out));
"""


def run_openzeppelin(payload: dict) -> dict:
    node = shutil.which("node")
    if node is None or not (REPO / "node_modules" / "@openzeppelin" / "merkle-tree").exists():
        pytest.fail("node and node_modules/@openzeppelin/merkle-tree are needed: run `make install`")
    result = subprocess.run([node, "-e", _SCRIPT], input=json.dumps(payload), capture_output=True,
                            text=True, cwd=REPO, timeout=120)
    if result.returncode != 0:
        raise AssertionError(f"OpenZeppelin script failed: {result.stderr}")
    return json.loads(result.stdout)
