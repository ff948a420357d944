"""What `meterroot serve` publishes from an output directory, read as it is on disk now.

Only batches up to the ledger HEAD exist for the API (files of a later batch belong to a run that
has not committed). Files are cached by their version (inode, size, mtime): a tree dump is parsed
once per version into a leaf index, so a proof is a dictionary look-up and a walk up the tree.
Report answers are cached per published version too: the files under HEAD never change, so the
same query gives the same rows until HEAD moves (an External Adapter keeping its feeds warm asks
the same few questions many times a second; each would otherwise be a DuckDB scan).
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import duckdb

from settlement.errors import InvalidInput, MeterrootError, UsageError
from settlement.merkle import StandardMerkleTree
from sinks import layout, reports
from sinks.catalog import connect

manifest_path, tree_path = layout.manifest_path, layout.tree_path

CONSUMER, PAYEE = 3, 4  # positions in a settlement leaf value
ANSWERS_KEPT = 4096
"""Report answers kept per published version (least recently used dropped): bounded memory."""


class NotFound(UsageError, LookupError):
    """What was asked for does not exist in this output (HTTP 404)."""


class DamagedOutput(MeterrootError, RuntimeError):
    """A file differs from the digest the ledger head recorded for it (HTTP 500, not served)."""


def _version(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class RawFile:
    path: Path
    data: bytes
    etag: str
    """Strong ETag: the sha256 of the bytes."""


@dataclass(frozen=True)
class IndexedTree:
    tree: StandardMerkleTree
    by_pair: dict
    """(consumer lower, payee lower) -> value index."""
    etag: str


class Published:
    """A cache over one OUT: raw files, parsed trees and a DuckDB catalog per HEAD."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self._files: dict[Path, tuple[tuple, RawFile]] = {}
        self._trees: dict[int, tuple[tuple, IndexedTree]] = {}
        self._catalog: tuple[tuple, duckdb.DuckDBPyConnection] | None = None
        self._answers: tuple[tuple | None, OrderedDict] = (None, OrderedDict())
        self._head: tuple[tuple | None, int, dict] = (None, 0, {})
        self._lock = threading.Lock()

    # -- batches --------------------------------------------------------------------------
    def head(self) -> int:
        """The ledger HEAD's batch, re-read whenever HEAD.json changes (it is replaced, never edited)."""
        version = _version(layout.head_path(self.out))
        if version is not None and version == self._head[0]:
            return self._head[1]
        try:
            head = layout.read_head(self.out)
        except MeterrootError:  # a damaged head publishes nothing rather than what it cannot vouch for
            head = None
        self._head = (version, head.batch if head else 0, dict(head.files) if head else {})
        return self._head[1]

    def _check_committed(self, path: Path, data: bytes, digest: str) -> None:
        """A file HEAD records must still be the bytes committed (SPEC §10): never serve an edit."""
        self.head()
        recorded = self._head[2].get(layout.relative(self.out, path))
        if recorded is not None and (recorded.size != len(data) or recorded.sha256 != digest):
            raise DamagedOutput(f"{layout.relative(self.out, path)} differs from what the ledger committed "
                                f"(sha256 {recorded.sha256}); not served: `meterroot verify --output` lists the damage")

    def check_batch(self, batch: int) -> None:
        head = self.head()
        if not 1 <= batch <= head:
            have = f"batches 1..{head}" if head else "no batch yet"
            raise NotFound(f"batch {batch} does not exist in this output ({have})")

    def raw(self, path: Path) -> RawFile:
        version = _version(path)
        if version is None:
            raise NotFound(f"{path.relative_to(self.out)} does not exist")
        cached = self._files.get(path)
        if cached and cached[0] == version:
            return cached[1]
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        self._check_committed(path, data, digest)
        entry = RawFile(path, data, '"' + digest + '"')
        self._files[path] = (version, entry)
        return entry

    def manifest_file(self, batch: int) -> RawFile:
        self.check_batch(batch)
        return self.raw(manifest_path(self.out, batch))

    def manifest(self, batch: int) -> dict:
        return json.loads(self.manifest_file(batch).data)

    def tree_file(self, batch: int) -> RawFile:
        self.check_batch(batch)
        return self.raw(tree_path(self.out, batch))

    def batch_summaries(self) -> list[dict]:
        summaries = []
        for batch in range(1, self.head() + 1):
            manifest = self.manifest(batch)
            summaries.append({k: manifest.get(k) for k in (
                "batch", "root", "previous_root", "leaf_count", "total", "protocol_fee_total", "epochs",
                "chain_id", "registry", "tariff_hash")})
            summaries[-1]["manifest_sha256"] = self.manifest_file(batch).etag.strip('"')
        return summaries

    # -- proofs ---------------------------------------------------------------------------
    def indexed_tree(self, batch: int) -> IndexedTree:
        self.check_batch(batch)
        path = tree_path(self.out, batch)
        version = _version(path)
        if version is None:
            raise NotFound(f"batch {batch} has no tree (nothing was owed in it)")
        with self._lock:
            cached = self._trees.get(batch)
            if cached and cached[0] == version:
                return cached[1]
            raw = self.raw(path)
            tree = StandardMerkleTree.load(json.loads(raw.data))
            by_pair = {(v[CONSUMER].lower(), v[PAYEE].lower()): i for i, v in enumerate(tree.values)}
            entry = IndexedTree(tree, by_pair, raw.etag)
            self._trees[batch] = (version, entry)
            return entry

    def proof(self, batch: int, consumer: str, payee: str) -> dict:
        indexed = self.indexed_tree(batch)
        index = indexed.by_pair.get((consumer.lower(), payee.lower()))
        if index is None:
            raise NotFound(f"batch {batch} has no leaf for consumer {consumer} and payee {payee}")
        tree = indexed.tree
        value = tree.values[index]
        return {"batch": batch, "consumer": value[CONSUMER], "payee": value[PAYEE],
                "cumulativeAmount": value[5], "value": value, "leafEncoding": list(tree.leaf_encoding),
                "leaf": "0x" + tree.leaf_hash(index).hex(),
                "proof": ["0x" + node.hex() for node in tree.get_proof(index)],
                "root": "0x" + tree.root.hex()}

    def leaves(self, batch: int, offset: int, limit: int) -> tuple[list, int]:
        tree = self.indexed_tree(batch).tree
        return [{"value": v, "treeIndex": tree.tree_indices[offset + i]}
                for i, v in enumerate(tree.values[offset:offset + limit])], len(tree.values)

    # -- reports (DuckDB over the catalog views) -------------------------------------------
    def _signature(self) -> tuple:
        head = manifest_path(self.out, self.head()) if self.head() else None
        return (self.head(), _version(head) if head else None, _version(self.out / "ledger" / "HEAD.json"))

    def query(self, sql: str, params: dict) -> tuple[list[str], list[tuple]]:
        with self._lock:
            signature = self._signature()
            if self._catalog is None or self._catalog[0] != signature:
                if self._catalog is not None:
                    self._catalog[1].close()
                self._catalog = (signature, connect(self.out))
            cursor = self._catalog[1].cursor()
        try:
            result = reports.run_query(cursor, reports.Query(sql, params))
        finally:
            cursor.close()
        return result.columns, result.rows

    def rows(self, sql: str, params: dict) -> list[dict]:
        """The rows of a report query as plain values; the same query at the same published
        version is answered from memory."""
        key = (sql, tuple(sorted(params.items())))
        with self._lock:
            signature = self._signature()
            if self._answers[0] != signature:
                self._answers = (signature, OrderedDict())
            answers = self._answers[1]
            cached = answers.get(key)
            if cached is not None:
                answers.move_to_end(key)
                return [dict(row) for row in cached]
        columns, rows = self.query(sql, params)
        plain = [{c: reports.plain(v) for c, v in zip(columns, row)} for row in rows]
        with self._lock:
            if self._answers[0] == signature:  # HEAD did not move while the query ran
                answers[key] = plain
                while len(answers) > ANSWERS_KEPT:
                    answers.popitem(last=False)
        return [dict(row) for row in plain]

    def catalog_version(self) -> str:
        return hashlib.sha256(repr(self._signature()).encode()).hexdigest()[:32]


def check_output(out: Path) -> Path:
    out = Path(out)
    if not out.is_dir():
        raise InvalidInput(f"--output {out} does not exist; pass the --output of a `meterroot batch` run")
    if not (out / "ledger").is_dir() and not (out / "batches").is_dir():
        raise InvalidInput(f"--output {out} is not a meterroot output directory (no ledger/ or batches/)")
    return Path(os.path.abspath(out))
