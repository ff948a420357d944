"""ValidatedEvents: raw record tables -> normalised events, quarantined records, counts."""
from __future__ import annotations

import apache_beam as beam
import pyarrow.compute as pc

from settlement.tariff import Tariff
from settlement.validation import validate

QUARANTINED = "quarantined"
COUNTS = "counts"


def count_by_source(table, category: str):
    """((source, category), n) for every source in `table`."""
    if not table.num_rows:
        return []
    counts = table.group_by(["source"]).aggregate([([], "count_all")])
    return [((source, category), n) for source, n in
            zip(counts.column("source").to_pylist(), counts.column("count_all").to_pylist())]


class _Validate(beam.DoFn):
    def __init__(self, tariff: Tariff):
        self.tariff = tariff

    def process(self, raw):
        for key in count_by_source(raw, "read"):
            yield beam.pvalue.TaggedOutput(COUNTS, key)
        result = validate(raw, self.tariff)
        if result.events.num_rows:
            yield result.events
        if result.quarantined.num_rows:
            for key in count_by_source(result.quarantined, "quarantined"):
                yield beam.pvalue.TaggedOutput(COUNTS, key)
            yield beam.pvalue.TaggedOutput(QUARANTINED, result.quarantined)


class ValidatedEvents(beam.PTransform):
    """Every record ends as an event or a quarantine row; `counts` says how many were read."""

    def __init__(self, tariff: Tariff):
        super().__init__()
        self.tariff = tariff

    def expand(self, raw):
        return raw | "Validate" >> beam.ParDo(_Validate(self.tariff)).with_outputs(
            QUARANTINED, COUNTS, main="events")
