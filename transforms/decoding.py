"""Decoding usage files into raw records (settlement.events.RAW_SCHEMA), one Arrow table per block.

Columnar all the way: JSONL lines are found by numpy in blocks of the file and parsed by DuckDB's
vectorised JSON functions; CSV and Parquet are read by Arrow. Every record a
file holds comes out, readable or not: nothing is skipped here.
"""
from __future__ import annotations

import csv
import io
import json
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO, Iterator

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from settlement.events import (FIELDS, REQUIRED_FIELDS, KIND_FLOAT, KIND_INTEGER, KIND_MISSING, KIND_OTHER,
                               KIND_STRING, RAW_SCHEMA, kind_column)
from settlement import duck
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
            arrays.append(pa.repeat(pa.scalar(source, pa.string()), n))
        elif field.name == "record_no":
            given = columns.get("record_no")
            arrays.append(given if given is not None else pa.array(range(first_no, first_no + n), pa.int64()))
        elif field.name in columns:
            given = columns[field.name]
            arrays.append(given if given.type == field.type else given.cast(field.type))
        elif field.name.endswith("__kind"):
            arrays.append(pa.repeat(pa.scalar(KIND_MISSING, pa.string()), n).cast(field.type))
        else:
            arrays.append(pa.nulls(n, field.type))
    return pa.Table.from_arrays(arrays, schema=RAW_SCHEMA)


# --- JSON lines -------------------------------------------------------------------------------
#
# A block of whole lines becomes one Arrow string array without copying a byte: numpy finds the
# line breaks and the block itself is the array's data buffer, so each value is a line with its
# line break (whitespace to JSON). DuckDB parses every line once, with json_transform into the
# fields as JSON text; the kind of each value is its first byte and its text the JSON text,
# unquoted for strings. Measured at 2M events: about 3x less CPU than json_type plus
# json_extract_string per path, and 15x less than Arrow's CSV reader for the line splitting.

_STRUCT = "{" + ", ".join(f'"{f}": "JSON"' for f in FIELDS) + "}"
_FIELD_TEXTS = ", ".join(f'j."{f}"::VARCHAR AS "{f}"' for f in FIELDS)
# A line that starts with "{" and parses is an object; only the others need their JSON type.
# A key given twice in one object is `malformed` (JSON parsers disagree on which copy wins).
# Listing every line's keys would parse each line twice; only a line with more `"…":` marks than
# fields found, or with white space after a quote, can hold a key twice (or keys meterroot does
# not read): those few lines alone get their keys listed (JsonLinesDecoder._duplicate_keys).
_DUPLICATE_KEYS = "len(json_keys({doc})) <> len(list_distinct(json_keys({doc})))"
_JSONL_DUPLICATES = f"""SELECT CASE WHEN json_type(doc) = 'OBJECT' THEN {_DUPLICATE_KEYS.format(doc="doc")}
    END AS duplicate_keys FROM (SELECT try_cast(line AS JSON) AS doc FROM lines)"""
_JSONL_FAST = f"""SELECT CASE WHEN starts_with(line, '{{') THEN 'OBJECT' ELSE json_type(line) END AS top,
    {_FIELD_TEXTS} FROM (SELECT line, json_transform(line, '{_STRUCT}') AS j FROM lines)"""
# Fallback for a block with a line that is not JSON at all: json_transform raises on it, so the
# block is parsed again through try_cast, which marks the bad lines (their top is null).
_JSONL_TOLERANT = f"""SELECT json_type(doc) AS top,
    CASE WHEN json_type(doc) = 'OBJECT' THEN {_DUPLICATE_KEYS.format(doc="doc")} END AS duplicate_keys,
    {_FIELD_TEXTS}
    FROM (SELECT doc, json_transform(doc, '{_STRUCT}') AS j
          FROM (SELECT try_cast(line AS JSON) AS doc FROM lines))"""

_KIND_OF_FIRST_BYTE = np.full(256, KIND_OTHER, dtype=object)
_KIND_OF_FIRST_BYTE[ord('"')] = KIND_STRING
_KIND_OF_FIRST_BYTE[ord("n")] = KIND_MISSING  # null
_KIND_OF_FIRST_BYTE[ord("t")] = _KIND_OF_FIRST_BYTE[ord("f")] = "BOOLEAN"
_KIND_OF_FIRST_BYTE[ord("{")] = "OBJECT"
_KIND_OF_FIRST_BYTE[ord("[")] = "ARRAY"
for _c in b"-0123456789":
    _KIND_OF_FIRST_BYTE[_c] = KIND_INTEGER  # DOUBLE where the text has a fraction or exponent
_KIND_CODES = pa.array(["NULL", "VARCHAR", "BIGINT", "DOUBLE", "BOOLEAN", "OBJECT", "ARRAY", "OTHER"])
_CODE_OF_KIND = {kind: code for code, kind in enumerate(_KIND_CODES.to_pylist())}
_CODE_OF_FIRST_BYTE = np.array([_CODE_OF_KIND[k] for k in _KIND_OF_FIRST_BYTE], dtype=np.int8)


def _offsets(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, data bytes) of a string array, as numpy views of its buffers."""
    _, offsets, data = array.buffers()
    width = np.int64 if pa.types.is_large_string(array.type) else np.int32
    offsets = np.frombuffer(offsets, width)[array.offset: array.offset + len(array) + 1]
    return offsets, (np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8))


def _rows_with(array: pa.Array, *chars: str) -> np.ndarray | None:
    """Mask of the values of a string array holding any of `chars`, or None if none does."""
    offsets, data = _offsets(array)
    data = data[offsets[0]:offsets[-1]]
    hit = data == ord(chars[0])
    for char in chars[1:]:
        hit |= data == ord(char)
    if not hit.any():
        return None
    mask = np.zeros(len(array), dtype=bool)
    mask[np.searchsorted(offsets, np.flatnonzero(hit) + offsets[0], side="right") - 1] = True
    return mask


def _unquote(text: pa.Array) -> pa.Array:
    """Each value without its first and last byte (the quotes of a JSON string)."""
    return pc.binary_slice(text.view(pa.binary()), 1, -1).view(pa.string())


def _json_field(text: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(value as text, kind) of a field from its JSON text (null where the key is absent)."""
    text = text.combine_chunks() if isinstance(text, pa.ChunkedArray) else text
    if text.type != pa.string():  # DuckDB hands back `string`; anything else is made one
        text = text.cast(pa.string())
    offsets, data = _offsets(text)
    first = np.full(len(text), ord("n"), dtype=np.uint8)
    present = offsets[1:] > offsets[:-1]
    if text.null_count:
        present &= np.asarray(pc.is_valid(text), dtype=bool)
    first[present] = data[offsets[:-1][present]]
    codes = _CODE_OF_FIRST_BYTE[first]
    number = codes == _CODE_OF_KIND[KIND_INTEGER]
    if number.any():
        fraction = _rows_with(text, ".", "e", "E")
        if fraction is not None:
            codes[number & fraction] = _CODE_OF_KIND[KIND_FLOAT]
    kind = pa.DictionaryArray.from_arrays(pa.array(codes), _KIND_CODES)
    quoted = codes == _CODE_OF_KIND[KIND_STRING]
    missing = codes == _CODE_OF_KIND[KIND_MISSING]
    if quoted.all():
        value = _unquote(text)
    elif quoted.any():
        value = pc.if_else(pa.array(quoted), _unquote(text), text)
    else:
        value = text
    if missing.any():
        value = pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), value)
    escaped = _rows_with(text, "\\") if quoted.any() else None
    if escaped is not None and (escaped := escaped & quoted).any():
        # the few strings with escapes are unescaped by the JSON library
        decoded = [json.loads(s) for s in text.filter(pa.array(escaped)).to_pylist()]
        value = pc.replace_with_mask(value, pa.array(escaped), pa.array(decoded, pa.string()))
    return value, kind


def _malformed_json(top: pa.Array, duplicate_keys: pa.Array | None = None,
                    not_utf8: np.ndarray | None = None) -> pa.Array:
    """Why each line is not a JSON object (or an object with a key given twice, or not UTF-8
    text), or null where it is a good one."""
    reason = _malformed_top(top)
    if duplicate_keys is not None and pc.any(pc.fill_null(duplicate_keys, False)).as_py():
        reason = pc.if_else(pc.fill_null(duplicate_keys, False),
                            "a JSON object with a key given more than once", reason)
    if not_utf8 is not None and not_utf8.any():
        reason = pc.if_else(pa.array(not_utf8), "not valid UTF-8 text", reason)
    return reason


def _malformed_top(top: pa.Array) -> pa.Array:
    if pc.all(pc.fill_null(pc.equal(top, "OBJECT"), False)).as_py():
        return pa.nulls(len(top), pa.string())
    return pc.if_else(
        pc.is_null(top), "not valid JSON",
        pc.if_else(pc.equal(top, "OBJECT"), pa.scalar(None, pa.string()),
                   pc.binary_join_element_wise("a JSON ", pc.utf8_lower(top), ", not an object", "")))


_NULL = np.frombuffer(b"null", np.uint8)
_FIELD_BYTES = {f: np.frombuffer(f'"{f}'.encode(), np.uint8) for f in FIELDS}


def _named_null_keys(data: np.ndarray, starts: np.ndarray, marks: np.ndarray, n: int) -> dict:
    """{field: mask of the lines holding the bytes `"field":null`}, for the fields that do.

    DuckDB reads a key whose value is null as absent, so without these a line with
    `"token_id":null` has one more `"…":` mark than fields found and would be listed again as
    a suspect. Counting such a field as found keeps `found` a lower bound of the line's distinct
    keys: each field is counted once (present or named null), and each `"…":null` mark ends one
    key occurrence whose bytes end in one field's name only (anything that does not read
    exactly so, like `"token_id": null` or an escaped name, is not counted and stays suspect)."""
    if not len(marks):
        return {}
    nulls = marks[marks + 6 <= len(data)]
    for i, byte in enumerate(_NULL, start=2):  # each test on the few marks left by the one before
        nulls = nulls[data[nulls + i] == byte]
    if not len(nulls):
        return {}
    result = {}
    for field, name in _FIELD_BYTES.items():
        hit = nulls[nulls >= len(name)]
        for i in range(len(name), 0, -1):
            hit = hit[data[hit - i] == name[len(name) - i]]
        if len(hit):
            mask = np.zeros(n, dtype=bool)
            mask[np.searchsorted(starts, hit, side="right") - 1] = True
            result[field] = mask
    return result


PREFETCH_BLOCKS = 2
"""Blocks decoded ahead, on worker threads, while the caller works on the current one: DuckDB,
numpy and Arrow release the GIL, so decoding the next block overlaps validating this one."""


class JsonLinesDecoder:
    """Lines -> raw records with DuckDB's JSON functions."""

    def _query(self, lines: pa.Array) -> pa.Table:
        tables = {"lines": pa.table({"line": lines})}
        try:
            return duck.query(_JSONL_FAST, tables)
        except duckdb.InvalidInputException:
            return duck.query(_JSONL_TOLERANT, tables)

    def _duplicate_keys(self, lines: pa.Array, out: pa.Table) -> pa.Array:
        """Whether each line is an object with a key given twice (see _JSONL_DUPLICATES)."""
        offsets, data = _offsets(lines)
        data = data[offsets[0]:offsets[-1]]
        starts = offsets - offsets[0]
        n = len(lines)
        quotes = np.flatnonzero(data[:-1] == ord('"'))  # one pass; the rest works on the quotes
        after = data[quotes + 1]
        marks = quotes[after == ord(":")]
        per_line = np.bincount(np.searchsorted(starts, marks, side="right") - 1, minlength=n)[:n]
        found = np.zeros(n, dtype=np.int64)
        named_null = _named_null_keys(data, starts, marks, n)
        for field in FIELDS:
            present = np.asarray(pc.is_valid(out.column(field)), dtype=bool)
            if field in named_null:
                present |= named_null[field]
            found += present
        suspect = per_line > found
        spaced = quotes[(after == ord(" ")) | (after == ord("\t")) | (after == ord("\r")) | (after == ord("\n"))]
        if len(spaced):
            suspect[np.searchsorted(starts, spaced, side="right") - 1] = True
        if not suspect.any():
            return pa.repeat(pa.scalar(False), n)
        rows = pa.array(suspect)
        checked = duck.query(_JSONL_DUPLICATES, {"lines": pa.table({"line": lines.filter(rows)})})
        result = np.zeros(n, dtype=bool)
        result[np.flatnonzero(suspect)] = np.asarray(pc.fill_null(
            checked.column("duplicate_keys").combine_chunks(), False), dtype=bool)
        return pa.array(result)

    def decode(self, lines: pa.Array, source: str, record_no, not_utf8: np.ndarray | None = None) -> pa.Table:
        """Raw records of `lines` (each a JSON text, a trailing line break allowed);
        `record_no`: the first record's number, or an array of each record's number;
        `not_utf8`: mask of the lines that were not UTF-8 (their text escapes the bad bytes)."""
        if isinstance(lines, pa.ChunkedArray):
            lines = lines.combine_chunks()
        out = self._query(lines)
        duplicates = (out.column("duplicate_keys").combine_chunks() if "duplicate_keys" in out.column_names
                      else self._duplicate_keys(lines, out))
        columns = {"record": lines, "malformed": _malformed_json(
            out.column("top").combine_chunks(), duplicates, not_utf8)}
        for field in FIELDS:
            columns[field], columns[kind_column(field)] = _json_field(out.column(field))
        if not isinstance(record_no, int):
            columns["record_no"] = record_no
            record_no = 0
        return _raw_table(len(lines), source, record_no, columns)

    def decode_block(self, block: bytes, source: str) -> tuple[pa.Table, int]:
        """(raw records of a block of whole lines, numbered from 0 within it; its line count)."""
        lines, numbers, count, not_utf8 = split_lines(block, with_encoding=True)
        return self.decode(lines, source, numbers, not_utf8), count

    def read(self, stream: BinaryIO, source: str) -> Iterator[pa.Table]:
        """Raw records of a stream of JSON lines, a table per block."""
        return self.read_blocks(line_blocks(stream), source)

    def read_blocks(self, blocks: Iterator, source: str) -> Iterator[pa.Table]:
        """Blocks of whole lines are cut here; splitting them into lines and parsing the JSON
        happens on worker threads, PREFETCH_BLOCKS ahead of the caller, which numbers the
        records by line as blocks come back in order."""
        pending: deque = deque()
        next_line = 1

        def numbered(future) -> pa.Table:
            nonlocal next_line
            table, count = future.result()
            i = table.schema.get_field_index("record_no")
            table = table.set_column(i, "record_no", pc.add(table.column(i), next_line))
            next_line += count
            return table

        with ThreadPoolExecutor(max_workers=PREFETCH_BLOCKS, thread_name_prefix="decode") as pool:
            try:
                for n, block in enumerate(blocks):
                    if n == 0 and bytes(block[:3]) == UTF8_BOM:  # a byte order mark is no record
                        block = block[3:]
                    pending.append(pool.submit(self.decode_block, block, source))
                    if len(pending) > PREFETCH_BLOCKS:
                        yield numbered(pending.popleft())
                while pending:
                    yield numbered(pending.popleft())
            finally:
                for future in pending:
                    future.cancel()


def line_blocks(stream: BinaryIO) -> Iterator[bytes]:
    """Blocks of whole lines, about BLOCK_BYTES each (the last may lack its final line break)."""
    carry = b""
    while True:
        chunk = stream.read(BLOCK_BYTES)
        if not chunk:
            if carry:
                yield carry
            return
        cut = chunk.rfind(b"\n") + 1
        if cut == 0:  # one line longer than a block: keep reading
            carry += chunk
            continue
        yield carry + memoryview(chunk)[:cut] if carry else chunk[:cut] if cut < len(chunk) else chunk
        carry = chunk[cut:]


def _next_break(view: memoryview, pos: int) -> int:
    """Position after the first line break at or after `pos`, or the end."""
    while pos < len(view):
        found = bytes(view[pos:pos + BLOCK_BYTES]).find(b"\n")
        if found >= 0:
            return pos + found + 1
        pos += BLOCK_BYTES
    return len(view)


def buffer_blocks(buffer: pa.Buffer) -> Iterator[pa.Buffer]:
    """Zero-copy slices of whole lines, about BLOCK_BYTES each, of a buffer."""
    view = memoryview(buffer)
    start, size = 0, buffer.size
    while start < size:
        end = min(start + BLOCK_BYTES, size)
        if end < size:
            # the last line break before `end`, looked for in widening windows (lines are short)
            window = 1 << 16
            while True:
                low = max(start, end - window)
                cut = bytes(view[low:end]).rfind(b"\n")
                if cut >= 0:
                    end = low + cut + 1
                    break
                if low == start:  # one line longer than a block: it runs to the next break
                    end = _next_break(view, end)
                    break
                window *= 16
        yield buffer.slice(start, end - start)
        start = end


UTF8_BOM = b"\xef\xbb\xbf"


def _escaped_lines(block: bytes) -> tuple[pa.Array, np.ndarray]:
    """The lines of a block that is not all UTF-8: each valid line as it is, each invalid one
    with its bad bytes written as \\xNN escapes (kept for the quarantine), and the mask of the
    invalid ones. Nothing is silently replaced: the invalid lines are `malformed`."""
    texts, bad = [], []
    raw_lines = bytes(block).split(b"\n")
    last = raw_lines.pop()
    for raw in raw_lines + ([last] if last else []):
        try:
            text = raw.decode("utf-8")
            bad.append(False)
        except UnicodeDecodeError:
            text = raw.decode("utf-8", errors="backslashreplace")
            bad.append(True)
        texts.append(text)
    ends = [t + "\n" for t in texts[:len(raw_lines)]] + texts[len(raw_lines):]
    return pa.array(ends, pa.string()), np.array(bad, dtype=bool)


def split_lines(block: bytes, with_encoding: bool = False):
    """(non-empty lines of `block`, their line numbers counted from 0, the block's line count
    [, mask of the lines that are not UTF-8 when with_encoding]).
    Each line keeps its line break; a line empty but for it is no record ("  " is a malformed
    one). A block that is not UTF-8 goes the slow way: its invalid lines are marked."""
    data = np.frombuffer(block, np.uint8)
    ends = np.flatnonzero(data == 10) + 1
    if not len(ends) or ends[-1] != len(data):
        ends = np.append(ends, len(data))
    offsets = np.zeros(len(ends) + 1, np.int32)
    offsets[1:] = ends
    lines = pa.StringArray.from_buffers(len(ends), pa.py_buffer(offsets), pa.py_buffer(block))
    not_utf8 = None
    try:
        lines.validate(full=True)
    except pa.ArrowInvalid:
        lines, not_utf8 = _escaped_lines(block)
        offsets, data = _offsets(lines)
    count = len(lines)
    length = np.diff(offsets)
    if len(data):
        first = data[np.minimum(offsets[:-1], len(data) - 1)]
        second = data[np.minimum(offsets[:-1] + 1, len(data) - 1)]
        blank = ((length == 0) | ((length == 1) & (first == 10))
                 | ((length == 2) & (first == 13) & (second == 10)))
    else:
        blank = np.ones(count, dtype=bool)
    numbers = pa.array(np.arange(count, dtype=np.int64))
    if blank.any():
        present = pa.array(~blank)
        lines, numbers = lines.filter(present), numbers.filter(present)
        not_utf8 = not_utf8[~blank] if not_utf8 is not None else None
    return (lines, numbers, count, not_utf8) if with_encoding else (lines, numbers, count)


# --- CSV --------------------------------------------------------------------------------------

def _kinds(where: pa.Array, then: str, otherwise: str) -> pa.DictionaryArray:
    """`then` where `where` is true, else `otherwise`, built as KIND_TYPE directly (int8
    indices into a two-word dictionary) rather than as text encoded afterwards."""
    return pa.DictionaryArray.from_arrays(pc.cast(where, pa.int8()), pa.array([otherwise, then], pa.string()))


def _kind_of_text(column: pa.Array) -> pa.DictionaryArray:
    """KIND_MISSING (index 1) for a null or empty text, else KIND_STRING (index 0)."""
    empty = pc.or_kleene(pc.is_null(column), pc.equal(pc.utf8_length(column), 0))
    return _kinds(empty, KIND_MISSING, KIND_STRING)


HEADER_PEEK = 1 << 20


def _schema_refusal(source: str, fmt: str, names: list[str]) -> InvalidInput:
    missing = [f for f in REQUIRED_FIELDS if f not in names]
    shown = ", ".join(repr(n) for n in names[:12]) + (", ..." if len(names) > 12 else "")
    hint = (" (a CSV needs a header row, comma-separated)" if fmt == "CSV" else "")
    return InvalidInput(f"input {source} cannot be read as usage {fmt}: its columns [{shown}] do not name "
                        f"the fields {', '.join(missing)}{hint}; give it the columns "
                        f"{', '.join(FIELDS)} (token_id optional)")


def _csv_header(stream, source: str) -> list[str] | None:
    """The column names of a CSV's header row (None for an empty file); refuses a header that
    is not UTF-8 or longer than HEADER_PEEK bytes. The stream is only peeked, not consumed."""
    head = stream.peek(HEADER_PEEK)[:HEADER_PEEK]
    if not head:
        return None
    end = head.find(b"\n")
    if end < 0 and len(head) >= HEADER_PEEK:
        raise InvalidInput(f"input {source}: its first line is longer than {HEADER_PEEK} bytes, not a CSV "
                           f"header; give it a header row naming the columns {', '.join(FIELDS)}")
    line = head[: end if end >= 0 else len(head)].removeprefix(UTF8_BOM).rstrip(b"\r")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"input {source}: its CSV header is not valid UTF-8 ({exc}); write the header "
                           f"row as UTF-8 text naming the columns {', '.join(FIELDS)}") from None
    return next(csv.reader([text]), [])


def _utf8_texts(column: pa.Array) -> tuple[pa.Array, np.ndarray | None]:
    """A binary column as text, and the mask of the values that are not UTF-8 (those escape
    their bad bytes as \\xNN), or None when every value is UTF-8."""
    try:
        return column.cast(pa.string()), None
    except pa.ArrowInvalid:
        texts, bad = [], []
        for value in column.to_pylist():
            if value is None:
                texts.append(None)
                bad.append(False)
                continue
            try:
                texts.append(value.decode("utf-8"))
                bad.append(False)
            except UnicodeDecodeError:
                texts.append(value.decode("utf-8", errors="backslashreplace"))
                bad.append(True)
        return pa.array(texts, pa.string()), np.array(bad, dtype=bool)


def read_csv(stream: BinaryIO, source: str) -> Iterator[pa.Table]:
    """CSV with a header row naming the schema's columns (refused whole otherwise: a file
    without a header would lose its first row into the header). Cells are read as bytes: a
    cell that is not UTF-8 makes its row `malformed`."""
    bad_rows = []

    def keep_invalid(row):
        bad_rows.append(row.text)
        return "skip"

    stream = stream if hasattr(stream, "peek") else io.BufferedReader(stream, buffer_size=HEADER_PEEK)
    names = _csv_header(stream, source)
    if names is None:
        return
    if any(f not in names for f in REQUIRED_FIELDS):
        raise _schema_refusal(source, "CSV", names)
    wanted = [f for f in FIELDS if f in names]
    try:
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES),
            parse_options=pacsv.ParseOptions(invalid_row_handler=keep_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={f: pa.binary() for f in wanted}, strings_can_be_null=False,
                include_columns=wanted))
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise InvalidInput(f"input {source} cannot be read as CSV: {exc}; it needs a header row "
                           f"naming the columns {', '.join(FIELDS)}") from None
    header = reader.schema.names
    next_no = 1
    try:
        for batch in reader:
            n = batch.num_rows
            columns = {}
            not_utf8 = np.zeros(n, dtype=bool)
            for f in FIELDS:
                if f in header:
                    col, bad = _utf8_texts(batch.column(header.index(f)))
                    if bad is not None:
                        not_utf8 |= bad
                    kind = _kind_of_text(col)
                    columns[f] = pc.if_else(pc.cast(kind.indices, pa.bool_()), pa.scalar(None, pa.string()), col)
                    columns[kind_column(f)] = kind
                else:
                    columns[kind_column(f)] = _kinds(pa.array(np.ones(n, bool)), KIND_MISSING, KIND_STRING)
            if not_utf8.any():
                columns["malformed"] = pc.if_else(pa.array(not_utf8), "a CSV row that is not valid UTF-8 text",
                                                  pa.scalar(None, pa.string()))
            yield _raw_table(n, source, next_no, columns)
            next_no += n
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise InvalidInput(f"input {source} cannot be read as CSV: {exc}") from None
    if bad_rows:
        n = len(bad_rows)
        yield _raw_table(n, source, next_no, {
            "record": pa.array(bad_rows, pa.string()),
            "malformed": pa.array([f"a CSV row whose column count differs from the header "
                                   f"({len(names)} columns)"] * n, pa.string()),
        })


# --- Parquet ----------------------------------------------------------------------------------

def _floor_divide(values: pa.Array, divisor: int) -> pa.Array:
    """values // divisor in int64, rounding toward minus infinity (Arrow's divide truncates)."""
    if divisor == 1:
        return values
    quotient = pc.divide(values, divisor)
    below = pc.less(pc.subtract(values, pc.multiply(quotient, divisor)), 0)
    return pc.subtract(quotient, pc.cast(below, pa.int64()))


def _parquet_column(column: pa.Array) -> tuple[pa.Array, pa.Array]:
    """(text, kind) of an Arrow column of any type."""
    t = column.type
    if pa.types.is_integer(t) or pa.types.is_decimal(t) and t.scale == 0:
        text = column.cast(pa.string())
        kind = KIND_INTEGER
    elif pa.types.is_timestamp(t):
        # SPEC §1: digits below 1 ms are truncated (floored, so a time before 1970 stays before)
        ticks = column.cast(pa.int64())
        per_ms = {"s": None, "ms": 1, "us": 1000, "ns": 1_000_000}[t.unit]
        ms = pc.multiply_checked(ticks, 1000) if per_ms is None else _floor_divide(ticks, per_ms)
        text = ms.cast(pa.string())
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
    return text, _kinds(pc.is_null(column), KIND_MISSING, kind)


def read_parquet(stream: BinaryIO, source: str) -> Iterator[pa.Table]:
    """Parquet whose columns name the schema (refused whole otherwise). String values that are
    not UTF-8 (Arrow does not check them on read) make their row `malformed`."""
    try:
        parquet = pq.ParquetFile(stream)
        names = parquet.schema_arrow.names
        if any(f not in names for f in REQUIRED_FIELDS):
            raise _schema_refusal(source, "Parquet", names)
        wanted = [f for f in FIELDS if f in names]
        next_no = 1
        for batch in parquet.iter_batches(batch_size=1 << 18, columns=wanted):
            n = batch.num_rows
            columns = {}
            not_utf8 = np.zeros(n, dtype=bool)
            for f in FIELDS:
                if f in wanted:
                    column = batch.column(wanted.index(f))
                    if pa.types.is_dictionary(column.type):
                        column = column.cast(column.type.value_type)
                    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                        column, bad = _utf8_texts(column.cast(pa.large_binary()))
                        not_utf8 |= bad if bad is not None else False
                    columns[f], columns[kind_column(f)] = _parquet_column(column)
                else:
                    columns[kind_column(f)] = _kinds(pa.array(np.ones(n, bool)), KIND_MISSING, KIND_STRING)
            if not_utf8.any():
                columns["malformed"] = pc.if_else(pa.array(not_utf8), "a Parquet row with a string that is not "
                                                  "valid UTF-8", pa.scalar(None, pa.string()))
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
