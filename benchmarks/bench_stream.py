"""`meterroot stream` on Flink (mini-cluster and a standalone cluster) and on Beam/Prism: job
start-up, sustained throughput and the delay from an epoch's watermark to its batch on disk.
Prints figures; asserts nothing about time.

- Throughput: a replay of EPOCHS epochs, FILES_PER_EPOCH files each, at two sizes; sustained
  events/s = (n2 - n1) / (t2 - t1), so the fixed cost of a job (Prism start-up, one settle
  pause per epoch, the first and last batch) drops out.
- Delay: a watched folder (Flink and Beam) fed one file per epoch every --interval seconds. File k+1 carries the
  first events of epoch k+1, so the watermark passes the end of epoch k when it is read: the
  delay is from that file's drop to batch k's HEAD commit. A late file for epoch k (within the
  allowed lateness) is dropped between them; its delay runs to the batch it rides on.

    python benchmarks/bench_stream.py [--events 200000] [--epochs 10] [--interval 2]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines import stream as stream_pipeline
from pipelines.flink_runner import (FlinkMissing, PrismMissing, find_prism_binary, flink_python,
                                    prism_pipeline_args, run_flink_job, running_job_server)

EPOCH_SECONDS = 60
FILES_PER_EPOCH = 2
CONSUMERS = 50
PROVIDERS = 8
REGISTRY = "0x6666666666666666666666666666666666666666"
TARIFF = """\
version: "bench-stream"
epoch_seconds: 60
protocol_fee_bps: 250
treasury: "0x000000000000000000000000000000000000Fee5"
prices:
  - contract: "*"
    unit: request
    per: 1000
    tiers:
      - {up_to: 100000, price_wei: "2000000000000"}
      - {up_to: null,   price_wei: "1000000000000"}
"""


def address(prefix: str, n: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(
        "0x" + prefix, pc.utf8_lpad(pc.cast(pa.array(n), pa.string()), 40 - len(prefix), "0"), "")


def usage_lines(first: int, count: int, start_seconds: int, span_seconds: int, tag: str) -> str:
    """`count` JSON lines with event times spread over [start, start + span)."""
    index = np.arange(first, first + count, dtype=np.int64)
    table = pa.table({
        "event_id": pc.binary_join_element_wise(tag, pc.cast(pa.array(index), pa.string()), "-"),
        "provider": address("a", index % PROVIDERS),
        "consumer": address("c", index % CONSUMERS),
        "quantity": pa.array(index % 9 + 1),
        "ms": pa.array(start_seconds * 1000 + (index - first) * span_seconds * 1000 // max(count, 1)),
    }).to_pylist()
    contract = "0x" + "5" * 40
    return "".join(
        f'{{"event_id":"{r["event_id"]}","provider":"{r["provider"]}","node_id":"n1",'
        f'"consumer":"{r["consumer"]}","contract":"{contract}","unit":"request",'
        f'"quantity":{r["quantity"]},"timestamp":{r["ms"]}}}\n' for r in table)


def write_replay(folder: Path, events: int, epochs: int) -> None:
    folder.mkdir(parents=True)
    files = epochs * FILES_PER_EPOCH
    per_file = events // files
    span = EPOCH_SECONDS // FILES_PER_EPOCH
    for k in range(files):
        (folder / f"usage-{k:04d}.jsonl").write_text(
            usage_lines(k * per_file, per_file, k * span, span, "r"))


def stream_args(work: Path, out: Path, prism: list[str]) -> list[str]:
    return ["--tariff", str(work / "tariff.yaml"), "--output", str(out), "--chain-id", "31337",
            "--registry", REGISTRY] + prism


def timed_replay(work: Path, name: str, events: int, epochs: int, prism: list[str]) -> tuple[float, dict]:
    inputs = work / f"in-{name}"
    write_replay(inputs, events, epochs)
    started = time.perf_counter()
    result = stream_pipeline.run(stream_args(work, work / f"out-{name}", prism)
                                 + ["--replay", str(inputs / "*.jsonl")])
    return time.perf_counter() - started, result.run


def throughput(work: Path, events: int, epochs: int, prism: list[str]) -> None:
    small, large = events // 2, events
    t1, run1 = timed_replay(work, "small", small, epochs, prism)
    t2, run2 = timed_replay(work, "large", large, epochs, prism)
    print(f"replay of {run1['accepted']:,} events in {epochs} epochs: {t1:.2f} s "
          f"({len(run1['batches'])} batches)")
    print(f"replay of {run2['accepted']:,} events in {epochs} epochs: {t2:.2f} s "
          f"({len(run2['batches'])} batches)")
    sustained = (run2["accepted"] - run1["accepted"]) / (t2 - t1)
    print(f"sustained: {sustained:,.0f} events/s (one process: Prism + its LOOPBACK Python worker); "
          f"job start-up and fixed cost: {t1 - run1['accepted'] / sustained:.1f} s")


class HeadWatcher(threading.Thread):
    """Records when each batch number first shows in OUT/ledger/HEAD.json (polled every 10 ms)."""

    def __init__(self, out: Path):
        super().__init__(daemon=True)
        self.head = out / "ledger" / "HEAD.json"
        self.seen: dict[int, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.01):
            try:
                batch = json.loads(self.head.read_text())["batch"]
            except (OSError, ValueError):
                continue
            for number in range(1, batch + 1):
                self.seen.setdefault(number, time.monotonic())

    def wait_for(self, batch: int, timeout: float = 60) -> float:
        deadline = time.monotonic() + timeout
        while batch not in self.seen:
            if time.monotonic() > deadline:
                raise TimeoutError(f"batch {batch} did not appear in {timeout} s")
            time.sleep(0.01)
        return self.seen[batch]


def drop(folder: Path, name: str, text: str) -> float:
    (folder / f".{name}").write_text(text)
    os.replace(folder / f".{name}", folder / name)
    return time.monotonic()


def delays(work: Path, epochs: int, per_epoch: int, interval: float, prism: list[str]) -> None:
    watched, out = work / "watched", work / "out-watch"
    watched.mkdir()
    args = stream_args(work, out, prism) + ["--watch", str(watched), "--stop-after-idle", "3",
                                            "--poll-seconds", "0.2"]
    job = threading.Thread(target=stream_pipeline.run, args=(args,))
    heads = HeadWatcher(out)
    heads.start()
    job.start()
    on_time, late = [], []
    drop(watched, "e0000.jsonl", usage_lines(0, per_epoch, 0, EPOCH_SECONDS, "w"))
    for epoch in range(1, epochs):
        time.sleep(interval)
        closing = drop(watched, f"e{epoch:04d}.jsonl",
                       usage_lines(epoch * per_epoch, per_epoch, epoch * EPOCH_SECONDS, EPOCH_SECONDS, "w"))
        batch = epoch  # file k closes epoch k - 1: batch k
        on_time.append(heads.wait_for(batch) - closing)
        time.sleep(interval / 2)
        late_dropped = drop(watched, f"late{epoch:04d}.jsonl",
                            usage_lines(10**9 + epoch, 10, (epoch - 1) * EPOCH_SECONDS + 1, 1, "l"))
        if epoch + 1 < epochs:
            time.sleep(interval / 2)
            late.append((late_dropped, batch + 1))
    job.join()
    heads.done.set()
    late_delays = [heads.wait_for(batch) - dropped for dropped, batch in late]
    print(f"watched folder, {per_epoch:,} events per epoch, a file every {interval:g} s, "
          f"polled every 0.2 s:")
    print(f"  epoch end (the file whose events pass it) -> its batch committed: median "
          f"{statistics.median(on_time) * 1000:.0f} ms, max {max(on_time) * 1000:.0f} ms "
          f"over {len(on_time)} epochs")
    if late_delays:
        print(f"  late file within the allowed lateness -> the batch it rides on (cut when the next "
              f"epoch ends, {1.5 * interval:g} s after the late file here): median "
              f"{statistics.median(late_delays) * 1000:.0f} ms")


def flink_replay(work: Path, name: str, events: int, epochs: int, master: str | None,
                 with_delays: bool = False) -> tuple[float, dict, float]:
    """(seconds the job took, its run.json, seconds from its first file read to its last batch
    on disk: the job's own span, without the start-up of Flink and its Python workers)."""
    inputs = work / f"in-{name}"
    if not inputs.exists():
        write_replay(inputs, events, epochs)
    out = work / f"out-{name}"
    watcher = HeadWatcher(out)
    watcher.start()
    trace = work / f"trace-{name}.jsonl"
    started = time.perf_counter()
    try:
        code = run_flink_job(["--replay", str(inputs / "*.jsonl"), "--tariff", str(work / "tariff.yaml"),
                              "--output", str(out), "--chain-id", "31337", "--registry", REGISTRY,
                              "--checkpoint-interval-seconds", "5", "--settle-seconds", "0.3",
                              "--trace", str(trace)],
                             master, stdout=subprocess.DEVNULL)
    finally:
        watcher.done.set()
    elapsed = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"the Flink job {name} exited {code}")
    run = json.loads((out / "run.json").read_text())
    if with_delays:
        flink_delays(trace, watcher, inputs)
    reads = [json.loads(line) for line in trace.read_text().splitlines()]
    last_batch = max(watcher.seen.values()) + time.time() - time.monotonic()
    return elapsed, run, last_batch - min(r["started"] for r in reads)


def flink_delays(trace: Path, watcher: HeadWatcher, inputs: Path) -> None:
    """Batch k is due when the first file of epoch k+1 moves the watermark past epoch k's end:
    the delay runs from that file's blocks leaving the reader to batch k in HEAD.json."""
    emitted = {}
    for line in trace.read_text().splitlines():
        entry = json.loads(line)
        emitted.setdefault(Path(entry["path"]).name, entry["emitted"])
    wall_of = {b: time.time() - (time.monotonic() - t) for b, t in watcher.seen.items()}
    delays = []
    for batch, at in sorted(wall_of.items()):
        crossing = f"usage-{batch * FILES_PER_EPOCH:04d}.jsonl"
        if crossing in emitted:
            delays.append(at - emitted[crossing])
    if delays:
        print(f"  watermark -> batch on disk: median {statistics.median(delays):.2f} s, "
              f"max {max(delays):.2f} s over {len(delays)} batches")


def flink_watch_delays(work: Path, epochs: int, per_epoch: int, interval: float,
                       master: str | None) -> None:
    """The watched-folder delays of `delays`, on Flink: one file per epoch every `interval` s
    once the job reads (its start-up is measured by the replays); the delay of batch k runs from
    the drop of the file that moves the watermark past epoch k (and, after the slash, from that
    file leaving the reader) to batch k in HEAD.json."""
    tag = "mini" if master is None else "standalone"
    watched, out, trace = work / f"watched-{tag}", work / f"out-watch-{tag}", work / f"trace-watch-{tag}.jsonl"
    watched.mkdir()
    heads = HeadWatcher(out)
    heads.start()
    codes = []
    job = threading.Thread(target=lambda: codes.append(run_flink_job(
        ["--watch", str(watched), "--tariff", str(work / "tariff.yaml"), "--output", str(out),
         "--chain-id", "31337", "--registry", REGISTRY, "--checkpoint-interval-seconds", "5",
         "--settle-seconds", "0.3", "--poll-seconds", "0.2", "--stop-after-idle", "4",
         "--trace", str(trace)],
        master, stdout=subprocess.DEVNULL)))
    job.start()
    try:
        drop(watched, "e0000.jsonl", usage_lines(0, per_epoch, 0, EPOCH_SECONDS, "w"))
        while not (trace.exists() and "e0000" in trace.read_text()):
            if not job.is_alive():
                raise SystemExit(f"the Flink watch job ended early: {codes}")
            time.sleep(0.05)
        dropped = {}
        for epoch in range(1, epochs):
            time.sleep(interval)
            dropped[epoch] = drop(watched, f"e{epoch:04d}.jsonl", usage_lines(
                epoch * per_epoch, per_epoch, epoch * EPOCH_SECONDS, EPOCH_SECONDS, "w"))
        job.join()
    finally:
        heads.done.set()
    if codes != [0]:
        raise SystemExit(f"the Flink watch job exited {codes}")
    emitted = {Path(e["path"]).name: e["emitted"] for e in map(json.loads, trace.read_text().splitlines())}
    offset = time.time() - time.monotonic()
    from_drop, from_read = [], []
    for batch, at in dropped.items():  # file k closes epoch k - 1: batch k
        committed = heads.seen[batch]
        from_drop.append(committed - at)
        from_read.append(committed + offset - emitted[f"e{batch:04d}.jsonl"])
    print(f"  watched folder, {per_epoch:,} events per epoch, a file every {interval:g} s, polled "
          f"every 0.2 s: the file passing epoch k's end dropped -> batch k on disk: median "
          f"{statistics.median(from_drop):.2f} s, max {max(from_drop):.2f} s; from that file read "
          f"(the watermark passes): median {statistics.median(from_read):.2f} s, max "
          f"{max(from_read):.2f} s over {len(from_drop)} epochs")


def flink_throughput(work: Path, events: int, epochs: int, master: str | None, label: str,
                     watch_events: int, interval: float) -> None:
    small, large = events // 2, events
    tag = "mini" if master is None else "standalone"
    t1, run1, span1 = flink_replay(work, f"{tag}-small", small, epochs, master)
    t2, run2, span2 = flink_replay(work, f"{tag}-large", large, epochs, master, with_delays=True)
    print(f"{label}: replay of {run1['accepted']:,} events in {epochs} epochs: {t1:.2f} s "
          f"(first file read -> last batch on disk {span1:.2f} s); {run2['accepted']:,} events: "
          f"{t2:.2f} s ({span2:.2f} s; {len(run2['batches'])} batches)")
    sustained = (run2["accepted"] - run1["accepted"]) / (span2 - span1)
    print(f"  sustained: {sustained:,.0f} events/s (between the two spans: the per-epoch pauses "
          f"cancel); start-up (submit, Flink and Python workers up, to the first file read): "
          f"{t1 - span1:.1f} s and {t2 - span2:.1f} s; the whole jobs' difference gives "
          f"{(run2['accepted'] - run1['accepted']) / (t2 - t1):,.0f} events/s")
    flink_watch_delays(work, min(epochs, 6), watch_events, interval, master)


def keep_cluster_logs(cluster: Path) -> None:
    """A failed standalone run: its cluster's logs outlive the temporary folder (.cache/)."""
    import shutil

    kept = Path(__file__).resolve().parent.parent / ".cache" / f"bench-flink-logs-{int(time.time())}"
    shutil.copytree(cluster / "log", kept, dirs_exist_ok=True)
    print(f"the standalone cluster's logs are kept in {kept}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events of the larger replay")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between watched files")
    parser.add_argument("--watch-events", type=int, default=5_000, help="events per watched file")
    parser.add_argument("--engines", default="flink,standalone,beam",
                        help="comma-separated: flink (mini-cluster), standalone, beam (Prism)")
    args = parser.parse_args(argv)
    engines = args.engines.split(",")
    with tempfile.TemporaryDirectory(prefix="bench-flink-") as tmp:
        work = Path(tmp)
        (work / "tariff.yaml").write_text(TARIFF)
        try:
            flink_python()
        except FlinkMissing as missing:
            print(f"Flink: {missing}")
            engines = [e for e in engines if e == "beam"]
        if "flink" in engines:
            flink_throughput(work, args.events, args.epochs, None, "Flink mini-cluster",
                             args.watch_events, args.interval)
        if "standalone" in engines:
            from pipelines.flink_cluster import down, up

            cluster = up(work / "cluster", taskmanagers=2, slots=1)
            try:
                flink_throughput(work, args.events, args.epochs, cluster.master,
                                 "Flink standalone (2 TaskManagers)", args.watch_events, args.interval)
            except BaseException:
                keep_cluster_logs(work / "cluster")
                raise
            finally:
                down(work / "cluster")
    if "beam" not in engines:
        return
    try:
        binary = find_prism_binary()
    except PrismMissing as missing:  # the Flink rows stand; the Beam row needs `make prism`
        print(f"Beam/Prism: skipped, {missing}")
        return
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp, \
            running_job_server(prism_pipeline_args(binary)) as endpoint:
        work = Path(tmp)
        (work / "tariff.yaml").write_text(TARIFF)
        prism = prism_pipeline_args(binary, job_endpoint=endpoint)
        print(f"Prism {binary.parent.name} (job server already running), {os.cpu_count()} cores")
        throughput(work, args.events, args.epochs, prism)
        delays(work, min(args.epochs, 6), args.watch_events, args.interval, prism)


if __name__ == "__main__":
    main()
