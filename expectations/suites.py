"""The Great Expectations suites a batch must pass before its root goes on chain.

Each suite expects on one table of expectations/frames.py. Cross-file rules are expectations on
columns computed there (a difference, the same figure recomputed, a boolean), so every rule shows
in GX results and Data Docs with its offending values.
"""
from __future__ import annotations

from dataclasses import dataclass

import great_expectations as gx
import great_expectations.expectations as gxe

from expectations.frames import EVENT_ADDRESS_COLUMNS, EVENT_REQUIRED, LINE_KEY, LINE_REQUIRED, BatchFrames

MAX_QUANTITY = 2**63 - 1
DEFAULT_MAX_QUARANTINE_SHARE = 0.05
EVENT_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"

SUITE_NAMES = ("accepted_events", "settlement_lines", "batch_totals", "input_counts", "payables")


@dataclass(frozen=True)
class SuiteRun:
    """A suite with the table it validates for one batch."""
    suite: gx.ExpectationSuite
    frame: object
    """The pandas DataFrame the suite runs on."""
    index_columns: tuple[str, ...]
    """Columns that identify an offending row in the results."""


def _equal(a: str, b: str, why: str):
    return gxe.ExpectColumnPairValuesToBeEqual(column_A=a, column_B=b, description=why)


def accepted_events(frames: BatchFrames) -> list:
    tariff = frames.tariff
    epochs = frames.manifest.get("epochs") if isinstance(frames.manifest.get("epochs"), list) else []
    expectations = [
        gxe.ExpectTableRowCountToBeBetween(min_value=1, description="a batch settles at least one event"),
        gxe.ExpectColumnValuesToBeNull(
            column="missing_fields",
            description="accepted events are complete: no null among " + ", ".join(EVENT_REQUIRED)),
        gxe.ExpectColumnValuesToMatchRegex(column="event_id", regex=EVENT_ID_PATTERN,
                                           description="event_id is 1-128 chars of [A-Za-z0-9._:-]"),
    ]
    for column in EVENT_ADDRESS_COLUMNS:
        expectations.append(_equal(column, f"{column}_eip55",
                                   f"`{column}` is an address in EIP-55 checksum form"))
    expectations += [
        gxe.ExpectColumnValuesToBeBetween(column="quantity", min_value=1, max_value=MAX_QUANTITY,
                                          description="quantity is 1 .. 2^63-1"),
        gxe.ExpectColumnValuesToBeInSet(
            column="timestamp_epoch", value_set=sorted(epochs),
            description=f"timestamp_ms // 1000 // {tariff.epoch_seconds} is one of the manifest's epochs"),
        _equal("epoch", "timestamp_epoch", "`epoch` is the epoch of timestamp_ms (SPEC §2)"),
        gxe.ExpectColumnValuesToBeInSet(column="unit", value_set=sorted({r.unit for r in tariff.prices}),
                                        description="unit is one the tariff prices"),
        gxe.ExpectColumnValuesToBeInSet(column="priced_by_tariff", value_set=[True],
                                        description="the tariff prices this unit on this contract"),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["provider", "event_id"],
                                            description="(provider, event_id) is unique in the batch"),
        gxe.ExpectColumnValuesToBeNull(column="settled_in_batch",
                                       description="no (provider, event_id) was settled by an earlier batch"),
    ]
    return expectations


def settlement_lines(frames: BatchFrames) -> list:
    bps = frames.tariff.protocol_fee_bps
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=1, description="a batch has at least one line"),
        gxe.ExpectColumnValuesToNotBeNull(
            column="line_batch", description="every (epoch, consumer, contract, provider, unit) of the "
                                             "batch's events has a settlement line"),
        gxe.ExpectColumnValuesToBeNull(
            column="missing_fields",
            description="lines are complete: no null among " + ", ".join(LINE_REQUIRED)),
        *(gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0, description=f"{c} >= 0")
          for c in ("amount_wei", "protocol_fee_wei", "provider_wei")),
        gxe.ExpectColumnValuesToBeBetween(column="split_difference_wei", min_value=0, max_value=0,
                                          description="amount_wei = protocol_fee_wei + provider_wei"),
        _equal("protocol_fee_wei", "expected_protocol_fee_wei",
               f"protocol_fee_wei = amount_wei * {bps} // 10000 (SPEC §4 step 3)"),
        _equal("quantity", "event_quantity",
               "line quantity = the sum of the batch's event quantities for its key"),
        gxe.ExpectCompoundColumnsToBeUnique(
            column_list=list(LINE_KEY),
            description="one line per (batch, epoch, consumer, contract, provider, unit)"),
    ]


def batch_totals(frames: BatchFrames, max_quarantine_share: float) -> list:
    return [
        gxe.ExpectTableRowCountToEqual(value=1, description="one manifest per batch"),
        _equal("manifest_batch", "batch", "the manifest's batch is its folder's"),
        _equal("manifest_total", "lines_total", "manifest total = sum of the batch's amount_wei"),
        _equal("manifest_protocol_fee_total", "lines_protocol_fee_total",
               "manifest protocol_fee_total = sum of the batch's protocol_fee_wei"),
        _equal("manifest_epochs", "lines_epochs", "manifest epochs = the epochs the lines price"),
        _equal("manifest_leaf_count", "tree_leaf_count", "manifest leaf_count = leaves in tree.json"),
        _equal("manifest_root", "tree_root", "manifest root = root of tree.json"),
        _equal("manifest_root", "recomputed_root",
               "manifest root = the root recomputed from tree.json's leaf values"),
        _equal("manifest_tariff_hash", "tariff_hash",
               "the batch was priced with the tariff it is checked against"),
        _equal("event_rows", "accepted", "accepted events written = manifest counts.accepted"),
        _equal("quarantine_rows", "quarantined", "quarantine rows written = manifest counts.quarantined"),
        *(_equal(f"inputs_{part}", part, f"sum of the inputs' {part} = manifest counts.{part}")
          for part in ("read", "accepted", "duplicates", "quarantined")),
        gxe.ExpectColumnValuesToNotBeNull(column="quarantine_share",
                                          description="quarantine share is defined (read > 0)"),
        gxe.ExpectColumnValuesToBeBetween(
            column="quarantine_share", min_value=0, max_value=max_quarantine_share,
            description=f"quarantined / read <= {max_quarantine_share:g} (--max-quarantine-share)"),
    ]


def input_counts(frames: BatchFrames) -> list:
    return [
        gxe.ExpectColumnValuesToNotBeNull(column="unaccounted", description="every count is an integer"),
        gxe.ExpectColumnValuesToBeBetween(
            column="unaccounted", min_value=0, max_value=0,
            description="read = accepted + duplicates + quarantined, for the batch and each input"),
        gxe.ExpectColumnValuesToBeBetween(column="smallest_count", min_value=0,
                                          description="read, accepted, duplicates, quarantined >= 0"),
    ]


def payables(frames: BatchFrames) -> list:
    manifest = frames.manifest
    chain_id = manifest.get("chain_id")
    chain_id = int(chain_id) if isinstance(chain_id, (int, str)) and str(chain_id).isdigit() else chain_id
    return [
        gxe.ExpectColumnValuesToNotBeNull(
            column="tree_cumulative", description="every (consumer, payee) owed in the batch has a leaf"),
        gxe.ExpectColumnValuesToNotBeNull(
            column="expected_cumulative", description="every leaf is a (consumer, payee) owed in the batch"),
        _equal("tree_cumulative", "expected_cumulative",
               "leaf cumulative = sum of the pair's provider_wei (or protocol_fee_wei for the treasury) "
               "over batches <= this one"),
        gxe.ExpectColumnValuesToBeInSet(column="leaf_batch", value_set=[frames.batch],
                                        description="leaves carry their batch number"),
        gxe.ExpectColumnValuesToBeInSet(column="leaf_chain_id", value_set=[chain_id],
                                        description="leaves carry the manifest's chain_id"),
        gxe.ExpectColumnValuesToBeInSet(column="leaf_registry", value_set=[manifest.get("registry")],
                                        description="leaves carry the manifest's registry"),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["consumer", "payee"],
                                            description="one leaf per (consumer, payee)"),
    ]


def suite_runs(frames: BatchFrames, max_quarantine_share: float) -> list[SuiteRun]:
    """Every suite of one batch with its table, in SUITE_NAMES order."""
    plan = [
        ("accepted_events", accepted_events(frames), frames.events, ("provider", "event_id")),
        ("settlement_lines", settlement_lines(frames), frames.lines, ("line",)),
        ("batch_totals", batch_totals(frames, max_quarantine_share), frames.batch_row, ("batch",)),
        ("input_counts", input_counts(frames), frames.input_counts, ("scope",)),
        ("payables", payables(frames), frames.payables, ("pair",)),
    ]
    return [SuiteRun(gx.ExpectationSuite(name=name, expectations=expectations), frame, index)
            for name, expectations, frame, index in plan]
