"""ReadUsageRecords: usage files (any Beam file system) -> Arrow tables of raw records."""
from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import os
import zlib
from typing import BinaryIO, Tuple

import apache_beam as beam
import pyarrow as pa
import zstandard
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from settlement.errors import InvalidInput
from transforms import coders  # noqa: F401  (registers the pa.Table coder)
from transforms.decoding import decode_stream, format_of
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
    """A read-only stream that hashes (and counts) what passes through it, so a file is read once."""

    def __init__(self, handle):
        self.handle = handle
        self.sha256 = hashlib.sha256()
        self.count = 0
        self.closed = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.sha256.update(data)
        self.count += len(data)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        self.closed = True

    def hexdigest(self) -> str:
        while self.read(1 << 22):  # whatever the decoder left unread
            pass
        return self.sha256.hexdigest()


class _ZstdReader(io.RawIOBase):
    """Every zstd frame of a stream, decompressed; a stream that ends inside a frame raises
    EOFError (zstandard's own stream reader returns what it has, silently)."""

    def __init__(self, raw):
        super().__init__()
        self.raw = raw
        self.dctx = zstandard.ZstdDecompressor()
        self.frame = None
        self.pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.pending:
            chunk = self.raw.read(1 << 20)
            if not chunk:
                if self.frame is not None and not self.frame.eof:
                    raise EOFError("the zstd stream ends inside a frame (truncated)")
                return 0
            out = []
            while chunk:
                if self.frame is None or self.frame.eof:
                    self.frame = self.dctx.decompressobj()
                out.append(self.frame.decompress(chunk))
                chunk = self.frame.unused_data if self.frame.eof else b""
            self.pending = b"".join(out)
        n = min(len(buffer), len(self.pending))
        buffer[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n


_DECOMPRESSION_ERRORS = (EOFError, OSError, zlib.error, zstandard.ZstdError, ValueError)


def _local_stream(path: str, raw) -> BinaryIO:
    """The decompressed stream of a local file, by its extension; whole-stream checks included
    (gzip and bz2 read every member and raise on a truncated one; zstd: _ZstdReader)."""
    lowered = path.lower()
    if lowered.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if lowered.endswith(".bz2"):
        return bz2.BZ2File(raw, mode="rb")
    if lowered.endswith(".zst"):
        return io.BufferedReader(_ZstdReader(raw), buffer_size=1 << 20)
    return raw


def _identity(stat: os.stat_result) -> tuple:
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


def _changed(path: str, before: os.stat_result, hashed_bytes: int | None) -> str | None:
    """Why the file at `path` is not the one whose reading started, or None."""
    try:
        after = os.stat(path)
    except OSError as exc:
        return f"it disappeared while being read ({exc})"
    if _identity(after) != _identity(before):
        return (f"it changed while being read (size {before.st_size} -> {after.st_size} bytes, "
                "or its modification time or inode changed)")
    if hashed_bytes is not None and hashed_bytes != before.st_size:
        return f"{hashed_bytes} bytes were read of its {before.st_size} (it was truncated or grew while read)"
    return None


class _DecodeFile(beam.DoFn):
    def process(self, path: str):
        fmt = format_of(path)
        if FileSystems.get_scheme(path) is None:
            yield from self._local(path, fmt)
            return
        compression = CompressionTypes.detect_compression_type(path)
        try:
            handle = FileSystems.open(path, compression_type=CompressionTypes.AUTO)
        except (OSError, IOError) as exc:
            raise InvalidInput(f"input {path} cannot be opened: {exc}") from None
        hashing = fmt == "jsonl" and compression == CompressionTypes.UNCOMPRESSED
        with handle:
            stream = HashingReader(handle) if hashing else handle
            for table in decode_stream(stream, path, fmt):
                records_read().add(table.num_rows)
                yield table
            digest = stream.hexdigest() if hashing else file_digest(path)
        yield beam.pvalue.TaggedOutput(DIGESTS, (path, digest))

    def _local(self, path: str, fmt: str):
        """A local file, read front to back once and hashed as stored on the way (Parquet, which
        needs to seek, is hashed on its own). The whole stream must decompress, and the file
        must be the same before and after: anything else refuses the file (exit 2)."""
        try:
            raw_file = open(path, "rb")
        except OSError as exc:
            raise InvalidInput(f"input {path} cannot be opened: {exc}") from None
        with raw_file:
            before = os.fstat(raw_file.fileno())
            raw = HashingReader(raw_file)
            stream = _local_stream(path, raw)
            try:
                if fmt == "parquet":
                    data = stream.read()
                    tables = decode_stream(pa.BufferReader(data), path, fmt)
                else:
                    tables = decode_stream(stream, path, fmt)
                for table in tables:
                    records_read().add(table.num_rows)
                    yield table
                digest = raw.hexdigest()
            except _DECOMPRESSION_ERRORS as exc:
                raise InvalidInput(f"input {path} cannot be read whole: {type(exc).__name__}: {exc}; "
                                   "it is corrupt or truncated: deliver it again complete") from None
            why = _changed(path, before, raw.count)
        if why:
            raise InvalidInput(f"input {path} was refused: {why}; deliver files whole (write "
                               "elsewhere, then rename into place) and run again") from None
        yield beam.pvalue.TaggedOutput(DIGESTS, (path, digest))


class ReadUsageRecords(beam.PTransform):
    """PCollection of file paths -> raw record tables (main) and (path, sha256) (`digests`)."""

    def expand(self, paths):
        return paths | "DecodeFiles" >> beam.ParDo(_DecodeFile()).with_output_types(
            pa.Table, **{DIGESTS: Tuple[str, str]}).with_outputs(DIGESTS, main="records")
