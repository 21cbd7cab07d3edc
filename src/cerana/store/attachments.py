"""Content-addressed storage for attachment bytes.

Task-log attachments and file observables live on disk under their SHA-256:
``root/<sha256[:2]>/<sha256[2:4]>/<sha256>``. The same bytes uploaded twice
are stored once, and a stored file never changes, so readers need no locks.

An upload is written to a temporary file inside ``root`` (same filesystem, so
the final rename is atomic), flushed to disk, then renamed into place; the
directory is flushed too. Once `AttachmentStore.save` returns, the file
survives a crash.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cerana.domain.errors import InvalidInput, NotFound

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024

# Temporary files sit at the top of root, beside the two-level shard folders,
# so a leftover from a crash is easy to tell apart from stored content.
_TEMP_PREFIX = ".upload-"

_SHA256_RE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class StoredFile:
    """The identity of stored bytes: their digests and their length."""

    sha256: str
    sha1: str
    md5: str
    size: int

    @property
    def hashes(self) -> list[str]:
        """Returns the digests in TheHive's order: SHA-256, SHA-1, MD5."""
        return [self.sha256, self.sha1, self.md5]


class AttachmentStore:
    """Attachment bytes on a local (or shared) filesystem, keyed by SHA-256."""

    def __init__(self, root: Path) -> None:
        """Uses ``root`` as the store's folder, creating it if missing."""
        root.mkdir(parents=True, exist_ok=True)
        self.root = root

    def save(self, stream: BinaryIO, max_size: int | None = None) -> StoredFile:
        """Stores everything ``stream`` yields and returns its identity.

        Reads the stream to its end in `CHUNK_SIZE` pieces. Raises
        `InvalidInput` when the content is longer than ``max_size`` bytes;
        nothing is then left on disk. Bytes already stored are kept as they
        are and the new copy is dropped.
        """
        fd, temp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=self.root)
        temp_path = Path(temp_name)
        try:
            with os.fdopen(fd, "wb") as temp_file:
                stored = _copy_and_hash(stream, temp_file, max_size)
                temp_file.flush()
                os.fsync(temp_file.fileno())
            self._move_into_place(temp_path, stored.sha256)
        except BaseException:
            temp_path.unlink(missing_ok=True)
            raise

        logger.debug("stored attachment %s (%d bytes)", stored.sha256, stored.size)
        return stored

    def save_bytes(self, content: bytes) -> StoredFile:
        """Stores ``content`` as `save` does, without a size limit."""
        return self.save(io.BytesIO(content))

    def open(self, sha256: str) -> BinaryIO:
        """Opens the stored bytes for reading; the caller closes the file.

        Raises `NotFound` when ``sha256`` is malformed or not stored.
        """
        location = self._location(sha256)
        try:
            return location.open("rb")
        except FileNotFoundError:
            raise _not_found(sha256) from None

    def path(self, sha256: str) -> Path:
        """Returns where the stored bytes are, for handing to a file response.

        Raises `NotFound` when ``sha256`` is malformed or not stored.
        """
        location = self._location(sha256)
        if not location.is_file():
            raise _not_found(sha256)
        return location

    def exists(self, sha256: str) -> bool:
        """Tells whether ``sha256`` names stored bytes; malformed ids never do."""
        if not _is_sha256(sha256):
            return False
        return self._location(sha256).is_file()

    def delete(self, sha256: str) -> None:
        """Removes the stored bytes; deleting missing bytes does nothing.

        Raises `NotFound` when ``sha256`` is malformed, since it cannot name
        anything this store wrote.
        """
        try:
            self._location(sha256).unlink()
        except FileNotFoundError:
            return
        logger.debug("deleted attachment %s", sha256)

    def _location(self, sha256: str) -> Path:
        # Ids come from URLs: only a checked digest may become a path, which
        # rules out "../" and absolute paths by construction.
        if not _is_sha256(sha256):
            raise _not_found(sha256)
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def _move_into_place(self, temp_path: Path, sha256: str) -> None:
        target = self.root / sha256[:2] / sha256[2:4] / sha256
        if target.exists():
            temp_path.unlink()
            logger.debug("attachment %s already stored", sha256)
            return

        _make_durable_dir(target.parent.parent)
        _make_durable_dir(target.parent)
        os.replace(temp_path, target)
        _fsync_dir(target.parent)


def _copy_and_hash(
    stream: BinaryIO, sink: BinaryIO, max_size: int | None
) -> StoredFile:
    """Copies ``stream`` into ``sink`` while digesting it; enforces the limit."""
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1(usedforsecurity=False)
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    while chunk := stream.read(CHUNK_SIZE):
        size += len(chunk)
        if max_size is not None and size > max_size:
            raise InvalidInput(f"attachment exceeds the size limit of {max_size} bytes")
        sha256.update(chunk)
        sha1.update(chunk)
        md5.update(chunk)
        sink.write(chunk)
    return StoredFile(sha256.hexdigest(), sha1.hexdigest(), md5.hexdigest(), size)


def _make_durable_dir(folder: Path) -> None:
    """Creates ``folder`` if missing, then flushes its parent.

    A new folder's entry lives in its parent; without the flush a crash
    could lose the folder and the file renamed into it.
    """
    try:
        folder.mkdir()
    except FileExistsError:
        return
    _fsync_dir(folder.parent)


def _fsync_dir(folder: Path) -> None:
    """Flushes a folder's entries (renames, new names) to disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _is_sha256(candidate: str) -> bool:
    return _SHA256_RE.fullmatch(candidate) is not None


def _not_found(sha256: str) -> NotFound:
    return NotFound(f"attachment {sha256} not found")
