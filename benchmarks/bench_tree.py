"""Merkle tree of a batch with N leaves, built as `settlement.payables.batch_tree` builds it:
leaf hashes (from the payables' columns), leaf values (read from those columns when used), tree;
then the dump written in chunks as sinks.batch_outputs writes it (targets: a 1M-leaf tree built in <= 2 s, dumped and written in <= 3 s). The build is
timed --rounds times; the median is the figure (range in brackets), as this machine's speed
drifts from run to run.

    .venv/bin/python benchmarks/bench_tree.py --leaves 1000000
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from itertools import chain
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from settlement.keccak import native  # noqa: E402
from settlement.merkle import (SETTLEMENT_LEAF_ENCODING, StandardMerkleTree,  # noqa: E402
                               settlement_leaf_hash_block, settlement_values)
from settlement.payables import Payable, batch_tree  # noqa: E402
from settlement.synthetic import population  # noqa: E402
from sinks import atomic  # noqa: E402

REGISTRY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n = args.leaves
    _, providers, _ = population()
    consumers = [f"0x{i:040x}" for i in range(1, n // len(providers) + 2)]
    leaves = [Payable(consumers[i // len(providers)], providers[i % len(providers)], 1, 10**18 + i)
              for i in range(n)]

    rounds = []
    for _ in range(args.rounds):
        start = time.perf_counter()  # the steps of batch_tree, each timed
        consumer_column = [leaf.consumer for leaf in leaves]
        payee_column = [leaf.payee for leaf in leaves]
        amount_column = [leaf.cumulative_wei for leaf in leaves]
        hashes = settlement_leaf_hash_block(31337, REGISTRY, 1, consumer_column, payee_column, amount_column)
        hashed = time.perf_counter()
        values = settlement_values(31337, REGISTRY, 1, consumer_column, payee_column, amount_column)
        valued = time.perf_counter()
        tree = StandardMerkleTree.of(values, SETTLEMENT_LEAF_ENCODING, leaf_hashes=hashes)
        built = time.perf_counter()
        rounds.append((built - start, hashed - start, valued - hashed, built - valued))
        del consumer_column, payee_column, amount_column, hashes, values
    if batch_tree(31337, REGISTRY, 1, leaves).dump_json() != tree.dump_json():
        raise SystemExit("the timed steps built another tree than settlement.payables.batch_tree")
    total, hashing, valuing, building = sorted(rounds)[len(rounds) // 2]
    spread = f" [{min(r[0] for r in rounds):.2f}-{max(r[0] for r in rounds):.2f}]" if len(rounds) > 1 else ""
    dumped = time.perf_counter()  # the dump alone, its chunks made and dropped
    for _ in tree.dump_chunks():
        pass
    dumping = time.perf_counter() - dumped
    with tempfile.TemporaryDirectory() as tmp:
        built = time.perf_counter()  # as sinks.batch_outputs writes tree.json
        atomic.write_chunks(Path(tmp) / "tree.json", chain(tree.dump_chunks(), [b"\n"]))
        written = time.perf_counter()
        size = (Path(tmp) / "tree.json").stat().st_size
        if (Path(tmp) / "tree.json").read_bytes() != tree.dump_json() + b"\n":
            raise SystemExit("the written tree.json is not the tree's dump_json()")
    print(f"tree of {n:,} leaves: leaf hashes {hashing:.2f} s, values {valuing:.2f} s, "
          f"tree {building:.2f} s, "
          f"built in {total:.2f} s{spread} (median of {len(rounds)}; target <= 2 s); dump + write {written - built:.2f} s "
          f"({size / 1e6:,.0f} MB, the dump alone {dumping:.2f} s; target <= 3 s); root 0x{tree.root.hex()}; "
          f"keccak {'Rust extension' if native() else 'safe-pysha3 (extension not installed)'}")


if __name__ == "__main__":
    main()
