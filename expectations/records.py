"""OUT/quality/<B>/validation.json: the recorded outcome of a batch's validation."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from expectations.outputs import manifest_path
from settlement.errors import InvalidInput
from sinks.atomic import crash_point

RECORD_FILE = "validation.json"


@dataclass(frozen=True)
class ValidationRecord:
    batch: int
    """The batch validated."""
    success: bool
    """Every suite passed."""
    suites: dict
    """suite name -> success."""
    validated_at: str
    """UTC time of the validation, ISO 8601."""
    data_docs: str
    """The batch's Data Docs index, relative to the output directory."""
    manifest_sha256: str | None = None
    """sha256 of the manifest validated: a later change of the manifest makes the record stale."""
    files: dict = field(default_factory=dict)
    """{path relative to OUT: sha256} of every file of the batch validated (events, lines,
    quarantine, tree, manifest): a later change of any of them makes the record stale."""
    failures: list = field(default_factory=list)
    """One line per failed expectation."""


def quality_dir(out_dir: Path, batch: int) -> Path:
    return Path(out_dir) / "quality" / str(batch)


def record_path(out_dir: Path, batch: int) -> Path:
    return quality_dir(out_dir, batch) / RECORD_FILE


def manifest_digest(out_dir: Path, batch: int) -> str | None:
    try:
        return hashlib.sha256(manifest_path(out_dir, batch).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def batch_file_paths(out_dir: Path, batch: int) -> list[Path]:
    """The data files of `batch` a validation checks: settled events, lines, quarantine, tree,
    manifest (those that exist)."""
    from sinks import layout

    paths = sorted(layout.events_dir(out_dir, batch).glob("part-*.parquet"))
    for path in (layout.lines_path(out_dir, batch), layout.quarantine_path(out_dir, batch),
                 layout.tree_path(out_dir, batch), layout.manifest_path(out_dir, batch)):
        if path.exists():
            paths.append(path)
    return paths


def batch_digests(out_dir: Path, batch: int) -> dict[str, str]:
    """{path relative to OUT: sha256} of the data files of `batch` as they are now."""
    from sinks import layout

    digests = {}
    for path in batch_file_paths(out_dir, batch):
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
        digests[layout.relative(out_dir, path)] = digest.hexdigest()
    return digests


def stale_files(out_dir: Path, record: "ValidationRecord") -> list[str]:
    """Files of the record's batch that differ from what was validated (added, removed or
    changed); a record without file digests (an older meterroot) is stale as a whole."""
    if not record.files:
        return ["(the record names no file digests: it predates digest binding)"]
    now = batch_digests(out_dir, record.batch)
    return sorted(name for name in set(now) | set(record.files) if now.get(name) != record.files.get(name))


def write_text_atomically(path: Path, text: str) -> None:
    """Write to a temp file beside `path`, fsync, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        crash_point(path, "before")
        os.replace(temp, path)
        crash_point(path, "after")
    finally:
        temp.unlink(missing_ok=True)


def write_record(out_dir: Path, record: ValidationRecord) -> Path:
    path = record_path(out_dir, record.batch)
    write_text_atomically(path, json.dumps(asdict(record), indent=2, sort_keys=True) + "\n")
    return path


def read_record(out_dir: Path, batch: int) -> ValidationRecord | None:
    """The recorded validation of `batch`, None when it never ran."""
    path = record_path(out_dir, batch)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"validation record {path} is not readable JSON ({exc}); "
                           f"run `meterroot validate --output {out_dir} --batch {batch}` again") from None
    try:
        return ValidationRecord(
            batch=int(data["batch"]), success=data["success"] is True, suites=dict(data["suites"]),
            validated_at=str(data["validated_at"]), data_docs=str(data.get("data_docs", "")),
            manifest_sha256=data.get("manifest_sha256"), failures=list(data.get("failures", [])),
            files={str(k): str(v) for k, v in dict(data.get("files", {})).items()})
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"validation record {path} lacks {exc}; "
                           f"run `meterroot validate --output {out_dir} --batch {batch}` again") from None
