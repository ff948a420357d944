"""Usage event schema v1 (SPEC §1): fields, quarantine reasons and the Arrow schemas records
take on their way through the pipeline (raw -> normalised -> settled or quarantined)."""
from __future__ import annotations

import pyarrow as pa

REQUIRED_FIELDS = ("event_id", "provider", "node_id", "consumer", "contract", "unit",
                   "quantity", "timestamp")
OPTIONAL_FIELDS = ("token_id",)
FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS
ADDRESS_FIELDS = ("provider", "consumer", "contract")

# The order is the contract: a record gets the first reason it fails.
REASONS = ("malformed", "missing_field", "bad_event_id", "bad_address", "bad_quantity",
           "bad_timestamp", "unknown_unit", "bad_token_id", "conflicting_duplicate")
"""`bad_token_id` applies only where the run has a consumer -> Counter NFT mapping (--token-ids)."""

MAX_INT64 = 2**63 - 1

# What kind of value a raw field held, independent of the file format it came from.
# The names are DuckDB's json_type names, so JSON needs no translation.
KIND_MISSING = "NULL"      # absent, JSON null, or an empty CSV cell
KIND_STRING = "VARCHAR"
KIND_INTEGER = "BIGINT"    # a JSON/Parquet integer, any size, as decimal text
KIND_FLOAT = "DOUBLE"
KIND_OTHER = "OTHER"       # boolean, object, array
INTEGER_KINDS = ("BIGINT", "UBIGINT", "HUGEINT", "UHUGEINT")

TOKEN_TYPE = pa.decimal128(38, 0)  # DECIMAL(38,0): the widest exact integer Parquet and DuckDB share
AMOUNT_TYPE = pa.decimal128(38, 0)


KIND_TYPE = pa.dictionary(pa.int8(), pa.string())
"""Kinds travel dictionary-encoded: a test of a block's kinds is one of a few dictionary values."""


def kind_column(field: str) -> str:
    return f"{field}__kind"


RAW_SCHEMA = pa.schema(
    [("source", pa.string()), ("record_no", pa.int64()), ("record", pa.string()),
     ("malformed", pa.string())]
    + [pa.field(f, pa.string()) for f in FIELDS]
    + [pa.field(kind_column(f), KIND_TYPE) for f in FIELDS])
"""Records as read: every field as text with its kind; `malformed` holds why a record could not
be read as an object at all; `record` is the raw line (JSONL, with its line break; malformed CSV
rows) or null when the row is rendered from its fields on demand."""

EVENT_SCHEMA = pa.schema([
    ("provider", pa.string()), ("event_id", pa.string()), ("node_id", pa.string()),
    ("consumer", pa.string()), ("contract", pa.string()), ("unit", pa.string()),
    ("quantity", pa.int64()), ("timestamp_ms", pa.int64()), ("epoch", pa.int64()),
    ("token_id", TOKEN_TYPE), ("source", pa.string()), ("record_no", pa.int64()),
])
"""An accepted event, normalised: EIP-55 addresses, integer quantity and time in ms."""

CONTENT_COLUMNS = ("node_id", "consumer", "contract", "unit", "quantity", "timestamp_ms", "token_id")
"""What makes two copies of (provider, event_id) the same event (SPEC §1)."""

SETTLED_EVENT_SCHEMA = pa.schema([("batch", pa.int64())] + [
    f for f in EVENT_SCHEMA if f.name not in ("record_no",)])
"""What OUT/events holds: the accepted event with its batch."""

QUARANTINE_SCHEMA = pa.schema([
    ("batch", pa.int64()), ("reason", pa.string()), ("detail", pa.string()),
    ("source", pa.string()), ("record", pa.string()), ("record_no", pa.int64()),
])
