"""The `availability` Great Expectations suite (SPEC §14), for batches that settled probes.

Its table is OUT/availability/batch=<B> beside the same figures recomputed in DuckDB from the
probes settled through B (OUT/probes/batch=<b>, b <= B) and the manifest's copy of each row, so
a figure that does not follow from the probes, or a manifest that says otherwise, fails with the
offending (provider, epoch).
"""
from __future__ import annotations

from pathlib import Path

import great_expectations as gx
import great_expectations.expectations as gxe

from expectations.frames import checksum_or_none, sql_frame
from expectations.outputs import read_manifest
from expectations.suites import SuiteRun
from sinks.catalog import sql_string

SUITE_NAME = "availability"

FRAME_SQL = """
WITH settled AS (
    SELECT provider, epoch, ok, latency_ms
    FROM read_parquet({probes}, hive_partitioning=true, hive_types={{'batch': BIGINT}})
    WHERE batch <= $batch),
recomputed AS (
    SELECT provider, epoch, count(*) AS probe_rows, count(*) FILTER (WHERE ok) AS ok_rows,
           min(latency_ms) FILTER (WHERE ok) AS min_ok_latency,
           max(latency_ms) FILTER (WHERE ok) AS max_ok_latency
    FROM settled GROUP BY provider, epoch)
SELECT a.provider, a.epoch, a.batch, a.probes, a.ok_probes, a.availability_bps,
       a.latency_p50_ms, a.latency_p99_ms,
       r.probe_rows, r.ok_rows,
       CAST(a.ok_probes * 10000 // nullif(a.probes, 0) AS BIGINT) AS expected_bps,
       a.latency_p50_ms <= a.latency_p99_ms AS p50_not_above_p99,
       (a.ok_probes = 0) = (a.latency_p50_ms IS NULL AND a.latency_p99_ms IS NULL) AS latency_null_iff_no_ok,
       a.latency_p50_ms BETWEEN r.min_ok_latency AND r.max_ok_latency AS p50_within_ok_latencies,
       a.latency_p99_ms BETWEEN r.min_ok_latency AND r.max_ok_latency AS p99_within_ok_latencies,
       a.provider || ':' || CAST(a.epoch AS VARCHAR) AS pair
FROM read_parquet({availability}) a LEFT JOIN recomputed r USING (provider, epoch)
ORDER BY a.provider, a.epoch
"""


def _expectations(manifest_epochs: list) -> list:
    def equal(a, b, why):
        return gxe.ExpectColumnPairValuesToBeEqual(column_A=a, column_B=b, description=why)
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1, description="a batch with probes has availability rows"),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["provider", "epoch"],
                                            description="one row per (provider, epoch)"),
        equal("provider", "provider_eip55", "`provider` is an address in EIP-55 checksum form"),
        gxe.ExpectColumnValuesToBeBetween(column="probes", min_value=1, description="probes >= 1"),
        gxe.ExpectColumnValuesToBeBetween(column="availability_bps", min_value=0, max_value=10000,
                                          description="availability is 0..10000 basis points"),
        equal("availability_bps", "expected_bps", "availability_bps = ok_probes * 10000 // probes"),
        equal("probes", "probe_rows", "probes = the settled probes of (provider, epoch) through this batch"),
        equal("ok_probes", "ok_rows", "ok_probes = the settled ok probes of (provider, epoch)"),
        gxe.ExpectColumnValuesToBeInSet(column="latency_null_iff_no_ok", value_set=[True],
                                        description="latencies are null exactly when no probe was ok"),
        gxe.ExpectColumnValuesToBeInSet(column="p50_not_above_p99", value_set=[True],
                                        description="latency p50 <= p99"),
        gxe.ExpectColumnValuesToBeInSet(column="p50_within_ok_latencies", value_set=[True],
                                        description="p50 is within the ok probes' latencies"),
        gxe.ExpectColumnValuesToBeInSet(column="p99_within_ok_latencies", value_set=[True],
                                        description="p99 is within the ok probes' latencies"),
        gxe.ExpectColumnValuesToBeInSet(column="epoch", value_set=sorted(manifest_epochs),
                                        description="epoch is one the manifest's availability lists"),
        equal("availability_bps", "manifest_bps", "the manifest records the same availability_bps"),
    ]


def availability_suite_runs(con, out_dir: Path, batch: int) -> list[SuiteRun]:
    """The availability suite of `batch`, or nothing when the batch settled no probes."""
    out_dir = Path(out_dir)
    file = out_dir / "availability" / f"batch={batch}" / "part-0.parquet"
    manifest = read_manifest(out_dir, batch)
    section = manifest.get("availability") if isinstance(manifest, dict) else None
    if not file.exists() and section is None:
        return []
    frame = sql_frame(con, FRAME_SQL.format(
        probes=sql_string(str(out_dir / "probes" / "batch=*" / "*.parquet")),
        availability=sql_string(str(file))), {"batch": batch})
    frame["provider_eip55"] = frame["provider"].map(checksum_or_none).astype(object)
    listed = {(r.get("provider"), r.get("epoch")): r.get("availability_bps")
              for r in (section or {}).get("rows", []) if isinstance(r, dict)}
    frame["manifest_bps"] = [listed.get((p, e)) for p, e in zip(frame["provider"], frame["epoch"])]
    for column in ("p50_not_above_p99", "p50_within_ok_latencies", "p99_within_ok_latencies"):
        # no ok probe: no latency to compare, and the null rule above covers the row
        frame[column] = [True if v is None or v != v else bool(v) for v in frame[column]]
    epochs = (section or {}).get("epochs", []) if isinstance((section or {}).get("epochs"), list) else []
    suite = gx.ExpectationSuite(name=SUITE_NAME, expectations=_expectations(epochs))
    return [SuiteRun(suite, frame, ("pair",))]
