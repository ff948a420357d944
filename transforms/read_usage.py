"""ReadUsageRecords: usage files (any Beam file system) -> Arrow tables of raw records."""
from __future__ import annotations

import hashlib
import mmap
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Tuple

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from settlement.errors import InvalidInput
from transforms import coders  # noqa: F401  (registers the pa.Table coder)
from transforms.decoding import JsonLinesDecoder, buffer_blocks, decode_stream, format_of
from transforms.progress import records_read

DIGESTS = "digests"


def file_digest(path: str) -> str:
    """sha256 of the file as stored (compressed bytes for compressed files)."""
    digest = hashlib.sha256()
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


class HashingReader:
    """A read-only stream that hashes what passes through it, so a file is read once."""

    def __init__(self, handle):
        self.handle = handle
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.sha256.update(data)
        return data

    def hexdigest(self) -> str:
        while self.read(1 << 22):  # whatever the decoder left unread
            pass
        return self.sha256.hexdigest()


class _DecodeFile(beam.DoFn):
    def process(self, path: str):
        fmt = format_of(path)
        compression = CompressionTypes.detect_compression_type(path)
        if fmt == "jsonl" and compression == CompressionTypes.UNCOMPRESSED and FileSystems.get_scheme(path) is None:
            yield from self._mapped_json_lines(path)
            return
        try:
            handle = FileSystems.open(path, compression_type=CompressionTypes.AUTO)
        except (OSError, IOError) as exc:
            raise InvalidInput(f"input {path} cannot be opened: {exc}") from None
        # JSON lines are read front to back by our own reader and hashed on the way; CSV and
        # Parquet go to Arrow's readers and compressed files are hashed as stored, so those are
        # read a second time for their digest.
        hashing = fmt == "jsonl" and compression == CompressionTypes.UNCOMPRESSED
        with handle:
            stream = HashingReader(handle) if hashing else handle
            for table in decode_stream(stream, path, fmt):
                records_read().add(table.num_rows)
                yield table
            digest = stream.hexdigest() if hashing else file_digest(path)
        yield beam.pvalue.TaggedOutput(DIGESTS, (path, digest))

    def _mapped_json_lines(self, path: str):
        """A local JSON lines file, memory-mapped: decoded in place and hashed beside it. Once
        a block's records are out, its pages leave the process (MADV_DONTNEED: a page touched
        again is read back from the page cache), so a file of any size costs a few blocks."""
        try:
            with open(path, "rb") as handle:
                mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) \
                    if os.fstat(handle.fileno()).st_size else None
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"input {path} cannot be opened: {exc}") from None
        buffer = pa.py_buffer(mapped if mapped is not None else b"")
        sha256 = hashlib.sha256()
        in_flight: deque = deque()  # (block, its hashing) in file order

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256") as hasher:
            def blocks():
                for block in buffer_blocks(buffer):
                    in_flight.append((block, hasher.submit(sha256.update, block)))
                    yield block

            for table in JsonLinesDecoder().read_blocks(blocks(), path):
                records_read().add(table.num_rows)
                yield table
                block, hashed = in_flight.popleft()
                hashed.result()
                if hasattr(mmap, "MADV_DONTNEED"):  # Linux and the BSDs
                    offset = block.address - buffer.address
                    start = offset // mmap.PAGESIZE * mmap.PAGESIZE
                    mapped.madvise(mmap.MADV_DONTNEED, start, offset + block.size - start)
            digest = sha256.hexdigest()
        yield beam.pvalue.TaggedOutput(DIGESTS, (path, digest))


class ReadUsageRecords(beam.PTransform):
    """PCollection of file paths -> raw record tables (main) and (path, sha256) (`digests`)."""

    def expand(self, paths):
        return paths | "DecodeFiles" >> beam.ParDo(_DecodeFile()).with_output_types(
            pa.Table, **{DIGESTS: Tuple[str, str]}).with_outputs(DIGESTS, main="records")
