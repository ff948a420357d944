"""ReadUsageFeed: usage files as an unbounded source that owns its event-time watermark.

A feed is either a folder watched for new files (`--watch`) or a list of files replayed in order
(`--replay`). Each file is decoded and validated as in batch mode (transforms/decoding.py,
settlement/validation.py); its accepted events go out per epoch, stamped with their event time,
and after the file the watermark moves to the latest event time seen minus the bounded
out-of-orderness. Events whose epoch closed (end + allowed lateness) before the watermark are
too late: the source sends them to `too_late` instead of letting the runner drop them.

The source is a splittable DoFn: its restriction (`FeedCursor`) is the set of files read so far,
checkpointed with the watermark, so a runner that restores a checkpoint resumes after the last
file read. It never splits: one feed is one ordered stream.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.iobase import RestrictionProgress, RestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.transforms import window
from apache_beam.transforms.core import RestrictionProvider
from apache_beam.utils.timestamp import Duration, Timestamp

from settlement.errors import InvalidInput
from settlement.events import EVENT_SCHEMA, QUARANTINE_SCHEMA
from settlement.stream_records import FileRead, Quarantined, TooLate
from settlement.tariff import Tariff
from settlement.token_ids import TokenIds
from settlement.validation import validate
from transforms.decoding import decode_stream, format_of
from transforms.read_usage import file_digest
from transforms.watched_folder import in_reading_order, is_usage_file_name
from transforms.windowing import EpochEvents, EpochWindowing

QUARANTINED = "quarantined"
TOO_LATE = "too_late"
FILES = "files"

_END = object()
"""The position a feed claims when it ends."""


@dataclass(frozen=True)
class UsageFeed:
    """Where a stream's usage files come from."""

    folder: str | None = None
    """Watched folder (--watch): every complete file that appears in it, oldest first."""
    paths: tuple[str, ...] = ()
    """Replayed files (--replay), in this order; the feed ends after the last."""
    poll_seconds: float = 1.0
    """How often a watched folder is listed."""
    stop_after_idle_seconds: float | None = None
    """A watched feed ends after this long without a new file; None: it never ends."""

    @property
    def bounded(self) -> bool:
        return self.folder is None

    def pending(self, read: frozenset[str]) -> list[str]:
        """Files not read yet, in the order they are to be read."""
        if self.bounded:
            return [path for path in self.paths if path not in read]
        return [path for path in watched_files(self.folder) if path not in read]


def watched_files(folder: str) -> list[str]:
    """Complete usage files in `folder`, oldest first (modification time, then name). Hidden
    files, names starting with `_` and names of files still being written are skipped."""
    try:
        matched = FileSystems.match([FileSystems.join(folder, "*")])[0].metadata_list
    except Exception as exc:  # Beam raises BeamIOError and friends for unknown schemes
        raise InvalidInput(f"watched folder {folder!r} cannot be listed: {exc}") from None
    return in_reading_order((meta.last_updated_in_seconds, meta.path) for meta in matched
                            if is_usage_file_name(meta.path.rstrip("/").rsplit("/", 1)[-1]))


@dataclass(frozen=True)
class FeedCursor:
    """The restriction of a feed: which files are read, and whether the feed has ended."""

    read: frozenset[str] = field(default_factory=frozenset)
    """Paths of the files read."""
    finished: bool = False
    """True once the feed ended (replay done, or idle long enough), or for the part of a
    restriction before a checkpoint."""


class FeedTracker(RestrictionTracker):
    """Claims files one at a time; a checkpoint hands the rest of the feed to a later call."""

    def __init__(self, cursor: FeedCursor):
        self._cursor = cursor
        self._claimed: set[str] = set()
        self._ended = False

    def current_restriction(self) -> FeedCursor:
        return self._cursor

    def try_claim(self, position) -> bool:
        if self._cursor.finished or self._ended:
            return False
        if position is _END:
            self._ended = True
            self._cursor = replace(self._cursor, read=self._read_now(), finished=True)
            return True
        if position in self._cursor.read or position in self._claimed:
            return False
        self._claimed.add(position)
        return True

    def _read_now(self) -> frozenset[str]:
        return self._cursor.read | frozenset(self._claimed)

    def try_split(self, fraction_of_remainder):
        if fraction_of_remainder != 0 or self._cursor.finished or self._ended:
            return None  # only checkpoints: one feed is one ordered stream
        read = self._read_now()
        self._cursor = FeedCursor(read=read, finished=True)
        return self._cursor, FeedCursor(read=read, finished=False)

    def check_done(self):
        if not self._cursor.finished:
            raise ValueError(f"the feed stopped without ending or checkpointing: {self._cursor}")

    def current_progress(self) -> RestrictionProgress:
        return RestrictionProgress(completed=len(self._read_now()), remaining=0 if self._ended else 1)

    def is_bounded(self) -> bool:
        return False


class FeedRestrictions(RestrictionProvider):
    def initial_restriction(self, feed: UsageFeed) -> FeedCursor:
        return FeedCursor()

    def create_tracker(self, cursor: FeedCursor) -> FeedTracker:
        return FeedTracker(cursor)

    def restriction_size(self, feed, cursor) -> float:
        return 0.0 if cursor.finished else 1.0

    def split(self, feed, cursor):
        yield cursor

    def truncate(self, feed, cursor):
        return None  # on drain, files not read yet stay for the next run


@dataclass
class _Validated:
    read: int
    events: list[pa.Table]
    quarantined: list[pa.Table]


def _validate_file(path: str, tariff: Tariff, token_ids: TokenIds | None = None) -> _Validated:
    result = _Validated(read=0, events=[], quarantined=[])
    with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as handle:
        for raw in decode_stream(handle, path, format_of(path)):
            validated = validate(raw, tariff, token_ids)
            result.read += raw.num_rows
            result.events.append(validated.events)
            result.quarantined.append(validated.quarantined)
    return result


def split_by_epoch(events: pa.Table) -> list[tuple[int, pa.Table]]:
    """(epoch, its events) for every epoch in `events`, in epoch order."""
    epochs = events.column("epoch")
    return [(epoch, events.filter(pc.equal(epochs, epoch)))
            for epoch in sorted(pc.unique(epochs).to_pylist())]


class ReadUsageFeed(beam.DoFn):
    """UsageFeed -> timestamped EpochEvents (main), Quarantined, TooLate and FileRead outputs."""

    def __init__(self, tariff: Tariff, windowing: EpochWindowing, out_of_orderness_seconds: int,
                 settle_seconds: float = 0.3, token_ids: TokenIds | None = None):
        self.tariff = tariff
        self.token_ids = token_ids
        self.windowing = windowing
        self.out_of_orderness = Duration(seconds=out_of_orderness_seconds)
        self.settle = Duration(seconds=settle_seconds)
        # Windows Beam cannot represent (an event time near the end of Beam's time) go to late/.
        self.horizon = window.GlobalWindow().max_timestamp()

    def setup(self):
        self._last_file_at = time.monotonic()

    def _idle_too_long(self, feed: UsageFeed) -> bool:
        limit = feed.stop_after_idle_seconds
        return limit is not None and time.monotonic() - self._last_file_at >= limit

    @beam.DoFn.unbounded_per_element()
    def process(self, feed: UsageFeed,
                tracker=beam.DoFn.RestrictionParam(FeedRestrictions()),
                watermark=beam.DoFn.WatermarkEstimatorParam(ManualWatermarkEstimator.default_provider())):
        read = set(tracker.current_restriction().read)
        while True:
            pending = feed.pending(frozenset(read))
            if not pending:
                if feed.bounded or self._idle_too_long(feed):
                    tracker.try_claim(_END)  # the watermark goes to the end of time
                else:
                    tracker.defer_remainder(Duration(seconds=feed.poll_seconds))
                return
            path = pending[0]
            if not tracker.try_claim(path):
                return
            read.add(path)
            self._last_file_at = time.monotonic()
            before = watermark.current_watermark()
            latest = yield from self._read(path, before)
            if latest is None:
                continue
            after = latest - self.out_of_orderness
            if before is not None and after <= before:
                continue
            watermark.set_watermark(after)
            if self.windowing.fires_between(before, after):
                # Let the runner fire the panes this watermark closes before more data comes.
                tracker.defer_remainder(self.settle)
                return

    def _read(self, path: str, watermark: Timestamp | None):
        """Emit the outputs of one file; return the latest event time it holds (or None)."""
        try:
            validated = _validate_file(path, self.tariff, self.token_ids)
            sha256 = file_digest(path)
        except (InvalidInput, OSError) as exc:
            yield beam.pvalue.TaggedOutput(FILES, FileRead(path, "", 0, 0, error=str(exc)))
            return None
        digests = ((path, sha256),)
        quarantined = pa.concat_tables([t.cast(QUARANTINE_SCHEMA) for t in validated.quarantined]
                                       or [QUARANTINE_SCHEMA.empty_table()])
        if quarantined.num_rows:
            yield beam.pvalue.TaggedOutput(QUARANTINED, Quarantined(quarantined, digests))
        events = pa.concat_tables([t.cast(EVENT_SCHEMA) for t in validated.events]
                                  or [EVENT_SCHEMA.empty_table()])
        too_late, latest = [], None
        for epoch, part in split_by_epoch(events):
            if self.windowing.too_late(epoch, watermark) or self.windowing.closes_at(epoch) >= self.horizon:
                too_late.append(part)
                continue
            stamp = Timestamp(micros=pc.max(part.column("timestamp_ms")).as_py() * 1000)
            latest = stamp if latest is None else max(latest, stamp)
            yield window.TimestampedValue(EpochEvents(epoch, part, digests), stamp)
        late_count = sum(part.num_rows for part in too_late)
        if too_late:
            yield beam.pvalue.TaggedOutput(TOO_LATE, TooLate(path, sha256, pa.concat_tables(too_late)))
        yield beam.pvalue.TaggedOutput(FILES, FileRead(path, sha256, validated.read, late_count))
        return latest


class ReadUsageStream(beam.PTransform):
    """PBegin -> {"events": timestamped EpochEvents, "quarantined", "too_late", "files"}."""

    def __init__(self, feed: UsageFeed, tariff: Tariff, windowing: EpochWindowing,
                 out_of_orderness_seconds: int, settle_seconds: float = 0.3,
                 token_ids: TokenIds | None = None):
        super().__init__()
        self.feed = feed
        self.reader = ReadUsageFeed(tariff, windowing, out_of_orderness_seconds, settle_seconds, token_ids)

    def expand(self, pbegin):
        read = (pbegin
                | "Feed" >> beam.Create([self.feed])
                | "ReadFeed" >> beam.ParDo(self.reader).with_outputs(
                    QUARANTINED, TOO_LATE, FILES, main="events"))
        return {tag: read[tag] for tag in ("events", QUARANTINED, TOO_LATE, FILES)}
