"""WriteBatchOutputs: the Beam batch's outputs written through sinks.batch_outputs."""
from __future__ import annotations

from pathlib import Path

import apache_beam as beam

from sinks import atomic
from sinks.batch_outputs import concat_quarantine, write_batch_files, write_settled_events
from transforms.threaded import ThreadedBlocks


class WriteBatchOutputs(beam.PTransform):
    def __init__(self, out: Path, batch: int, staging: Path):
        super().__init__()
        self.out = Path(out)
        self.batch = batch
        self.staging = Path(staging)

    def expand(self, outputs):
        out, batch, staging = self.out, self.batch, self.staging

        def write_events(element) -> list:
            shard, table = element
            write_settled_events(out, batch, shard, table)
            return []

        def write_staged(name):
            return lambda data: atomic.write_json(staging / name, data)

        # Parquet encoding releases the GIL: shards are written on a pool beside the pipeline
        outputs["accepted"] | "WriteEvents" >> beam.ParDo(ThreadedBlocks(write_events))
        (outputs["quarantined"]
         | "CollectQuarantine" >> beam.combiners.ToList()
         | "ConcatQuarantine" >> beam.Map(concat_quarantine)
         | "StageQuarantine" >> beam.Map(
             lambda t: atomic.write_parquet(staging / "quarantine.parquet", t)))
        (outputs["counts"]
         | "SumCounts" >> beam.CombinePerKey(sum)
         | "CollectCounts" >> beam.combiners.ToList()
         | "StageCounts" >> beam.Map(lambda pairs: write_staged("counts.json")(
             sorted([source, category, n] for (source, category), n in pairs))))
        (outputs["digests"]
         | "CollectDigests" >> beam.combiners.ToList()
         | "StageDigests" >> beam.Map(lambda pairs: write_staged("digests.json")(dict(sorted(pairs)))))
        outputs["batch"] | "WriteBatch" >> beam.Map(write_batch_files, out, staging)
