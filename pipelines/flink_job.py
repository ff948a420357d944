"""The streaming job on Apache Flink (SPEC §11): usage files -> one settlement batch per epoch.

A PyFlink DataStream job, run with the Flink environment's interpreter (.venv-flink): in an
embedded mini-cluster (`python -m pipelines.flink_job …`), or on a cluster with
`flink run -m HOST:PORT -py pipelines/flink_job.py -pyexec PYTHON -- …` (what
`meterroot stream --engine flink --flink-master HOST:PORT` runs).

    file paths (--replay: the files, in order; --watch: WatchFolder, one key, lists DIR on a
                processing-time timer, each complete file once, read files in keyed state)
               ─ReadUsageFiles─▶ rows: Arrow blocks per (epoch, shard), quarantine, file counts
                 (decode, validate: columnar)
               ─EventTime─▶ WatermarkStrategy.for_bounded_out_of_orderness (its own task)
               ─blocks, key_by shard─▶ TumblingEventTimeWindows(epoch), allowed_lateness,
                 purging trigger (discarding panes), side_output_late_data ─┐
               ─quarantine and counts ─────────────────────────────────────┤
                                                                            ▼
               CutWriter: one key, keyed state, event-time timers ─▶ settle_cut per cut ─▶ OUT/
                 (sinks.stream_ledger; past-lateness blocks to OUT/late/, counted)

Elements are Arrow IPC blocks as bytes (a declared BYTE array), never one Python object per
event. What must survive a failure is Flink state (window contents, the writer's panes, tally and
next batch number), checkpointed every --checkpoint-interval-seconds; a cut a restored writer
makes again is checked against the committed ledger and not written twice.
"""
from __future__ import annotations

import argparse
import glob
import hashlib
import io
import json
import os
import pickle
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from settlement.addresses import AddressError, normalize_address
from settlement.errors import InvalidInput, MeterrootError, UsageError
from settlement.events import EVENT_SCHEMA, QUARANTINE_SCHEMA
from settlement.ledger import check_continuation
from settlement.stream_records import LATE, ON_TIME, FileRead, Pane, Quarantined, merge_digests
from settlement.tariff import Tariff, load_tariff
from settlement.token_ids import TokenIds, load_token_ids
from settlement.validation import validate
from sinks import atomic
from sinks.batch_outputs import staging_dir
from sinks.ledger_store import LedgerStore
from sinks import layout
from sinks.stream_ledger import (LedgerTarget, SettledKeys, StreamTally, cut_batch, late_block_name,
                                 late_event_lines, write_run)
from transforms.decoding import decode_stream, format_of
from transforms.watched_folder import local_usage_files

BLOCK, PANE, QUARANTINE, FILE, LATE_BLOCK = "block", "pane", "quarantine", "file", "late"
END_OF_TIME = 2 ** 63 - 2
"""The writer's last timer: Flink's final watermark (Long.MAX_VALUE) fires it when input ends."""


# ------------------------------------------------------------------------- Arrow blocks as bytes

IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")
"""Blocks travel compressed (about 9x smaller than plain Arrow): every crossing between the
Python operators and Flink's Java runtime, and every checkpoint of the state, moves bytes."""


DICTIONARY_COLUMNS = ("provider", "node_id", "consumer", "contract", "unit", "source", "reason")
"""String columns of few distinct values, dictionary-encoded in a block: a column of one repeated
address still costs its offsets, which zstd packs poorly (an event block: 27 bytes an event plain,
9 so). from_ipc gives the plain strings back, the same table."""


def to_ipc(table: pa.Table) -> bytes:
    for i, f in enumerate(table.schema):
        if f.name in DICTIONARY_COLUMNS and pa.types.is_string(f.type):
            table = table.set_column(i, f.name, pc.dictionary_encode(table.column(i)))
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema, options=IPC_OPTIONS) as writer:
        writer.write_table(table)
    return sink.getvalue()


def from_ipc(payload: bytes) -> pa.Table:
    table = pa.ipc.open_stream(payload).read_all()
    for i, f in enumerate(table.schema):
        if pa.types.is_dictionary(f.type):
            table = table.set_column(i, f.name, table.column(i).cast(f.type.value_type))
    return table


def pane_payload(blocks: list[bytes]) -> bytes:
    """A pane's blocks as they came, unopened: the cut puts all its events in record order once
    (settlement.dedup.resolve), so a pane is neither decoded, sorted nor
    compressed again on its way to the writer."""
    return pickle.dumps(list(blocks), protocol=pickle.HIGHEST_PROTOCOL)


def pane_events(payload: bytes) -> pa.Table:
    blocks = pickle.loads(payload)
    return pa.concat_tables([from_ipc(b) for b in blocks]) if blocks else EVENT_SCHEMA.empty_table()


def shard_of(events: pa.Table, shards: int) -> pa.Array:
    """Shard of each event by its dedup key (provider, event_id): copies of one key meet."""
    from settlement import duck

    return duck.query(f"SELECT CAST(hash(provider, event_id) % {int(shards)} AS INTEGER) AS s "
                      "FROM keys", {"keys": events.select(["provider", "event_id"])}).column(0)


MIN_TIME = -2 ** 63


def block_row(kind, epoch, shard, ts, source, sha, payload, seen=MIN_TIME):
    """`seen`: for a block, the reader's watermark when it read the block's file (the latest
    event time before that file, less the out-of-orderness): a window whose first pane holds
    only blocks read after its end is a late pane, not an on-time one."""
    from pyflink.common import Row

    return Row(kind, int(epoch), int(shard), int(ts), source, sha, payload, int(seen))


def row_type():
    from pyflink.common import Types

    return Types.ROW_NAMED(
        ["kind", "epoch", "shard", "ts", "source", "sha", "payload", "seen"],
        [Types.STRING(), Types.LONG(), Types.INT(), Types.LONG(), Types.STRING(), Types.STRING(),
         Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.LONG()])


# ------------------------------------------------------------------------------------ operators

def read_usage_file(path: str, tariff: Tariff, shards: int, token_ids: TokenIds | None = None):
    """One file -> its rows: a FILE record, a QUARANTINE block, and a BLOCK per (epoch, shard)."""
    digest = hashlib.sha256()
    read, events, quarantined = 0, [], []
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        digest.update(data)
        for raw in decode_stream(io.BytesIO(data), path, format_of(path)):
            checked = validate(raw, tariff, token_ids)
            read += raw.num_rows
            events.append(checked.events.cast(EVENT_SCHEMA))
            quarantined.append(checked.quarantined.cast(QUARANTINE_SCHEMA))
    except (InvalidInput, OSError) as exc:
        yield FILE, block_row(FILE, 0, 0, 0, path, "", json.dumps({"read": 0, "error": str(exc)}).encode())
        return
    sha = digest.hexdigest()
    yield FILE, block_row(FILE, 0, 0, 0, path, sha, json.dumps({"read": read, "error": None}).encode())
    bad = pa.concat_tables(quarantined) if quarantined else QUARANTINE_SCHEMA.empty_table()
    if bad.num_rows:
        yield QUARANTINE, block_row(QUARANTINE, 0, 0, 0, path, sha, to_ipc(bad))
    table = pa.concat_tables(events) if events else EVENT_SCHEMA.empty_table()
    if not table.num_rows:
        return
    table = table.append_column("_shard", shard_of(table, shards))
    for epoch in sorted(pc.unique(table.column("epoch")).to_pylist()):
        of_epoch = table.filter(pc.equal(table.column("epoch"), epoch))
        for shard in sorted(pc.unique(of_epoch.column("_shard")).to_pylist()):
            part = of_epoch.filter(pc.equal(of_epoch.column("_shard"), shard)).drop(["_shard"])
            ts = pc.max(part.column("timestamp_ms")).as_py()
            yield BLOCK, block_row(BLOCK, epoch, shard, ts, path, sha, to_ipc(part))



try:  # the Flink environment; the main venv imports this module only for its plain helpers
    from pyflink.common import Types
    from pyflink.common.watermark_strategy import TimestampAssigner
    from pyflink.datastream import (KeyedProcessFunction, OutputTag, ProcessFunction,
                                    ProcessWindowFunction)
    from pyflink.datastream.state import (ListStateDescriptor, MapStateDescriptor,
                                          ValueStateDescriptor)
except ImportError:  # pragma: no cover - the CLI runs the job with .venv-flink's interpreter
    TimestampAssigner = KeyedProcessFunction = ProcessFunction = ProcessWindowFunction = object


def output_tags():
    """The windows' side output of data past the allowed lateness."""
    return OutputTag("too-late", row_type())


class ReadUsageFiles(ProcessFunction):
    """Paths -> Arrow blocks; pauses after a file that moves event time past an epoch end,
    so the windows fire before more data comes (as the Beam source does)."""

    def __init__(self, config: dict):
        self.config = config

    def open(self, runtime_context):
        self.tariff = load_tariff(self.config["tariff"])
        self.token_ids = _token_ids(self.config)
        self.epoch_ms = self.config["epoch_seconds"] * 1000
        self.latest = None

    def process_element(self, path, ctx):
        config = self.config
        ooo = config["out_of_orderness_ms"]
        if path == TICK:  # a pause after a file that closed an epoch: see ticked()
            if self.latest is not None and self.latest["crossed"]:
                time.sleep(config["settle_seconds"])
            return
        seen = self.latest["ts"] - ooo - 1 if self.latest else MIN_TIME
        latest, started = None, time.time()
        # every row goes through the event-time stamping, so all the writer's inputs carry
        # the watermark (quarantine and file rows have time 0: they never move it)
        for kind, row in read_usage_file(path, self.tariff, config["shards"], self.token_ids):
            if kind == BLOCK:
                latest = row[3] if latest is None else max(latest, row[3])
                row[7] = seen
            yield row
        trace = config.get("trace")
        if trace:  # benchmarks and tests: when each file was read, and its blocks left the reader
            with open(trace, "a") as log:
                log.write(json.dumps({"path": path, "started": started, "emitted": time.time()}) + "\n")
        before = self.latest["ts"] if self.latest else None
        if latest is not None and (before is None or latest > before):
            crossed = before is None or (latest - ooo) // self.epoch_ms > (before - ooo) // self.epoch_ms
            self.latest = {"ts": latest, "crossed": crossed}
        elif self.latest:
            self.latest = {**self.latest, "crossed": False}


TICK = ""


def ticked(paths: list[str]) -> list[str]:
    """The paths with a tick after each: the reader pauses on a tick after a file that closed an
    epoch, in a bundle of its own, so that the file's watermark goes out and the windows fire
    before the next file's data arrives."""
    return [item for path in paths for item in (path, TICK)]


class WatchFolder(KeyedProcessFunction):
    """--watch DIR: every --poll-seconds (a processing-time timer), the complete usage files of
    DIR not read yet, oldest first, each followed by a tick (see ticked()). The files read are
    keyed state, checkpointed with the rest: a restored job neither reads a file again nor skips
    one. After --stop-after-idle seconds without a new file it stops listing and leaves
    `layout.watch_idle_path` for the job's client, which stops the job with a drain (the final
    watermark closes the last epochs, as when a replay ends)."""

    def __init__(self, config: dict):
        self.config = config

    def open(self, runtime_context):
        self.read_state = runtime_context.get_map_state(
            MapStateDescriptor("read", Types.STRING(), Types.BOOLEAN()))
        self.read = None  # the state's keys, loaded at the first timer (keyed state needs a key)
        self.last_new = None

    def process_element(self, value, ctx):
        if value == self.config["watch"]:  # the seed: start listing
            ctx.timer_service().register_processing_time_timer(ctx.timer_service().current_processing_time())

    def on_timer(self, timestamp, ctx):
        config = self.config
        now = time.monotonic()
        if self.read is None:
            self.read = set(self.read_state.keys())
            self.last_new = now
        new = [path for path in local_usage_files(config["watch"]) if path not in self.read]
        for path in new:
            self.read_state.put(path, True)
            self.read.add(path)
            yield path
            yield TICK
        if new:
            self.last_new = now
        idle = config["stop_after_idle_seconds"]
        if idle is not None and now - self.last_new >= idle:
            atomic.write_bytes(layout.watch_idle_path(Path(config["output"]), config["run_id"]),
                               json.dumps({"files": len(self.read)}).encode())
            return  # no timer: nothing is read after the client was told to stop
        ctx.timer_service().register_processing_time_timer(
            ctx.timer_service().current_processing_time() + int(config["poll_seconds"] * 1000))


class BlockTime(TimestampAssigner):
    def extract_timestamp(self, value, record_timestamp):
        return value[3]


class EpochPane(ProcessWindowFunction):
    """All blocks of one (shard, epoch) since its last firing -> one pane (pane_payload). The purging
    trigger makes each firing carry only what arrived since the last one (discarding panes).
    A pane is on time when it is the window's first and holds data read before the window's
    end; else it is late (within the allowed lateness: Flink drops nothing that reaches here)."""

    def __init__(self, epoch_ms: int):
        self.epoch_ms = epoch_ms

    def process(self, key, context, elements):
        window = context.window()
        firings = context.window_state().get_state(ValueStateDescriptor("firings", Types.LONG()))
        index = firings.value() or 0
        firings.update(index + 1)
        elements = list(elements)
        late = index > 0 or all(e[7] >= window.max_timestamp() for e in elements)
        digests = sorted({(e[4], e[5]) for e in elements})
        yield block_row(PANE + (":late" if late else ""), window.start // self.epoch_ms, key,
                        window.max_timestamp(), json.dumps(digests), str(index),
                        pane_payload([e[6] for e in elements]))

    def clear(self, context):
        context.window_state().get_state(ValueStateDescriptor("firings", Types.LONG())).clear()


class CutWriter(KeyedProcessFunction):
    """The one writer: panes wait in keyed state for the cut of their epoch (an event-time
    timer at the epoch's end), late panes ride on the next cut."""

    def __init__(self, config: dict):
        self.config = config
        self.epoch_ms = config["epoch_seconds"] * 1000

    def open(self, runtime_context):
        config = self.config
        pickled = Types.PICKLED_BYTE_ARRAY()
        # on-time panes by (epoch, shard), each written once (a list per epoch would be read and
        # written again with every pane of it), so a cut reads only its own epochs' panes;
        # late panes apart, in arrival order
        self.panes = runtime_context.get_map_state(MapStateDescriptor("panes", Types.STRING(), pickled))
        self.late_panes = runtime_context.get_list_state(ListStateDescriptor("late_panes", pickled))
        self.quarantined = runtime_context.get_list_state(ListStateDescriptor("quarantined", pickled))
        self.tally = runtime_context.get_state(ValueStateDescriptor("tally", pickled))
        self.next_batch = runtime_context.get_state(ValueStateDescriptor("next_batch", Types.LONG()))
        self.target = _target(config)
        self.known = SettledKeys(self.target.out)

    def _tally(self) -> StreamTally:
        return self.tally.value() or StreamTally()

    def process_element(self, row, ctx):
        kind = row[0]
        ctx.timer_service().register_event_time_timer(END_OF_TIME)
        if kind.startswith(PANE):
            on_time = kind == PANE
            digests = tuple(tuple(d) for d in json.loads(row[4]))
            pane = (row[1], on_time, int(row[5]), digests, row[6])
            if on_time:
                key = f"{row[1]}:{row[2]}"
                self.panes.put(key, (self.panes.get(key) or []) + [pane])
                ctx.timer_service().register_event_time_timer(row[3])
            else:
                self.late_panes.add(pane)
        elif kind == QUARANTINE:
            self.quarantined.add((((row[4], row[5]),), row[6]))
        elif kind == FILE:
            info = json.loads(row[6])
            tally = self._tally()
            # added, not set: a file the source delivers again after a restore (its events then
            # end as duplicates of the settled ones) is read again, and counted so
            seen = tally.files.get(row[4]) or FileRead(row[4], row[5], 0, 0)
            tally.files[row[4]] = FileRead(row[4], row[5], seen.read + info["read"], seen.too_late,
                                           error=info["error"])
            self.tally.update(tally)
        elif kind == BLOCK:  # from the windows' late side output: past the allowed lateness
            events = from_ipc(row[6])
            name = late_block_name(row[4], row[5], row[1], row[2])
            atomic.write_bytes(layout.late_dir(Path(self.target.out)) / name, late_event_lines(events))
            tally = self._tally()
            tally.late_files.add(name)
            seen = tally.files.get(row[4]) or FileRead(row[4], row[5], 0, 0)
            tally.files[row[4]] = replace(seen, too_late=seen.too_late + events.num_rows)
            self.tally.update(tally)
        else:
            raise TypeError(f"the stream writer got a {kind!r} row")

    def on_timer(self, timestamp, ctx):
        epoch_ms = self.epoch_ms
        finished = timestamp >= END_OF_TIME
        keys = sorted((tuple(map(int, k.split(":"))) for k in self.panes.keys()))
        keys = [f"{e}:{shard}" for e, shard in keys if finished or e * epoch_ms + epoch_ms - 1 <= timestamp]
        due = [pane for key in keys for pane in self.panes.get(key)]
        late = list(self.late_panes.get())
        yield from self._cut(due, late, finished)
        for key in keys:
            self.panes.remove(key)
        if due or finished:  # the late panes rode on this cut
            self.late_panes.clear()

    def _cut(self, due, late, finished):
        held = list(self.quarantined.get())
        tally = self._tally()
        epochs = sorted({p[0] for p in due})
        groups = [[p for p in due if p[0] == e] for e in epochs]
        if groups:
            groups[0] = late + groups[0]
        elif finished and (late or held):
            groups = [late]
        for number, group in enumerate(groups):
            panes = [Pane(epoch=p[0], timing=ON_TIME if p[1] else LATE, index=p[2],
                          events=pane_events(p[4]), digests=p[3]) for p in group]
            quarantined = [Quarantined(from_ipc(q[1]), q[0]) for q in held] if number == 0 else []
            # the number this cut gets: checkpointed state, or the job's first batch (the
            # ledger head when the job was submitted: a restore must not read HEAD again)
            expected = self.next_batch.value() or self.config["first_batch"]
            outcome = cut_batch(self.target, panes, quarantined, self.known, batch=expected)
            self.next_batch.update(expected + 1 if outcome.batch is not None else expected)
            tally.add_cut(outcome)
            write_run(self.target, tally, finished=False)
            yield f"cut {outcome.batch}"
        if groups:
            self.quarantined.clear()
        if finished:
            write_run(self.target, tally, finished=True)
        self.tally.update(tally)


def build_job(env, config: dict):
    """The DataStream graph of one stream run on `env`."""
    from pyflink.common import Duration, Time, Types, WatermarkStrategy
    from pyflink.datastream.window import EventTimeTrigger, PurgingTrigger, TumblingEventTimeWindows

    rows = row_type()
    late_tag = output_tags()
    epoch_ms = config["epoch_seconds"] * 1000

    read = (file_paths(env, config)
            .process(ReadUsageFiles(config), output_type=rows).name("ReadUsageFiles")
            .set_parallelism(1).start_new_chain())
    # its own chain: each path and tick comes as a bundle of its own, as from a replay
    stamped = read.assign_timestamps_and_watermarks(
        WatermarkStrategy.for_bounded_out_of_orderness(
            Duration.of_millis(config["out_of_orderness_ms"])).with_timestamp_assigner(BlockTime())
    ).name("EventTime").set_parallelism(1).start_new_chain()
    # Its own task: while the reader pauses after a file that closes an epoch, this one emits
    # the watermark of that file (chained to the reader, it would wait for the next file).
    panes = (stamped
             .filter(lambda row: row[0] == BLOCK)
             .key_by(lambda row: row[2], key_type=Types.INT())
             .window(TumblingEventTimeWindows.of(Time.milliseconds(epoch_ms)))
             .trigger(PurgingTrigger.of(EventTimeTrigger.create()))
             .allowed_lateness(config["allowed_lateness_seconds"] * 1000)
             .side_output_late_data(late_tag)
             .process(EpochPane(epoch_ms), output_type=rows).name("EpochPanes"))
    to_writer = panes.union(stamped.filter(lambda row: row[0] != BLOCK),
                            panes.get_side_output(late_tag))
    (to_writer
     .key_by(lambda row: "ledger", key_type=Types.STRING())
     .process(CutWriter(config), output_type=Types.STRING()).name("CutWriter").set_parallelism(1)
     .print().set_parallelism(1))


def file_paths(env, config: dict):
    """The paths (and ticks) the reader reads: a replay's, or the watched folder's as they come."""
    from pyflink.common import Duration, Types, WatermarkStrategy

    if config["watch"] is None:
        return env.from_collection(ticked(config["paths"]), type_info=Types.STRING()).set_parallelism(1)
    from pyflink.datastream.connectors.file_system import FileSource, StreamFormat

    # An unbounded source that never emits: it keeps the job running (and its timers firing)
    # until the client stops it; a drain then ends it with the final watermark.
    keepalive = Path(config["keepalive_dir"])
    keepalive.mkdir(parents=True, exist_ok=True)
    forever = (FileSource.for_record_stream_format(StreamFormat.text_line_format(), str(keepalive))
               .monitor_continuously(Duration.of_seconds(3600)).build())
    seed = env.from_collection([config["watch"]], type_info=Types.STRING()).set_parallelism(1)
    return (seed.union(env.from_source(forever, WatermarkStrategy.no_watermarks(), "KeepAlive")
                       .set_parallelism(1))
            .key_by(lambda path: 0, key_type=Types.INT())
            .process(WatchFolder(config), output_type=Types.STRING()).name("WatchFolder")
            .set_parallelism(1))


def _target(config: dict) -> LedgerTarget:
    return LedgerTarget(out=config["output"], tariff=load_tariff(config["tariff"]),
                        chain_id=config["chain_id"], registry=config["registry"],
                        run_id=config["run_id"], probes=tuple(config.get("probes", ())),
                        token_ids=_token_ids(config))


def _token_ids(config: dict) -> TokenIds | None:
    return load_token_ids(config["token_ids"]) if config.get("token_ids") else None


# --------------------------------------------------------------------------------- configuration

def parse_args(argv):
    p = argparse.ArgumentParser(prog="meterroot stream --engine flink")
    feed = p.add_mutually_exclusive_group(required=True)
    feed.add_argument("--replay", metavar="GLOB")
    feed.add_argument("--watch", metavar="DIR")
    p.add_argument("--tariff", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--chain-id", type=int, required=True)
    p.add_argument("--registry", required=True)
    p.add_argument("--allowed-lateness-seconds", type=int)
    p.add_argument("--max-out-of-orderness-seconds", type=int, default=0)
    p.add_argument("--checkpoint-interval-seconds", type=float, default=10.0)
    p.add_argument("--checkpoint-dir")
    p.add_argument("--parallelism", type=int, default=2)
    p.add_argument("--shards", type=int)
    p.add_argument("--settle-seconds", type=float, default=0.5)
    p.add_argument("--run-id", default=None)
    p.add_argument("--token-ids", default=None)
    p.add_argument("--restart-attempts", type=int, default=10)
    p.add_argument("--stop-after-idle", type=float, default=None)
    p.add_argument("--poll-seconds", type=float, default=1.0)
    p.add_argument("--probes", action="append", default=[])
    p.add_argument("--trace", default=None)
    return p.parse_args(argv)


def check_config(args) -> dict:
    """A configuration the job can run, or UsageError before anything is read."""
    tariff = load_tariff(args.tariff)
    token_ids = getattr(args, "token_ids", None)
    if token_ids:
        load_token_ids(token_ids)  # refused here, before the job starts, when an entry is off
    try:
        registry = normalize_address(args.registry)
    except AddressError as exc:
        raise UsageError(f"--registry {exc}") from None
    if args.chain_id <= 0:
        raise UsageError(f"--chain-id must be a positive chain id, got {args.chain_id}")
    out = Path(args.output).resolve()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--output {args.output} is a file; pass a directory")
    watch, paths = None, []
    if args.watch is not None:
        if not Path(args.watch).is_dir():
            raise UsageError(f"--watch {args.watch} is not a folder; create it, then drop usage "
                             "files into it")
        watch = str(Path(args.watch).resolve())
        if Path(watch) == layout.late_dir(out).resolve():
            raise UsageError("--watch must not be OUT/late: settle late data with `meterroot batch`")
    else:
        paths = sorted(glob.glob(args.replay))
        if not paths:
            raise UsageError(f"--replay {args.replay!r} matches no file")
    if args.poll_seconds <= 0 or (args.stop_after_idle is not None and args.stop_after_idle < 0):
        raise UsageError("--poll-seconds must be > 0 and --stop-after-idle >= 0")
    lateness = tariff.epoch_seconds if args.allowed_lateness_seconds is None else args.allowed_lateness_seconds
    if lateness < 0 or args.max_out_of_orderness_seconds < 0 or args.checkpoint_interval_seconds <= 0:
        raise UsageError("--allowed-lateness-seconds, --max-out-of-orderness-seconds must be >= 0 "
                         "and --checkpoint-interval-seconds > 0")
    if args.parallelism < 1:
        raise UsageError(f"--parallelism must be >= 1, got {args.parallelism}")
    store = LedgerStore(out)
    head = store.head()
    check_continuation(head, tariff.epoch_seconds, args.chain_id, registry, str(store.root))
    return {"tariff": str(Path(args.tariff).resolve()), "epoch_seconds": tariff.epoch_seconds,
            "output": str(out), "chain_id": args.chain_id, "registry": registry,
            "paths": [str(Path(p).resolve()) for p in paths], "watch": watch,
            "stop_after_idle_seconds": args.stop_after_idle, "poll_seconds": args.poll_seconds,
            "allowed_lateness_seconds": int(lateness),
            "out_of_orderness_ms": int(args.max_out_of_orderness_seconds * 1000),
            "checkpoint_ms": int(args.checkpoint_interval_seconds * 1000),
            "checkpoint_dir": str(Path(args.checkpoint_dir or out / ".flink-checkpoints").resolve()),
            "keepalive_dir": str(Path(args.checkpoint_dir or out / ".flink-checkpoints").resolve()
                                 / "keepalive"),
            "parallelism": args.parallelism, "shards": args.shards or 2 * args.parallelism,
            "settle_seconds": args.settle_seconds, "run_id": args.run_id or uuid.uuid4().hex,
            "restart_attempts": args.restart_attempts, "first_batch": (head.batch if head else 0) + 1,
            "probes": [os.path.abspath(p) for p in args.probes],
            "token_ids": str(Path(token_ids).resolve()) if token_ids else None,
            # a file (on every TaskManager's machine) each file read is logged to
            "trace": args.trace or os.environ.get("METERROOT_FLINK_TRACE")}  # SPEC §14: settled with each cut


def environment(config: dict):
    from pyflink.common import Configuration
    from pyflink.datastream import CheckpointingMode, StreamExecutionEnvironment

    conf = Configuration()
    for key, value in {
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        "python.fn-execution.bundle.size": "1",
        "python.fn-execution.bundle.time": "50",
        "pipeline.auto-watermark-interval": "20 ms",
        "execution.checkpointing.dir": "file://" + config["checkpoint_dir"],
        "execution.checkpointing.num-retained": "2",
        "execution.checkpointing.savepoint-dir": "file://" + config["checkpoint_dir"] + "/savepoints",
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": str(config["restart_attempts"]),
        "restart-strategy.fixed-delay.delay": "2 s",
        "rest.bind-address": "127.0.0.1",
        "rest.address": "127.0.0.1",
    }.items():
        conf.set_string(key, value)
    # On the embedded mini-cluster (this process starts its JVM here; under `flink run` the
    # client's JVM is up already and this changes nothing): the JVM lives as long as the job,
    # so C2's optimising compiler never pays back its cost (it took ~12 s of CPU in a 1M-event
    # replay: a core the Python side needed on 2 cores); C1 only. And the Python operators run
    # in worker processes of their own (one per slot), not all in this one (PyFlink's loopback
    # default): measured, README's Flink rows.
    os.environ["JVM_ARGS"] = " ".join(filter(None, [os.environ.get("JVM_ARGS"), "-XX:TieredStopAtLevel=1"]))
    os.environ.setdefault("_python_worker_execution_mode", "process")
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(config["parallelism"])
    env.get_config().set_auto_watermark_interval(20)
    env.enable_checkpointing(config["checkpoint_ms"], CheckpointingMode.EXACTLY_ONCE)
    return env


def prepare_output(config: dict) -> None:
    out = Path(config["output"])
    out.mkdir(parents=True, exist_ok=True)
    store = LedgerStore(out)
    store.discard_unfinished(store.head())
    store.discard_temp_files()
    import shutil

    shutil.rmtree(staging_dir(out), ignore_errors=True)


def run_watched(env, name: str, config: dict) -> None:
    """Run a --watch job until its folder is idle (--stop-after-idle), `layout.watch_stop_path`
    appears (the CLI's driver on Ctrl-C) or this process gets SIGINT/SIGTERM; then stop it with a
    drain: the sources end, the final watermark fires every window and the writer's last cut."""
    import signal
    import threading

    asked = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: asked.set())
    out = Path(config["output"])
    idle, request = (layout.watch_idle_path(out, config["run_id"]),
                     layout.watch_stop_path(out, config["run_id"]))
    client = env.execute_async(name)
    result = client.get_job_execution_result()
    while not result.done():
        if asked.is_set() or idle.exists() or request.exists():
            drain(client, config)
            break
        asked.wait(0.2)
    result.result()
    for path in (idle, request):
        path.unlink(missing_ok=True)


def drain(client, config: dict) -> str:
    """Stop the job with a savepoint, its sources ended first and the final watermark sent
    (`flink stop --drain`); the savepoint's path. (PyFlink 2.3's JobClient.stop_with_savepoint
    calls a Java signature Flink 2 no longer has: the Java client is called directly.)"""
    from pyflink.common.completable_future import CompletableFuture
    from pyflink.java_gateway import get_gateway

    formats = get_gateway().jvm.org.apache.flink.core.execution.SavepointFormatType
    future = client._j_job_client.stopWithSavepoint(
        True, "file://" + config["checkpoint_dir"] + "/savepoints", formats.CANONICAL)
    return CompletableFuture(future).result()


def main(argv=None) -> int:
    try:
        config = check_config(parse_args(sys.argv[1:] if argv is None else argv))
        prepare_output(config)
        env = environment(config)
        build_job(env, config)
        started = time.monotonic()
        name = f"meterroot stream {config['run_id'][:8]}"
        if config["watch"] is None:
            env.execute(name)
        else:
            run_watched(env, name, config)
        print(json.dumps({"flink_job_seconds": round(time.monotonic() - started, 3)}), flush=True)
    except MeterrootError as exc:
        print(f"meterroot stream --engine flink: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    return 0


if __name__ == "__main__":
    # Imported by name, so that Flink pickles the operators by reference, not from __main__.
    from pipelines.flink_job import main as job_main

    sys.exit(job_main())
