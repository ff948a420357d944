"""Decoding usage files into raw records (settlement.events.RAW_SCHEMA), one Arrow table per block.

Columnar all the way: JSONL lines are split by Arrow's CSV reader (one column, no quoting) and
parsed by DuckDB's vectorised JSON functions; CSV and Parquet are read by Arrow. Every record a
file holds comes out, readable or not: nothing is skipped here.
"""
from __future__ import annotations

import io
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO, Iterator

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from settlement.events import (FIELDS, KIND_FLOAT, KIND_INTEGER, KIND_MISSING, KIND_OTHER,
                               KIND_STRING, RAW_SCHEMA, kind_column)
from settlement.errors import InvalidInput

BLOCK_BYTES = 16 << 20
FORMATS = ("jsonl", "csv", "parquet")
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv",
               ".parquet": "parquet", ".pq": "parquet"}


def format_of(path: str) -> str:
    lowered = path.lower()
    for suffix in (".gz", ".bz2", ".zst"):
        if lowered.endswith(suffix):
            lowered = lowered[: -len(suffix)]
    for ext, fmt in _EXTENSIONS.items():
        if lowered.endswith(ext):
            return fmt
    raise InvalidInput(f"input {path} has an unknown extension; name usage files *.jsonl, *.csv or "
                       "*.parquet (optionally compressed .gz/.bz2) so meterroot knows how to read them")


def _raw_table(n: int, source: str, first_no: int, columns: dict) -> pa.Table:
    """Assemble a RAW_SCHEMA table; absent columns are all-null."""
    arrays = []
    for field in RAW_SCHEMA:
        if field.name == "source":
            arrays.append(pa.array([source] * n, pa.string()) if n else pa.array([], pa.string()))
        elif field.name == "record_no":
            given = columns.get("record_no")
            arrays.append(given if given is not None else pa.array(range(first_no, first_no + n), pa.int64()))
        elif field.name in columns:
            arrays.append(columns[field.name])
        elif field.name.endswith("__kind"):
            arrays.append(pa.array([KIND_MISSING] * n, pa.string()))
        else:
            arrays.append(pa.nulls(n, field.type))
    return pa.Table.from_arrays(arrays, schema=RAW_SCHEMA)


# --- JSON lines -------------------------------------------------------------------------------

_PATHS = "[" + ", ".join(f"'{f}'" for f in FIELDS) + "]"
_COLUMNS = ", ".join(f'types[{i}] AS "{kind_column(f)}", vals[{i}] AS "{f}"'
                     for i, f in enumerate(FIELDS, start=1))
# json_type and json_extract_string over the list of paths: DuckDB reads each line for both,
# which measured faster than one json_extract followed by typing each extracted value.
_JSONL_FAST = f"""SELECT top, {_COLUMNS} FROM (
    SELECT json_type(line) AS top, json_type(line, {_PATHS}) AS types,
           json_extract_string(line, {_PATHS}) AS vals FROM lines)"""
# Fallback for a block with a line that is not JSON at all: json_type raises on it, so the
# block is parsed again with try_cast, which is slower but marks the bad lines.
_JSONL_TOLERANT = f"""SELECT top, {_COLUMNS} FROM (
    SELECT json_type(doc) AS top, json_type(doc, {_PATHS}) AS types,
           json_extract_string(doc, {_PATHS}) AS vals
    FROM (SELECT try_cast(line AS JSON) AS doc FROM lines))"""


def _json_kind(json_type: pa.Array, text: pa.Array) -> pa.Array:
    """Kind of a field: DuckDB's json_type, absent as NULL; a DOUBLE whose text is all digits
    is an integer too wide for 64 bits (its range is checked later), any other DOUBLE a float."""
    kind = pc.fill_null(json_type, KIND_MISSING)
    doubles = pc.equal(kind, KIND_FLOAT)
    if pc.any(doubles).as_py():
        whole = pc.fill_null(pc.match_substring_regex(text, r"^-?[0-9]+$"), False)
        kind = pc.if_else(pc.and_(doubles, whole), KIND_INTEGER, kind)
    return kind


def _malformed_json(top: pa.Array) -> pa.Array:
    """Why each line is not a JSON object, or null where it is one."""
    if pc.all(pc.fill_null(pc.equal(top, "OBJECT"), False)).as_py():
        return pa.nulls(len(top), pa.string())
    return pc.if_else(
        pc.is_null(top), "not valid JSON",
        pc.if_else(pc.equal(top, "OBJECT"), pa.scalar(None, pa.string()),
                   pc.binary_join_element_wise("a JSON ", pc.utf8_lower(top), ", not an object", "")))


PREFETCH_BLOCKS = 2
"""Blocks decoded ahead, on worker threads, while the caller works on the current one: DuckDB
and Arrow release the GIL, so decoding the next block overlaps validating this one."""


class JsonLinesDecoder:
    """Lines -> raw records with DuckDB's JSON functions (a cursor per thread)."""

    def __init__(self):
        self._con = duckdb.connect(config={"threads": 2})
        self._local = threading.local()

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._local.cursor = self._con.cursor()
        return cursor

    def _query(self, lines: pa.Array) -> pa.Table:
        con = self._cursor()
        con.register("lines", pa.table({"line": lines}))
        try:
            try:
                return con.sql(_JSONL_FAST).to_arrow_table()
            except duckdb.InvalidInputException:
                return con.sql(_JSONL_TOLERANT).to_arrow_table()
        finally:
            con.unregister("lines")

    def decode(self, lines: pa.Array, source: str, record_no) -> pa.Table:
        """`record_no`: the first record's number, or an array of each record's number."""
        if isinstance(lines, pa.ChunkedArray):
            lines = lines.combine_chunks()
        out = self._query(lines)
        top = out.column("top").combine_chunks()
        columns = {
            "record": lines,
            "malformed": _malformed_json(top),
        }
        for field in FIELDS:
            text = out.column(field).combine_chunks()
            json_type = out.column(kind_column(field)).combine_chunks()
            columns[field] = text
            columns[kind_column(field)] = _json_kind(json_type, text)
        if not isinstance(record_no, int):
            columns["record_no"] = record_no
            record_no = 0
        return _raw_table(len(lines), source, record_no, columns)

    def decode_block(self, block: bytes, source: str, first_line: int) -> pa.Table:
        """Raw records of a block of whole lines; record_no is the line number in the file."""
        lines, numbers = split_lines(block, first_line)
        return self.decode(lines, source, numbers)

    def read(self, stream: BinaryIO, source: str) -> Iterator[pa.Table]:
        """Blocks of whole lines are cut from the stream here; splitting them into lines and
        parsing the JSON happens on worker threads, PREFETCH_BLOCKS ahead of the caller."""
        pending: deque = deque()
        with ThreadPoolExecutor(max_workers=PREFETCH_BLOCKS, thread_name_prefix="decode") as pool:
            try:
                for block, first_line in line_blocks(stream):
                    pending.append(pool.submit(self.decode_block, block, source, first_line))
                    if len(pending) > PREFETCH_BLOCKS:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            finally:
                for future in pending:
                    future.cancel()


def line_blocks(stream: BinaryIO) -> Iterator[tuple[bytes, int]]:
    """(block of whole lines, number of its first line), about BLOCK_BYTES each."""
    carry = b""
    line_no = 1
    while True:
        chunk = stream.read(BLOCK_BYTES)
        if not chunk:
            if carry:
                yield carry, line_no
            return
        data = carry + chunk if carry else chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0:  # one line longer than a block: keep reading
            carry = data
            continue
        block, carry = data[:cut], data[cut:]
        yield block, line_no
        line_no += block.count(b"\n")


class _IrregularBlock(Exception):
    """A block the fast line splitter cannot number exactly (a \x01 or a lone CR in a line)."""


def _skip_row(row):
    return "skip"  # the row count then differs from the line count: the block goes the slow way


def split_lines(block: bytes, first_line: int) -> tuple[pa.Array, pa.Array]:
    """Non-empty lines of `block` as strings with their line numbers. Arrow's CSV reader (one
    column, no quoting) splits well-formed text fastest; a block it cannot number exactly, or
    that is not UTF-8, goes the slow way, line by line, its bad bytes replaced."""
    expected = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
    try:
        lines = pacsv.read_csv(
            io.BytesIO(block),
            read_options=pacsv.ReadOptions(column_names=["line"], use_threads=False,
                                           block_size=len(block) + 1),
            parse_options=pacsv.ParseOptions(delimiter="\x01", quote_char=False, escape_char=False,
                                             ignore_empty_lines=False, invalid_row_handler=_skip_row),
            convert_options=pacsv.ConvertOptions(column_types={"line": pa.string()},
                                                 strings_can_be_null=False)).column(0).combine_chunks()
        if len(lines) != expected:
            raise _IrregularBlock()
    except (_IrregularBlock, pa.ArrowInvalid):
        texts = block.decode("utf-8", errors="replace").split("\n")
        if block.endswith(b"\n"):
            texts.pop()
        lines = pa.array([t.removesuffix("\r") for t in texts], pa.string())
    numbers = pa.array(np.arange(first_line, first_line + len(lines), dtype=np.int64))
    blank = pc.equal(pc.binary_length(lines), 0)  # an empty line is no record; "  " is a malformed one
    if pc.any(blank).as_py():
        present = pc.invert(blank)
        return lines.filter(present), numbers.filter(present)
    return lines, numbers


# --- CSV --------------------------------------------------------------------------------------

def _kind_of_text(column: pa.Array) -> pa.Array:
    empty = pc.or_kleene(pc.is_null(column), pc.equal(pc.utf8_length(column), 0))
    return pc.if_else(empty, KIND_MISSING, KIND_STRING)


def read_csv(stream: BinaryIO, source: str) -> Iterator[pa.Table]:
    bad_rows = []

    def keep_invalid(row):
        bad_rows.append(row.text)
        return "skip"

    try:
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(invalid_row_handler=keep_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={f: pa.string() for f in FIELDS}, strings_can_be_null=False,
                include_columns=None))
    except pa.ArrowInvalid as exc:
        if "Empty CSV file" in str(exc):
            return
        raise InvalidInput(f"input {source} cannot be read as CSV: {exc}; it needs a header row "
                           f"naming the columns {', '.join(FIELDS)}") from None
    header = reader.schema.names
    next_no = 1
    try:
        for batch in reader:
            n = batch.num_rows
            columns = {}
            for f in FIELDS:
                if f in header:
                    col = batch.column(header.index(f)).cast(pa.string())
                    kind = _kind_of_text(col)
                    columns[f] = pc.if_else(pc.equal(kind, KIND_MISSING), pa.scalar(None, pa.string()), col)
                    columns[kind_column(f)] = kind
                else:
                    columns[kind_column(f)] = pa.array([KIND_MISSING] * n, pa.string())
            yield _raw_table(n, source, next_no, columns)
            next_no += n
    except pa.ArrowInvalid as exc:
        raise InvalidInput(f"input {source} cannot be read as CSV: {exc}") from None
    if bad_rows:
        n = len(bad_rows)
        yield _raw_table(n, source, next_no, {
            "record": pa.array(bad_rows, pa.string()),
            "malformed": pa.array([f"a CSV row whose column count differs from the header "
                                   f"({len(header)} columns)"] * n, pa.string()),
        })


# --- Parquet ----------------------------------------------------------------------------------

def _parquet_column(column: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(text, kind) of an Arrow column of any type."""
    t = column.type
    if pa.types.is_integer(t) or pa.types.is_decimal(t) and t.scale == 0:
        text = column.cast(pa.string())
        kind = KIND_INTEGER
    elif pa.types.is_timestamp(t):
        text = column.cast(pa.timestamp("ms", tz=t.tz)).cast(pa.int64()).cast(pa.string())
        kind = KIND_INTEGER
    elif pa.types.is_floating(t) or pa.types.is_decimal(t):
        text = column.cast(pa.string())
        kind = KIND_FLOAT
    elif pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        text = column.cast(pa.string())
        return text, _kind_of_text(text)
    else:
        text = pa.nulls(len(column), pa.string())
        kind = KIND_OTHER
    kinds = pc.if_else(pc.is_null(column), KIND_MISSING, kind)
    return text, kinds


def read_parquet(stream: BinaryIO, source: str) -> Iterator[pa.Table]:
    try:
        parquet = pq.ParquetFile(stream)
        names = parquet.schema_arrow.names
        wanted = [f for f in FIELDS if f in names]
        next_no = 1
        for batch in parquet.iter_batches(batch_size=1 << 18, columns=wanted):
            n = batch.num_rows
            columns = {}
            for f in FIELDS:
                if f in wanted:
                    columns[f], columns[kind_column(f)] = _parquet_column(batch.column(wanted.index(f)))
                else:
                    columns[kind_column(f)] = pa.array([KIND_MISSING] * n, pa.string())
            yield _raw_table(n, source, next_no, columns)
            next_no += n
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(f"input {source} cannot be read as Parquet: {exc}; "
                           "check that the file is complete (not truncated) Parquet") from None


def decode_stream(stream: BinaryIO, source: str, fmt: str) -> Iterator[pa.Table]:
    if fmt == "jsonl":
        return JsonLinesDecoder().read(stream, source)
    if fmt == "csv":
        return read_csv(stream, source)
    return read_parquet(stream, source)
