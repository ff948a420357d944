"""Which files of a watched folder (`meterroot stream --watch DIR`) are complete usage files, and
in which order a stream reads them. Plain Python: the Beam feed (transforms/watch_source.py) and
the Flink job (pipelines/flink_job.py) list a folder by the same rule.
"""
from __future__ import annotations

import os

from settlement.errors import InvalidInput
from transforms.decoding import format_of

INCOMPLETE_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload")
"""Names a writer uses while a file is not complete yet: never read (rename it into place)."""


def is_usage_file_name(name: str) -> bool:
    """Whether a file called `name` in a watched folder is read: not hidden, not `_…`, not a name
    of a file still being written, and a usage file extension (not a README or checksum)."""
    if name.startswith((".", "_")) or name.lower().endswith(INCOMPLETE_SUFFIXES):
        return False
    try:
        format_of(name)
    except InvalidInput:
        return False
    return True


def in_reading_order(entries) -> list[str]:
    """[(modification time, path)] -> the paths, oldest first, then by path."""
    return [path for _, path in sorted(entries)]


def local_usage_files(folder: str) -> list[str]:
    """The complete usage files of a local (or mounted) folder, in reading order."""
    try:
        with os.scandir(folder) as listing:
            entries = [(entry.stat().st_mtime_ns, entry.path) for entry in listing
                       if is_usage_file_name(entry.name) and entry.is_file()]
    except FileNotFoundError:
        return []  # a file renamed away between the listing and its stat: next listing
    except OSError as exc:
        raise InvalidInput(f"watched folder {folder!r} cannot be listed: {exc}") from None
    return in_reading_order(entries)
