"""ReadUsageRecords: usage files (any Beam file system) -> Arrow tables of raw records."""
from __future__ import annotations

import hashlib

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from settlement.errors import InvalidInput
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


class _DecodeFile(beam.DoFn):
    def process(self, path: str):
        fmt = format_of(path)
        try:
            handle = FileSystems.open(path, compression_type=CompressionTypes.AUTO)
        except (OSError, IOError) as exc:
            raise InvalidInput(f"input {path} cannot be opened: {exc}") from None
        with handle:
            for table in decode_stream(handle, path, fmt):
                records_read().add(table.num_rows)
                yield table
        yield beam.pvalue.TaggedOutput(DIGESTS, (path, file_digest(path)))


class ReadUsageRecords(beam.PTransform):
    """PCollection of file paths -> raw record tables (main) and (path, sha256) (`digests`)."""

    def expand(self, paths):
        return paths | "DecodeFiles" >> beam.ParDo(_DecodeFile()).with_outputs(DIGESTS, main="records")
