"""FireHOL blocklists: is an IP address on one of the FireHOL IP lists?

Reads a local copy of ``firehol/blocklist-ipsets`` (``*.ipset`` and
``*.netset`` files at the top of the configured folder, kept fresh by a
cron ``git pull``), like Cortex's FireHOLBlocklists 2.0 analyzer, with the
same report and summary.

Cortex's analyzer re-reads every file on every job, and matches ``.ipset``
lines by substring (``1.2.3.4`` "hits" ``11.2.3.45``). Here the lists are
parsed once into sorted, merged integer ranges per list; a lookup is one
binary search per list (tens of microseconds for the 315 top-level lists),
and only exact matches count. The index is rebuilt when a file changes.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import threading
import time
from array import array
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cerana.analyzers.base import (
    Analyzer,
    AnalyzerError,
    ConfigurationItem,
    Definition,
    Level,
    Observable,
    Report,
    Taxonomy,
)

logger = logging.getLogger(__name__)

# How often, at most, the folder is checked for changed files.
_RECHECK_SECONDS = 60.0
_LINK_LINE = re.compile(r"^\[[^\]]*\]\([^)]*\).*$")


@dataclass(frozen=True)
class Blocklist:
    """One list: its header and its addresses as merged integer ranges."""

    name: str
    description: str
    file_date: str
    starts: array[int]
    ends: array[int]
    starts6: tuple[int, ...] = ()
    ends6: tuple[int, ...] = ()

    def contains(self, address: int, version: int) -> bool:
        starts, ends = (
            (self.starts, self.ends)
            if version == 4
            else (
                self.starts6,
                self.ends6,
            )
        )
        position = bisect_right(starts, address) - 1
        return position >= 0 and ends[position] >= address


@dataclass(frozen=True)
class BlocklistIndex:
    """Every list of a folder, ready for look-ups."""

    lists: tuple[Blocklist, ...]
    signature: tuple[tuple[str, int, int], ...]
    entries: int

    def lookup(self, ip: str) -> list[Blocklist]:
        """Returns the lists holding ``ip``; raises AnalyzerError if it is
        not an IP address."""
        try:
            address = ipaddress.ip_address(ip.strip())
        except ValueError:
            raise AnalyzerError(f"'{ip[:64]}' is not an IP address") from None
        number = int(address)
        if address.version == 6:
            return [b for b in self.lists if b.contains(number, 6)]
        hits = []
        for blocklist in self.lists:  # the hot loop: locals and C bisect only
            starts = blocklist.starts
            position = bisect_right(starts, number) - 1
            if position >= 0 and blocklist.ends[position] >= number:
                hits.append(blocklist)
        return hits


def load_index(folder: Path, ignore_older_than_days: int = 0) -> BlocklistIndex:
    """Parses the ``*.ipset`` / ``*.netset`` files at the top of ``folder``.

    Lists whose ``Source File Date`` is older than ``ignore_older_than_days``
    (0: keep all) are left out, as Cortex's analyzer skips them. Raises
    AnalyzerError when the folder does not exist.
    """
    if not folder.is_dir():
        raise AnalyzerError(f"blocklist folder {folder} does not exist")
    files = _list_files(folder)
    oldest = (
        datetime.now(UTC) - timedelta(days=ignore_older_than_days)
        if ignore_older_than_days > 0
        else None
    )
    lists: list[Blocklist] = []
    entries = 0
    for path in files:
        parsed = _parse_file(path, oldest)
        if parsed is not None:
            lists.append(parsed[0])
            entries += parsed[1]
    return BlocklistIndex(tuple(lists), _signature(files), entries)


def _list_files(folder: Path) -> list[Path]:
    names = sorted(p for p in folder.iterdir() if p.is_file())
    ipsets = [p for p in names if ".ipset" in p.name]
    netsets = [p for p in names if ".netset" in p.name and p not in ipsets]
    return ipsets + netsets


def _signature(files: list[Path]) -> tuple[tuple[str, int, int], ...]:
    stats = ((p, p.stat()) for p in files)
    return tuple((p.name, s.st_mtime_ns, s.st_size) for p, s in stats)


def _parse_file(path: Path, oldest: datetime | None) -> tuple[Blocklist, int] | None:
    header: list[str] = []
    file_date: datetime | None = None
    ranges4: list[tuple[int, int]] = []
    ranges6: list[tuple[int, int]] = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("#"):
                text = line.lstrip("# ").rstrip()
                if text.startswith("Source File Date:"):
                    file_date = _parse_date(text.partition(":")[2].strip())
                    if oldest is not None and file_date and file_date < oldest:
                        return None
                header.append("" if _LINK_LINE.match(text) else text)
                continue
            entry = line.strip()
            if entry:
                _add_entry(entry, ranges4, ranges6, path)
    starts, ends = _merged(ranges4)
    starts6, ends6 = _merged(ranges6)
    blocklist = Blocklist(
        name=path.name.split(".", 1)[0],
        description="\n".join(header).strip(),
        file_date=str(file_date) if file_date else "",
        starts=array("I", starts),
        ends=array("I", ends),
        starts6=tuple(starts6),
        ends6=tuple(ends6),
    )
    return blocklist, len(ranges4) + len(ranges6)


def _add_entry(
    entry: str,
    ranges4: list[tuple[int, int]],
    ranges6: list[tuple[int, int]],
    path: Path,
) -> None:
    if ":" not in entry:  # IPv4, nearly every line: parsed without ipaddress
        address, _, length = entry.partition("/")
        try:
            first = int.from_bytes(socket.inet_pton(socket.AF_INET, address), "big")
            bits = 32 - int(length) if length else 0
        except (OSError, ValueError):
            logger.debug("firehol: skipped line %r of %s", entry[:64], path.name)
            return
        if 0 <= bits <= 32:
            first = first >> bits << bits
            ranges4.append((first, first | ((1 << bits) - 1)))
        return
    try:
        network = ipaddress.ip_network(entry, strict=False)
    except ValueError:
        logger.debug("firehol: skipped line %r of %s", entry[:64], path.name)
        return
    ranges6.append((int(network.network_address), int(network.broadcast_address)))


def _merged(ranges: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    starts: list[int] = []
    ends: list[int] = []
    for first, last in sorted(ranges):
        if ends and first <= ends[-1] + 1:
            ends[-1] = max(ends[-1], last)
        else:
            starts.append(first)
            ends.append(last)
    return starts, ends


def _parse_date(text: str) -> datetime | None:
    # FireHOL writes `date -u`: "Tue Jan 23 08:55:02 UTC 2024".
    try:
        return datetime.strptime(text, "%a %b %d %H:%M:%S UTC %Y").replace(tzinfo=UTC)
    except ValueError:
        return None


class _IndexCache:
    """Keeps one index per (folder, age limit), rebuilt when files change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[Path, int], tuple[BlocklistIndex, float]] = {}

    def get(self, folder: Path, ignore_days: int) -> BlocklistIndex:
        key = (folder.resolve(), ignore_days)
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None and time.monotonic() - cached[1] < _RECHECK_SECONDS:
                return cached[0]
            if cached is not None and (
                (folder / ".lock").exists()  # an update is being written
                or _signature(_list_files(folder)) == cached[0].signature
            ):
                self._entries[key] = (cached[0], time.monotonic())
                return cached[0]
            started = time.perf_counter()
            index = load_index(folder, ignore_days)
            logger.info(
                "firehol: %d lists, %d entries indexed from %s in %.1f s",
                len(index.lists),
                index.entries,
                folder,
                time.perf_counter() - started,
            )
            self._entries[key] = (index, time.monotonic())
            return index


_CACHE = _IndexCache()


class FireHOLBlocklists(Analyzer):
    """Looks an IP address up in the FireHOL blocklists."""

    definition = Definition(
        name="FireHOLBlocklists",
        version="2.0",
        description="Check IP addresses against the FireHOL blocklists",
        data_types=("ip",),
        author="Cerana (after Nils Kuhnert's Cortex analyzer)",
        url="https://github.com/firehol/blocklist-ipsets",
        base_config="FireHOLBlocklists",
        configuration_items=(
            ConfigurationItem(
                "blocklistpath",
                "Folder holding a copy of firehol/blocklist-ipsets",
                required=True,
            ),
            ConfigurationItem(
                "ignoreolderthandays",
                "Ignore lists whose source is older than this many days (0: none)",
                type="number",
                default=0,
            ),
        ),
    )

    def run(self, observable: Observable, config: Mapping[str, Any]) -> Report:
        ip = observable.data or ""
        if "/" in ip:
            raise AnalyzerError("CIDR notation currently not supported.")
        folder = Path(str(config["blocklistpath"]))
        index = _CACHE.get(folder, int(config.get("ignoreolderthandays") or 0))
        hits = [
            {"list": b.name, "description": b.description, "file_date": b.file_date}
            for b in index.lookup(ip)
        ]
        count = len(hits)
        value = f"{count} hit" if count == 1 else f"{count} hits"
        level: Level = "suspicious" if count else "safe"
        return Report(
            full={"hits": hits, "count": count},
            taxonomies=(Taxonomy(level, "Firehol", "Blocklists", value),),
        )
