"""ValidatedEvents: raw record tables -> normalised events, quarantined records, counts."""
from __future__ import annotations

from typing import Tuple

import apache_beam as beam
import pyarrow as pa

from settlement.tariff import Tariff
from settlement.token_ids import TokenIds
from settlement.validation import validate
from transforms import coders  # noqa: F401  (registers the pa.Table coder)
from transforms.threaded import ThreadedBlocks

QUARANTINED = "quarantined"
COUNTS = "counts"
Count = Tuple[Tuple[str, str], int]
"""((source, category), n): categories read, accepted, duplicates, quarantined."""


def count_by_source(table, category: str):
    """((source, category), n) for every source in `table`."""
    if not table.num_rows:
        return []
    counts = table.group_by(["source"]).aggregate([([], "count_all")])
    return [((source, category), n) for source, n in
            zip(counts.column("source").to_pylist(), counts.column("count_all").to_pylist())]


def validate_block(raw, tariff: Tariff, token_ids: TokenIds | None = None) -> list:
    """Outputs of one raw block: its events, quarantined records and counts."""
    outputs = [beam.pvalue.TaggedOutput(COUNTS, key) for key in count_by_source(raw, "read")]
    result = validate(raw, tariff, token_ids)
    if result.events.num_rows:
        outputs.append(result.events)
    if result.quarantined.num_rows:
        outputs += [beam.pvalue.TaggedOutput(COUNTS, key)
                    for key in count_by_source(result.quarantined, "quarantined")]
        outputs.append(beam.pvalue.TaggedOutput(QUARANTINED, result.quarantined))
    return outputs


class ValidatedEvents(beam.PTransform):
    """Every record ends as an event or a quarantine row; `counts` says how many were read."""

    def __init__(self, tariff: Tariff, token_ids: TokenIds | None = None):
        super().__init__()
        self.tariff = tariff
        self.token_ids = token_ids

    def expand(self, raw):
        return raw | "Validate" >> beam.ParDo(ThreadedBlocks(validate_block, self.tariff, self.token_ids)).with_output_types(
            pa.Table, **{QUARANTINED: pa.Table, COUNTS: Count}).with_outputs(QUARANTINED, COUNTS, main="events")
